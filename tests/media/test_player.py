"""Players: WAV and MP3 via pydub, caching, volume, sequences, shared music on hold."""
from __future__ import annotations

import subprocess
import wave
from pathlib import Path

import numpy as np
import pytest

from media.player import (
    AudioCache,
    AudioFileError,
    FilePlayer,
    MusicOnHold,
    PlaylistEntry,
    SequencePlayer,
    say_digits,
    say_number,
)
from media.prompts import prompt_path


def write_wav(path: Path, samples: np.ndarray, rate: int = 8000, channels: int = 1) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(channels)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(samples.astype("<i2").tobytes())
    return path


def sine(freq: float, seconds: float, rate: int, amp: float = 8000.0) -> np.ndarray:
    t = np.arange(int(seconds * rate)) / rate
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.int16)


def dominant(samples: np.ndarray, rate: int = 8000) -> float:
    spectrum = np.abs(np.fft.rfft(samples.astype(np.float64) * np.hanning(samples.size)))
    return float(np.argmax(spectrum) * rate / samples.size)


def rms(samples: np.ndarray) -> float:
    return float(np.sqrt(np.mean(samples.astype(np.float64) ** 2)))


def test_wav_is_resampled_to_8k_mono_and_cached(tmp_path: Path) -> None:
    stereo = np.repeat(sine(440, 1.0, 44100), 2)
    path = write_wav(tmp_path / "tone.wav", stereo, rate=44100, channels=2)
    cache = AudioCache()
    samples = cache.load(path)
    assert samples.dtype == np.int16 and abs(samples.size - 8000) <= 1
    assert abs(dominant(samples) - 440) < 3
    assert cache.load(path) is samples and cache.decodes == 1
    wide = cache.load(path, 16000)
    assert abs(wide.size - 16000) <= 2 and cache.decodes == 2


def test_mp3_made_with_ffmpeg(tmp_path: Path) -> None:
    wav = write_wav(tmp_path / "src.wav", sine(1000, 1.0, 16000), rate=16000)
    mp3 = tmp_path / "music.mp3"
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-i", str(wav), "-b:a", "64k",
                    str(mp3)], check=True, timeout=60)
    player = FilePlayer(mp3, cache=AudioCache())
    frames = []
    while (frame := player.read()) is not None:
        assert frame.size == 160
        frames.append(frame)
    audio = np.concatenate(frames)
    assert 7900 <= audio.size <= 9000  # mp3 adds encoder padding
    assert abs(dominant(audio) - 1000) < 5


def test_volume_db(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "t.wav", sine(500, 0.5, 8000))
    cache = AudioCache()
    loud = FilePlayer(path, cache=cache).read()
    quiet = FilePlayer(path, volume_db=-6.0, cache=cache).read()
    ratio_db = 20 * np.log10(rms(quiet) / rms(loud))
    assert ratio_db == pytest.approx(-6.0, abs=0.1)


def test_file_player_pads_last_frame_and_loops(tmp_path: Path) -> None:
    samples = np.arange(1, 401, dtype=np.int16)  # 2.5 frames
    once = FilePlayer(samples)
    frames = [once.read(), once.read(), once.read()]
    assert once.read() is None
    assert frames[2][:80].tolist() == list(range(321, 401)) and not frames[2][80:].any()
    looped = FilePlayer(samples, loop=True)
    out = np.concatenate([looped.read() for _ in range(5)])
    assert out.tolist() == (list(range(1, 401)) * 2)


def test_sequence_and_say(tmp_path: Path) -> None:
    a = FilePlayer(np.full(160, 1, dtype=np.int16))
    b = FilePlayer(np.full(320, 2, dtype=np.int16))
    seq = SequencePlayer([a, b])
    assert [int(seq.read()[0]) for _ in range(3)] == [1, 2, 2]
    assert seq.read() is None
    digits = say_digits("701", "nl")
    assert [p.name for p in digits.sources] == [
        str(prompt_path("nl", f"digit-{d}")) for d in "701"]
    twelve = say_number(12, "en")
    assert [Path(p.name).name for p in twelve.sources] == ["number-12.wav"]
    frames = 0
    while twelve.read() is not None:
        frames += 1
    assert frames > 10


def test_shared_music_on_hold_gives_listeners_the_same_frame(tmp_path: Path) -> None:
    first = write_wav(tmp_path / "a.wav", sine(400, 0.3, 8000))
    second = write_wav(tmp_path / "b.wav", sine(800, 0.3, 8000))
    moh = MusicOnHold([PlaylistEntry(str(first)), PlaylistEntry(str(second), -6.0)],
                      cache=AudioCache())
    one, two = moh.listen(), moh.listen()
    heard_one, heard_two = [], []
    for _ in range(60):  # 1.2 s: two passes over the 0.6 s playlist
        heard_one.append(one.read())
        heard_two.append(two.read())
    for x, y in zip(heard_one, heard_two):
        assert x is y
    audio = np.concatenate(heard_one)
    assert abs(dominant(audio[:2400]) - 400) < 5
    assert abs(dominant(audio[2400:4800]) - 800) < 5
    assert 20 * np.log10(rms(audio[2400:4800]) / rms(audio[:2400])) == pytest.approx(-6, abs=0.2)
    assert np.array_equal(audio[:4800], audio[4800:9600])  # continuous loop
    assert moh.tick == 59
    # a listener joining later hears the current position, not the start
    late = moh.listen()
    assert late.read() is heard_one[-1]


def test_music_on_hold_infotainment_interrupts_every_interval(tmp_path: Path) -> None:
    music = write_wav(tmp_path / "m.wav", sine(300, 1.5, 8000))
    info = write_wav(tmp_path / "i.wav", sine(1500, 0.2, 8000))
    moh = MusicOnHold([str(music)], infotainment=str(info), interval_s=1.0, cache=AudioCache())
    ear = moh.listen()
    frames = [ear.read() for _ in range(130)]
    kinds = ["info" if dominant(f) > 1000 else "music" for f in frames]
    assert kinds[:50] == ["music"] * 50
    assert kinds[50:60] == ["info"] * 10
    assert kinds[60:110] == ["music"] * 50
    assert kinds[110:120] == ["info"] * 10
    # music resumes where it was interrupted
    assert np.array_equal(frames[60], moh._music[50 * 160:51 * 160])


@pytest.mark.parametrize(("name", "content"), [
    ("empty.wav", b""),
    ("garbage.wav", b"RIFF\x10\x00\x00\x00WAVEfmt " + b"\x00" * 7),
    ("notes.mp3", b"this is not audio at all, just a text file\n" * 20),
    ("picture.wav", bytes(range(256)) * 8),
])
def test_bad_files_raise_audio_file_error_naming_the_file(
    tmp_path: Path, name: str, content: bytes
) -> None:
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(AudioFileError) as info:
        AudioCache().load(path)
    assert str(path) in str(info.value)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(AudioFileError, match="nothere.wav"):
        FilePlayer(tmp_path / "nothere.wav", cache=AudioCache())


def test_zero_length_audio(tmp_path: Path) -> None:
    path = write_wav(tmp_path / "silent.wav", np.zeros(0, dtype=np.int16))
    with pytest.raises(AudioFileError, match="silent.wav"):
        AudioCache().load(path)
