"""SIPp (Debian's sip-tester) against the real daemon: registration over UDP and TCP with
digest authentication, an authenticated call with RTP to a pjsua2 phone, and bad input."""
from __future__ import annotations

import json
import socket
import time

import pytest

from .daemon import HOST, Sipp, write_inf
from .phones import rms_level

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("transport", ["udp", "tcp"])
def test_sipp_registers_with_digest(daemon, tmp_path, transport):
    switch = daemon()
    inf = write_inf(tmp_path / "users.csv", [["acme-201", "secret-201", "acme.test"]])
    extra = ["-t", "t1"] if transport == "tcp" else []
    sipp = Sipp("register_auth.xml", tmp_path, f"{HOST}:{switch.sip_port}", inf=inf,
                keys={"expires": "300"}, timeout_s=10, recv_timeout_ms=5000, extra=extra)
    assert sipp.run() == 0, sipp.report()
    time.sleep(0.5)  # registrations are persisted behind (every 0.25 s); the CLI reads SQLite
    rows = {r["channel"]: r for r in json.loads(switch.cli("channel", "list", "acme", "--json").stdout)}
    assert rows["acme-201"]["registered"] is True
    assert rows["acme-201"]["wan"].startswith(f"{transport}:{HOST}:")


def test_sipp_call_with_rtp_reaches_a_pjsua2_phone(daemon, phone_lab, tmp_path):
    switch = daemon()
    bob = phone_lab.phone("bob")
    assert switch.register(bob, "202") == 200
    inf = write_inf(tmp_path / "users.csv", [["acme-201", "secret-201", "acme.test"]])
    sipp = Sipp("uac_call.xml", tmp_path, f"{HOST}:{switch.sip_port}", inf=inf, service="202",
                keys={"rtp": "yes"}, duration_ms=2500, timeout_s=15, recv_timeout_ms=8000).start()
    try:
        incoming = bob.wait_incoming(5)
        incoming.answer(200)
        incoming.wait_state("CONFIRMED", 5)
        incoming.wait_media(5)
        incoming.start_recording(tmp_path / "from-sipp.wav")
        phone_lab.pump(1500)
        recorded = incoming.stop_recording()
        incoming.wait_state("DISCONNECTED", 10)  # SIPp's BYE, relayed by the switch
        assert sipp.wait() == 0, sipp.report()
    finally:
        sipp.stop()
    # the pcap is G.711 A-law speech: what Bob received through the relay is not silence
    assert rms_level(recorded) > 300
    deadline = time.monotonic() + 3  # CDRs are written behind (every 0.25 s)
    while not (rows := json.loads(switch.cli("cdr", "acme", "--json").stdout)) and time.monotonic() < deadline:
        time.sleep(0.1)
    [cdr] = rows
    assert (cdr["caller"], cdr["callee"], cdr["disposition"]) == ("201", "202", "ANSWERED")


def _udp_exchange(port: int, payloads: list[bytes], timeout: float = 2.0) -> list[bytes]:
    out = []
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind((HOST, 0))
        s.settimeout(timeout)
        for data in payloads:
            s.sendto(data, (HOST, port))
            try:
                answer = s.recv(65535)
                while answer.startswith(b"SIP/2.0 1"):  # 100 Trying: wait for the final answer
                    answer = s.recv(65535)
                out.append(answer)
            except socket.timeout:
                out.append(b"")
    return out


def _request(method: str, port: int, *, extra: str = "", cseq_method: str | None = None, uri: str = "sip:acme.test") -> bytes:
    return (f"{method} {uri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {HOST}:{port};branch=z9hG4bK-{method.lower()}-{abs(hash(extra)) % 10**8};rport\r\n"
            f"From: <sip:tester@acme.test>;tag=t1\r\nTo: <sip:acme.test>\r\nCall-ID: bad-{method}-{abs(hash(extra))}\r\n"
            f"CSeq: 1 {cseq_method or method}\r\nMax-Forwards: 70\r\n{extra}Content-Length: 0\r\n\r\n").encode()


def test_bad_input_gets_clear_statuses_and_the_daemon_keeps_running(daemon):
    switch = daemon()
    port = switch.sip_port
    garbage = [b"\x00\xff" * 300, b"\r\n\r\n", b"NOT SIP AT ALL\r\n\r\n", b"INVITE sip:x SIP/2.0\r\n\r\n"]
    _udp_exchange(port, garbage, timeout=0.3)  # dropped silently: no crash, no answer needed
    answers = _udp_exchange(port, [
        _request("OPTIONS", port, cseq_method="INVITE"),            # CSeq method mismatch → 400
        _request("FROBNICATE", port),                                # unknown method → 501 + Allow
        _request("OPTIONS", port, extra="Require: teleportation\r\n"),  # → 420 + Unsupported
        _request("OPTIONS", port, uri="tel:+31201234567"),           # → 416
        _request("OPTIONS", port).replace(b"SIP/2.0\r\n", b"SIP/7.0\r\n", 1),  # → 505
        _request("INVITE", port, uri="sip:202@acme.test"),           # no credentials → 407
    ])
    statuses = [a.split(b" ", 2)[1].decode() if a else "" for a in answers]
    assert statuses == ["400", "501", "420", "416", "505", "407"]
    assert b"Allow: " in answers[1] and b"Unsupported: teleportation" in answers[2]
    assert b"Proxy-Authenticate: Digest" in answers[5]
    [ok] = _udp_exchange(port, [_request("OPTIONS", port, extra="X-Check: alive\r\n")])
    assert ok.startswith(b"SIP/2.0 200 OK")


def test_json_log_format_gives_one_object_per_line(daemon, phone_lab):
    switch = daemon(extra_args=("--log-format", "json"))
    alice, bob = phone_lab.phone("alice"), phone_lab.phone("bob")
    assert switch.register(alice, "201") == 200
    assert switch.register(bob, "202") == 200
    call = alice.dial("202")
    bob.wait_incoming(5).answer(486)
    call.wait_state("DISCONNECTED", 5)
    entries = [json.loads(line) for line in switch.log_text().splitlines() if line.startswith("{")]
    assert entries and all({"ts", "level", "logger", "msg"} <= set(e) for e in entries)
    assert any(e["msg"].startswith("SIP listening") for e in entries)
    assert any("call_id" in e and "201 (Alice) -> 202" in e["msg"] for e in entries)
