"""RTP/RTCP port-pair allocation over a configured range, pure (no sockets).

RFC 3550 section 11: "For UDP and similar protocols, RTP SHOULD use an even
destination port number and the corresponding RTCP stream SHOULD use the next higher
(odd) destination port number."  A pair is therefore (p, p + 1) with p even and both
inside the inclusive range [low, high].

The allocator only does the bookkeeping; the engine tries to bind each candidate and
takes the first pair the operating system lets it have (a port may be in use by
another process). Candidates rotate round-robin from the last pair handed out, so a
pair that was just released is the last one to be reused: stray packets from the
previous call's phone then cannot latch onto the next call (RFC 3550 section 8.2
speaks of the same hazard for SSRCs).
"""
from __future__ import annotations

import logging
from collections.abc import Iterator

logger = logging.getLogger(__name__)

MAX_PORT = 65535


class PortAllocator:
    """Bookkeeping of even/odd port pairs in the inclusive range [low, high]."""

    def __init__(self, low: int, high: int) -> None:
        if not 0 < low <= high <= MAX_PORT:
            raise ValueError(f"invalid port range {low}-{high}")
        self.low = low
        self.high = high
        self._first = low + (low & 1)  # first even port
        self._count = max(0, (high - self._first + 1) // 2)
        if self._count == 0:
            raise ValueError(f"port range {low}-{high} holds no even/odd pair")
        self._in_use: set[int] = set()
        self._next = 0  # index of the next candidate pair

    def __repr__(self) -> str:
        return (f"PortAllocator({self.low}-{self.high}, pairs={self._count}, "
                f"in_use={len(self._in_use)})")

    @property
    def capacity(self) -> int:
        """Number of pairs in the range."""
        return self._count

    @property
    def free(self) -> int:
        """Number of pairs not handed out."""
        return self._count - len(self._in_use)

    def candidates(self) -> Iterator[int]:
        """RTP ports of the free pairs, round-robin from the last pair handed out.

        Each candidate is visited at most once per call, so a loop over it is bounded
        by the range size even if every bind fails.
        """
        for i in range(self._count):
            index = (self._next + i) % self._count
            port = self._first + 2 * index
            if port not in self._in_use:
                yield port

    def take(self, rtp_port: int) -> None:
        """Mark the pair starting at `rtp_port` as in use."""
        if rtp_port in self._in_use:
            raise ValueError(f"port {rtp_port} is already in use")
        index, odd = divmod(rtp_port - self._first, 2)
        if odd or not 0 <= index < self._count:
            raise ValueError(f"port {rtp_port} is not an RTP port of this range")
        self._in_use.add(rtp_port)
        self._next = (index + 1) % self._count

    def release(self, rtp_port: int) -> None:
        """Return the pair starting at `rtp_port`; releasing twice is harmless."""
        self._in_use.discard(rtp_port)
