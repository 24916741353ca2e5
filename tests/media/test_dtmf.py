"""DTMF: RFC 4733 receive/send, SIP INFO bodies, in-band Goertzel detection (Q.24)."""
from __future__ import annotations

import numpy as np
import pytest

from media.dtmf import (
    DtmfDigit,
    DtmfReceiver,
    DtmfSender,
    GoertzelDetector,
    build_event,
    parse_dtmf_info,
    parse_event,
)
from media.tones import DTMF_DIGITS, DTMF_FREQUENCIES, dbm0_to_amplitude
from tests.media.signals import music_like, speech_like

RATE = 8000


# -- RFC 4733 payloads ------------------------------------------------------------------

def test_event_payload_round_trip() -> None:
    payload = build_event(11, end=True, volume=10, duration=800)
    assert payload == bytes([11, 0x80 | 10, 0x03, 0x20])
    event = parse_event(payload)
    assert (event.event, event.end, event.volume, event.duration, event.digit) == (
        11, True, 10, 800, "#")
    with pytest.raises(ValueError, match="truncated"):
        parse_event(b"\x01\x02")


def test_receiver_reports_one_digit_per_event_and_drops_retransmitted_ends() -> None:
    rx = DtmfReceiver()
    ts = 1000
    got = []
    got += rx.feed(ts, build_event(5, end=False, volume=10, duration=160), marker=True)
    got += rx.feed(ts, build_event(5, end=False, volume=10, duration=320))
    for _ in range(3):
        got += rx.feed(ts, build_event(5, end=True, volume=10, duration=800))
    assert got == [DtmfDigit("5", 100, "rfc4733")]
    assert rx.stats.retransmissions == 2
    # the same key pressed again is a new event (new timestamp)
    got = rx.feed(ts + 2000, build_event(5, end=True, volume=10, duration=480), marker=True)
    assert got == [DtmfDigit("5", 60, "rfc4733")]


def test_receiver_reports_event_whose_end_packets_were_lost() -> None:
    rx = DtmfReceiver()
    assert rx.feed(0, build_event(1, end=False, volume=10, duration=160), True, now=0.0) == []
    assert rx.feed(0, build_event(1, end=False, volume=10, duration=640), now=0.08) == []
    # next event starts: the first one is reported with its last duration
    got = rx.feed(4000, build_event(2, end=False, volume=10, duration=160), True, now=0.5)
    assert got == [DtmfDigit("1", 80, "rfc4733")]
    assert rx.poll(0.6) == []
    assert rx.poll(1.1) == [DtmfDigit("2", 20, "rfc4733")]
    assert rx.stats.missing_end == 2


def test_receiver_ignores_non_digit_events() -> None:
    rx = DtmfReceiver()
    assert rx.feed(0, build_event(16, end=True, volume=10, duration=800), True) == []
    assert rx.stats.unsupported == 1


def test_sender_packet_sequence() -> None:
    packets = DtmfSender().packets("#", timestamp=12345, duration_ms=100)
    assert [p.marker for p in packets] == [True] + [False] * (len(packets) - 1)
    assert {p.timestamp for p in packets} == {12345}
    events = [parse_event(p.payload) for p in packets]
    assert all(e.event == 11 for e in events)
    updates = [e for e in events if not e.end]
    ends = [e for e in events if e.end]
    assert [e.duration for e in updates] == [160, 320, 480, 640]
    assert len(ends) == 3 and {e.duration for e in ends} == {800}
    assert events[-3:] == ends
    offsets = [p.offset_ms for p in packets]
    assert offsets == [20, 40, 60, 80, 100, 120, 140]
    # what the sender produces, the receiver reads back as one digit
    rx = DtmfReceiver()
    got = [d for p in packets for d in rx.feed(p.timestamp, p.payload, p.marker)]
    assert got == [DtmfDigit("#", 100, "rfc4733")]


def test_sender_short_event_marks_first_end_packet() -> None:
    packets = DtmfSender().packets("A", timestamp=0, duration_ms=20)
    assert [p.marker for p in packets] == [True, False, False]
    assert all(parse_event(p.payload).end for p in packets)
    with pytest.raises(ValueError):
        DtmfSender().packets("X", timestamp=0)


@pytest.mark.parametrize(("ctype", "body", "expected"), [
    ("application/dtmf-relay", "Signal=5\r\nDuration=160\r\n", DtmfDigit("5", 160, "info")),
    ("application/dtmf-relay", "Signal= *\nDuration= 250", DtmfDigit("*", 250, "info")),
    ("application/dtmf-relay", "Signal=11\r\nDuration=100", DtmfDigit("#", 100, "info")),
    ("application/dtmf", "7", DtmfDigit("7", 0, "info")),
    ("application/dtmf-relay", "Signal=Z\r\n", None),
    ("text/plain", "5", None),
])
def test_sip_info_bodies(ctype: str, body: str, expected: DtmfDigit | None) -> None:
    assert parse_dtmf_info(ctype, body.encode()) == expected


# -- in-band detection ------------------------------------------------------------------

def burst(digit: str, ms: int, *, offset: float = 0.0, twist_db: float = 0.0,
          level_dbm0: float = -10.0, lead_samples: int = 123) -> np.ndarray:
    low, high = DTMF_FREQUENCIES[digit]
    t = np.arange(RATE * ms // 1000) / RATE
    amp = dbm0_to_amplitude(level_dbm0)
    tone = amp * np.sin(2 * np.pi * low * (1 + offset) * t)
    tone += amp * 10 ** (-twist_db / 20) * np.sin(2 * np.pi * high * (1 + offset) * t + 1.0)
    return np.concatenate([np.zeros(lead_samples), tone, np.zeros(800)])


def detect(signal: np.ndarray) -> list[DtmfDigit]:
    signal = np.concatenate([signal, np.zeros((-signal.size) % 160)])
    frames = np.clip(np.rint(signal), -32768, 32767).astype(np.int16).reshape(-1, 160)
    detector = GoertzelDetector()
    return [d for frame in frames for d in detector.process(frame)]


@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_every_digit_detected_at_q24_limits(digit: str) -> None:
    for offset in (-0.015, 0.0, 0.015):
        for twist in (8.0, 0.0, -4.0):  # normal twist 8 dB, reverse twist 4 dB
            got = detect(burst(digit, 40, offset=offset, twist_db=twist))
            assert [d.digit for d in got] == [digit], (offset, twist)
            assert 37 <= got[0].duration_ms <= 43


@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_digit_rejected_beyond_limits(digit: str) -> None:
    assert detect(burst(digit, 60, offset=0.035)) == []
    assert detect(burst(digit, 60, offset=-0.035)) == []
    assert detect(burst(digit, 30)) == []
    assert detect(burst(digit, 60, twist_db=10.0)) == []
    assert detect(burst(digit, 60, twist_db=-6.0)) == []
    assert detect(burst(digit, 60, level_dbm0=-40.0)) == []


def test_40_ms_accepted_30_ms_rejected_at_every_alignment() -> None:
    for lead in range(0, 160, 7):
        assert [d.digit for d in detect(burst("5", 40, lead_samples=lead))] == ["5"], lead
        assert detect(burst("5", 30, lead_samples=lead)) == [], lead


def test_duration_is_measured() -> None:
    got = detect(burst("9", 250))
    assert got == [DtmfDigit("9", 250, "inband")]


def test_pause_separates_presses_and_short_dropout_does_not() -> None:
    tone = burst("3", 60, lead_samples=0)[:480]
    gap40 = np.zeros(320)
    gap10 = np.zeros(80)
    assert [d.digit for d in detect(np.concatenate([tone, gap40, tone, np.zeros(800)]))] == [
        "3", "3"]
    assert [d.digit for d in detect(np.concatenate([tone, gap10, tone, np.zeros(800)]))] == ["3"]


def test_sequence_of_digits_with_noise() -> None:
    rng = np.random.default_rng(3)
    parts = []
    for digit in "0123456789*#ABCD":
        parts.append(burst(digit, 50, lead_samples=400)[:-800])
    signal = np.concatenate(parts + [np.zeros(800)])
    amp = dbm0_to_amplitude(-10.0)
    signal = signal + rng.standard_normal(signal.size) * amp * 10 ** (-20 / 20)  # 20 dB SNR
    assert "".join(d.digit for d in detect(signal)) == "0123456789*#ABCD"


def test_no_detection_in_synthesized_speech() -> None:
    for seed, f0 in ((1, 110.0), (2, 140.0), (3, 210.0), (4, 250.0)):
        assert detect(speech_like(15, seed=seed, f0=f0).astype(np.float64)) == [], seed


def test_no_detection_in_synthesized_music() -> None:
    for seed in (1, 2, 3):
        assert detect(music_like(15, seed=seed).astype(np.float64)) == [], seed


def test_detection_survives_speech_before_and_after() -> None:
    speech = speech_like(2, seed=5).astype(np.float64) * 0.3
    signal = np.concatenate([speech, burst("7", 80, lead_samples=200)[:-800], speech])
    assert [d.digit for d in detect(signal)] == ["7"]
