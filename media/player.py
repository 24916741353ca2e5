"""Audio files as 20 ms frame sources: prompts, prompt sequences, music on hold.

Files (WAV, MP3, anything ffmpeg reads) are decoded through pydub once, converted to
mono 16-bit at 8 kHz (or 16 kHz on request, for wideband legs) and kept in memory,
keyed by (path, modification time, rate), so re-uploading a file is noticed and a
prompt played in a thousand calls is decoded once. The cache is bounded by
``CACHE_MAX_BYTES`` (least recently used entries go first).

A file that is empty, truncated, corrupt or not audio raises ``AudioFileError`` with
a message naming the file; nothing else escapes from loading.

Sources (all pure, one ``read()`` per 20 ms tick, see media.mixer.FrameSource):

- ``FilePlayer``: one file (or samples), optionally looped, with a volume in dB.
- ``SequencePlayer``: sources one after the other (prompt + number + prompt).
- ``say_digits("701")`` / ``say_number(12)``: sequences of digit/number prompts.
- ``MusicOnHold``: a playlist played continuously and shared by every listener of
  that playlist; one position for all, advanced once per tick however many listeners
  read it, with an optional infotainment file that interrupts the music every
  ``INFOTAINMENT_INTERVAL_S`` (SPEC section 26).
"""
from __future__ import annotations

import logging
import os
import wave
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from media.prompts import DEFAULT_LANGUAGE, digit_prompt_id, number_prompt_ids, prompt_path

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
WIDEBAND_RATE = 16000
SUPPORTED_RATES = (SAMPLE_RATE, WIDEBAND_RATE)
FRAME_MS = 20
CACHE_MAX_BYTES = 256 * 1024 * 1024
MAX_FILE_SECONDS = 3600  # longer uploads are refused (1 h at 8 kHz = 57 MB)
INFOTAINMENT_INTERVAL_S = 40.0  # SPEC section 26
DEFAULT_MOH_FILE = Path(__file__).resolve().parent / "sounds" / "moh" / "default.wav"
"""The music on hold shipped with the switch (tools/make_moh.py); operators add their own."""
INT16_MIN, INT16_MAX = -32768, 32767


class AudioFileError(ValueError):
    """A file that cannot be used as audio; the message names the file."""

    def __init__(self, path: str | os.PathLike[str], reason: str) -> None:
        super().__init__(f"{os.fspath(path)}: {reason}")
        self.path = os.fspath(path)
        self.reason = reason


def _frame_samples(rate: int) -> int:
    return rate * FRAME_MS // 1000


def apply_gain(samples: np.ndarray, volume_db: float) -> np.ndarray:
    """Scale int16 samples by ``volume_db`` with saturation."""
    if volume_db == 0:
        return samples
    scaled = np.rint(samples.astype(np.float32) * np.float32(10 ** (volume_db / 20)))
    return np.clip(scaled, INT16_MIN, INT16_MAX).astype(np.int16)


class AudioCache:
    """Decoded files by (path, mtime_ns, rate); bounded by bytes, LRU."""

    def __init__(self, max_bytes: int = CACHE_MAX_BYTES) -> None:
        self.max_bytes = max_bytes
        self._entries: OrderedDict[tuple[str, int, int], np.ndarray] = OrderedDict()
        self._bytes = 0
        self.decodes = 0  # how many times a file was actually decoded

    def __repr__(self) -> str:
        return f"<AudioCache entries={len(self._entries)} bytes={self._bytes}>"

    def clear(self) -> None:
        self._entries.clear()
        self._bytes = 0

    def load(self, path: str | os.PathLike[str], rate: int = SAMPLE_RATE) -> np.ndarray:
        """Mono int16 samples of ``path`` at ``rate`` (read-only array)."""
        if rate not in SUPPORTED_RATES:
            raise ValueError(f"unsupported rate {rate} (use one of {SUPPORTED_RATES})")
        name = os.fspath(path)
        try:
            stat = os.stat(name)
        except OSError as exc:
            raise AudioFileError(name, f"cannot be read ({exc.strerror})") from exc
        key = (os.path.abspath(name), stat.st_mtime_ns, rate)
        cached = self._entries.get(key)
        if cached is not None:
            self._entries.move_to_end(key)
            return cached
        if stat.st_size == 0:
            raise AudioFileError(name, "is empty (zero bytes)")
        samples = _decode(name, rate)
        self.decodes += 1
        samples.flags.writeable = False
        self._entries[key] = samples
        self._bytes += samples.nbytes
        while self._bytes > self.max_bytes and len(self._entries) > 1:
            _, evicted = self._entries.popitem(last=False)
            self._bytes -= evicted.nbytes
        return samples


def _read_plain_wav(name: str, rate: int) -> np.ndarray | None:
    """A 16-bit mono PCM WAV already at ``rate`` (every shipped prompt): read with the
    stdlib in microseconds instead of an ffmpeg subprocess; None for anything else."""
    try:
        with wave.open(name, "rb") as w:
            if w.getcomptype() != "NONE" or w.getsampwidth() != 2 or w.getnchannels() != 1 \
                    or w.getframerate() != rate or w.getnframes() > MAX_FILE_SECONDS * rate:
                return None
            data = w.readframes(w.getnframes())
    except (wave.Error, EOFError, OSError):
        return None
    samples = np.frombuffer(data, dtype="<i2").astype(np.int16)
    return samples if samples.size else None


def _decode(name: str, rate: int) -> np.ndarray:
    """Decode a file: plain WAV at our rate directly, anything else through pydub (ffmpeg)."""
    plain = _read_plain_wav(name, rate)
    if plain is not None:
        return plain
    from pydub import AudioSegment  # imported lazily: pydub imports audioop
    from pydub.exceptions import CouldntDecodeError

    try:
        # pydub leaves a file it opens itself unclosed; give it an open handle
        with open(name, "rb") as handle:
            segment = AudioSegment.from_file(handle)
    except CouldntDecodeError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown format"
        raise AudioFileError(name, f"is not a readable audio file ({first_line})") from exc
    except (EOFError, IndexError, KeyError, ValueError, OSError) as exc:
        raise AudioFileError(name, f"is corrupt or truncated ({exc})") from exc
    if segment.frame_count() == 0 or len(segment.raw_data) == 0:
        raise AudioFileError(name, "contains no audio")
    if segment.duration_seconds > MAX_FILE_SECONDS:
        raise AudioFileError(name, f"is longer than {MAX_FILE_SECONDS} s")
    segment = segment.set_channels(1).set_sample_width(2).set_frame_rate(rate)
    samples = np.frombuffer(segment.raw_data, dtype="<i2").astype(np.int16)
    if samples.size == 0:
        raise AudioFileError(name, "contains no audio")
    return samples


DEFAULT_CACHE = AudioCache()


def load_audio(path: str | os.PathLike[str], rate: int = SAMPLE_RATE) -> np.ndarray:
    """Decode (once) and return mono int16 samples at ``rate``; raises AudioFileError."""
    return DEFAULT_CACHE.load(path, rate)


class FilePlayer:
    """Plays samples (or a file) frame by frame; ``read()`` returns None at the end."""

    def __init__(
        self,
        source: str | os.PathLike[str] | np.ndarray,
        *,
        rate: int = SAMPLE_RATE,
        volume_db: float = 0.0,
        loop: bool = False,
        cache: AudioCache | None = None,
    ) -> None:
        if isinstance(source, np.ndarray):
            samples = source.astype(np.int16, copy=False)
            self.name = "<samples>"
        else:
            samples = (cache or DEFAULT_CACHE).load(source, rate)
            self.name = os.fspath(source)
        self.samples = apply_gain(samples, volume_db)
        self.rate = rate
        self.loop = loop
        self.frame_samples = _frame_samples(rate)
        self.position = 0

    def __repr__(self) -> str:
        return f"<FilePlayer {self.name} {self.position}/{self.samples.size}>"

    @property
    def finished(self) -> bool:
        return not self.loop and self.position >= self.samples.size

    def read(self) -> np.ndarray | None:
        """The next frame (zero-padded at the end), or None when finished."""
        size = self.samples.size
        if size == 0 or self.finished:
            return None
        end = self.position + self.frame_samples
        if end <= size:
            frame = self.samples[self.position:end]
            self.position = end if end < size or not self.loop else 0
            return frame
        head = self.samples[self.position:]
        if self.loop:
            need = self.frame_samples - head.size
            reps = np.resize(self.samples, need)  # wraps around short files too
            self.position = need % size
            return np.concatenate((head, reps))
        self.position = size
        return np.concatenate((head, np.zeros(self.frame_samples - head.size, dtype=np.int16)))


class SequencePlayer:
    """Plays frame sources one after another; ends after the last."""

    def __init__(self, sources: Iterable[FilePlayer | SequencePlayer]) -> None:
        self.sources = list(sources)
        self._index = 0

    def __repr__(self) -> str:
        return f"<SequencePlayer {self._index}/{len(self.sources)}>"

    def read(self) -> np.ndarray | None:
        while self._index < len(self.sources):
            frame = self.sources[self._index].read()
            if frame is not None:
                return frame
            self._index += 1
        return None


def play_prompts(
    prompt_ids: Sequence[str], lang: str = DEFAULT_LANGUAGE, *, rate: int = SAMPLE_RATE,
    root: Path | None = None,
) -> SequencePlayer:
    """A sequence of catalogue prompts in a language."""
    players = []
    for prompt_id in prompt_ids:
        path = prompt_path(lang, prompt_id) if root is None else prompt_path(lang, prompt_id, root)
        players.append(FilePlayer(path, rate=rate))
    return SequencePlayer(players)


def say_digits(digits: str, lang: str = DEFAULT_LANGUAGE, *, rate: int = SAMPLE_RATE,
               root: Path | None = None) -> SequencePlayer:
    """Say every character of ``digits`` ("701" -> seven, zero, one)."""
    return play_prompts([digit_prompt_id(char) for char in digits], lang, rate=rate, root=root)


def say_number(number: int, lang: str = DEFAULT_LANGUAGE, *, rate: int = SAMPLE_RATE,
               root: Path | None = None) -> SequencePlayer:
    """Say a number as a word sequence (12 -> "twaalf" / "twelve")."""
    return play_prompts(number_prompt_ids(number, lang), lang, rate=rate, root=root)


@dataclass(frozen=True)
class PlaylistEntry:
    """One music-on-hold file and its volume."""

    path: str
    volume_db: float = 0.0


class MusicOnHold:
    """A playlist played continuously, shared by all its listeners.

    The position is advanced once per tick: either by the engine calling
    ``advance()`` once per 20 ms, or implicitly when a listener reads a second time
    within the same tick (i.e. the first listener to read in a new tick moves the
    shared position, the others get the same frame). Listeners therefore hear the
    same audio at the same moment, and the playlist costs one decode for everybody.

    Infotainment: when set, after every ``interval_s`` of music the message is played
    in full, then the music resumes where it stopped.
    """

    def __init__(
        self,
        playlist: Sequence[PlaylistEntry | str],
        *,
        infotainment: str | os.PathLike[str] | None = None,
        infotainment_volume_db: float = 0.0,
        interval_s: float = INFOTAINMENT_INTERVAL_S,
        rate: int = SAMPLE_RATE,
        cache: AudioCache | None = None,
    ) -> None:
        entries = [e if isinstance(e, PlaylistEntry) else PlaylistEntry(str(e)) for e in playlist]
        if not entries:
            raise ValueError("music on hold needs at least one file")
        cache = cache or DEFAULT_CACHE
        self.rate = rate
        self.frame_samples = _frame_samples(rate)
        # Files concatenated once, each at its own volume: playing is then a slice.
        self._music = np.concatenate(
            [apply_gain(cache.load(e.path, rate), e.volume_db) for e in entries]
        )
        self._info = (
            apply_gain(cache.load(infotainment, rate), infotainment_volume_db)
            if infotainment is not None else None
        )
        self._interval_frames = max(1, round(interval_s * 1000 / FRAME_MS))
        self._music_pos = 0
        self._info_pos: int | None = None  # not None while the message plays
        self._music_frames = 0  # music frames since the last message
        self.tick = 0
        self._frame = self._render()
        self.listeners = 0

    def __repr__(self) -> str:
        state = "info" if self._info_pos is not None else "music"
        return f"<MusicOnHold {state} tick={self.tick} listeners={self.listeners}>"

    @property
    def playing_infotainment(self) -> bool:
        return self._info_pos is not None

    @property
    def current_frame(self) -> np.ndarray:
        return self._frame

    def _render(self) -> np.ndarray:
        if self._info_pos is not None and self._info is not None:
            frame = self._slice(self._info, self._info_pos, wrap=False)
            self._info_pos += self.frame_samples
            if self._info_pos >= self._info.size:
                self._info_pos = None
                self._music_frames = 0
            return frame
        frame = self._slice(self._music, self._music_pos, wrap=True)
        self._music_pos = (self._music_pos + self.frame_samples) % self._music.size
        self._music_frames += 1
        if self._info is not None and self._music_frames >= self._interval_frames:
            self._info_pos = 0
        return frame

    def _slice(self, samples: np.ndarray, start: int, wrap: bool) -> np.ndarray:
        end = start + self.frame_samples
        if end <= samples.size:
            return samples[start:end]
        head = samples[start:]
        need = self.frame_samples - head.size
        tail = np.resize(samples, need) if wrap else np.zeros(need, dtype=np.int16)
        return np.concatenate((head, tail))

    def advance(self) -> np.ndarray:
        """Move the shared position by one frame; returns the new current frame."""
        self.tick += 1
        self._frame = self._render()
        return self._frame

    def listen(self) -> MohListener:
        """A frame source for one listener (a leg on hold, a caller in a queue)."""
        self.listeners += 1
        return MohListener(self)


class MohListener:
    """One listener of a shared ``MusicOnHold``."""

    def __init__(self, moh: MusicOnHold) -> None:
        self.moh = moh
        self._last_tick = moh.tick - 1  # the current frame is unheard by us

    def __repr__(self) -> str:
        return f"<MohListener tick={self._last_tick}>"

    def read(self) -> np.ndarray:
        if self._last_tick == self.moh.tick:
            self.moh.advance()  # nobody advanced since our last read: a new tick
        self._last_tick = self.moh.tick
        return self.moh.current_frame

    def close(self) -> None:
        self.moh.listeners = max(0, self.moh.listeners - 1)
