"""Generate the default music on hold: media/sounds/moh/default.wav.

A calm arpeggio of pure notes (8 kHz, 16-bit mono, 8 s, looped by the player). Pure notes
keep the file tiny and let tests recognise the music by its frequencies
(``MOH_NOTES_HZ``). Operators replace it with their own playlist (SPEC §26).

    python tools/make_moh.py
"""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np

RATE = 8000
NOTE_S = 0.5
MOH_NOTES_HZ = (440.0, 523.25, 659.25, 783.99, 659.25, 523.25, 587.33, 698.46,
                880.0, 698.46, 587.33, 493.88, 523.25, 659.25, 783.99, 523.25)
LEVEL = 0.25  # of full scale: well below clipping after G.711

OUT = Path(__file__).resolve().parent.parent / "media" / "sounds" / "moh" / "default.wav"


def render() -> np.ndarray:
    n = int(RATE * NOTE_S)
    t = np.arange(n) / RATE
    envelope = np.minimum(1.0, np.minimum(t / 0.03, (NOTE_S - t) / 0.08))  # soft attack and release
    notes = [np.sin(2 * np.pi * f * t) * envelope for f in MOH_NOTES_HZ]
    return (np.concatenate(notes) * LEVEL * 32767).astype("<i2")


def main() -> None:
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(OUT), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(RATE)
        w.writeframes(render().tobytes())
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
