"""Self-check of the integration harness itself — no softswitch involved.

Proves that the tools the switch's integration tests rely on measure what they claim:
two pjsua2 phones talk peer to peer (RFC 3261 INVITE/BYE, RFC 3264 offer/answer and
hold, RFC 4733 and SIP INFO DTMF) with tones verified by FFT; a child-process phone
works over its pipe; the SIPp scenarios run against pjsua2 and against a tiny digest
challenger written here (RFC 3261 section 22, RFC 2617 digest with qop=auth).
"""

from __future__ import annotations

import hashlib
import re
import secrets
import signal
import socket
import sys
import threading
import time
from pathlib import Path

import pytest

from .daemon import (HOST, Daemon, DaemonError, Sipp, allocate_rtp_range, free_udp_port, sip_ping,
                     write_inf)
from .phones import (Call, PhoneLab, assert_tone, dominant_frequency, rms_level, spawn_phone_process,
                     write_tone_wav)

pytestmark = pytest.mark.integration

TONE_A_HZ = 600
TONE_B_HZ = 1100
LISTEN_MS = 1200
#: Lowest RMS expected over the first second of SIPp's g711a.pcap (measured: ~170).
PCAP_SPEECH_MIN_RMS = 50.0


def _record_both(lab: PhoneLab, a: Call, b: Call, tmp_path: Path, tag: str) -> tuple[Path, Path]:
    a.start_recording(tmp_path / f"a-{tag}.wav")
    b.start_recording(tmp_path / f"b-{tag}.wav")
    lab.pump(LISTEN_MS)
    pa, pb = a.stop_recording(), b.stop_recording()
    assert pa is not None and pb is not None
    return pa, pb


def test_tone_analysis_on_generated_files(tmp_path: Path) -> None:
    for freq in (440, 600, 1100, 2000):
        assert abs(dominant_frequency(write_tone_wav(tmp_path / f"{freq}.wav", freq, seconds=1)) - freq) < 1
    assert_tone(tmp_path / "600.wav", 600)
    with pytest.raises(AssertionError, match="dominant frequency"):
        assert_tone(tmp_path / "600.wav", 1100)
    quiet = write_tone_wav(tmp_path / "quiet.wav", 600, seconds=1, amplitude=20)
    assert rms_level(quiet) < 100
    with pytest.raises(AssertionError, match="silence"):
        assert_tone(quiet, 600)


def test_two_phones_peer_to_peer_tones_hold_hangup(tmp_path: Path) -> None:
    with PhoneLab() as lab:
        alice, bob = lab.phone("alice"), lab.phone("bob")
        out = alice.call(f"sip:bob@{HOST}:{bob.port}")
        inc = bob.wait_incoming(5)
        inc.wait_state("EARLY")  # auto 180 Ringing
        out.wait_state("EARLY")
        assert out.last_status == 180
        inc.answer()
        for call in (out, inc):
            call.wait_state("CONFIRMED")
            call.wait_media()
            assert call.media_dir() == "sendrecv"
        out.play_tone(TONE_A_HZ)
        inc.play_tone(TONE_B_HZ)

        rec_a, rec_b = _record_both(lab, out, inc, tmp_path, "talk")
        assert_tone(rec_a, TONE_B_HZ)
        assert_tone(rec_b, TONE_A_HZ)

        out.hold()
        lab.wait_for(lambda: out.media_dir() == "sendonly" and inc.media_dir() == "recvonly", 5, "hold")
        assert out.media_status == "LOCAL_HOLD" and inc.media_status == "REMOTE_HOLD"
        rec_a, rec_b = _record_both(lab, out, inc, tmp_path, "held")
        assert rms_level(rec_a) < 1.0  # the held side sends nothing
        assert_tone(rec_b, TONE_A_HZ)  # sendonly: the holder still sends

        out.unhold()
        lab.wait_for(lambda: out.media_dir() == "sendrecv" and inc.media_dir() == "sendrecv", 5, "unhold")
        rec_a, rec_b = _record_both(lab, out, inc, tmp_path, "resumed")
        assert_tone(rec_a, TONE_B_HZ)
        assert_tone(rec_b, TONE_A_HZ)

        out.dial_dtmf("12#")
        assert inc.wait_dtmf(3) == "12#"
        for digit in "5*":
            out.send_info_dtmf(digit)
        assert inc.wait_dtmf(5) == "12#5*"

        inc.hangup()
        out.wait_state("DISCONNECTED")
        inc.wait_state("DISCONNECTED")
        assert out.states == ["CALLING", "EARLY", "CONNECTING", "CONFIRMED", "DISCONNECTED"]
        assert lab.active_calls() == 0


def test_rejected_and_cancelled_calls_report_status() -> None:
    with PhoneLab() as lab:
        alice, bob = lab.phone("alice"), lab.phone("bob")
        out = alice.call(bob.uri)
        bob.wait_incoming(5).answer(486)
        out.wait_state("DISCONNECTED")
        assert out.last_status == 486
        with pytest.raises(AssertionError, match="486"):
            out.wait_state("CONFIRMED", 1)

        out = alice.call(bob.uri)
        inc = bob.wait_incoming(5)
        out.wait_state("EARLY")
        out.hangup()  # CANCEL
        inc.wait_state("DISCONNECTED")
        assert inc.last_status == 487
        with pytest.raises(TimeoutError, match="incoming call on bob"):
            bob.wait_incoming(0.3)


def test_child_process_phone_has_its_own_call_budget(tmp_path: Path) -> None:
    with PhoneLab() as lab:
        alice = lab.phone("alice")
        remote = spawn_phone_process("carol", lab=lab)
        with remote:
            out = alice.call(remote.uri)
            far = remote.wait_incoming(5, answer=200)
            out.wait_state("CONFIRMED")
            far.wait_state("CONFIRMED")
            out.wait_media()
            far.wait_media()
            out.play_tone(TONE_A_HZ)
            far.play_tone(TONE_B_HZ)
            far.start_recording(tmp_path / "carol.wav")
            out.start_recording(tmp_path / "alice.wav")
            lab.pump(LISTEN_MS)
            carol_wav = far.stop_recording()
            alice_wav = out.stop_recording()
            assert carol_wav is not None and alice_wav is not None
            assert_tone(carol_wav, TONE_A_HZ)
            assert_tone(alice_wav, TONE_B_HZ)
            far.hangup()
            out.wait_state("DISCONNECTED")
            assert far.state == "DISCONNECTED"
            exit_code = remote.close()
        assert exit_code == 0


def test_sipp_uas_answers_a_pjsua2_call(tmp_path: Path) -> None:
    sipp = Sipp("uas_answer.xml", tmp_path, timeout_s=15, recv_timeout_ms=8000).start()
    try:
        with PhoneLab() as lab:
            alice = lab.phone("alice")
            lab.wait_for(lambda: sip_port_bound(sipp.local_port) or sipp.poll() is not None, 5, "SIPp to bind")
            out = alice.call(f"sip:service@{sipp.uri_host}")
            out.wait_state("CONFIRMED", 5)
            out.wait_media()
            lab.pump(300)
            out.hangup()
            out.wait_state("DISCONNECTED")
            lab.wait_for(lambda: sipp.poll() is not None, 10, "SIPp to finish")
    finally:
        sipp.stop()
    assert sipp.wait() == 0, sipp.report()
    assert out.last_status == 200


def sip_port_bound(port: int) -> bool:
    """True when something holds UDP ``port`` on loopback (SIPp has started)."""
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        try:
            s.bind((HOST, port))
        except OSError:
            return True
    return False


# --------------------------------------------------------------------------- digest challenger

REALM = "selfcheck.test"


def _md5(text: str) -> str:
    return hashlib.md5(text.encode()).hexdigest()


def _header(message: str, name: str) -> str | None:
    m = re.search(rf"^{name}\s*:\s*(.*)$", message, re.IGNORECASE | re.MULTILINE)
    return m.group(1).strip() if m else None


class DigestChallenger:
    """A minimal UDP SIP server that challenges REGISTER (401) and INVITE (407) once,
    verifies the digest response (RFC 2617 section 3.2.2, qop=auth), answers the call
    and its BYE.  Only enough SIP to check the SIPp scenarios."""

    def __init__(self, users: dict[str, str]) -> None:
        self.users = users
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind((HOST, 0))
        self.sock.settimeout(0.05)
        self.port = int(self.sock.getsockname()[1])
        self.nonce = secrets.token_hex(8)
        self.events: list[tuple[str, str]] = []
        self.requests: list[str] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, name="digest-challenger", daemon=True)

    def __enter__(self) -> DigestChallenger:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(5)
        self.sock.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            text = data.decode(errors="replace")
            if not text.startswith("SIP/2.0"):
                self.requests.append(text)
                self._on_request(text, addr)

    def _verify(self, method: str, credentials: str) -> str:
        params = dict(re.findall(r'(\w+)="?([^",]*)"?', credentials))
        user = params.get("username", "")
        if user not in self.users or params.get("nonce") != self.nonce:
            return "unknown"
        ha1 = _md5(f"{user}:{params.get('realm')}:{self.users[user]}")
        ha2 = _md5(f"{method}:{params.get('uri')}")
        if params.get("qop"):
            expected = _md5(f"{ha1}:{self.nonce}:{params.get('nc')}:{params.get('cnonce')}:{params['qop']}:{ha2}")
        else:
            expected = _md5(f"{ha1}:{self.nonce}:{ha2}")
        return f"ok:{user}" if expected == params.get("response") else f"bad:{user}"

    def _reply(self, request: str, addr: tuple[str, int], status: str, extra: str = "", body: str = "") -> None:
        lines = [f"SIP/2.0 {status}"]
        for name in ("Via", "From", "To", "Call-ID", "CSeq"):
            for m in re.finditer(rf"^{name}\s*:.*$", request, re.IGNORECASE | re.MULTILINE):
                value = m.group(0).strip()
                if name == "To" and ";tag=" not in value and not status.startswith("100"):
                    value += ";tag=challenger"
                lines.append(value)
        if not extra.startswith("Contact:"):
            lines.append(f"Contact: <sip:challenger@{HOST}:{self.port}>")
        if extra:
            lines.append(extra)
        if body:
            lines.append("Content-Type: application/sdp")
        lines.append(f"Content-Length: {len(body.encode())}")
        self.sock.sendto(("\r\n".join(lines) + "\r\n\r\n" + body).encode(), addr)

    def _on_request(self, text: str, addr: tuple[str, int]) -> None:
        method = text.split(" ", 1)[0]
        if method == "ACK":
            self.events.append(("ACK", ""))
            return
        if method == "BYE":
            self.events.append(("BYE", ""))
            self._reply(text, addr, "200 OK")
            return
        header = {"REGISTER": "Authorization", "INVITE": "Proxy-Authorization"}.get(method)
        if header is None:
            self._reply(text, addr, "405 Method Not Allowed")
            return
        credentials = _header(text, header)
        if credentials is None:
            self.events.append((method, "challenged"))
            code = "401 Unauthorized" if method == "REGISTER" else "407 Proxy Authentication Required"
            challenge = "WWW-Authenticate" if method == "REGISTER" else "Proxy-Authenticate"
            self._reply(text, addr, code, f'{challenge}: Digest realm="{REALM}", nonce="{self.nonce}", '
                                          f'qop="auth", algorithm=MD5')
            return
        verdict = self._verify(method, credentials)
        self.events.append((method, verdict))
        if not verdict.startswith("ok"):
            self._reply(text, addr, "403 Forbidden")
        elif method == "REGISTER":
            expires = _header(text, "Expires") or "300"
            self._reply(text, addr, "200 OK", f"Contact: {_header(text, 'Contact')};expires={expires}")
        else:
            sdp = (f"v=0\r\no=- 1 1 IN IP4 {HOST}\r\ns=-\r\nc=IN IP4 {HOST}\r\nt=0 0\r\n"
                   f"m=audio {free_udp_port()} RTP/AVP 8\r\na=rtpmap:8 PCMA/8000\r\na=recvonly\r\n")
            self._reply(text, addr, "100 Trying")
            self._reply(text, addr, "180 Ringing")
            self._reply(text, addr, "200 OK", body=sdp)


def test_phone_registers_and_dials_through_a_digest_server() -> None:
    with DigestChallenger({"acme-201": "secret-201"}) as server, PhoneLab() as lab:
        alice, mallory = lab.phone("alice"), lab.phone("mallory")
        assert alice.register(HOST, server.port, "acme.test", "acme-201", "secret-201") == 200
        assert alice.reg_expires > 0
        assert mallory.register(HOST, server.port, "acme.test", "acme-201", "wrong") == 403
        register = server.requests[1]
        assert register.startswith(f"REGISTER sip:{HOST}:{server.port} SIP/2.0")
        assert re.search(r"^To: <?sip:acme-201@acme.test>?", register, re.MULTILINE)

        call = alice.dial("202")
        call.wait_state("CONFIRMED")
        call.hangup()
        call.wait_state("DISCONNECTED")
        invite = [r for r in server.requests if r.startswith("INVITE")][-1]
        assert invite.startswith(f"INVITE sip:202@{HOST}:{server.port} SIP/2.0")
        assert "Proxy-Authorization: Digest" in invite
        # pjsua reports DISCONNECTED as soon as it sends the BYE.
        lab.wait_for(lambda: ("BYE", "") in server.events, 2, "the BYE at the server")
        assert server.events[-3:] == [("INVITE", "ok:acme-201"), ("ACK", ""), ("BYE", "")]

        assert alice.unregister() == 200
        assert re.search(r"^Expires: 0", server.requests[-1], re.MULTILINE)


def test_phone_registers_via_outbound_proxy() -> None:
    with DigestChallenger({"acme-202": "secret-202"}) as server, PhoneLab() as lab:
        bob = lab.phone("bob")
        code = bob.register(HOST, server.port, "acme.test", "acme-202", "secret-202", outbound_proxy=True)
        assert code == 200
        register = server.requests[-1]
        assert register.startswith("REGISTER sip:acme.test SIP/2.0")
        assert re.search(rf"^Route: <sip:{HOST}:{server.port};lr>", register, re.MULTILINE)
        assert bob.target("202") == "sip:202@acme.test"


def test_sipp_register_auth_answers_the_digest_challenge(tmp_path: Path) -> None:
    inf = write_inf(tmp_path / "users.csv", [["acme-201", "pa-ss.201", "acme.test"]])
    with DigestChallenger({"acme-201": "pa-ss.201"}) as server:
        sipp = Sipp("register_auth.xml", tmp_path, f"{HOST}:{server.port}", inf=inf,
                    keys={"expires": "300"}, timeout_s=10, recv_timeout_ms=5000)
        assert sipp.run() == 0, sipp.report()
    assert server.events == [("REGISTER", "challenged"), ("REGISTER", "ok:acme-201")]


def test_sipp_uac_call_authenticates_and_hangs_up(tmp_path: Path) -> None:
    inf = write_inf(tmp_path / "users.csv", [["acme-202", "secret-202", "acme.test"]])
    with DigestChallenger({"acme-202": "secret-202"}) as server:
        sipp = Sipp("uac_call.xml", tmp_path, f"{HOST}:{server.port}", inf=inf, service="203",
                    keys={"rtp": "yes"}, duration_ms=500, timeout_s=15, recv_timeout_ms=5000)
        assert sipp.run() == 0, sipp.report()
        deadline = time.monotonic() + 2
        while ("BYE", "") not in server.events and time.monotonic() < deadline:
            time.sleep(0.05)
    assert server.events[:2] == [("INVITE", "challenged"), ("ACK", "")]
    assert server.events[2:] == [("INVITE", "ok:acme-202"), ("ACK", ""), ("BYE", "")]
    cseqs = re.findall(r"^CSeq: (\d+ \w+)", sipp.message_file.read_text(), re.MULTILINE)
    assert [c for i, c in enumerate(cseqs) if c not in cseqs[:i]] == [
        "1 INVITE", "1 ACK", "2 INVITE", "2 ACK", "3 BYE"]


def test_sipp_uac_call_with_rtp_to_a_pjsua2_phone(tmp_path: Path) -> None:
    inf = write_inf(tmp_path / "users.csv", [["sipp", "unused", HOST]])
    with PhoneLab() as lab:
        bob = lab.phone("bob")
        sipp = Sipp("uac_call.xml", tmp_path, f"{HOST}:{bob.port}", inf=inf, service="bob",
                    keys={"rtp": "yes"}, duration_ms=1500, timeout_s=10, recv_timeout_ms=5000).start()
        try:
            inc = bob.wait_incoming(5)
            inc.answer()
            inc.wait_state("CONFIRMED")
            inc.wait_media()
            inc.start_recording(tmp_path / "from-sipp.wav")
            lab.pump(1000)
            recording = inc.stop_recording()
            inc.wait_state("DISCONNECTED", 5)
            lab.wait_for(lambda: sipp.poll() is not None, 10, "SIPp to finish")
        finally:
            sipp.stop()
        assert sipp.wait() == 0, sipp.report()
        # g711a.pcap is speech with pauses; without RTP pjsua records exact zeros.
        assert recording is not None and rms_level(recording, skip_s=0.2) > PCAP_SPEECH_MIN_RMS
        messages = sipp.message_file.read_text()
        assert re.findall(r"^CSeq: (\d+ \w+)", messages, re.MULTILINE)[-1] == "2 BYE"


def test_sip_ping_reports_nothing_listening() -> None:
    assert sip_ping(HOST, free_udp_port(), timeout=0.2) is None


# --------------------------------------------------------------------------- daemon control

STUB_DAEMON = '''
import signal, socket, sys
port, mode = int(sys.argv[1]), sys.argv[2]
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", port))
s.settimeout(0.05)
stop = []
if mode == "ignore-term":
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
else:
    signal.signal(signal.SIGTERM, lambda *a: stop.append(1))
print("stub daemon listening", flush=True)
while not stop:
    try:
        data, addr = s.recvfrom(65535)
    except TimeoutError:
        continue
    via = [l for l in data.decode().split("\\r\\n") if l.startswith("Via:")][0]
    s.sendto(("SIP/2.0 200 OK\\r\\n" + via + "\\r\\nContent-Length: 0\\r\\n\\r\\n").encode(), addr)
if mode == "traceback":
    try:
        1 / 0
    except ZeroDivisionError:
        import traceback; traceback.print_exc()
sys.exit(0)
'''


class StubDaemon(Daemon):
    """Daemon control pointed at a 20-line stand-in, to check start/probe/stop/log checks."""

    def __init__(self, tmp_path: Path, mode: str) -> None:
        super().__init__(tmp_path / "unused.db", log_path=tmp_path / f"stub-{mode}.log")
        self.script = tmp_path / "stub_daemon.py"
        self.script.write_text(STUB_DAEMON)
        self.mode = mode

    @property
    def command(self) -> list[str]:
        return [sys.executable, str(self.script), str(self.sip_port), self.mode]


def test_daemon_control_starts_probes_and_stops(tmp_path: Path) -> None:
    d = StubDaemon(tmp_path, "clean")
    lo, hi = d.rtp_ports
    assert lo % 2 == 0 and hi > lo
    assert allocate_rtp_range() != d.rtp_ports
    d.start()
    assert d.alive()
    response = sip_ping(d.host, d.sip_port)
    assert response is not None and response.startswith(b"SIP/2.0 200")
    assert d.stop() == 0
    assert d.problems() == []
    assert "stub daemon listening" in d.log_text()


def test_daemon_control_reports_tracebacks_and_kills_stubborn_daemons(tmp_path: Path) -> None:
    d = StubDaemon(tmp_path, "traceback")
    d.start()
    assert d.stop() == 0
    assert d.problems() == ["daemon logged a Python traceback"]

    stubborn = StubDaemon(tmp_path, "ignore-term")
    stubborn.start()
    assert stubborn.stop(timeout=0.5) == -signal.SIGKILL
    assert stubborn.problems() == [f"daemon exited with code {-signal.SIGKILL}"]


def test_daemon_start_fails_fast_when_the_process_dies(tmp_path: Path) -> None:
    d = StubDaemon(tmp_path, "clean")
    d.script.write_text("import sys; print('bad config'); sys.exit(3)")
    with pytest.raises(DaemonError, match="exited with 3"):
        d.start()
