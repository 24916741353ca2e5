"""Synthetic test signals shared by the media tests (speech-like and music-like)."""
from __future__ import annotations

import numpy as np

RATE = 8000

# (F1, F2, F3) of Dutch/English vowels, Hz (rough textbook values)
VOWELS = [(730, 1090, 2440), (530, 1840, 2480), (270, 2290, 3010), (570, 840, 2410),
          (300, 870, 2240), (660, 1720, 2410), (440, 1020, 2240)]
FORMANT_BANDWIDTH = (90.0, 110.0, 170.0)


def speech_like(seconds: float, seed: int = 1, f0: float = 120.0) -> np.ndarray:
    """Voiced speech: glottal harmonics with drifting pitch and vibrato, shaped by
    moving formant resonances, syllable envelope and some aspiration noise."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    pitch = f0 * (1 + 0.15 * np.sin(2 * np.pi * 0.7 * t + rng.uniform(0, 6))
                  + 0.03 * np.sin(2 * np.pi * 5.5 * t))  # intonation + vibrato
    phase = 2 * np.pi * np.cumsum(pitch) / RATE
    # formant tracks: a new vowel every 180 ms, linearly interpolated
    knots = np.arange(0, seconds + 0.36, 0.18)
    choice = rng.integers(0, len(VOWELS), size=len(knots))
    tracks = [np.interp(t, knots, [VOWELS[c][k] for c in choice]) for k in range(3)]
    signal = np.zeros(n)
    for h in range(1, int(3800 / (f0 * 0.8))):
        freq = h * pitch
        gain = np.zeros(n)
        for k in range(3):
            bw = FORMANT_BANDWIDTH[k]
            gain += 1.0 / (1 + ((freq - tracks[k]) / (bw / 2)) ** 2) / (k + 1)
        gain *= h ** -1.0 * (freq < 3900)
        signal += gain * np.sin(h * phase)
    signal += 0.02 * rng.standard_normal(n)
    syllables = 0.35 + 0.65 * np.abs(np.sin(2 * np.pi * 2.2 * t))
    signal *= syllables
    return (signal / np.abs(signal).max() * 12000).astype(np.int16)


def music_like(seconds: float, seed: int = 2) -> np.ndarray:
    """Chords (I-IV-V-vi) with harmonic-rich notes and a melody, ADSR envelopes."""
    rng = np.random.default_rng(seed)
    n = int(seconds * RATE)
    t = np.arange(n) / RATE
    def note(midi: int) -> float:
        return 440.0 * 2 ** ((midi - 69) / 12)
    chords = [(60, 64, 67, 72), (65, 69, 72, 77), (67, 71, 74, 79), (69, 72, 76, 81)]
    melody = [77, 78, 81, 79, 77, 74, 90, 86, 84, 81, 78, 77]  # includes F5 (698 Hz), F#6
    signal = np.zeros(n)
    beat = 0.5
    for index, start in enumerate(np.arange(0, seconds, beat)):
        seg = (t >= start) & (t < start + beat * 1.5)
        local = t[seg] - start
        env = np.minimum(local / 0.01, 1) * np.exp(-local * 2.5)
        notes = list(chords[(index // 2) % len(chords)]) + [melody[index % len(melody)]]
        for midi in notes:
            f = note(midi) * (1 + 0.002 * rng.standard_normal())
            for h in range(1, 9):
                if h * f < 3900:
                    signal[seg] += env * np.sin(2 * np.pi * h * f * local) / h
    return (signal / np.abs(signal).max() * 12000).astype(np.int16)
