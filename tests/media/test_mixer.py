"""Mixer: mix-minus by FFT, mute, sources, clipping; FrameClock deadlines."""
from __future__ import annotations

import numpy as np
import pytest

from media.mixer import FRAME_SAMPLES, FrameClock, Mixer
from media.tones import ToneGenerator, ToneSpec

RATE = 8000


def spectrum_peaks(signal: np.ndarray, threshold: float = 0.1) -> set[int]:
    """Frequencies (Hz, 10 Hz resolution) whose magnitude exceeds threshold * max."""
    mag = np.abs(np.fft.rfft(signal.astype(np.float64) * np.hanning(signal.size)))
    freqs = np.fft.rfftfreq(signal.size, 1 / RATE)
    peaks = set()
    for i in range(1, mag.size - 1):
        if mag[i] > threshold * mag.max() and mag[i] >= mag[i - 1] and mag[i] >= mag[i + 1]:
            peaks.add(int(round(freqs[i] / 10) * 10))
    return peaks


def tone(freq: float) -> ToneGenerator:
    return ToneGenerator(ToneSpec(f"{freq}", (freq,), (), -10.0))


def test_three_tones_each_participant_hears_the_other_two() -> None:
    freqs = {"a": 500.0, "b": 1000.0, "c": 2000.0}
    gens = {pid: tone(f) for pid, f in freqs.items()}
    mixer = Mixer()
    for pid in freqs:
        mixer.add(pid)
    heard = {pid: [] for pid in freqs}
    for _ in range(50):
        for pid, gen in gens.items():
            mixer.put(pid, gen.read())
        for pid, frame in mixer.mix().items():
            heard[pid].append(frame)
    for pid, frames in heard.items():
        peaks = spectrum_peaks(np.concatenate(frames))
        others = {int(f) for p, f in freqs.items() if p != pid}
        assert peaks == others, (pid, peaks)


def test_muted_participant_is_not_heard_but_still_hears() -> None:
    mixer = Mixer()
    for pid in "ab":
        mixer.add(pid)
    mixer.set_mute("a", True)
    ga, gb = tone(500), tone(1000)
    out_a, out_b = [], []
    for _ in range(25):
        mixer.put("a", ga.read())
        mixer.put("b", gb.read())
        mixed = mixer.mix()
        out_a.append(mixed["a"])
        out_b.append(mixed["b"])
    assert not np.concatenate(out_b).any()
    assert spectrum_peaks(np.concatenate(out_a)) == {1000}


def test_source_is_mixed_only_into_chosen_participants() -> None:
    mixer = Mixer()
    for pid in "abc":
        mixer.add(pid)
    mixer.add_source("prompt", tone(700), targets=["b"])
    frames = {pid: [] for pid in "abc"}
    for _ in range(25):
        for pid, frame in mixer.mix().items():  # nobody talks
            frames[pid].append(frame)
    assert spectrum_peaks(np.concatenate(frames["b"])) == {700}
    assert not np.concatenate(frames["a"]).any() and not np.concatenate(frames["c"]).any()
    assert mixer.stats.missing_frames == 75


def test_ended_source_is_removed() -> None:
    class Once:
        def __init__(self) -> None:
            self.done = False

        def read(self):
            if self.done:
                return None
            self.done = True
            return np.full(FRAME_SAMPLES, 1000, dtype=np.int16)

    mixer = Mixer()
    mixer.add("a")
    mixer.add_source("once", Once())
    assert mixer.mix()["a"][0] == 1000
    assert not mixer.mix()["a"].any()
    assert mixer.stats.sources_ended == ["once"]


def test_sum_is_clipped_once_at_the_end() -> None:
    mixer = Mixer()
    for pid in "abcd":
        mixer.add(pid)
    loud = np.full(FRAME_SAMPLES, 30000, dtype=np.int16)
    quiet_neg = np.full(FRAME_SAMPLES, -30000, dtype=np.int16)
    mixer.put("a", loud)
    mixer.put("b", loud)
    mixer.put("c", quiet_neg)
    mixer.put("d", np.zeros(FRAME_SAMPLES, dtype=np.int16))
    out = mixer.mix()
    # d hears 30000 + 30000 - 30000 = 30000 exactly: no intermediate clipping
    assert out["d"][0] == 30000
    assert out["c"][0] == 32767  # 60000 clipped once
    assert out["a"][0] == 0


def test_put_rejects_wrong_frame_size() -> None:
    mixer = Mixer()
    mixer.add("a")
    with pytest.raises(ValueError):
        mixer.put("a", np.zeros(80, dtype=np.int16))


def test_frame_clock_does_not_accumulate_lag() -> None:
    clock = FrameClock(start=100.0)
    deadlines = []
    now = 100.0
    for _ in range(10):
        due = clock.next_deadline(now)
        deadlines.append(due)
        now = due + 0.007  # every wake-up is 7 ms late
    assert deadlines == pytest.approx([100.0 + 0.02 * k for k in range(1, 11)])
    assert clock.skipped == 0


def test_frame_clock_skips_frames_when_far_behind() -> None:
    clock = FrameClock(start=0.0)
    due = clock.next_deadline(0.0)
    assert due == pytest.approx(0.02)
    due = clock.next_deadline(1.0)  # stalled for a second
    assert due > 1.0 and due <= 1.02 + 1e-9
    assert clock.skipped > 40
    assert (due / 0.02) == pytest.approx(round(due / 0.02))
