"""Call recording to WAV (8 kHz, 16-bit, mono or stereo), without blocking the loop.

``write()`` only appends a frame to an in-memory buffer (called from the event loop
every 20 ms); ``flush()`` and ``close()`` do the file I/O with the stdlib ``wave``
module and are meant to be run in a worker thread by the asyncio layer
(``loop.run_in_executor``). A lock makes that hand-over safe; the class itself has no
asyncio and no clock.

Stereo puts one direction of the call in each channel (left = the recorded leg's
caller side as given by the engine, right = the other), which keeps both voices
separable; a mono recording of a two-party call is the engine's mix.

The WAV header is rewritten by ``wave`` on every flush, so the file is always valid
up to the last flush even if the process dies afterwards.
"""
from __future__ import annotations

import logging
import os
import threading
import wave
from typing import BinaryIO

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
SAMPLE_WIDTH = 2
MAX_BUFFERED_SECONDS = 60  # beyond this the oldest unflushed audio is dropped


class Recorder:
    """Buffers frames in memory and writes them to a WAV file on flush."""

    def __init__(
        self, path: str | os.PathLike[str], *, channels: int = 1, sample_rate: int = SAMPLE_RATE
    ) -> None:
        if channels not in (1, 2):
            raise ValueError("channels must be 1 or 2")
        self.path = os.fspath(path)
        self.channels = channels
        self.sample_rate = sample_rate
        self._chunks: list[np.ndarray] = []
        self._buffered = 0  # samples per channel waiting
        self._lock = threading.Lock()
        self._wave: wave.Wave_write | None = None
        self._file: BinaryIO | None = None
        self._closed = False
        self.frames_written = 0  # samples per channel on disk
        self.dropped = 0  # samples per channel dropped because nobody flushed

    def __repr__(self) -> str:
        return (
            f"<Recorder {self.path} ch={self.channels} written={self.frames_written} "
            f"buffered={self._buffered}>"
        )

    @property
    def buffered(self) -> int:
        """Samples per channel waiting for the next flush."""
        return self._buffered

    @property
    def closed(self) -> bool:
        return self._closed

    def write(self, frame: np.ndarray, right: np.ndarray | None = None) -> None:
        """Append one frame (mono), or the left and right frames of a stereo file."""
        if self._closed:
            raise ValueError(f"recorder for {self.path} is closed")
        left = np.asarray(frame, dtype=np.int16)
        if self.channels == 2:
            other = np.zeros_like(left) if right is None else np.asarray(right, dtype=np.int16)
            if other.shape != left.shape:
                raise ValueError("left and right frames differ in length")
            data = np.column_stack((left, other)).reshape(-1)
        else:
            if right is not None:
                raise ValueError("a mono recorder takes one frame")
            data = left.copy()
        limit = MAX_BUFFERED_SECONDS * self.sample_rate
        with self._lock:
            self._chunks.append(data)
            self._buffered += left.size
            while self._buffered > limit and len(self._chunks) > 1:
                dropped = self._chunks.pop(0)
                self._buffered -= dropped.size // self.channels
                self.dropped += dropped.size // self.channels

    def flush(self) -> int:
        """Write buffered audio to the file (blocking I/O); returns samples written."""
        with self._lock:
            chunks, self._chunks = self._chunks, []
            self._buffered = 0
            if not chunks and self._wave is not None:
                return 0
            if self._wave is None:
                self._wave = self._open()
            data = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)
            self._wave.writeframes(data.astype("<i2").tobytes())
            assert self._file is not None
            self._file.flush()  # header and data on disk: valid WAV up to here
            written = data.size // self.channels
            self.frames_written += written
            return written

    def _open(self) -> wave.Wave_write:
        self._file = open(self.path, "wb")  # noqa: SIM115 - closed in close()
        handle = wave.open(self._file, "wb")
        handle.setnchannels(self.channels)
        handle.setsampwidth(SAMPLE_WIDTH)
        handle.setframerate(self.sample_rate)
        return handle

    def close(self) -> None:
        """Flush and close the file (blocking I/O). Idempotent."""
        if self._closed:
            return
        try:
            self.flush()
        finally:
            self._closed = True
            with self._lock:
                if self._wave is not None:
                    self._wave.close()
                    self._wave = None
                if self._file is not None:
                    self._file.close()
                    self._file = None
        logger.debug("recording %s closed: %d samples", self.path, self.frames_written)
