"""Call-progress tones: cadences measured from generated frames; phase continuity."""
from __future__ import annotations

import numpy as np
import pytest

from media.tones import (
    DTMF_DIGITS,
    DTMF_FREQUENCIES,
    NL_TONES,
    ToneGenerator,
    dtmf_samples,
    dtmf_spec,
)

RATE = 8000


def generate(spec, seconds: float) -> np.ndarray:
    gen = ToneGenerator(spec)
    return np.concatenate([gen.read() for _ in range(int(seconds * 50))])


def on_off_runs(signal: np.ndarray) -> list[tuple[bool, int]]:
    """(on?, duration in ms) runs, from a 1 ms energy envelope."""
    ms = signal.reshape(-1, RATE // 1000).astype(np.float64)
    on = np.abs(ms).max(axis=1) > 100
    runs = []
    start = 0
    for i in range(1, on.size + 1):
        if i == on.size or on[i] != on[start]:
            runs.append((bool(on[start]), i - start))
            start = i
    return runs


@pytest.mark.parametrize(("name", "on_ms", "off_ms"), [
    ("ringing", 1000, 4000), ("busy", 500, 500), ("congestion", 250, 250),
    ("call-waiting", 500, 9500)])
def test_cadence(name: str, on_ms: int, off_ms: int) -> None:
    signal = generate(NL_TONES[name], 2.5 * (on_ms + off_ms) / 1000)
    runs = on_off_runs(signal)
    full = runs[:-1]  # the last run is cut by the end of the signal
    assert full[0][0] is True
    for is_on, duration in full:
        assert abs(duration - (on_ms if is_on else off_ms)) <= 1, (is_on, duration)
    assert sum(1 for is_on, _ in full if is_on) >= 2


def test_dial_tone_is_continuous_425_hz_with_continuous_phase() -> None:
    signal = generate(NL_TONES["dial"], 1.0).astype(np.float64)
    assert on_off_runs(signal) == [(True, 1000)]
    spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
    assert abs(np.argmax(spectrum) * RATE / signal.size - 425) < 2
    # a phase jump at a frame edge would show as a large second difference
    second = np.abs(np.diff(signal, 2))
    assert second.max() < 2 * (2 * np.pi * 425 / RATE) ** 2 * np.abs(signal).max() + 2


def test_all_tones_are_425_hz() -> None:
    assert {spec.frequencies for spec in NL_TONES.values()} == {(425.0,)}


@pytest.mark.parametrize("digit", list(DTMF_DIGITS))
def test_dtmf_generation_has_both_frequencies(digit: str) -> None:
    for signal in (dtmf_samples(digit, 200), generate(dtmf_spec(digit), 0.2)):
        spectrum = np.abs(np.fft.rfft(signal * np.hanning(signal.size)))
        freqs = np.fft.rfftfreq(signal.size, 1 / RATE)
        top = sorted(freqs[np.argsort(spectrum)[-2:]])
        low, high = DTMF_FREQUENCIES[digit]
        assert abs(top[0] - low) <= 5 and abs(top[1] - high) <= 5


def test_unknown_dtmf_digit() -> None:
    with pytest.raises(ValueError):
        dtmf_spec("E")
