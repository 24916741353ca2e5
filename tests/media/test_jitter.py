"""Jitter buffer: reordering, loss concealment, duplicates, late packets, adaptation."""
from __future__ import annotations

import numpy as np

from media.jitter import MAX_CONCEALED_FRAMES, JitterBuffer

FRAME = 0.020


def frame_for(seq: int) -> np.ndarray:
    return np.full(160, 100 + seq % 1000, dtype=np.int16)


def run(schedule: list[tuple[float, int]], ticks: int, start: float = 0.0, **kw):
    """Deliver (arrival_time, seq) packets, pop every 20 ms from ``start``."""
    jb = JitterBuffer(**kw)
    pending = sorted(schedule, key=lambda item: item[0])
    out = []
    for tick in range(ticks):
        now = start + tick * FRAME
        while pending and pending[0][0] <= now:
            arrival, seq = pending.pop(0)
            jb.push(seq & 0xFFFF, (seq * 160) & 0xFFFFFFFF, frame_for(seq), arrival)
        out.append(jb.pop(now))
    return jb, out


def played(out):
    return [(f.seq, f.concealed, int(f.samples[0])) for f in out if f is not None]


def test_in_order_stream_plays_every_frame_once() -> None:
    jb, out = run([(i * FRAME, i) for i in range(20)], 25)
    seqs = [seq for seq, concealed, _ in played(out) if not concealed]
    assert seqs == list(range(20))
    assert jb.stats.played == 20 and jb.stats.late == 0


def test_deterministic_loss_pattern_is_concealed_with_attenuated_repeats() -> None:
    lost = [False, False, True, False, False, True, True, False, False, False] * 3
    schedule = [(i * FRAME, i) for i in range(30) if not lost[i]]
    jb, out = run(schedule, 36)
    frames = played(out)
    slots = {}
    for seq, concealed, value in frames:
        slots.setdefault(seq, (concealed, value))
    for seq in range(29):
        concealed, value = slots[seq]
        assert concealed == lost[seq], seq
        if not lost[seq]:
            assert value == 100 + seq
    # every made-up frame repeats the last good one, halved once more per frame
    last_good = 0
    run_length = 0
    for seq, concealed, value in frames:
        if not concealed:
            last_good, run_length = value, 0
            continue
        run_length += 1
        assert value == int(last_good * 0.5**run_length), (seq, value)
    assert slots[2][1] == (100 + 1) // 2
    assert jb.stats.concealed >= sum(lost[:29])


def test_reordered_packets_come_out_in_order() -> None:
    order = [0, 1, 3, 2, 4, 6, 5, 7, 9, 8, 10, 11, 12, 13, 14, 15]
    schedule = [(i * FRAME, seq) for i, seq in enumerate(order)]
    jb, out = run(schedule, 22, min_depth_ms=60)
    frames = played(out)
    seqs = [seq for seq, concealed, _ in frames if not concealed]
    assert seqs == list(range(16))
    last_real = max(i for i, (_, concealed, _) in enumerate(frames) if not concealed)
    assert not any(concealed for _, concealed, _ in frames[:last_real])


def test_duplicates_and_late_packets_are_dropped_and_counted() -> None:
    schedule = [(i * FRAME, i) for i in range(10)]
    schedule += [(0.061, 3), (0.062, 3)]  # duplicates of a buffered/played packet
    schedule += [(0.150, 1)]  # long after slot 1 was played
    jb, out = run(schedule, 14)
    seqs = [seq for seq, concealed, _ in played(out) if not concealed]
    assert seqs == list(range(10))
    assert jb.stats.duplicates + jb.stats.late == 3
    assert jb.stats.late >= 1


def test_sequence_number_wraparound() -> None:
    base = 65530
    schedule = [(i * FRAME, base + i) for i in range(12)]
    jb, out = run(schedule, 15)
    seqs = [seq for seq, concealed, _ in played(out) if not concealed]
    assert seqs == [(base + i) & 0xFFFF for i in range(12)]


def test_depth_adapts_to_observed_jitter_within_bounds() -> None:
    rng = np.random.default_rng(7)
    steady = JitterBuffer()
    jittery = JitterBuffer()
    for i in range(300):
        steady.push(i, i * 160, frame_for(i), i * FRAME)
        jittery.push(i, i * 160, frame_for(i), i * FRAME + float(rng.uniform(0, 0.06)))
    assert steady.depth_ms == 20
    assert 40 <= jittery.depth_ms <= 200
    assert jittery.jitter_ms > 10
    extreme = JitterBuffer()
    for i in range(300):
        extreme.push(i, i * 160, frame_for(i), i * FRAME + (0.9 if i % 2 else 0.0))
    assert extreme.depth_ms == 200


def test_underrun_waits_for_a_late_packet_instead_of_skipping_it() -> None:
    schedule = [(i * FRAME, i) for i in range(5)] + [(0.135, 5)] + [
        (0.14 + k * FRAME, 6 + k) for k in range(5)]
    jb, out = run(schedule, 16)
    seqs = [seq for seq, concealed, _ in played(out) if not concealed]
    assert seqs == list(range(11))
    assert jb.stats.late == 0 and jb.stats.concealed >= 1


def test_long_gap_fades_to_silence() -> None:
    jb, out = run([(i * FRAME, i) for i in range(3)], 12)
    tail = [f for f in out if f is not None][3:]
    assert len(tail) > MAX_CONCEALED_FRAMES
    assert all(f.concealed for f in tail)
    assert not tail[-1].samples.any()


def test_decoder_is_called_in_sequence_order() -> None:
    calls = []

    def decode(payload: bytes) -> np.ndarray:
        calls.append(payload[0])
        return np.full(160, payload[0], dtype=np.int16)

    jb = JitterBuffer(decoder=decode, min_depth_ms=40)
    for arrival, seq in [(0.0, 0), (0.001, 2), (0.002, 1), (0.02, 3)]:
        jb.push(seq, seq * 160, bytes([seq]), arrival)
    for tick in range(4):
        jb.pop(0.04 + tick * FRAME)
    assert calls == [0, 1, 2, 3]
