"""Recorder: buffered writes, flush/close with the wave module, mono and stereo."""
from __future__ import annotations

import wave
from pathlib import Path

import numpy as np
import pytest

from media.recorder import Recorder


def read_wav(path: Path) -> tuple[int, int, np.ndarray]:
    with wave.open(str(path), "rb") as wav:
        return wav.getnchannels(), wav.getframerate(), np.frombuffer(
            wav.readframes(wav.getnframes()), dtype="<i2")


def test_mono_recording_is_valid_after_each_flush(tmp_path: Path) -> None:
    path = tmp_path / "mono.wav"
    rec = Recorder(path)
    rec.write(np.full(160, 5, dtype=np.int16))
    assert not path.exists() and rec.buffered == 160  # write does no I/O
    assert rec.flush() == 160
    assert read_wav(path)[2].tolist() == [5] * 160
    rec.write(np.full(160, 6, dtype=np.int16))
    rec.close()
    channels, rate, data = read_wav(path)
    assert (channels, rate) == (1, 8000)
    assert data.tolist() == [5] * 160 + [6] * 160
    rec.close()  # idempotent
    with pytest.raises(ValueError):
        rec.write(np.zeros(160, dtype=np.int16))


def test_stereo_interleaves_directions(tmp_path: Path) -> None:
    path = tmp_path / "stereo.wav"
    rec = Recorder(path, channels=2)
    rec.write(np.full(160, 1, dtype=np.int16), np.full(160, -1, dtype=np.int16))
    rec.write(np.full(160, 2, dtype=np.int16))  # silent right side
    rec.close()
    channels, _, data = read_wav(path)
    pairs = data.reshape(-1, 2)
    assert channels == 2 and pairs.shape == (320, 2)
    assert pairs[:160].tolist() == [[1, -1]] * 160
    assert pairs[160:].tolist() == [[2, 0]] * 160


def test_empty_recording_is_a_valid_wav(tmp_path: Path) -> None:
    path = tmp_path / "empty.wav"
    Recorder(path).close()
    assert read_wav(path)[2].size == 0
