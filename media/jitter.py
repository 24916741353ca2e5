"""Adaptive jitter buffer for endpoints whose audio is decoded (mix, record, detect).

Pure: no clock of its own, ``now`` (seconds, monotonic) is passed in. Packets go in
with ``push(seq, timestamp, payload, now)`` as they arrive; the 20 ms frame clock of
the engine takes one frame per tick with ``pop(now)``.

- Reordering: frames are kept by extended sequence number (RFC 3550 appendix A.1
  arithmetic: 16-bit sequence numbers unwrapped against the highest seen) and played
  in order.
- Duplicates and packets that arrive after their slot was played are dropped and
  counted.
- Loss: when the next frame is missing but later ones are buffered (and the buffer
  holds its target depth), the slot is concealed by repeating the previous frame,
  attenuated by ``CONCEALMENT_ATTENUATION`` per consecutive concealed frame; after
  ``MAX_CONCEALED_FRAMES`` the output fades to silence.
- Underrun (buffer empty): the slot is concealed *without* advancing, so a late
  packet is still played when it comes (this is how the playout delay grows).
- Depth: the target depth follows the interarrival jitter J of RFC 3550 section 6.4.1
  / appendix A.8 (``J += (|D| - J) / 16``): ``JITTER_DEPTH_FACTOR * J`` rounded up to
  whole frames, clamped to 20..200 ms. When more than the target plus
  ``SHRINK_SLACK_FRAMES`` frames wait, the oldest is dropped to bring delay back down.

The payload is either already decoded (``np.int16`` array) or bytes with a
``decoder`` given to the constructor; decoding then happens in sequence order, which
stateful decoders (G.722, Opus) need.

Fast path: a packet whose sequence number is the one after the highest seen (the
common case, in order) is stored without the late/duplicate/resync checks, which
cannot apply to it; taking the frame of the next slot is one dict pop. Storage is a
dict keyed by extended sequence number, so push and pop are O(1); ``min()`` over the
(few) buffered frames is only needed when playout starts, on overflow and when the
delay shrinks. ``pop_payload(now)`` is ``pop(now)`` without the decoding and without
the ``JitterFrame``: it returns the payload as pushed, so the engine can decode the
payloads of every G.711 leg of a tick in one numpy gather (G.711 is stateless). A
concealed frame needs the last decoded frame: in that mode it is decoded lazily from
the last payload, which gives the same samples for a stateless decoder.
"""
from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

logger = logging.getLogger(__name__)

SEQ_MOD = 1 << 16
SEQ_HALF = 1 << 15
MIN_DEPTH_MS = 20
MAX_DEPTH_MS = 200
JITTER_DEPTH_FACTOR = 3.0  # depth = 3 J covers typical (Laplacian-like) jitter
SHRINK_SLACK_FRAMES = 2  # frames above target tolerated before dropping one
MAX_BUFFERED_FRAMES = 50  # 1 s at 20 ms: bound on what a peer can make us hold
MAX_CONCEALED_FRAMES = 5  # 100 ms of repeated audio, then silence
CONCEALMENT_ATTENUATION = 0.5  # per concealed frame (about -6 dB)
RESYNC_GAP_FRAMES = 50  # a jump this large restarts playout (new talk spurt / source)


@dataclass(frozen=True)
class JitterFrame:
    """One 20 ms frame taken from the buffer."""

    samples: np.ndarray
    """Decoded int16 audio."""
    seq: int
    """RTP sequence number of the slot (16-bit)."""
    concealed: bool
    """True when the frame was made up for a missing packet."""


@dataclass
class JitterStats:
    """Counters since the buffer was created."""

    received: int = 0
    played: int = 0
    concealed: int = 0
    late: int = 0
    duplicates: int = 0
    dropped: int = 0
    """Frames discarded to shrink the delay or because the buffer was full."""
    resyncs: int = 0


class JitterBuffer:
    """Reorders, conceals and adapts; see the module docstring."""

    def __init__(
        self,
        *,
        clock_rate: int = 8000,
        frame_ms: int = 20,
        min_depth_ms: int = MIN_DEPTH_MS,
        max_depth_ms: int = MAX_DEPTH_MS,
        decoder: Callable[[bytes], np.ndarray] | None = None,
        frame_samples: int | None = None,
    ) -> None:
        if not 0 < min_depth_ms <= max_depth_ms:
            raise ValueError("need 0 < min_depth_ms <= max_depth_ms")
        self.clock_rate = clock_rate
        self.frame_ms = frame_ms
        self.frame_samples = frame_samples or clock_rate * frame_ms // 1000
        self.min_frames = math.ceil(min_depth_ms / frame_ms)
        self.max_frames = max(self.min_frames, max_depth_ms // frame_ms)
        self._decoder = decoder
        self._frames: dict[int, bytes | np.ndarray] = {}
        self._highest: int | None = None  # extended seq of the highest packet seen
        self._next: int | None = None  # extended seq of the next slot to play
        self._playing = False
        self._first_arrival = 0.0
        self._last: bytes | np.ndarray | None = None
        self._concealed_run = 0
        self._slot = 0  # extended seq of the slot returned by the last pop
        self._slot_concealed = False
        self._transit: float | None = None
        self._jitter = 0.0  # seconds, RFC 3550 A.8 estimator
        self._shrink_above = self.min_frames + SHRINK_SLACK_FRAMES  # cheap pre-check
        self.stats = JitterStats()

    def __repr__(self) -> str:
        return (
            f"<JitterBuffer depth={self.depth_ms}ms buffered={len(self._frames)} "
            f"jitter={self.jitter_ms:.1f}ms>"
        )

    @property
    def target_frames(self) -> int:
        """Target playout depth in frames: ``JITTER_DEPTH_FACTOR * J`` in whole frames,
        clamped to the configured bounds (computed when needed, from the estimate)."""
        wanted = math.ceil(JITTER_DEPTH_FACTOR * self._jitter * 1000.0 / self.frame_ms - 1e-9)
        return min(self.max_frames, max(self.min_frames, wanted))

    @property
    def depth_ms(self) -> int:
        """Current target playout depth in milliseconds."""
        return self.target_frames * self.frame_ms

    @property
    def jitter_ms(self) -> float:
        """Interarrival jitter estimate (RFC 3550 section 6.4.1) in milliseconds."""
        return self._jitter * 1000.0

    @property
    def buffered(self) -> int:
        """Frames waiting to be played."""
        return len(self._frames)

    # -- input ----------------------------------------------------------------

    def _extend(self, seq: int) -> int:
        """Unwrap a 16-bit sequence number against the highest one seen."""
        if self._highest is None:
            return seq + SEQ_MOD  # leave room below for reordered early packets
        delta = (seq - self._highest) % SEQ_MOD
        if delta >= SEQ_HALF:
            delta -= SEQ_MOD
        return self._highest + delta

    def push(self, seq: int, timestamp: int, payload: bytes | np.ndarray, now: float) -> bool:
        """Add one packet; returns False when it was dropped (late, duplicate)."""
        seq &= 0xFFFF
        self.stats.received += 1
        # RFC 3550 appendix A.8: transit = arrival - timestamp, in seconds here
        transit = now - (timestamp & 0xFFFFFFFF) / self.clock_rate
        last = self._transit
        if last is not None:
            delta = abs(transit - last)
            if delta < 1.0:  # ignore timestamp jumps (new source) in the estimate
                self._jitter += (delta - self._jitter) / 16.0
        self._transit = transit
        highest = self._highest
        if highest is not None and seq == (highest + 1) & 0xFFFF:
            # in order (the common case): newer than anything buffered, so neither late
            # nor a duplicate; only the resync gap and the size bound can apply
            ext = highest + 1
            nxt = self._next
            if not self._playing or nxt is None or ext - nxt <= RESYNC_GAP_FRAMES:
                frames = self._frames
                self._highest = ext
                if not frames and not self._playing:
                    self._first_arrival = now
                frames[ext] = payload
                if len(frames) > MAX_BUFFERED_FRAMES:
                    self._trim()
                return True
        return self._push_general(self._extend(seq), payload, now)

    def _push_general(self, ext: int, payload: bytes | np.ndarray, now: float) -> bool:
        if self._playing and self._next is not None:
            if ext < self._next:
                self.stats.late += 1
                return False
            if ext - self._next > RESYNC_GAP_FRAMES:
                self._resync()
        if ext in self._frames:
            self.stats.duplicates += 1
            return False
        if self._highest is None or ext > self._highest:
            self._highest = ext
        if not self._frames and not self._playing:
            self._first_arrival = now
        self._frames[ext] = payload
        self._trim()
        return True

    def _trim(self) -> None:
        while len(self._frames) > MAX_BUFFERED_FRAMES:
            del self._frames[min(self._frames)]
            self.stats.dropped += 1

    def _resync(self) -> None:
        self.stats.resyncs += 1
        self.stats.dropped += len(self._frames)
        self._frames.clear()
        self._playing = False
        self._next = None
        self._concealed_run = 0

    # -- output ---------------------------------------------------------------

    def pop(self, now: float) -> JitterFrame | None:
        """The frame for this 20 ms tick, or None before playout has started."""
        item = self.pop_payload(now)
        if item is None:
            return None
        if isinstance(item, np.ndarray):
            samples = item
        elif self._decoder is not None:
            samples = self._decoder(item)
            self._last = samples  # conceal from the decoded frame, not the payload
        else:
            raise TypeError("bytes payload needs a decoder")
        return JitterFrame(samples=samples, seq=self._slot % SEQ_MOD,
                           concealed=self._slot_concealed)

    def pop_payload(self, now: float) -> bytes | np.ndarray | None:
        """Like ``pop`` without decoding: the payload of this tick's slot as pushed
        (bytes or samples), a concealment frame (samples), or None before playout.

        The caller decodes a bytes payload itself (in slot order for a stateful
        decoder); ``last_slot`` / ``last_concealed`` describe the slot just taken.
        """
        if self._playing:
            nxt = self._next
            assert nxt is not None
            payload = self._frames.pop(nxt, None)
            if payload is not None:  # fast path: the next frame is there
                self._last = payload
                self._concealed_run = 0
                self.stats.played += 1
                self._slot = nxt
                self._slot_concealed = False
                self._next = nxt + 1
                if len(self._frames) > self._shrink_above:  # target >= min_frames
                    self._shrink()
                return payload
        elif not self._frames:
            return None
        else:
            waited_ms = (now - self._first_arrival) * 1000.0
            if len(self._frames) < self.target_frames and waited_ms < self.depth_ms:
                return None
            self._playing = True
            self._next = min(self._frames)
            return self.pop_payload(now)
        assert self._next is not None
        if self._frames and len(self._frames) >= self.target_frames:
            samples = self._conceal(self._next)  # lost: skip its slot
            self._next += 1
            return samples
        return self._conceal(self._next)  # underrun: wait for it, delay grows

    @property
    def last_slot(self) -> int:
        """RTP sequence number (16-bit) of the slot the last pop returned."""
        return self._slot % SEQ_MOD

    @property
    def last_concealed(self) -> bool:
        """Whether the last pop returned a made-up frame."""
        return self._slot_concealed

    def _conceal(self, ext: int) -> np.ndarray:
        self._concealed_run += 1
        self.stats.concealed += 1
        self._slot = ext
        self._slot_concealed = True
        last = self._last
        if last is not None and not isinstance(last, np.ndarray):
            if self._decoder is None:
                raise TypeError("bytes payload needs a decoder")
            last = self._last = self._decoder(last)  # lazily, see pop_payload
        if last is None or self._concealed_run > MAX_CONCEALED_FRAMES:
            return np.zeros(self.frame_samples, dtype=np.int16)
        gain = CONCEALMENT_ATTENUATION**self._concealed_run
        return (last.astype(np.float32) * gain).astype(np.int16)

    def _shrink(self) -> None:
        assert self._next is not None
        while len(self._frames) > self.target_frames + SHRINK_SLACK_FRAMES:
            oldest = min(self._frames)
            del self._frames[oldest]
            self.stats.dropped += 1
            self._next = max(self._next, oldest + 1)
