"""N-party mixing on 20 ms frames, and the drift-corrected frame clock that drives it.

Pure numpy, no asyncio. The bridge model is pjmedia's conference bridge (ports
connected source -> sink, several sources into one sink are summed): every
participant contributes one frame per tick and receives the sum of everybody else
("mix minus self"), so nobody hears their own echo back. Players (prompts, music on
hold, tones) are extra *sources*: they contribute to the participants they are
mixed into and never receive anything.

Arithmetic: inputs are int16 frames of ``FRAME_SAMPLES`` (160 = 20 ms at 8 kHz);
the total is summed once in int32, each output is ``total - own + sources`` and
clipped once to int16, so no intermediate clipping distorts the mix.

``mix_minus_groups`` is the same arithmetic for many conferences at once (the engine
mixes every conference of a tick in one call): the rows of a (legs, samples) array are
grouped by conference, ``np.add.reduceat`` gives each conference's total, every row
gets its conference's total minus its own input, clipped once.

``FrameClock`` computes the deadline of the next tick from a fixed start time
(``start + n * period``), so lateness of one wake-up is never carried into the next
(no accumulated lag); if the caller falls more than ``max_lag`` behind, whole frames
are skipped instead of being produced in a burst.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Hashable, Iterable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

logger = logging.getLogger(__name__)

SAMPLE_RATE = 8000
FRAME_MS = 20
FRAME_SAMPLES = SAMPLE_RATE * FRAME_MS // 1000
INT16_MIN = -32768
INT16_MAX = 32767
MAX_LAG_S = 0.1  # beyond 5 frames behind, skip instead of catching up in a burst


class FrameSource(Protocol):
    """Anything that produces 20 ms int16 frames (players, tone generators, MOH)."""

    def read(self) -> np.ndarray | None:
        """The next frame, or None when the source has ended."""


@dataclass
class _Participant:
    muted: bool = False
    frame: np.ndarray | None = None


@dataclass
class _Source:
    source: FrameSource
    targets: frozenset[Hashable] | None  # None = every participant
    ended: bool = False


@dataclass
class MixStats:
    ticks: int = 0
    missing_frames: int = 0
    """Participant frames that were not put before a tick (mixed as silence)."""
    clipped_samples: int = 0
    sources_ended: list[Hashable] = field(default_factory=list)


class Mixer:
    """Mix-minus conference of N participants plus extra sources."""

    def __init__(self, frame_samples: int = FRAME_SAMPLES) -> None:
        self.frame_samples = frame_samples
        self._participants: dict[Hashable, _Participant] = {}
        self._sources: dict[Hashable, _Source] = {}
        self._silence = np.zeros(frame_samples, dtype=np.int16)
        self.stats = MixStats()

    def __repr__(self) -> str:
        return f"<Mixer participants={len(self._participants)} sources={len(self._sources)}>"

    # -- membership -------------------------------------------------------------

    @property
    def participants(self) -> list[Hashable]:
        return list(self._participants)

    def add(self, pid: Hashable, *, muted: bool = False) -> None:
        if pid in self._participants:
            raise ValueError(f"participant {pid!r} is already in the mixer")
        self._participants[pid] = _Participant(muted=muted)

    def remove(self, pid: Hashable) -> None:
        self._participants.pop(pid, None)

    def set_mute(self, pid: Hashable, muted: bool) -> None:
        """A muted participant still hears everybody; nobody hears it."""
        self._participants[pid].muted = muted

    def is_muted(self, pid: Hashable) -> bool:
        return self._participants[pid].muted

    def add_source(
        self, sid: Hashable, source: FrameSource, targets: Iterable[Hashable] | None = None
    ) -> None:
        """Mix ``source`` into ``targets`` (default: every participant)."""
        chosen = None if targets is None else frozenset(targets)
        self._sources[sid] = _Source(source=source, targets=chosen)

    def remove_source(self, sid: Hashable) -> None:
        self._sources.pop(sid, None)

    # -- one tick ---------------------------------------------------------------

    def put(self, pid: Hashable, frame: np.ndarray) -> None:
        """This tick's input of a participant (decoded int16, ``frame_samples`` long)."""
        if frame.shape != (self.frame_samples,):
            raise ValueError(f"frame must have {self.frame_samples} samples, got {frame.shape}")
        self._participants[pid].frame = frame

    def mix(self) -> dict[Hashable, np.ndarray]:
        """Produce every participant's output for this tick and clear the inputs."""
        self.stats.ticks += 1
        pids = list(self._participants)
        count = len(pids)
        inputs = np.zeros((count, self.frame_samples), dtype=np.int32)
        for row, pid in enumerate(pids):
            part = self._participants[pid]
            if part.frame is None:
                self.stats.missing_frames += 1
            elif not part.muted:
                inputs[row] = part.frame
            part.frame = None
        outputs = inputs.sum(axis=0, dtype=np.int32)[np.newaxis, :] - inputs
        self._add_sources(outputs, pids)
        clipped = np.clip(outputs, INT16_MIN, INT16_MAX)
        self.stats.clipped_samples += int(np.count_nonzero(clipped != outputs))
        result = clipped.astype(np.int16)
        return {pid: result[row] for row, pid in enumerate(pids)}

    def _add_sources(self, outputs: np.ndarray, pids: list[Hashable]) -> None:
        ended = []
        for sid, src in self._sources.items():
            frame = src.source.read()
            if frame is None:
                ended.append(sid)
                continue
            if src.targets is None:
                outputs += frame.astype(np.int32)
            else:
                rows = [row for row, pid in enumerate(pids) if pid in src.targets]
                if rows:
                    outputs[rows] += frame.astype(np.int32)
        for sid in ended:
            del self._sources[sid]
            self.stats.sources_ended.append(sid)


def mix_minus_groups(frames: np.ndarray, starts: np.ndarray | list[int],
                     muted: np.ndarray | None = None) -> np.ndarray:
    """Everyone-minus-self for several conferences in one pass.

    ``frames`` is (rows, samples) int16, the rows of each conference contiguous;
    ``starts`` the first row of each conference (ascending, starting at 0, no empty
    conference); ``muted`` an optional bool per row (a muted row is heard by nobody
    but still receives the mix). Returns (rows, samples) int16: per conference the
    int32 total minus the row's own (unmuted) input, clipped once, bit-exact with
    ``Mixer.mix`` without sources.

    Consecutive conferences of the same size are summed together as a
    (conferences, size, samples) block with ``size - 1`` vector additions (faster
    than ``np.add.reduceat`` over rows); callers that order conferences by size get
    one block per size.
    """
    if frames.ndim != 2 or frames.shape[0] == 0:
        raise ValueError("frames must be a non-empty (rows, samples) array")
    rows, samples = frames.shape
    inputs = frames.astype(np.int32)
    if muted is not None and muted.any():
        inputs[muted] = 0
    bounds = [int(x) for x in starts] + [rows]
    if bounds[0] != 0 or any(b <= a for a, b in zip(bounds, bounds[1:])):
        raise ValueError("starts must begin at 0 and increase (no empty conference)")
    out = np.empty_like(inputs)
    first = 0  # first conference of the current run of equal sizes
    count = len(bounds) - 1
    while first < count:
        size = bounds[first + 1] - bounds[first]
        last = first + 1
        while last < count and bounds[last + 1] - bounds[last] == size:
            last += 1
        lo, hi = bounds[first], bounds[last]
        block = inputs[lo:hi].reshape(last - first, size, samples)
        total = block[:, 0].copy()
        for member in range(1, size):
            total += block[:, member]
        np.subtract(total[:, np.newaxis, :], block,
                    out=out[lo:hi].reshape(last - first, size, samples))
        first = last
    np.clip(out, INT16_MIN, INT16_MAX, out=out)
    return out.astype(np.int16)


class FrameClock:
    """Deadlines ``start + n * period`` for a periodic tick that never drifts."""

    def __init__(self, start: float, period: float = FRAME_MS / 1000, max_lag: float = MAX_LAG_S):
        if period <= 0:
            raise ValueError("period must be positive")
        self.start = start
        self.period = period
        self.max_lag = max_lag
        self.index = 0  # ticks produced so far
        self.skipped = 0  # ticks skipped because the caller was too late

    def __repr__(self) -> str:
        return f"<FrameClock index={self.index} skipped={self.skipped}>"

    def deadline(self, index: int) -> float:
        return self.start + index * self.period

    def next_deadline(self, now: float) -> float:
        """Call after producing a tick; returns when the next one is due.

        The deadline comes from the start time, not from ``now``, so a late wake-up
        shortens the next wait instead of delaying every following frame. When more
        than ``max_lag`` behind, the missed ticks are skipped (counted in ``skipped``).
        """
        self.index += 1
        due = self.deadline(self.index)
        behind = now - due
        if behind > self.max_lag:
            skip = math.floor(behind / self.period) + 1
            self.index += skip
            self.skipped += skip
            due = self.deadline(self.index)
        return due
