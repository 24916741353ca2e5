"""The media engine: RTP/RTCP endpoints on UDP sockets and the packet relay between them.

This is the only module of `media/` that uses asyncio. It runs on the plain asyncio
loop and on uvloop.

API used by call control (keep it this small; it may move to worker processes)::

    engine = MediaEngine(host, port_range=(10000, 20000), rtp_timeout=60.0,
                         advertise_host=None)
    await engine.start()                       # starts the no-media watchdog
    ep = await engine.create_endpoint("call-id/leg")  # binds RTP (even) + RTCP (odd)
    ep.local_host, ep.rtp_port, ep.rtcp_port   # what goes into our SDP (c=, m=)
    ep.set_remote(host, rtp_port, rtcp_port=None)      # the far end's SDP (c=, m=)
    engine.relay(a, b)                         # a <-> b, packet by packet, no decoding
    engine.unrelay(a)
    ep.set_hold(sending=False)                 # stop sending toward ep's remote
    engine.on_timeout = callback               # callback(ep), once per silent endpoint
    engine.stats(); ep.stats                   # counters
    await ep.close(); await engine.close()     # idempotent, ports freed

Extension points for the DSP side (player, recorder, DTMF detector): `ep.on_rtp`
(called with every valid RTP packet received while the endpoint is not relayed) and
`ep.send_rtp(packet)` (sends through the same SSRC/sequence rewriter as the relay).

Behaviour:

* Symmetric RTP latching (RFC 4961 section 4, "symmetric RTP"; the usual NAT
  traversal of an SBC): once `set_remote()` has been called, the first valid RTP packet
  sets the endpoint's send address to the packet's source (`latched = True`); RTCP
  latches likewise on its own socket. Packets from any other address are dropped and
  counted in `dropped_foreign`, as are packets that arrive before `set_remote()` (we do
  not know the far end yet, so we do not let anyone latch). A `set_remote()` with a
  different address (re-INVITE to a new address) un-latches.
* Packets that are not RTP (shorter than 12 bytes, version != 2) or not RTCP (RFC 5761
  section 4 type range) are dropped and counted in `dropped_garbage`.
* The relay never decodes: RFC 4733 telephone-events, comfort noise, any codec pass
  through. Only the SSRC, sequence number, timestamp and (on a source change) the
  marker bit are rewritten.
* SSRC/sequence continuity (RFC 3550 section 8.2 and section 5.1 on marker/timestamps):
  every endpoint sends with its own fixed SSRC. The first source's sequence numbers and
  timestamps pass unchanged; when the source SSRC changes or `relay()` re-bridges the
  endpoint, offsets are recomputed so the sequence continues at last+1 and the
  timestamp advances by the wall-clock time since the last packet sent (at the
  endpoint's `clock_rate`, default 8000 Hz), and the marker bit is set on that first
  packet. RTCP SR/RR, SDES and BYE are translated to match (sender SSRC, SR RTP
  timestamp, report-block SSRC and sequence).
* No-media watchdog: checks about once a second (more often for short timeouts); an
  endpoint that is relayed, has a remote, is not on hold and received no RTP for
  `rtp_timeout` seconds (since the last packet, or since relay()/set_remote()/
  set_hold() armed it) is reported once through `on_timeout`.

Errors: `MediaError` for local misuse and resource exhaustion (no free port pair,
relaying a closed endpoint, a non-numeric remote address). Remote misbehaviour never
raises: it is dropped and counted.
"""
from __future__ import annotations

import asyncio
import errno
import ipaddress
import logging
import random
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from media.ports import PortAllocator
from media.rtp import (RTCP_BYE, RTCP_SDES, ReportBlock, RtcpOther, RtcpPacket,
                       RtcpReceiverReport, RtcpSenderReport, is_rtcp, parse_rtcp,
                       serialize_rtcp)

logger = logging.getLogger(__name__)

__all__ = ["MediaEngine", "Endpoint", "EndpointStats", "MediaError"]

RTP_MIN_SIZE = 12  # RFC 3550 section 5.1 fixed header
DEFAULT_CLOCK_RATE = 8000  # Hz; G.711, G.722 (RFC 3551 section 4.5.2), telephone-event/8000
WATCHDOG_INTERVAL = 1.0  # seconds between no-media checks (upper bound)
WATCHDOG_MIN_INTERVAL = 0.05  # seconds; lower bound for very short rtp_timeout values
CLOSE_TIMEOUT = 1.0  # seconds to wait for a transport to report its socket closed
MAX_TS_JUMP = 10 * DEFAULT_CLOCK_RATE * 60  # timestamp units; cap on a re-bridge jump
MIN_TS_JUMP = 1

_monotonic = time.monotonic
_SEQ_TS_SSRC = struct.Struct("!HII")  # bytes 2..12 of the RTP header
_BIND_RETRY_ERRNOS = {errno.EADDRINUSE, errno.EACCES}


class MediaError(Exception):
    """Local misuse of the media engine or an exhausted resource."""


@dataclass(slots=True)
class EndpointStats:
    """Counters of one endpoint; mutated in place by the engine (not thread-safe)."""

    packets_in: int = 0
    """Valid RTP packets accepted on the RTP socket."""
    bytes_in: int = 0
    packets_out: int = 0
    """RTP packets sent from this endpoint toward its remote."""
    bytes_out: int = 0
    rtcp_in: int = 0
    rtcp_out: int = 0
    dropped_garbage: int = 0
    """Datagrams that were not RTP (RTP socket) or not RTCP (RTCP socket)."""
    dropped_foreign: int = 0
    """Datagrams from an address other than the latched one, or before set_remote()."""
    last_rx: float | None = None
    """time.monotonic() of the last valid RTP packet received."""
    ssrc: int | None = None
    """SSRC of the RTP stream last seen arriving at this endpoint."""


class _Protocol(asyncio.DatagramProtocol):
    """Common part of the RTP and RTCP socket protocols: closing bookkeeping."""

    def __init__(self, endpoint: Endpoint, closed: asyncio.Future[None]) -> None:
        self.ep = endpoint
        self.closed = closed

    def error_received(self, exc: Exception) -> None:
        # ICMP port unreachable and friends when a phone went away; the watchdog
        # reports the silence, nothing to do here.
        logger.debug("%s: socket error %s", self.ep.label, exc)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)


class _RtpProtocol(_Protocol):
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        # The relay fast path: one datagram in, at most one sendto out.
        ep = self.ep
        if len(data) < RTP_MIN_SIZE or data[0] & 0xC0 != 0x80:
            ep.stats.dropped_garbage += 1
            return
        if addr != ep._rtp_source and not ep._latch_rtp(addr):
            ep.stats.dropped_foreign += 1
            return
        st = ep.stats
        st.packets_in += 1
        st.bytes_in += len(data)
        now = _monotonic()
        st.last_rx = now
        out = ep._peer
        if out is None:
            ep._deliver(data)
            return
        dest = out._rtp_dest
        if dest is None:
            return
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(data, 2)
        buf = bytearray(data)
        if ssrc != out._src_ssrc:
            st.ssrc = ssrc
            out._resync(ssrc, seq, ts, now)
            buf[1] |= 0x80  # RFC 3550 section 5.1: marker on a discontinuity
        seq = (seq + out._seq_off) & 0xFFFF
        ts = (ts + out._ts_off) & 0xFFFFFFFF
        _SEQ_TS_SSRC.pack_into(buf, 2, seq, ts, out.ssrc)
        out._last_seq = seq
        out._last_ts = ts
        out._last_tx = now
        out._rtp_transport.sendto(buf, dest)  # type: ignore[union-attr]
        ost = out.stats
        ost.packets_out += 1
        ost.bytes_out += len(data)


class _RtcpProtocol(_Protocol):
    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        ep = self.ep
        if not is_rtcp(data):
            ep.stats.dropped_garbage += 1
            return
        if addr != ep._rtcp_source and not ep._latch_rtcp(addr):
            ep.stats.dropped_foreign += 1
            return
        ep.stats.rtcp_in += 1
        out = ep._peer
        if out is None or out._rtcp_dest is None:
            return
        try:
            packet = _translate_rtcp(data, ep, out)
        except ValueError as exc:
            logger.debug("%s: dropped RTCP: %s", ep.label, exc)
            ep.stats.dropped_garbage += 1
            return
        out._rtcp_transport.sendto(packet, out._rtcp_dest)  # type: ignore[union-attr]
        out.stats.rtcp_out += 1


def _translate_rtcp(data: bytes, src: Endpoint, out: Endpoint) -> bytes:
    """Rewrite RTCP arriving at `src` so that it matches the RTP `out` sends.

    The sender SSRC becomes `out.ssrc` (SR timestamp shifted by out's offset); report
    blocks about the stream `src` sends to its phone (SSRC `src.ssrc`) are turned back
    into reports about that stream's origin (`src._src_ssrc`), RFC 3550 section 7.2.
    """
    sender = out._src_ssrc
    if sender is None:
        return data  # no RTP relayed yet: nothing to translate against
    packets = parse_rtcp(data)
    result: list[RtcpPacket] = []
    for p in packets:
        if isinstance(p, (RtcpSenderReport, RtcpReceiverReport)):
            reports = tuple(_translate_block(b, src) for b in p.reports)
            if isinstance(p, RtcpSenderReport):
                p = RtcpSenderReport(
                    out.ssrc if p.ssrc == sender else p.ssrc, p.ntp_timestamp,
                    (p.rtp_timestamp + out._ts_off) & 0xFFFFFFFF,
                    p.packet_count, p.octet_count, reports, p.extension)
            else:
                p = RtcpReceiverReport(out.ssrc if p.ssrc == sender else p.ssrc,
                                       reports, p.extension)
        elif isinstance(p, RtcpOther) and p.packet_type in (RTCP_SDES, RTCP_BYE) \
                and p.body[:4] == sender.to_bytes(4, "big"):
            p = RtcpOther(p.packet_type, p.count, out.ssrc.to_bytes(4, "big") + p.body[4:])
        result.append(p)
    return serialize_rtcp(result)


def _translate_block(block: ReportBlock, src: Endpoint) -> ReportBlock:
    if block.ssrc != src.ssrc or src._src_ssrc is None:
        return block
    hs = block.highest_sequence
    hs = (hs & 0xFFFF0000) | ((hs - src._seq_off) & 0xFFFF)
    return ReportBlock(src._src_ssrc, block.fraction_lost, block.packets_lost, hs,
                       block.jitter, block.last_sr, block.delay_since_last_sr)


class Endpoint:
    """One RTP/RTCP socket pair facing one far end (a phone, a trunk).

    Created by `MediaEngine.create_endpoint()`; attributes other than those documented
    in the module docstring are private to the engine.
    """

    def __init__(self, engine: MediaEngine, label: str, rtp_port: int,
                 ssrc: int) -> None:
        self._engine = engine
        self.label = label
        self.local_host = engine.advertise_host or engine.host
        self.rtp_port = rtp_port
        self.rtcp_port = rtp_port + 1
        self.ssrc = ssrc
        """Our SSRC: every packet sent from this endpoint carries it."""
        self.clock_rate = DEFAULT_CLOCK_RATE
        """RTP clock rate used to size the timestamp jump on a source change."""
        self.stats = EndpointStats()
        self.on_rtp: Callable[[Endpoint, bytes], None] | None = None
        self.remote_rtp: tuple[str, int] | None = None
        self.remote_rtcp: tuple[str, int] | None = None
        self.latched = False
        self.rtcp_latched = False
        self.sending = True
        self.closed = False
        self._sdp_rtp: tuple[str, int] | None = None
        self._remote_set = False
        self._rtp_source: tuple[str, int] | None = None
        self._rtcp_source: tuple[str, int] | None = None
        self._rtp_dest: tuple[str, int] | None = None  # None: do not send
        self._rtcp_dest: tuple[str, int] | None = None
        self._rtp_transport: asyncio.DatagramTransport | None = None
        self._rtcp_transport: asyncio.DatagramTransport | None = None
        self._closed_futures: list[asyncio.Future[None]] = []
        self._peer: Endpoint | None = None
        # outgoing rewriter state (RFC 3550 section 8.2 / 5.1)
        self._src_ssrc: int | None = None  # None forces a resync on the next packet
        self._seq_off = 0
        self._ts_off = 0
        self._last_seq = 0
        self._last_ts = 0
        self._last_tx: float | None = None
        # watchdog state
        self._armed_at = _monotonic()
        self._timed_out = False

    def __repr__(self) -> str:
        state = "latched" if self.latched else "sdp"
        return (f"<Endpoint {self.label!r} {self.local_host}:{self.rtp_port} -> "
                f"{self.remote_rtp} ({state}) ssrc={self.ssrc:08x}"
                f"{' closed' if self.closed else ''}>")

    # --- public -------------------------------------------------------------------

    def set_remote(self, host: str, rtp_port: int, rtcp_port: int | None = None) -> None:
        """Apply the far end's SDP address (c=, m=; RTCP defaults to rtp_port + 1).

        `host` must be a numeric IP address. The unspecified address (0.0.0.0, the old
        RFC 2543 hold) means: send nothing until the far end latches.
        """
        try:
            address = ipaddress.ip_address(host)
        except ValueError:
            raise MediaError(f"remote host {host!r} is not an IP address") from None
        if not 0 < rtp_port <= 65535:
            raise MediaError(f"remote RTP port {rtp_port} out of range")
        if rtcp_port is None:
            rtcp_port = rtp_port + 1
        sdp_rtp = (host, rtp_port)
        if sdp_rtp != self._sdp_rtp:
            # a new address in the SDP: forget what we latched to (RFC 4961 section 4)
            self._sdp_rtp = sdp_rtp
            self.latched = self.rtcp_latched = False
            self._rtp_source = self._rtcp_source = None
            if address.is_unspecified:
                self.remote_rtp = self.remote_rtcp = None
            else:
                self.remote_rtp = sdp_rtp
                self.remote_rtcp = (host, rtcp_port)
        self._remote_set = True
        self._arm()
        self._update_dest()

    def set_hold(self, sending: bool) -> None:
        """When `sending` is False nothing is sent toward this endpoint's remote."""
        self.sending = sending
        self._arm()
        self._update_dest()

    def send_rtp(self, packet: bytes) -> None:
        """Send one RTP packet (from a player, a tone generator…) toward the remote.

        It goes through the same rewriter as relayed packets, so the far end keeps
        seeing one stream. Invalid packets raise ValueError.
        """
        if len(packet) < RTP_MIN_SIZE or packet[0] & 0xC0 != 0x80:
            raise ValueError("not an RTP packet")
        dest = self._rtp_dest
        if dest is None or self._rtp_transport is None:
            return
        now = _monotonic()
        seq, ts, ssrc = _SEQ_TS_SSRC.unpack_from(packet, 2)
        buf = bytearray(packet)
        if ssrc != self._src_ssrc:
            self._resync(ssrc, seq, ts, now)
            buf[1] |= 0x80
        seq = (seq + self._seq_off) & 0xFFFF
        ts = (ts + self._ts_off) & 0xFFFFFFFF
        _SEQ_TS_SSRC.pack_into(buf, 2, seq, ts, self.ssrc)
        self._last_seq, self._last_ts, self._last_tx = seq, ts, now
        self._rtp_transport.sendto(buf, dest)
        self.stats.packets_out += 1
        self.stats.bytes_out += len(packet)

    async def close(self) -> None:
        """Close both sockets and free the port pair; idempotent."""
        if self.closed:
            return
        self.closed = True
        engine = self._engine
        try:
            engine._detach(self)
            for transport in (self._rtp_transport, self._rtcp_transport):
                if transport is not None:
                    transport.close()
            pending = [f for f in self._closed_futures if not f.done()]
            if pending:
                await asyncio.wait(pending, timeout=CLOSE_TIMEOUT)
        finally:
            engine._ports.release(self.rtp_port)
            logger.debug("%s: closed, ports %d/%d freed", self.label, self.rtp_port,
                         self.rtcp_port)

    # --- engine internals ---------------------------------------------------------

    def _arm(self) -> None:
        self._armed_at = _monotonic()
        self._timed_out = False

    def _update_dest(self) -> None:
        ok = self.sending and not self.closed
        self._rtp_dest = self.remote_rtp if ok else None
        self._rtcp_dest = self.remote_rtcp if ok else None

    def _latch_rtp(self, addr: tuple[str, int]) -> bool:
        if not self._remote_set or self.latched:
            return False
        self.latched = True
        self._rtp_source = addr
        self.remote_rtp = addr
        self._update_dest()
        logger.info("%s: RTP latched to %s:%d", self.label, addr[0], addr[1])
        return True

    def _latch_rtcp(self, addr: tuple[str, int]) -> bool:
        if not self._remote_set or self.rtcp_latched:
            return False
        self.rtcp_latched = True
        self._rtcp_source = addr
        self.remote_rtcp = addr
        self._update_dest()
        logger.debug("%s: RTCP latched to %s:%d", self.label, addr[0], addr[1])
        return True

    def _resync(self, ssrc: int, seq: int, ts: int, now: float) -> None:
        """New source (or re-bridge): continue our sequence and timestamp from it."""
        if self._last_tx is None:
            self._seq_off = self._ts_off = 0  # first stream ever: pass numbers through
        else:
            jump = int((now - self._last_tx) * self.clock_rate)
            jump = min(max(jump, MIN_TS_JUMP), MAX_TS_JUMP)
            self._seq_off = (self._last_seq + 1 - seq) & 0xFFFF
            self._ts_off = (self._last_ts + jump - ts) & 0xFFFFFFFF
        self._src_ssrc = ssrc
        logger.debug("%s: new source ssrc %08x", self.label, ssrc)

    def _deliver(self, data: bytes) -> None:
        cb = self.on_rtp
        if cb is not None:
            self.stats.ssrc = int.from_bytes(data[8:12], "big")
            cb(self, data)

    async def _open(self, loop: asyncio.AbstractEventLoop, rtp_sock: socket.socket,
                    rtcp_sock: socket.socket) -> None:
        rtp_closed: asyncio.Future[None] = loop.create_future()
        rtcp_closed: asyncio.Future[None] = loop.create_future()
        try:
            self._rtp_transport, _ = await loop.create_datagram_endpoint(
                lambda: _RtpProtocol(self, rtp_closed), sock=rtp_sock)
            self._closed_futures.append(rtp_closed)
            self._rtcp_transport, _ = await loop.create_datagram_endpoint(
                lambda: _RtcpProtocol(self, rtcp_closed), sock=rtcp_sock)
            self._closed_futures.append(rtcp_closed)
        except BaseException:
            if self._rtp_transport is None:
                rtp_sock.close()
            if self._rtcp_transport is None:
                rtcp_sock.close()
            raise


class MediaEngine:
    """Owns the port range, the endpoints and the no-media watchdog."""

    def __init__(self, host: str = "127.0.0.1",
                 port_range: tuple[int, int] = (10000, 20000), *,
                 rtp_timeout: float = 60.0, advertise_host: str | None = None) -> None:
        self.host = host
        self.advertise_host = advertise_host
        self.rtp_timeout = rtp_timeout
        self.on_timeout: Callable[[Endpoint], None] | None = None
        self._family = socket.AF_INET6 if ":" in host else socket.AF_INET
        self._ports = PortAllocator(*port_range)
        self._endpoints: set[Endpoint] = set()
        self._watchdog: asyncio.Task[None] | None = None
        self._closed = False
        self._timeouts = 0
        self._rng = random.SystemRandom()

    def __repr__(self) -> str:
        return (f"<MediaEngine {self.host} {self._ports.low}-{self._ports.high} "
                f"endpoints={len(self._endpoints)}>")

    async def start(self) -> None:
        """Start the no-media watchdog task."""
        if self._watchdog is None:
            self._watchdog = asyncio.get_running_loop().create_task(
                self._watch(), name="media-watchdog")

    async def close(self) -> None:
        """Close every endpoint and stop the watchdog; idempotent."""
        self._closed = True
        if self._watchdog is not None:
            self._watchdog.cancel()
            try:
                await self._watchdog
            except asyncio.CancelledError:
                pass
            self._watchdog = None
        endpoints = list(self._endpoints)
        await asyncio.gather(*(ep.close() for ep in endpoints))

    async def create_endpoint(self, label: str = "") -> Endpoint:
        """Bind an RTP (even) + RTCP (odd) socket pair from the range.

        Ports in use by someone else are skipped; MediaError when none is left.
        """
        if self._closed:
            raise MediaError("media engine is closed")
        loop = asyncio.get_running_loop()
        for port in self._ports.candidates():
            socks = self._bind_pair(port)
            if socks is None:
                continue
            self._ports.take(port)
            ep = Endpoint(self, label or f"ep{port}", port, self._rng.getrandbits(32))
            try:
                await ep._open(loop, *socks)
            except BaseException:
                await ep.close()
                raise
            self._endpoints.add(ep)
            logger.debug("%s: bound %s:%d/%d", ep.label, self.host, port, port + 1)
            return ep
        raise MediaError(f"no free RTP port pair in {self._ports.low}-{self._ports.high}")

    def relay(self, a: Endpoint, b: Endpoint) -> None:
        """Relay a <-> b: what arrives at a is sent from b to b's remote, and back.

        Either endpoint's previous relay is undone first; both directions resync
        their SSRC/sequence rewriter on the next packet.
        """
        if a is b:
            raise MediaError("cannot relay an endpoint to itself")
        for ep in (a, b):
            if ep.closed or ep._engine is not self:
                raise MediaError(f"{ep!r} is closed or belongs to another engine")
        for ep in (a, b):
            if ep._peer is not None and ep._peer is not (b if ep is a else a):
                self.unrelay(ep)
        a._peer, b._peer = b, a
        for ep in (a, b):
            ep._src_ssrc = None
            ep._arm()

    def unrelay(self, ep: Endpoint) -> None:
        """Stop relaying ep (and its peer); harmless when not relayed."""
        peer = ep._peer
        ep._peer = None
        if peer is not None and peer._peer is ep:
            peer._peer = None

    def stats(self) -> dict[str, int]:
        """Totals over the open endpoints, plus resource figures."""
        totals = dict(endpoints=len(self._endpoints),
                      relays=sum(1 for ep in self._endpoints if ep._peer) // 2,
                      port_pairs_free=self._ports.free, timeouts=self._timeouts,
                      packets_in=0, packets_out=0, bytes_in=0, bytes_out=0,
                      rtcp_in=0, rtcp_out=0, dropped_garbage=0, dropped_foreign=0)
        for ep in self._endpoints:
            s = ep.stats
            totals["packets_in"] += s.packets_in
            totals["packets_out"] += s.packets_out
            totals["bytes_in"] += s.bytes_in
            totals["bytes_out"] += s.bytes_out
            totals["rtcp_in"] += s.rtcp_in
            totals["rtcp_out"] += s.rtcp_out
            totals["dropped_garbage"] += s.dropped_garbage
            totals["dropped_foreign"] += s.dropped_foreign
        return totals

    # --- internals ----------------------------------------------------------------

    def _bind_pair(self, port: int) -> tuple[socket.socket, socket.socket] | None:
        socks: list[socket.socket] = []
        try:
            for p in (port, port + 1):
                sock = socket.socket(self._family, socket.SOCK_DGRAM)
                socks.append(sock)
                sock.setblocking(False)
                sock.bind((self.host, p))
        except OSError as exc:
            for sock in socks:
                sock.close()
            if exc.errno in _BIND_RETRY_ERRNOS:
                return None
            raise MediaError(f"cannot bind {self.host}:{port}: {exc}") from exc
        return socks[0], socks[1]

    def _detach(self, ep: Endpoint) -> None:
        self.unrelay(ep)
        ep._update_dest()
        self._endpoints.discard(ep)

    async def _watch(self) -> None:
        interval = min(WATCHDOG_INTERVAL, max(self.rtp_timeout / 4, WATCHDOG_MIN_INTERVAL))
        while True:
            await asyncio.sleep(interval)
            self._check_timeouts(_monotonic())

    def _check_timeouts(self, now: float) -> None:
        for ep in list(self._endpoints):
            if ep._timed_out or ep._peer is None or not ep._remote_set or not ep.sending:
                continue
            last = ep._armed_at
            if ep.stats.last_rx is not None and ep.stats.last_rx > last:
                last = ep.stats.last_rx
            if now - last < self.rtp_timeout:
                continue
            ep._timed_out = True
            self._timeouts += 1
            logger.info("%s: no RTP for %.1f s", ep.label, now - last)
            callback = self.on_timeout
            if callback is not None:
                try:
                    callback(ep)
                except Exception:
                    logger.exception("%s: on_timeout callback failed", ep.label)
