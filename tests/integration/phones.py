"""Real SIP phones for integration tests: pjsua2 driven single-threaded from the test.

The switch is tested against a real, independent SIP stack (PJSIP 2.15) rather than
against our own message builders.  Everything here is deterministic in the sense that
matters for tests: pjsua2 runs with no worker threads (``threadCnt = 0``) and delivers
every callback on the test thread (``mainThreadOnly``); the test advances the SIP
stack by pumping ``Endpoint.libHandleEvents`` in bounded steps while it waits for a
condition, and every wait has a timeout that raises :class:`TimeoutError` describing
what was awaited.

Protocol surface exercised through pjsua2:

- RFC 3261 section 10 (REGISTER with digest authentication, RFC 3261 section 22 /
  RFC 2617), section 13/14 (INVITE, re-INVITE), section 15 (BYE/CANCEL).
- RFC 3264 section 8.4 (hold: re-INVITE with ``a=sendonly``; resume with
  ``a=sendrecv``).
- RFC 4733 (telephone-event DTMF in RTP) and SIP INFO DTMF
  (``application/dtmf-relay``, one digit per INFO as desk phones send it).
- Media: G.711 (PCMU/PCMA, RFC 3551) only; a generated sine tone is played into the
  call and the far side's audio is recorded to a WAV file whose dominant frequency is
  measured with a windowed FFT (:func:`dominant_frequency`, :func:`assert_tone`).

The pjsua2 wheel is built with at most :data:`MAX_CALLS_PER_PROCESS` calls per process
(both ends count when two phones share a process).  Scenarios that need more call legs
run extra phones in child processes: :func:`spawn_phone_process` returns a
:class:`RemotePhone` driven over a :class:`multiprocessing.Pipe`.

Only one :class:`PhoneLab` (one pjsua2 ``Endpoint``) may exist per process at a time.
"""

from __future__ import annotations

import collections
import itertools
import logging
import math
import multiprocessing
import multiprocessing.connection
import random
import shutil
import tempfile
import time
import wave
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pjsua2 as pj

logger = logging.getLogger(__name__)

#: The pjsua2 wheel is compiled with PJSUA_MAX_CALLS = 4 (both ends of a local call count).
MAX_CALLS_PER_PROCESS = 4
#: Longest single ``libHandleEvents`` step while waiting, in milliseconds.
PUMP_STEP_MS = 10
#: Sample rate of generated tones and of the conference bridge (G.711 is 8 kHz).
TONE_SAMPLE_RATE_HZ = 8000
#: Length of a generated tone file; an integer number of seconds loops without a click
#: for every integer frequency.
TONE_DURATION_S = 2
#: Peak amplitude of generated tones (about -10 dBFS).
TONE_AMPLITUDE = 10000
#: RMS (of int16 samples) below which a recording counts as silence.
SILENCE_RMS = 200.0
#: Bounded wait for a recorder to write its final WAV header, in seconds.
WAV_FINALISE_TIMEOUT_S = 3.0
#: Bounded wait for calls to end when a lab shuts down, in seconds.
SHUTDOWN_TIMEOUT_S = 3.0
#: Bounded wait for a child phone process to answer a command that has no own timeout.
REMOTE_COMMAND_TIMEOUT_S = 30.0
#: Phones take RTP ports from [PHONE_RTP_BASE, PHONE_RTP_BASE + 2 * PHONE_RTP_SPAN); daemon
#: ranges come from below this (see daemon.py).
PHONE_RTP_BASE = 50000
PHONE_RTP_SPAN = 4000
#: Registration expiry requested by the phones, in seconds (RFC 3261 section 10.2.1.1).
REGISTER_EXPIRES_S = 300
#: Codecs left enabled (everything else gets priority 0, i.e. disabled).
ENABLED_CODECS = {"PCMU/8000/1": 255, "PCMA/8000/1": 254}

_INV_STATE_NAMES = {
    pj.PJSIP_INV_STATE_NULL: "NULL",
    pj.PJSIP_INV_STATE_CALLING: "CALLING",
    pj.PJSIP_INV_STATE_INCOMING: "INCOMING",
    pj.PJSIP_INV_STATE_EARLY: "EARLY",
    pj.PJSIP_INV_STATE_CONNECTING: "CONNECTING",
    pj.PJSIP_INV_STATE_CONFIRMED: "CONFIRMED",
    pj.PJSIP_INV_STATE_DISCONNECTED: "DISCONNECTED",
}
#: Call states in the order a call passes through them.
CALL_STATES = tuple(_INV_STATE_NAMES.values())

_MEDIA_STATUS_NAMES = {
    pj.PJSUA_CALL_MEDIA_NONE: "NONE",
    pj.PJSUA_CALL_MEDIA_ACTIVE: "ACTIVE",
    pj.PJSUA_CALL_MEDIA_LOCAL_HOLD: "LOCAL_HOLD",
    pj.PJSUA_CALL_MEDIA_REMOTE_HOLD: "REMOTE_HOLD",
    pj.PJSUA_CALL_MEDIA_ERROR: "ERROR",
}
# Direction of the audio stream as seen from this phone (RFC 3264 section 5.1 terms).
_MEDIA_DIR_NAMES = {
    pj.PJMEDIA_DIR_NONE: "inactive",
    pj.PJMEDIA_DIR_ENCODING: "sendonly",
    pj.PJMEDIA_DIR_DECODING: "recvonly",
    pj.PJMEDIA_DIR_ENCODING_DECODING: "sendrecv",
}


# --------------------------------------------------------------------------- audio helpers


def write_tone_wav(path: Path | str, freq_hz: float, seconds: float = TONE_DURATION_S,
                   rate: int = TONE_SAMPLE_RATE_HZ, amplitude: int = TONE_AMPLITUDE) -> Path:
    """Write a mono 16-bit PCM sine wave file and return its path."""
    n = int(round(seconds * rate))
    t = np.arange(n, dtype=np.float64) / rate
    samples = np.round(amplitude * np.sin(2 * math.pi * freq_hz * t)).astype("<i2")
    path = Path(path)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(samples.tobytes())
    return path


def read_wav(path: Path | str) -> tuple[np.ndarray, int]:
    """Return (mono float64 samples in int16 units, sample rate) of a 16-bit PCM WAV."""
    with wave.open(str(path), "rb") as w:
        if w.getsampwidth() != 2:
            raise ValueError(f"{path}: expected 16-bit PCM, got {8 * w.getsampwidth()}-bit")
        channels = w.getnchannels()
        rate = w.getframerate()
        data = np.frombuffer(w.readframes(w.getnframes()), dtype="<i2").astype(np.float64)
    if channels > 1:
        data = data.reshape(-1, channels).mean(axis=1)
    return data, rate


def _analysed_part(wav_path: Path | str, skip_s: float) -> tuple[np.ndarray, int]:
    data, rate = read_wav(wav_path)
    data = data[int(skip_s * rate):]
    if data.size < rate // 10:
        raise AssertionError(f"{wav_path}: only {data.size} samples after skipping {skip_s}s "
                             f"(need at least 0.1 s of audio)")
    return data, rate


def rms_level(wav_path: Path | str, skip_s: float = 0.3) -> float:
    """Root-mean-square level (int16 units) of a WAV file after skipping ``skip_s``."""
    data, _ = _analysed_part(wav_path, skip_s)
    return float(np.sqrt(np.mean(np.square(data))))


def dominant_frequency(wav_path: Path | str, skip_s: float = 0.3) -> float:
    """Frequency in Hz of the strongest spectral peak (Hann window, parabolic interpolation)."""
    data, rate = _analysed_part(wav_path, skip_s)
    data = data - data.mean()
    spectrum = np.abs(np.fft.rfft(data * np.hanning(data.size)))
    spectrum[0] = 0.0
    k = int(np.argmax(spectrum))
    offset = 0.0
    if 0 < k < spectrum.size - 1:
        # Parabolic interpolation on the log magnitude refines the peak between bins.
        a, b, c = np.log(spectrum[k - 1:k + 2] + 1e-12)
        denom = a - 2 * b + c
        if denom != 0:
            offset = 0.5 * (a - c) / denom
    return (k + offset) * rate / data.size


def assert_tone(wav_path: Path | str, freq: float, tol: float = 10.0, skip_s: float = 0.3) -> None:
    """Assert that the recording holds audible audio whose dominant frequency is ``freq``."""
    level = rms_level(wav_path, skip_s)
    assert level >= SILENCE_RMS, f"{wav_path}: RMS {level:.1f} is silence (< {SILENCE_RMS})"
    found = dominant_frequency(wav_path, skip_s)
    assert abs(found - freq) <= tol, (
        f"{wav_path}: dominant frequency {found:.1f} Hz, expected {freq} Hz +/- {tol} (RMS {level:.0f})")


# --------------------------------------------------------------------------- the lab


def moh_notes() -> tuple[float, ...]:
    """The notes of the switch's default music on hold (tools/make_moh.py generates it)."""
    import importlib.util
    path = Path(__file__).resolve().parents[2] / "tools" / "make_moh.py"
    spec = importlib.util.spec_from_file_location("make_moh", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return tuple(module.MOH_NOTES_HZ)


def assert_music_on_hold(wav_path: Path | str, skip_s: float = 0.3) -> None:
    """The recording carries the default music on hold: not silence, and its strongest
    frequency is one of the music's notes."""
    level = rms_level(wav_path, skip_s)
    assert level > 200, f"{wav_path}: silence (RMS {level:.0f}) where music on hold was expected"
    freq = dominant_frequency(wav_path, skip_s)
    notes = moh_notes()
    assert any(abs(freq - n) <= 10 for n in notes), f"{wav_path}: {freq:.0f} Hz is not a note of the music on hold {notes}"


class PhoneLab:
    """The one pjsua2 Endpoint of this process; a context manager.

    Creates the endpoint single-threaded with the null audio device, G.711 only and no
    STUN/ICE/SRTP; destroys it (hanging up what is left) on exit.
    """

    def __init__(self, log_level: int = 1, log_file: Path | str | None = None) -> None:
        self.log_level = log_level
        self.log_file = str(log_file) if log_file is not None else ""
        self.ep: pj.Endpoint | None = None
        self.phones: list[Phone] = []
        self.tmpdir: Path | None = None
        self._tones: dict[float, Path] = {}

    def __repr__(self) -> str:
        return f"<PhoneLab phones={[p.name for p in self.phones]} active={self.ep is not None}>"

    def __enter__(self) -> PhoneLab:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> None:
        self.tmpdir = Path(tempfile.mkdtemp(prefix="phonelab-"))
        ep = pj.Endpoint()
        ep.libCreate()
        cfg = pj.EpConfig()
        cfg.uaConfig.threadCnt = 0
        cfg.uaConfig.mainThreadOnly = True
        cfg.uaConfig.maxCalls = MAX_CALLS_PER_PROCESS
        cfg.uaConfig.userAgent = "softswitch-test-phone (pjsua2)"
        cfg.logConfig.level = self.log_level
        cfg.logConfig.consoleLevel = min(self.log_level, 1)
        cfg.logConfig.msgLogging = 1 if self.log_file else 0
        cfg.logConfig.filename = self.log_file
        cfg.medConfig.clockRate = TONE_SAMPLE_RATE_HZ
        cfg.medConfig.sndClockRate = TONE_SAMPLE_RATE_HZ
        cfg.medConfig.noVad = True
        cfg.medConfig.ecTailLen = 0
        ep.libInit(cfg)
        ep.audDevManager().setNullDev()
        ep.libStart()
        for info in ep.codecEnum2():
            ep.codecSetPriority(info.codecId, ENABLED_CODECS.get(info.codecId, 0))
        self.ep = ep

    def close(self) -> None:
        ep = self.ep
        if ep is None:
            return
        try:
            live = [c for p in self.phones for c in p.calls if c.state != "DISCONNECTED"]
            for call in live:
                call.hangup()
            try:
                self.wait_for(lambda: all(c.state == "DISCONNECTED" for c in live),
                              SHUTDOWN_TIMEOUT_S, "calls to end at lab shutdown")
            except TimeoutError:
                logger.warning("calls still up at lab shutdown: %s", live)
            for phone in self.phones:
                phone._destroy()
            self.phones.clear()
            self._tones.clear()
        finally:
            self.ep = None
            ep.libDestroy()
            del ep
            if self.tmpdir is not None:
                shutil.rmtree(self.tmpdir, ignore_errors=True)

    # -- event pumping

    def pump(self, ms: int = 100) -> None:
        """Run the SIP stack for ``ms`` milliseconds (in steps of at most PUMP_STEP_MS)."""
        assert self.ep is not None, "lab not started"
        deadline = time.monotonic() + ms / 1000.0
        while True:
            left_ms = int((deadline - time.monotonic()) * 1000)
            if left_ms <= 0:
                break
            self.ep.libHandleEvents(min(PUMP_STEP_MS, left_ms))

    def wait_for(self, predicate: Callable[[], bool], timeout: float, what: str = "condition") -> None:
        """Pump events until ``predicate()`` is true; TimeoutError after ``timeout`` seconds."""
        assert self.ep is not None, "lab not started"
        deadline = time.monotonic() + timeout
        while not predicate():
            if time.monotonic() >= deadline:
                raise TimeoutError(f"timed out after {timeout:g} s waiting for {what}")
            self.ep.libHandleEvents(PUMP_STEP_MS)

    # -- helpers

    def tone_file(self, freq_hz: float) -> Path:
        """Path of a generated looping sine WAV at ``freq_hz`` (cached per lab)."""
        assert self.tmpdir is not None
        if freq_hz not in self._tones:
            self._tones[freq_hz] = write_tone_wav(self.tmpdir / f"tone-{freq_hz:g}.wav", freq_hz)
        return self._tones[freq_hz]

    def phone(self, name: str, auto_ring: bool = True) -> Phone:
        """Create a phone on its own UDP port (see :class:`Phone`)."""
        return Phone(self, name, auto_ring=auto_ring)

    def active_calls(self) -> int:
        return sum(1 for p in self.phones for c in p.calls if c.state != "DISCONNECTED")


# --------------------------------------------------------------------------- calls


class _PjCall(pj.Call):
    """pjsua2 callback receiver; forwards every event to its :class:`Call` wrapper."""

    def __init__(self, owner: Call, account: pj.Account, call_id: int) -> None:
        super().__init__(account, call_id)
        self.owner = owner

    def onCallState(self, prm: pj.OnCallStateParam) -> None:
        self.owner._on_state()

    def onCallMediaState(self, prm: pj.OnCallMediaStateParam) -> None:
        self.owner._on_media()

    def onCallSdpCreated(self, prm: pj.OnCallSdpCreatedParam) -> None:
        self.owner.local_sdp = prm.sdp.wholeSdp
        if prm.remSdp.wholeSdp:
            self.owner.remote_sdp = prm.remSdp.wholeSdp

    def onDtmfDigit(self, prm: pj.OnDtmfDigitParam) -> None:
        self.owner.received_dtmf.append(prm.digit)

    def onCallTransferStatus(self, prm: pj.OnCallTransferStatusParam) -> None:
        # the sipfrag status lines of the NOTIFYs about our REFER (RFC 3515)
        self.owner.transfer_status.append((prm.statusCode, bool(prm.finalNotify)))


class Call:
    """One call leg of a :class:`Phone`: state, control verbs and media taps."""

    _ids = itertools.count(1)

    def __init__(self, phone: Phone, call_id: int = pj.PJSUA_INVALID_ID, incoming: bool = False) -> None:
        self.phone = phone
        self.lab = phone.lab
        self.incoming = incoming
        self.index = next(self._ids)
        self.state = "NULL"
        self.states: list[str] = []
        self.last_status = 0
        self.last_reason = ""
        self.remote_uri = ""
        self.sip_call_id = ""
        # SDP bodies as pjsua built/received them when it created our offer or answer
        # (remote_sdp is filled only where the far side's SDP came first).
        self.local_sdp = ""
        self.remote_sdp = ""
        self.media_status = "NONE"
        self.received_dtmf: list[str] = []
        self.transfer_status: list[tuple[int, bool]] = []
        self._dir = "inactive"
        self._conf_slot = -1
        self._tone: pj.AudioMediaPlayer | None = None
        self._recorder: pj.AudioMediaRecorder | None = None
        self.recording_path: Path | None = None
        self.pj: Any = _PjCall(self, phone.account, call_id)
        if incoming:
            self._on_state()

    def __repr__(self) -> str:
        return (f"<Call {self.phone.name}#{self.index} {'in' if self.incoming else 'out'} "
                f"{self.state} {self.last_status} {self.remote_uri}>")

    # -- callbacks

    def _on_state(self) -> None:
        info = self.pj.getInfo()
        self.state = _INV_STATE_NAMES.get(info.state, str(info.state))
        if not self.states or self.states[-1] != self.state:
            self.states.append(self.state)
        self.last_status = int(info.lastStatusCode)
        self.last_reason = info.lastReason
        self.remote_uri = info.remoteUri
        self.sip_call_id = info.callIdString
        logger.debug("%s: state %s (%s %s)", self.phone.name, self.state, self.last_status, self.last_reason)
        if self.state == "DISCONNECTED":
            self.media_status = "NONE"
            self._dir = "inactive"
            self._conf_slot = -1
            self._release_media()

    def _on_media(self) -> None:
        info = self.pj.getInfo()
        self.media_status, self._dir, self._conf_slot = "NONE", "inactive", -1
        for mi in info.media:
            if mi.type != pj.PJMEDIA_TYPE_AUDIO:
                continue
            self.media_status = _MEDIA_STATUS_NAMES.get(mi.status, str(mi.status))
            self._dir = _MEDIA_DIR_NAMES.get(mi.dir, str(mi.dir))
            if mi.status in (pj.PJSUA_CALL_MEDIA_ACTIVE, pj.PJSUA_CALL_MEDIA_LOCAL_HOLD,
                             pj.PJSUA_CALL_MEDIA_REMOTE_HOLD):
                self._conf_slot = mi.audioConfSlot
            break
        logger.debug("%s: media %s %s slot %s", self.phone.name, self.media_status, self._dir, self._conf_slot)
        self._connect_media()

    def _audio_media(self) -> pj.AudioMedia | None:
        if self._conf_slot < 0:
            return None
        return self.pj.getAudioMedia(-1)

    def _connect_media(self) -> None:
        """(Re)connect the tone player and the recorder to the call's bridge port.

        pjsua may recreate the stream on a re-INVITE, which drops bridge connections; this
        runs on every media state change so the taps survive hold/resume.
        """
        aud = self._audio_media()
        if aud is None:
            return
        if self._tone is not None:
            self._tone.startTransmit(aud)
        if self._recorder is not None:
            aud.startTransmit(self._recorder)

    def _release_media(self) -> None:
        # Destroying the recorder finalises the WAV header (asynchronously).
        self._tone = None
        self._recorder = None

    # -- queries

    @property
    def media_active(self) -> bool:
        return self.media_status == "ACTIVE"

    def media_dir(self) -> str:
        """Direction of this side's audio stream: sendrecv, sendonly, recvonly or inactive."""
        return self._dir

    # -- verbs

    def answer(self, code: int = 200) -> None:
        prm = pj.CallOpParam(True)
        prm.statusCode = code
        self.pj.answer(prm)

    def hangup(self, code: int = 0) -> None:
        """End the call (CANCEL, BYE or a final response as the state requires).

        pjsua reports DISCONNECTED as soon as it has sent the BYE, before the far end
        answered it; wait on the far side (or the server) for proof it arrived.
        """
        if self.state == "DISCONNECTED":
            return
        prm = pj.CallOpParam(True)
        if code:
            prm.statusCode = code
        self.pj.hangup(prm)

    def hold(self) -> None:
        """Put the call on hold: re-INVITE with a=sendonly (RFC 3264 section 8.4)."""
        self.pj.setHold(pj.CallOpParam(True))

    def unhold(self) -> None:
        """Resume the call: re-INVITE with a=sendrecv."""
        prm = pj.CallOpParam(True)
        prm.opt.flag = pj.PJSUA_CALL_UNHOLD
        self.pj.reinvite(prm)

    def xfer(self, number: str) -> None:
        """Blind transfer with the phone's transfer key: REFER with Refer-To: number."""
        self.pj.xfer(self.phone.target(number), pj.CallOpParam(True))

    def xfer_replaces(self, other: Call) -> None:
        """Attended transfer: REFER on this call with Refer-To: the target of ``other``
        plus Replaces naming ``other``'s dialog (RFC 3891)."""
        self.pj.xferReplaces(other.pj, pj.CallOpParam(True))

    def wait_transfer_status(self, timeout: float = 5.0) -> int:
        """The status of the final NOTIFY about our REFER."""
        self.lab.wait_for(lambda: any(final for _, final in self.transfer_status), timeout,
                          f"the final transfer NOTIFY on {self!r}")
        return next(code for code, final in self.transfer_status if final)

    def dial_dtmf(self, digits: str) -> None:
        """Send DTMF as RFC 4733 telephone-events in the RTP stream."""
        prm = pj.CallSendDtmfParam()
        prm.digits = digits
        prm.method = pj.PJSUA_DTMF_METHOD_RFC2833
        self.pj.sendDtmf(prm)

    def send_info_dtmf(self, digit: str) -> None:
        """Send one digit as SIP INFO application/dtmf-relay (one INFO per digit)."""
        if len(digit) != 1:
            raise ValueError("send one digit per INFO, as desk phones do")
        prm = pj.CallSendDtmfParam()
        prm.digits = digit
        prm.method = pj.PJSUA_DTMF_METHOD_SIP_INFO
        self.pj.sendDtmf(prm)

    def play_tone(self, freq_hz: float) -> None:
        """Play a looping sine tone into the call (now, or as soon as media is up)."""
        player = pj.AudioMediaPlayer()
        player.createPlayer(str(self.lab.tone_file(freq_hz)), 0)
        self._tone = player
        self._connect_media()

    def stop_tone(self) -> None:
        self._tone = None

    def start_recording(self, path: Path | str) -> None:
        """Record what the far side sends into a WAV file at ``path``."""
        self.stop_recording()
        recorder = pj.AudioMediaRecorder()
        recorder.createRecorder(str(path))
        self._recorder = recorder
        self.recording_path = Path(path)
        self._connect_media()

    def stop_recording(self) -> Path | None:
        """Stop recording and finalise the WAV file; returns its path."""
        recorder, self._recorder = self._recorder, None
        if recorder is not None:
            aud = self._audio_media()
            if aud is not None:
                aud.stopTransmit(recorder)
            del recorder
            if self.recording_path is not None:
                self._wait_wav_finalised(self.recording_path)
        return self.recording_path

    def _wait_wav_finalised(self, path: Path) -> None:
        # PJSIP 2.15 removes conference ports asynchronously (in the bridge's clock
        # thread); the WAV header gets its lengths only then.
        def finalised() -> bool:
            with open(path, "rb") as f:
                head = f.read(8)
            return len(head) == 8 and int.from_bytes(head[4:8], "little") == path.stat().st_size - 8

        self.lab.wait_for(finalised, WAV_FINALISE_TIMEOUT_S, f"recording {path} to be finalised")

    # -- waits

    def wait_state(self, name: str, timeout: float = 5.0) -> None:
        """Wait until the call reaches state ``name`` (or a later one, for DISCONNECTED)."""
        name = name.upper()
        if name not in CALL_STATES:
            raise ValueError(f"unknown call state {name!r}; one of {CALL_STATES}")

        def reached() -> bool:
            if self.state == name or name in self.states:
                return True
            if self.state == "DISCONNECTED":
                raise AssertionError(f"{self!r} ended ({self.last_status} {self.last_reason}) "
                                     f"while waiting for {name}; states {self.states}")
            return False

        self.lab.wait_for(reached, timeout, f"{self!r} to reach {name}")

    def wait_media(self, timeout: float = 5.0) -> None:
        """Wait until the call's audio is active (not held, not absent)."""
        self.lab.wait_for(lambda: self.media_active, timeout, f"active media on {self!r}")

    def wait_media_dir(self, direction: str, timeout: float = 5.0) -> None:
        self.lab.wait_for(lambda: self._dir == direction, timeout,
                          f"media direction {direction} on {self!r} (now {self._dir})")

    def wait_dtmf(self, count: int, timeout: float = 5.0) -> str:
        self.lab.wait_for(lambda: len(self.received_dtmf) >= count, timeout,
                          f"{count} DTMF digits on {self!r} (got {self.received_dtmf})")
        return "".join(self.received_dtmf)

    def status(self) -> dict[str, Any]:
        return {"state": self.state, "last_status": self.last_status, "last_reason": self.last_reason,
                "media_status": self.media_status, "media_dir": self._dir,
                "remote_uri": self.remote_uri, "received_dtmf": "".join(self.received_dtmf),
                "states": list(self.states)}


# --------------------------------------------------------------------------- phones


class _PjAccount(pj.Account):
    def __init__(self, owner: Phone) -> None:
        super().__init__()
        self.owner = owner

    def onIncomingCall(self, prm: pj.OnIncomingCallParam) -> None:
        self.owner._on_incoming(prm.callId)

    def onRegState(self, prm: pj.OnRegStateParam) -> None:
        self.owner._on_reg(int(prm.code), int(prm.expiration))


class Phone:
    """A SIP phone: one pjsua2 Account on its own UDP transport at 127.0.0.1:<ephemeral>.

    Before :meth:`register` it is reachable directly as ``sip:<name>@127.0.0.1:<port>``
    (peer to peer).  Incoming calls are queued (and answered 180 Ringing at once when
    ``auto_ring``, as desk phones do); take them with :meth:`wait_incoming`.
    """

    def __init__(self, lab: PhoneLab, name: str, auto_ring: bool = True) -> None:
        assert lab.ep is not None, "lab not started"
        self.lab = lab
        self.name = name
        self.auto_ring = auto_ring
        tcfg = pj.TransportConfig()
        tcfg.port = 0
        tcfg.boundAddress = "127.0.0.1"
        self.transport_id = lab.ep.transportCreate(pj.PJSIP_TRANSPORT_UDP, tcfg)
        self.port = int(lab.ep.transportGetInfo(self.transport_id).localName.rsplit(":", 1)[1])
        self.uri = f"sip:{name}@127.0.0.1:{self.port}"
        self.calls: list[Call] = []
        self.incoming: collections.deque[Call] = collections.deque()
        self.reg_status = 0
        self.reg_expires = 0
        self.reg_events: list[tuple[int, int]] = []
        self.server: tuple[str, int] | None = None
        self.domain: str | None = None
        self.outbound_proxy = False
        self.account: Any = _PjAccount(self)
        self.account.create(self._config())
        lab.phones.append(self)

    def __repr__(self) -> str:
        return f"<Phone {self.name} {self.uri} reg={self.reg_status}>"

    def _config(self, username: str | None = None, password: str | None = None) -> pj.AccountConfig:
        cfg = pj.AccountConfig()
        cfg.sipConfig.transportId = self.transport_id
        nat = cfg.natConfig
        nat.iceEnabled = False
        nat.turnEnabled = False
        nat.sipStunUse = pj.PJSUA_STUN_USE_DISABLED
        nat.mediaStunUse = pj.PJSUA_STUN_USE_DISABLED
        nat.contactRewriteUse = 0
        nat.viaRewriteUse = 0
        nat.sdpNatRewriteUse = 0
        nat.sipOutboundUse = 0
        nat.udpKaIntervalSec = 0
        cfg.mediaConfig.srtpUse = pj.PJMEDIA_SRTP_DISABLED
        cfg.mediaConfig.srtpSecureSignaling = 0
        # No automatic re-INVITE to narrow a multi-codec answer down to one codec.
        cfg.mediaConfig.lockCodecEnabled = False
        cfg.mediaConfig.transportConfig.boundAddress = "127.0.0.1"
        cfg.mediaConfig.transportConfig.publicAddress = "127.0.0.1"
        # A random base keeps concurrent test processes from fighting over pjsua's default
        # 4000; pjsua walks up the range when a port is taken.
        cfg.mediaConfig.transportConfig.port = PHONE_RTP_BASE + 2 * random.randrange(PHONE_RTP_SPAN // 2)
        cfg.mediaConfig.transportConfig.portRange = PHONE_RTP_SPAN
        cfg.regConfig.retryIntervalSec = 0
        cfg.regConfig.timeoutSec = REGISTER_EXPIRES_S
        cfg.regConfig.dropCallsOnFail = False
        if username is None or self.server is None or self.domain is None:
            cfg.idUri = f"sip:{self.name}@127.0.0.1:{self.port}"
            return cfg
        host, port = self.server
        cfg.idUri = f"sip:{username}@{self.domain}"
        if self.outbound_proxy:
            cfg.regConfig.registrarUri = f"sip:{self.domain}"
            cfg.sipConfig.proxies.append(f"sip:{host}:{port};lr")
        else:
            cfg.regConfig.registrarUri = f"sip:{host}:{port}"
        cred = pj.AuthCredInfo("digest", "*", username, 0, password or "")
        cfg.sipConfig.authCreds.append(cred)
        return cfg

    # -- callbacks

    def _on_incoming(self, call_id: int) -> None:
        call = Call(self, call_id, incoming=True)
        self.calls.append(call)
        self.incoming.append(call)
        logger.debug("%s: incoming call from %s", self.name, call.remote_uri)
        if self.auto_ring:
            call.answer(180)

    def _on_reg(self, code: int, expiration: int) -> None:
        self.reg_status = code
        self.reg_expires = expiration
        self.reg_events.append((code, expiration))
        logger.debug("%s: registration %s expires %s", self.name, code, expiration)

    # -- verbs

    def register(self, server_host: str, server_port: int, domain: str, username: str,
                 password: str, timeout: float = 5.0, outbound_proxy: bool = False) -> int:
        """REGISTER ``sip:username@domain`` with digest credentials; returns the final status.

        By default the registrar URI is ``sip:server_host:server_port`` and the AOR carries
        the domain.  With ``outbound_proxy`` the Request-URI is ``sip:domain`` and the
        server is a loose-routing outbound proxy (a Route header is added), as desk
        phones with an "outbound proxy" setting do.
        """
        self.server = (server_host, server_port)
        self.domain = domain
        self.outbound_proxy = outbound_proxy
        self.username = username
        seen = len(self.reg_events)
        self.account.modify(self._config(username, password))
        self.lab.wait_for(lambda: len(self.reg_events) > seen, timeout,
                          f"REGISTER response for {username}@{domain} at {server_host}:{server_port}")
        return self.reg_status

    def unregister(self, timeout: float = 5.0) -> int:
        """REGISTER with Expires: 0; returns the final status."""
        seen = len(self.reg_events)
        self.account.setRegistration(False)
        self.lab.wait_for(lambda: len(self.reg_events) > seen, timeout, f"unREGISTER of {self.name}")
        return self.reg_status

    def target(self, number: str) -> str:
        """The Request-URI to dial ``number`` through the registered server."""
        if self.server is None or self.domain is None:
            raise RuntimeError(f"{self.name} is not registered to a server")
        if self.outbound_proxy:
            return f"sip:{number}@{self.domain}"
        host, port = self.server
        return f"sip:{number}@{host}:{port}"

    def call(self, uri: str) -> Call:
        """Start an outgoing call to a full SIP URI."""
        if self.lab.active_calls() >= MAX_CALLS_PER_PROCESS:
            raise RuntimeError(f"pjsua2 allows {MAX_CALLS_PER_PROCESS} calls per process; "
                               f"use spawn_phone_process() for more")
        call = Call(self)
        self.calls.append(call)
        call.pj.makeCall(uri, pj.CallOpParam(True))
        return call

    def dial(self, number: str) -> Call:
        """Call ``number`` (an extension, service code or external number) via the server."""
        return self.call(self.target(number))

    def wait_incoming(self, timeout: float = 5.0) -> Call:
        """Pop the next incoming call, waiting for one if needed."""
        self.lab.wait_for(lambda: bool(self.incoming), timeout, f"an incoming call on {self.name}")
        return self.incoming.popleft()

    def status(self) -> dict[str, Any]:
        return {"name": self.name, "port": self.port, "uri": self.uri, "reg_status": self.reg_status,
                "reg_expires": self.reg_expires, "calls": [c.status() for c in self.calls],
                "queued_incoming": len(self.incoming)}

    def _destroy(self) -> None:
        # pjsua2 objects must be deleted before libDestroy(): their destructors call
        # into pjsua.  Drop every reference this harness holds (tests may still hold the
        # wrappers, which then become inert).
        for call in self.calls:
            call._release_media()
            if call.pj is not None:
                call.pj.owner = None
                call.pj = None
        self.calls.clear()
        self.incoming.clear()
        if self.account is not None:
            self.account.owner = None
            self.account.shutdown()
            self.account = None


# --------------------------------------------------------------------------- child processes


class RemoteError(RuntimeError):
    """A command failed inside a child phone process."""


class RemoteCall:
    """Proxy for a :class:`Call` living in a child phone process."""

    def __init__(self, phone: RemotePhone, index: int) -> None:
        self.phone = phone
        self.index = index

    def __repr__(self) -> str:
        return f"<RemoteCall {self.phone.name}#{self.index}>"

    def _do(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        return self.phone._request(("call", self.index, method, args), timeout)

    def answer(self, code: int = 200) -> None:
        self._do("answer", code)

    def hangup(self, code: int = 0) -> None:
        self._do("hangup", code)

    def hold(self) -> None:
        self._do("hold")

    def unhold(self) -> None:
        self._do("unhold")

    def dial_dtmf(self, digits: str) -> None:
        self._do("dial_dtmf", digits)

    def xfer(self, number: str) -> None:
        self._do("xfer", number)

    def wait_transfer_status(self, timeout: float = 5.0) -> int:
        return self._do("wait_transfer_status", timeout, timeout=timeout + 5)

    def wait_dtmf(self, count: int, timeout: float = 5.0) -> str:
        return self._do("wait_dtmf", count, timeout, timeout=timeout + 5)

    def send_info_dtmf(self, digit: str) -> None:
        self._do("send_info_dtmf", digit)

    def play_tone(self, freq_hz: float) -> None:
        self._do("play_tone", freq_hz)

    def start_recording(self, path: Path | str) -> None:
        self._do("start_recording", str(path))

    def stop_recording(self) -> Path | None:
        result = self._do("stop_recording")
        return Path(result) if result else None

    def wait_state(self, name: str, timeout: float = 5.0) -> None:
        self._do("wait_state", name, timeout, timeout=timeout + REMOTE_COMMAND_TIMEOUT_S)

    def wait_media(self, timeout: float = 5.0) -> None:
        self._do("wait_media", timeout, timeout=timeout + REMOTE_COMMAND_TIMEOUT_S)

    def media_dir(self) -> str:
        return self._do("media_dir")

    def status(self) -> dict[str, Any]:
        return self._do("status")

    @property
    def state(self) -> str:
        return self.status()["state"]

    @property
    def last_status(self) -> int:
        return self.status()["last_status"]


class RemotePhone:
    """Proxy for a :class:`Phone` in a child process with its own PhoneLab.

    Commands are synchronous.  Pass the parent's ``lab`` so that the parent's SIP stack
    keeps being pumped while it waits for the child's answer.
    """

    def __init__(self, process: multiprocessing.process.BaseProcess,
                 conn: multiprocessing.connection.Connection, name: str, port: int,
                 lab: PhoneLab | None) -> None:
        self.process = process
        self.conn = conn
        self.name = name
        self.port = port
        self.uri = f"sip:{name}@127.0.0.1:{port}"
        self.lab = lab

    def __repr__(self) -> str:
        return f"<RemotePhone {self.name} pid={self.process.pid} {self.uri}>"

    def __enter__(self) -> RemotePhone:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(self, message: tuple[Any, ...], timeout: float | None = None) -> Any:
        if timeout is None:
            timeout = REMOTE_COMMAND_TIMEOUT_S
        self.conn.send(message)
        deadline = time.monotonic() + timeout
        while not self.conn.poll(0):
            if not self.process.is_alive():
                raise RemoteError(f"{self!r} died (exit code {self.process.exitcode}) during {message[:3]}")
            if time.monotonic() >= deadline:
                raise TimeoutError(f"{self!r} did not answer {message[:3]} within {timeout:g} s")
            if self.lab is not None and self.lab.ep is not None:
                self.lab.pump(PUMP_STEP_MS)
            else:
                self.conn.poll(PUMP_STEP_MS / 1000.0)
        kind, value = self.conn.recv()
        if kind == "ok":
            return value
        exc_type, text = value
        if exc_type == "TimeoutError":
            raise TimeoutError(f"{self.name}: {text}")
        if exc_type == "AssertionError":
            raise AssertionError(f"{self.name}: {text}")
        raise RemoteError(f"{self.name}: {exc_type}: {text}")

    def _do(self, method: str, *args: Any, timeout: float | None = None) -> Any:
        return self._request(("phone", method, args), timeout)

    def register(self, server_host: str, server_port: int, domain: str, username: str,
                 password: str, timeout: float = 5.0, outbound_proxy: bool = False) -> int:
        return self._do("register", server_host, server_port, domain, username, password, timeout,
                        outbound_proxy, timeout=timeout + REMOTE_COMMAND_TIMEOUT_S)

    def unregister(self, timeout: float = 5.0) -> int:
        return self._do("unregister", timeout, timeout=timeout + REMOTE_COMMAND_TIMEOUT_S)

    def call(self, uri: str) -> RemoteCall:
        return RemoteCall(self, self._do("call", uri))

    def dial(self, number: str) -> RemoteCall:
        return RemoteCall(self, self._do("dial", number))

    def wait_incoming(self, timeout: float = 5.0, answer: int | None = None) -> RemoteCall:
        """Wait for an incoming call; answer it with status ``answer`` when given."""
        index = self._do("wait_incoming", timeout, answer, timeout=timeout + REMOTE_COMMAND_TIMEOUT_S)
        return RemoteCall(self, index)

    def status(self) -> dict[str, Any]:
        return self._do("status")

    @property
    def reg_status(self) -> int:
        return self.status()["reg_status"]

    def close(self, timeout: float = 10.0) -> int | None:
        """Quit the child (ending its calls) and return its exit code."""
        if self.process.is_alive():
            try:
                self._request(("quit",), timeout)
            except (TimeoutError, RemoteError, OSError, EOFError) as exc:
                logger.warning("%r did not quit cleanly: %s", self, exc)
            self.process.join(timeout)
            if self.process.is_alive():
                self.process.terminate()
                self.process.join(timeout)
        self.conn.close()
        return self.process.exitcode


_PHONE_COMMANDS = {"register", "unregister", "call", "dial", "wait_incoming", "status"}
_CALL_COMMANDS = {"answer", "hangup", "hold", "unhold", "dial_dtmf", "send_info_dtmf", "play_tone", "xfer",
                  "wait_transfer_status", "wait_dtmf",
                  "start_recording", "stop_recording", "wait_state", "wait_media", "media_dir", "status"}


def _child_handle(phone: Phone, calls: dict[int, Call], message: tuple[Any, ...]) -> Any:
    kind = message[0]
    if kind == "phone":
        _, method, args = message
        if method not in _PHONE_COMMANDS:
            raise ValueError(f"unknown phone command {method!r}")
        if method == "wait_incoming":
            timeout, answer = args
            call = phone.wait_incoming(timeout)
            if answer is not None:
                call.answer(answer)
            calls[call.index] = call
            return call.index
        result = getattr(phone, method)(*args)
        if isinstance(result, Call):
            calls[result.index] = result
            return result.index
        return result
    if kind == "call":
        _, index, method, args = message
        if method not in _CALL_COMMANDS:
            raise ValueError(f"unknown call command {method!r}")
        result = getattr(calls[index], method)(*args)
        return str(result) if isinstance(result, Path) else result
    raise ValueError(f"unknown message {message!r}")


def _child_main(conn: multiprocessing.connection.Connection, name: str, log_level: int) -> None:
    """Entry point of a child phone process: serve commands until 'quit' or EOF."""
    with PhoneLab(log_level=log_level) as lab:
        phone = lab.phone(name)
        calls: dict[int, Call] = {}
        conn.send(("ok", phone.port))
        while True:
            if not conn.poll(0):
                lab.pump(PUMP_STEP_MS)
                continue
            try:
                message = conn.recv()
            except EOFError:
                break
            if message[0] == "quit":
                conn.send(("ok", None))
                break
            try:
                conn.send(("ok", _child_handle(phone, calls, message)))
            except Exception as exc:  # reported to the parent, which re-raises it
                conn.send(("error", (type(exc).__name__, str(exc))))


def spawn_phone_process(name: str, lab: PhoneLab | None = None, log_level: int = 1,
                        start_timeout: float = REMOTE_COMMAND_TIMEOUT_S) -> RemotePhone:
    """Start a phone in a fresh process (own PhoneLab, own 4-call budget)."""
    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_child_main, args=(child, name, log_level), name=f"phone-{name}",
                          daemon=True)
    process.start()
    child.close()
    deadline = time.monotonic() + start_timeout
    while not parent.poll(0.05):
        if not process.is_alive() or time.monotonic() >= deadline:
            process.terminate()
            process.join(5)
            parent.close()
            raise RemoteError(f"phone process {name} failed to start (exit code {process.exitcode})")
    kind, port = parent.recv()
    assert kind == "ok", (kind, port)
    return RemotePhone(process, parent, name, int(port), lab)


__all__ = [
    "CALL_STATES", "MAX_CALLS_PER_PROCESS", "Call", "Phone", "PhoneLab", "RemoteCall", "RemoteError",
    "RemotePhone", "assert_tone", "dominant_frequency", "read_wav", "rms_level", "spawn_phone_process",
    "write_tone_wav",
]
