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
import os
import random
import socket
import struct
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from media.codecs import UnsupportedCodecError
from media.codecs.g711 import PCMU_PAYLOAD_TYPE, ULAW_SILENCE, decode_rows, encode_rows
from media.dtmf import DtmfDigit, DtmfSender, GoertzelDetector, parse_dtmf_info
from media.mixer import FrameClock, FrameSource, Mixer, mix_minus_groups
from media.player import FilePlayer, MohListener, MusicOnHold, play_prompts
from media.ports import PortAllocator
from media.prompts import DEFAULT_LANGUAGE
from media.recorder import Recorder
from media.rtp import (RTCP_BYE, RTCP_SDES, ReportBlock, RtcpOther, RtcpPacket,
                       RtcpReceiverReport, RtcpSenderReport, fraction_lost, is_rtcp,
                       ntp_timestamp, parse_rtcp, sdes_cname, serialize_rtcp)
from media.session import (FRAME_SAMPLES, LAW_ALAW, LAW_NONE, MediaStream, rtp_payload_offset,
                           transcode_table)

logger = logging.getLogger(__name__)

__all__ = ["MediaEngine", "Endpoint", "EndpointStats", "MediaError", "Playback", "Recording",
           "Conference", "DtmfEvents"]

RTP_MIN_SIZE = 12  # RFC 3550 section 5.1 fixed header
DEFAULT_CLOCK_RATE = 8000  # Hz; G.711, G.722 (RFC 3551 section 4.5.2), telephone-event/8000
WATCHDOG_INTERVAL = 1.0  # seconds between no-media checks (upper bound)
WATCHDOG_MIN_INTERVAL = 0.05  # seconds; lower bound for very short rtp_timeout values
RTCP_MIN_INTERVAL = 5.0  # RFC 3550 section 6.2: reports at most every 5 s (randomised 0.5-1.5x)
CLOSE_TIMEOUT = 1.0  # seconds to wait for a transport to report its socket closed
MAX_TS_JUMP = 10 * DEFAULT_CLOCK_RATE * 60  # timestamp units; cap on a re-bridge jump
MIN_TS_JUMP = 1
FRAME_S = 0.020  # the frame clock period (20 ms packetisation everywhere)
MAX_DTMF_QUEUED = 64  # digits waiting for call control before new ones are dropped
DEFAULT_DTMF_MS = 100  # duration of a digit we send
RECORD_FLUSH_TICKS = 100  # write recordings to disk (in a thread) every 2 s
_SILENCE = np.zeros(FRAME_SAMPLES, dtype=np.int16)
_SILENCE.setflags(write=False)
_PLACEHOLDER = bytes((ULAW_SILENCE,)) * FRAME_SAMPLES  # row of a frame decoded elsewhere

_monotonic = time.monotonic
_SEQ_TS_SSRC = struct.Struct("!HII")  # bytes 2..12 of the RTP header
_SEQ_TS = struct.Struct("!HI")
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
    transcoded: int = 0
    """Packets whose payload was translated PCMU<->PCMA on their way to the peer."""
    dtmf_rfc4733: int = 0
    dtmf_inband: int = 0
    dtmf_info: int = 0
    dtmf_dropped: int = 0
    """Digits lost because nobody read dtmf_events() (queue full)."""
    frames_sent: int = 0
    """Audio frames the engine generated (prompts, music, conference mix)."""
    remote_fraction_lost: float | None = None
    """From the far end's RTCP report block about our stream (RFC 3550 6.4.1), 0..1."""
    remote_packets_lost: int | None = None
    remote_jitter_ms: float | None = None


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
        # The relay fast path: one datagram in, at most one sendto out. Kept flat on
        # purpose (no helper calls in the common case); see Endpoint._rewrite_slow.
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
        now = st.last_rx = _monotonic()
        tap = ep._tap
        if tap is not None:  # decoding, DTMF detection or transcoding (not a plain relay)
            data = tap(data, now)  # type: ignore[assignment]
            if data is None:
                return
        out = ep._peer
        if out is None:
            if ep.on_rtp is not None:
                ep._deliver(data)
            return
        dest = out._relay_dest
        if dest is None:
            return
        if data[8:12] != out._src_ssrc_b:
            st.ssrc = int.from_bytes(data[8:12], "big")
            buf: bytes | bytearray = out._rewrite_slow(data, now)
        elif out._passthrough:
            # same numbering as the source: only the SSRC changes (RFC 3550 section 8.2)
            buf = data[:8] + out._ssrc_b + data[12:]
        else:
            seq, ts = _SEQ_TS.unpack_from(data, 2)
            buf = bytearray(data)
            _SEQ_TS_SSRC.pack_into(buf, 2, (seq + out._seq_off) & 0xFFFF,
                                   (ts + out._ts_off) & 0xFFFFFFFF, out.ssrc)
        out._last_sent = buf
        out._last_tx = now
        out._rtp_transport.sendto(buf, dest)  # type: ignore[union-attr]
        ost = out.stats
        ost.packets_out += 1
        ost.bytes_out += len(buf)


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
        ep._note_rtcp(data)
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
        self.intercept_dtmf = False
        """With DTMF detection on (`dtmf_events()`): received RFC 4733 packets are reported
        but not relayed to the peer; call control passes on the key presses it wants to."""
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
        self._ssrc_b = ssrc.to_bytes(4, "big")
        self._src_ssrc: int | None = None  # SSRC of the stream we currently forward
        self._src_ssrc_b = b""  # the same as bytes; b"" forces a resync
        self._seq_off = 0
        self._ts_off = 0
        self._passthrough = True  # both offsets are 0
        self._last_sent: bytes | bytearray | None = None  # last packet sent, rewritten
        self._last_tx = 0.0
        # watchdog state
        self._armed_at = _monotonic()
        self._timed_out = False
        # decoded side (see media/session.py); None while the endpoint is a plain relay
        self.stream: MediaStream | None = None
        self._relay_dest: tuple[str, int] | None = None  # _rtp_dest unless we generate
        self._tap: Callable[[bytes, float], bytes | None] | None = None
        self._xcode: bytes | None = None  # translate table toward the peer's codec
        self._xcode_pts: tuple[int, int, int | None, int | None] = (0, 0, None, None)
        self._playback: Playback | None = None
        self._conference: Conference | None = None
        self._conf_row = -1  # row in the engine's conference batch (-1: none yet)
        self._last_out: np.ndarray | None = None  # the audio frame generated this tick
        self._recordings: set[Recording] = set()
        self._dtmf_queue: asyncio.Queue[tuple[str, int] | None] | None = None
        self._dtmf_rfc = False
        self._inband = False
        self._saw_rfc4733 = False
        self._dtmf_out: deque[tuple[bytes, asyncio.Future[None] | None]] = deque()
        self._gen_marker = True
        # our own RTCP reports (RFC 3550 section 6.4), for endpoints the engine terminates
        self._report_at: float | None = None
        self._rr_expected = 0
        self._rr_received = 0
        self._lsr = 0  # middle 32 bits of the NTP time of the far end's last SR
        self._lsr_at = 0.0

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
        if packet[8:12] != self._src_ssrc_b:
            buf: bytes | bytearray = self._rewrite_slow(packet, now)
        else:
            buf = self._rewrite(packet)
        self._last_sent = buf
        self._last_tx = now
        self._rtp_transport.sendto(buf, dest)
        self.stats.packets_out += 1
        self.stats.bytes_out += len(buf)

    async def close(self) -> None:
        """Close both sockets and free the port pair; idempotent."""
        if self.closed:
            return
        self.closed = True
        engine = self._engine
        try:
            await engine._stop_features(self)
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

    # --- decoded media (call-control interface, see docs/media.md) ----------------

    def set_codec(self, payload_type: int, name: str, clock: int = 8000,
                  telephone_event_pt: int | None = None) -> None:
        """Apply the negotiated codec (SDP a=rtpmap) and telephone-event payload type.

        Needed before decoding (play, record, conference, DTMF); a plain relay works
        without. Raises MediaError for a codec this build cannot encode/decode.
        """
        if self.closed:
            raise MediaError(f"{self!r} is closed")
        try:
            stream = MediaStream(payload_type, name, clock, telephone_event_pt,
                                 gen_ssrc=self._engine._rng.getrandbits(32),
                                 ts_base=self._engine._rng.getrandbits(32),
                                 seq_base=self._engine._rng.getrandbits(16))
        except UnsupportedCodecError as exc:
            raise MediaError(f"{self.label}: {exc}") from None
        old = self.stream
        if old is not None:
            stream.goertzel = old.goertzel
        self.stream = stream
        self.clock_rate = stream.clock_rate
        self._engine._codec_changed(self)

    def dtmf_events(self, detect_inband: bool = False) -> DtmfEvents:
        """Async iterator of ``(digit, duration_ms)``: RFC 4733, SIP INFO, in-band.

        Detection starts with this call (RFC 4733 always, Goertzel when
        `detect_inband`); the iterator ends when the endpoint closes. Once the far end
        has sent an RFC 4733 event, in-band detection is ignored on this endpoint so a
        key press that arrives both ways is reported once.
        """
        if self.closed:
            raise MediaError(f"{self!r} is closed")
        self._enable_dtmf(detect_inband)
        return DtmfEvents(self)

    def feed_info_dtmf(self, content_type: str, body: bytes | str) -> bool:
        """A SIP INFO body from call control into the same DTMF stream; False if no digit."""
        digit = parse_dtmf_info(content_type, body)
        if digit is None:
            return False
        self._emit([digit])
        return True

    async def send_dtmf(self, digit: str, duration_ms: int = DEFAULT_DTMF_MS) -> None:
        """Send one key press as RFC 4733 packets (start, updates, three end packets).

        Needs `set_codec(..., telephone_event_pt=...)`. While the event is sent, the
        endpoint's other audio (relay, prompt, conference) is held back.
        """
        stream = self._require_stream()
        if stream.telephone_event_pt is None:
            raise MediaError(f"{self.label}: no telephone-event payload type negotiated")
        engine = self._engine
        sender = DtmfSender(clock_rate=stream.event_clock_rate)
        start = stream.timestamp(engine._current_tick())
        packets = sender.packets(digit, start, duration_ms)  # ValueError for a bad digit
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for i, p in enumerate(packets):
            raw = stream.event_packet(p.payload, p.timestamp, p.marker)
            self._dtmf_out.append((raw, done if i == len(packets) - 1 else None))
        self._refresh_relay()
        engine._activate(self)
        await done

    def quality(self) -> dict[str, float | int | None]:
        """Loss and jitter figures: receiver side (decoded endpoints) and from RTCP."""
        s = self.stats
        out: dict[str, float | int | None] = dict(
            packets_in=s.packets_in, bytes_in=s.bytes_in, packets_out=s.packets_out,
            bytes_out=s.bytes_out, remote_fraction_lost=s.remote_fraction_lost,
            remote_packets_lost=s.remote_packets_lost, remote_jitter_ms=s.remote_jitter_ms,
            packets_lost=None, jitter_ms=None)
        if self.stream is not None and self.stream.stats.received:
            rs = self.stream.stats
            out["packets_lost"] = rs.lost
            out["jitter_ms"] = round(rs.jitter_ms(self.stream.clock_rate), 2)
        return out

    # --- decoded media internals ----------------------------------------------------

    def _require_stream(self) -> MediaStream:
        if self.closed:
            raise MediaError(f"{self!r} is closed")
        if self.stream is None:  # nothing negotiated: G.711 mu-law is the RTP default
            self.set_codec(PCMU_PAYLOAD_TYPE, "PCMU")
        assert self.stream is not None
        return self.stream

    def _enable_dtmf(self, inband: bool) -> None:
        stream = self._require_stream()
        if self._dtmf_queue is None:
            self._dtmf_queue = asyncio.Queue(MAX_DTMF_QUEUED)
        self._dtmf_rfc = True
        if inband and stream.goertzel is None:
            stream.goertzel = GoertzelDetector()
        self._inband = self._inband or inband
        self._engine._update_decoding(self)

    def _emit(self, digits: list[DtmfDigit]) -> None:
        for d in digits:
            if d.source == "rfc4733":
                self._saw_rfc4733 = True
                self.stats.dtmf_rfc4733 += 1
            elif d.source == "inband":
                if self._saw_rfc4733:
                    continue
                self.stats.dtmf_inband += 1
            else:
                self.stats.dtmf_info += 1
            queue = self._dtmf_queue
            if queue is None:
                self._dtmf_queue = queue = asyncio.Queue(MAX_DTMF_QUEUED)
            try:
                queue.put_nowait((d.digit, d.duration_ms))
            except asyncio.QueueFull:
                self.stats.dtmf_dropped += 1
            logger.debug("%s: DTMF %s (%s, %d ms)", self.label, d.digit, d.source,
                         d.duration_ms)

    def _ingress_decode(self, data: bytes, now: float) -> bytes | None:
        """The tap of a decoded endpoint that does not transcode (see _ingress)."""
        stream = self.stream
        digits = stream.receive(data, now)  # type: ignore[union-attr]
        if digits:
            self._emit(digits)
        if self.intercept_dtmf and (data[1] & 0x7F) == stream.telephone_event_pt:  # type: ignore[union-attr]
            return None  # call control decides which key presses reach the peer
        return data

    def _ingress(self, data: bytes, now: float) -> bytes | None:
        """Tap on received RTP (installed only when needed): decode side, transcoding."""
        stream = self.stream
        if stream is not None and (stream.want_audio or self._dtmf_rfc):
            digits = stream.receive(data, now)
            if digits:
                self._emit(digits)
            if self.intercept_dtmf and (data[1] & 0x7F) == stream.telephone_event_pt:
                return None
        table = self._xcode
        if table is None:
            return data
        src_pt, dst_pt, src_te, dst_te = self._xcode_pts
        pt = data[1] & 0x7F
        if pt == src_pt:
            try:
                offset = rtp_payload_offset(data)
            except ValueError:
                self.stats.dropped_garbage += 1
                return None
            self.stats.transcoded += 1
            return (bytes((data[0], (data[1] & 0x80) | dst_pt)) + data[2:offset]
                    + data[offset:].translate(table))
        if src_te is not None and pt == src_te and dst_te is not None:
            return bytes((data[0], (data[1] & 0x80) | dst_te)) + data[2:]
        return data

    def _rtcp_report(self, now: float, wall: float) -> bytes:
        """A compound SR (if we sent audio) or RR, with one report block about the stream we
        receive, and SDES CNAME (RFC 3550 sections 6.1, 6.4)."""
        stream = self.stream
        assert stream is not None
        blocks: tuple[ReportBlock, ...] = ()
        tracker = stream._tracker
        rs = stream.stats
        if tracker.ssrc is not None and rs.received:
            frac = fraction_lost(rs.expected - self._rr_expected, rs.received - self._rr_received)
            self._rr_expected, self._rr_received = rs.expected, rs.received
            dlsr = int((now - self._lsr_at) * 65536) & 0xFFFFFFFF if self._lsr else 0
            blocks = (ReportBlock(tracker.ssrc, frac, min(rs.lost, 0x7FFFFF), tracker.highest & 0xFFFFFFFF,
                                  int(rs.jitter) & 0xFFFFFFFF, self._lsr, dlsr),)
        packets: list[RtcpPacket] = []
        last = self._last_sent
        if self.stats.frames_sent and last is not None and len(last) >= 12:
            rtp_ts = struct.unpack_from("!I", last, 4)[0]
            payload_octets = max(0, self.stats.bytes_out - 12 * self.stats.packets_out)
            packets.append(RtcpSenderReport(self.ssrc, ntp_timestamp(wall), rtp_ts,
                                            self.stats.packets_out & 0xFFFFFFFF,
                                            payload_octets & 0xFFFFFFFF, blocks))
        else:
            packets.append(RtcpReceiverReport(self.ssrc, blocks))
        packets.append(sdes_cname(self.ssrc, f"softswitch@{self.local_host}"))
        return serialize_rtcp(packets)

    def _note_rtcp(self, data: bytes) -> None:
        """Keep the far end's report about our stream (RFC 3550 section 6.4.1)."""
        try:
            packets = parse_rtcp(data)
        except ValueError:
            return
        for p in packets:
            if isinstance(p, RtcpSenderReport):
                # for the LSR/DLSR fields of our reports (round-trip time, RFC 3550 6.4.1)
                self._lsr = (p.ntp_timestamp >> 16) & 0xFFFFFFFF
                self._lsr_at = _monotonic()
            if isinstance(p, (RtcpSenderReport, RtcpReceiverReport)):
                for block in p.reports:
                    if block.ssrc == self.ssrc:
                        s = self.stats
                        s.remote_fraction_lost = block.fraction_lost / 256.0
                        s.remote_packets_lost = block.packets_lost
                        s.remote_jitter_ms = block.jitter * 1000.0 / self.clock_rate

    def _send_audio_payload(self, stream: MediaStream, payload: bytes, tick: int) -> None:
        """Send an encoded frame of the generated stream: the packet `send_rtp` would
        send for `stream.audio_packet()`, assembled directly in our numbering while the
        generated stream is the current source (the common case of a conference leg)."""
        dest = self._rtp_dest
        transport = self._rtp_transport
        if (self._gen_marker or self._src_ssrc_b != stream.gen_ssrc_b or dest is None
                or transport is None):
            # first packet of a talk spurt, a source change, or nothing to send
            self._send_generated(stream.audio_header(tick) + payload)
            return
        buf = stream.audio_header(tick, self._seq_off, self._ts_off, self.ssrc) + payload
        self._last_sent = buf
        self._last_tx = _monotonic()
        transport.sendto(buf, dest)
        st = self.stats
        st.packets_out += 1
        st.bytes_out += len(buf)

    def _send_generated(self, packet: bytes) -> None:
        if self._gen_marker:  # first packet of a talk spurt (RFC 3551 section 4.1)
            packet = bytes((packet[0], packet[1] | 0x80)) + packet[2:]
            self._gen_marker = False
        self.send_rtp(packet)

    # --- engine internals ---------------------------------------------------------

    def _arm(self) -> None:
        self._armed_at = _monotonic()
        self._timed_out = False

    def _update_dest(self) -> None:
        ok = self.sending and not self.closed
        self._rtp_dest = self.remote_rtp if ok else None
        self._rtcp_dest = self.remote_rtcp if ok else None
        self._refresh_relay()

    def _refresh_relay(self) -> None:
        # While we generate audio (prompt, music, DTMF, conference) for this endpoint,
        # what its peer sends is not forwarded: one source at a time (RFC 3550 8.2).
        generating = (self._playback is not None or bool(self._dtmf_out)
                      or self._conference is not None)
        self._relay_dest = None if generating else self._rtp_dest

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

    def _rewrite(self, data: bytes) -> bytes | bytearray:
        """Map a packet of the current source into our numbering (see the fast path)."""
        if self._passthrough:
            return data[:8] + self._ssrc_b + data[12:]
        seq, ts = _SEQ_TS.unpack_from(data, 2)
        buf = bytearray(data)
        _SEQ_TS_SSRC.pack_into(buf, 2, (seq + self._seq_off) & 0xFFFF,
                               (ts + self._ts_off) & 0xFFFFFFFF, self.ssrc)
        return buf

    def _rewrite_slow(self, data: bytes, now: float) -> bytes | bytearray:
        """New source SSRC (or a re-bridge): recompute the offsets, set the marker.

        The sequence continues at last + 1; the timestamp advances by the wall-clock
        time since our last packet at `clock_rate` (RFC 3550 section 5.1: the
        timestamp reflects the sampling instant), at least 1.
        """
        ssrc, = struct.unpack_from("!I", data, 8)
        seq, ts = _SEQ_TS.unpack_from(data, 2)
        last = self._last_sent
        if last is None:
            self._seq_off = self._ts_off = 0  # first stream ever: numbers pass through
        else:
            last_seq, last_ts = _SEQ_TS.unpack_from(last, 2)
            jump = int((now - self._last_tx) * self.clock_rate)
            jump = min(max(jump, MIN_TS_JUMP), MAX_TS_JUMP)
            self._seq_off = (last_seq + 1 - seq) & 0xFFFF
            self._ts_off = (last_ts + jump - ts) & 0xFFFFFFFF
        self._passthrough = self._seq_off == 0 and self._ts_off == 0
        self._src_ssrc = ssrc
        self._src_ssrc_b = data[8:12]
        logger.debug("%s: new source ssrc %08x", self.label, ssrc)
        buf = bytearray(self._rewrite(data))
        buf[1] |= 0x80  # RFC 3550 section 5.1: the marker flags the discontinuity
        return buf

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
        self._active: set[Endpoint] = set()  # endpoints with work on the frame clock
        self._conferences: set[Conference] = set()
        self._layout: _ConferenceLayout | None = None  # None: rebuild on the next tick
        self._mixed: np.ndarray | None = None  # this tick's conference outputs, by row
        self._encoded: bytes | None = None  # the same, G.711-encoded
        self._recordings: set[Recording] = set()
        self._clock_task: asyncio.Task[None] | None = None
        self._epoch = _monotonic()
        self._tick_index = 0
        self._clock_ticks = 0
        self._clock_overruns = 0
        self._clock_skipped = 0

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
        for conf in list(self._conferences):
            conf.close()
        task = self._clock_task
        if task is not None:
            task.cancel()
            try:
                await task
            except asyncio.CancelledError:
                pass

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
        for ep in (a, b):
            if ep._conference is not None:
                ep._conference.remove(ep)
        a._peer, b._peer = b, a
        for ep in (a, b):
            ep._src_ssrc_b = b""  # resync on the next packet
            ep._arm()
        # RFC 3551: PCMU and PCMA legs are bridged by translating each octet
        self._set_transcoding(a, b)
        self._set_transcoding(b, a)

    def unrelay(self, ep: Endpoint) -> None:
        """Stop relaying ep (and its peer); harmless when not relayed."""
        peer = ep._peer
        ep._peer = None
        if peer is not None and peer._peer is ep:
            peer._peer = None
            self._set_transcoding(peer, None)
        if peer is not None:
            self._set_transcoding(ep, None)

    def stats(self, detail: bool = False) -> dict[str, Any]:
        """Totals over the open endpoints, plus resource and frame-clock figures.

        With `detail`, "per_endpoint" maps each label to `Endpoint.quality()`
        (packets, bytes, loss and jitter).
        """
        totals: dict[str, Any] = dict(endpoints=len(self._endpoints),
                      relays=sum(1 for ep in self._endpoints if ep._peer) // 2,
                      port_pairs_free=self._ports.free, timeouts=self._timeouts,
                      packets_in=0, packets_out=0, bytes_in=0, bytes_out=0,
                      rtcp_in=0, rtcp_out=0, dropped_garbage=0, dropped_foreign=0,
                      transcoded=0, frames_sent=0, decoded=0, packets_lost=0)
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
            totals["transcoded"] += s.transcoded
            totals["frames_sent"] += s.frames_sent
            if ep.stream is not None:
                totals["decoded"] += 1
                totals["packets_lost"] += ep.stream.stats.lost
        totals.update(conferences=len(self._conferences), recordings=len(self._recordings),
                      playbacks=sum(1 for ep in self._endpoints if ep._playback),
                      clock_ticks=self._clock_ticks, clock_overruns=self._clock_overruns,
                      clock_skipped=self._clock_skipped)
        if detail:
            totals["per_endpoint"] = {ep.label: ep.quality() for ep in self._endpoints}
        return totals

    # --- call-control features (decoded endpoints; see docs/media.md) -------------

    def play(self, ep: Endpoint, source: object, *, lang: str = DEFAULT_LANGUAGE) -> Playback:
        """Play `source` into ep: a list of prompt ids (in `lang`), a file path, a
        ToneGenerator/FilePlayer/any frame source, or a MusicOnHold (one listener).

        A previous playback on ep is stopped. While playing, a relayed ep does not
        receive its peer's audio; the relay resumes after the playback ends, in the
        same outgoing stream. Raises MediaError, AudioFileError, UnknownPromptError.
        """
        if ep.closed or ep._engine is not self:
            raise MediaError(f"{ep!r} is closed or belongs to another engine")
        ep._require_stream()
        frames, closer = _make_source(source, lang)
        old = ep._playback
        if old is not None:
            self._end_playback(old, "stopped")
        playback = Playback(self, ep, frames, closer)
        ep._playback = playback
        ep._gen_marker = True
        ep._refresh_relay()
        self._activate(ep)
        logger.debug("%s: playing %r", ep.label, frames)
        return playback

    def record(self, target: Endpoint | tuple[Endpoint, Endpoint] | list[Endpoint],
               path: str | os.PathLike[str], stereo: bool = False) -> Recording:
        """Record what one endpoint receives (right channel / mix: what it is sent by
        the engine), or both directions of a pair (left = first, right = second)."""
        eps = tuple(target) if isinstance(target, (tuple, list)) else (target,)
        if len(eps) not in (1, 2):
            raise MediaError("record() takes one endpoint or a pair")
        for ep in eps:
            if ep.closed or ep._engine is not self:
                raise MediaError(f"{ep!r} is closed or belongs to another engine")
            ep._require_stream()
        recording = Recording(self, eps, Recorder(path, channels=2 if stereo else 1), stereo)
        self._recordings.add(recording)
        for ep in eps:
            ep._recordings.add(recording)
            self._update_decoding(ep)
        self._wake()
        return recording

    def conference(self, endpoints: list[Endpoint] | tuple[Endpoint, ...] = ()) -> Conference:
        """A mix-minus conference of `endpoints` (each is un-relayed first)."""
        conf = Conference(self)
        self._conferences.add(conf)
        try:
            for ep in endpoints:
                conf.add(ep)
        except BaseException:
            conf.close()
            raise
        self._wake()
        return conf

    # --- decoded media internals --------------------------------------------------

    def _current_tick(self) -> int:
        if self._clock_task is not None:
            return self._tick_index
        return int((_monotonic() - self._epoch) / FRAME_S)

    def _codec_changed(self, ep: Endpoint) -> None:
        peer = ep._peer
        if peer is not None:
            self._set_transcoding(ep, peer)
            self._set_transcoding(peer, ep)
        self._update_decoding(ep)

    def _set_transcoding(self, src: Endpoint, dst: Endpoint | None) -> None:
        table = None
        if dst is not None and src.stream is not None and dst.stream is not None:
            s, d = src.stream, dst.stream
            if s.name != d.name:
                table = transcode_table(s.name, d.name)
                if table is None:
                    logger.warning("%s: cannot transcode %s to %s in the relay", src.label,
                                   s.name, d.name)
            src._xcode_pts = (s.payload_type, d.payload_type, s.telephone_event_pt,
                              d.telephone_event_pt)
        src._xcode = table
        self._update_tap(src)

    def _update_tap(self, ep: Endpoint) -> None:
        stream = ep.stream
        # A terminated endpoint (not relayed, or relaying paused for a playback) tracks what
        # it receives for its RTCP reports even when nothing decodes the audio.
        decode = stream is not None and (stream.want_audio or ep._dtmf_rfc or ep._peer is None
                                         or ep._playback is not None)
        if ep._xcode is not None:
            ep._tap = ep._ingress
        else:
            ep._tap = ep._ingress_decode if decode else None

    def _update_decoding(self, ep: Endpoint) -> None:
        stream = ep.stream
        if stream is not None:
            stream.want_audio = bool(ep._conference is not None or ep._recordings or ep._inband)
        self._update_tap(ep)
        if self._needs_tick(ep):
            self._activate(ep)

    @staticmethod
    def _needs_tick(ep: Endpoint) -> bool:
        if ep.closed:
            return False
        stream = ep.stream
        return bool((stream is not None and (stream.want_audio or ep._dtmf_rfc))
                    or ep._playback is not None or ep._dtmf_out or ep._conference is not None)

    def _activate(self, ep: Endpoint) -> None:
        self._active.add(ep)
        self._wake()

    def _wake(self) -> None:
        if self._clock_task is None and not self._closed:
            self._clock_task = asyncio.get_running_loop().create_task(
                self._run_clock(), name="media-clock")

    def _end_playback(self, playback: Playback, reason: str) -> None:
        ep = playback.endpoint
        if ep._playback is playback:
            ep._playback = None
            ep._refresh_relay()
        if playback._closer is not None:
            playback._closer()
            playback._closer = None
        if not playback.done.done():
            playback.done.set_result(reason)

    def _detach_recording(self, recording: Recording) -> None:
        self._recordings.discard(recording)
        for ep in recording.endpoints:
            ep._recordings.discard(recording)
            if not ep.closed:
                self._update_decoding(ep)

    async def _stop_features(self, ep: Endpoint) -> None:
        """Everything an endpoint takes part in ends with it (called by close())."""
        if ep._playback is not None:
            self._end_playback(ep._playback, "closed")
        if ep._conference is not None:
            ep._conference.remove(ep)
        while ep._dtmf_out:
            _, done = ep._dtmf_out.popleft()
            if done is not None and not done.done():
                done.set_exception(MediaError(f"{ep.label} closed while sending DTMF"))
        queue = ep._dtmf_queue
        if queue is not None:
            if queue.full():
                queue.get_nowait()
            queue.put_nowait(None)  # ends the dtmf_events() iterators
        self._active.discard(ep)
        for recording in list(ep._recordings):
            try:
                await recording.stop()
            except OSError as exc:
                logger.warning("%s: recording %s failed: %s", ep.label, recording.path, exc)

    async def _run_clock(self) -> None:
        """The one 20 ms frame clock of the engine (drift-corrected, media.mixer)."""
        start = _monotonic()
        clock = FrameClock(start)
        base = round((start - self._epoch) / FRAME_S)
        try:
            while not self._closed and (self._active or self._conferences or self._recordings):
                self._tick_index = base + clock.index
                t0 = _monotonic()
                try:
                    self._tick(t0, self._tick_index)
                except Exception:  # one broken source must not stop every call's audio
                    logger.exception("media clock tick failed")
                t1 = _monotonic()
                self._clock_ticks += 1
                if t1 - t0 > FRAME_S:
                    self._clock_overruns += 1
                skipped = clock.skipped
                due = clock.next_deadline(t1)
                self._clock_skipped += clock.skipped - skipped
                await asyncio.sleep(max(0.0, due - _monotonic()))
        finally:
            self._clock_task = None

    def _tick(self, now: float, tick: int) -> None:
        active = list(self._active)
        layout = self._conference_layout()
        members = layout.members
        rows = list(members)  # decoded inputs: conference legs first, in layout order
        for ep in active:
            stream = ep.stream
            if stream is not None and stream.want_audio and ep._conference is None:
                rows.append(ep)
        alaw_rows: list[int] = []
        decoded = self._decode_inputs(rows, now, alaw_rows) if rows else None
        for ep in active:
            stream = ep.stream
            if stream is None:
                continue
            if ep._inband and stream.want_audio and not ep._saw_rfc4733:
                digits = stream.detect_inband(stream.last_frame)
                if digits:
                    ep._emit(digits)
            if ep._dtmf_rfc:
                digits = stream.poll_dtmf(now)
                if digits:
                    ep._emit(digits)
        self._mixed = self._encoded = None
        if members and decoded is not None:
            self._mix_conferences(layout, decoded, alaw_rows)
        encoded = self._encoded
        mixed = self._mixed
        for ep in active:
            row = ep._conf_row
            if (row >= 0 and encoded is not None and ep._playback is None
                    and not ep._dtmf_out and not ep.closed):
                stream = ep.stream
                if stream is not None and stream.g711_law != LAW_NONE:
                    # conference leg, batch-encoded: only the RTP header is left to do
                    ep._last_out = mixed[row] if ep._recordings else None  # type: ignore[index]
                    start = row * FRAME_SAMPLES
                    ep._send_audio_payload(stream, encoded[start:start + FRAME_SAMPLES], tick)
                    ep.stats.frames_sent += 1
                    continue
            self._send_tick(ep, tick)
        for recording in list(self._recordings):
            recording._tick()
        for ep in active:
            if ep._conference is None and not self._needs_tick(ep):
                self._active.discard(ep)

    @staticmethod
    def _decode_inputs(rows: list[Endpoint], now: float, alaw_rows: list[int]) -> np.ndarray:
        """Pull this tick's input of every decoded endpoint; G.711 payloads of all of
        them are decoded with one table gather (media.codecs.g711.decode_rows).

        Returns (rows, FRAME_SAMPLES) int16, read-only; sets each stream's last_frame
        to its row and fills `alaw_rows` with the rows whose stream is A-law.
        """
        payloads: list[bytes] = []
        overrides: list[tuple[int, np.ndarray]] = []
        for row, ep in enumerate(rows):
            stream: MediaStream = ep.stream  # type: ignore[assignment]
            item = stream.pull_payload(now)
            if stream.g711_law == LAW_ALAW:
                alaw_rows.append(row)
            if isinstance(item, bytes):
                payloads.append(item)
            else:  # concealed, silence, another packet size, not G.711: decoded already
                payloads.append(_PLACEHOLDER)
                overrides.append((row, item))
        codes = np.frombuffer(b"".join(payloads), dtype=np.uint8).reshape(len(rows),
                                                                          FRAME_SAMPLES)
        decoded = decode_rows(codes, alaw_rows)
        for row, samples in overrides:
            decoded[row] = samples
        decoded.flags.writeable = False
        for row, ep in enumerate(rows):
            ep.stream.last_frame = decoded[row]  # type: ignore[union-attr]
        return decoded

    def _mix_conferences(self, layout: _ConferenceLayout, decoded: np.ndarray,
                         alaw_rows: list[int]) -> None:
        """Mix every conference in one pass (media.mixer.mix_minus_groups) and encode
        the outputs of all G.711 legs with one table gather."""
        members = layout.members
        count = len(members)
        mixed = mix_minus_groups(decoded[:count], layout.starts, layout.muted)
        self._encoded = encode_rows(mixed, [row for row in alaw_rows if row < count]).tobytes()
        mixed.flags.writeable = False
        self._mixed = mixed  # row ep._conf_row is what participant ep hears
        for conf in layout.conferences:
            conf.mixer.stats.ticks += 1

    def _conference_layout(self) -> _ConferenceLayout:
        layout = self._layout
        if layout is None:
            members: list[Endpoint] = []
            confs: list[Conference] = []
            starts: list[int] = []
            muted: list[bool] = []
            # same-sized conferences next to each other: one block each in the mix
            for conf in sorted(self._conferences, key=lambda c: len(c.mixer.participants)):
                parts: list[Endpoint] = conf.mixer.participants  # type: ignore[assignment]
                if not parts:
                    continue
                confs.append(conf)
                starts.append(len(members))
                for ep in parts:
                    ep._conf_row = len(members)
                    members.append(ep)
                    muted.append(conf.mixer.is_muted(ep))
            layout = self._layout = _ConferenceLayout(
                members, confs, np.array(starts, dtype=np.intp),
                np.array(muted, dtype=bool) if any(muted) else None)
        return layout

    def _send_tick(self, ep: Endpoint, tick: int) -> None:
        ep._last_out = None
        stream = ep.stream
        if stream is None or ep.closed:
            return
        if ep._dtmf_out:
            raw, done = ep._dtmf_out.popleft()
            ep.send_rtp(raw)
            if done is not None and not done.done():
                done.set_result(None)
            if not ep._dtmf_out:
                ep._gen_marker = True
                ep._refresh_relay()
            return
        frame: np.ndarray | None = None
        playback = ep._playback
        if playback is not None:
            frame = playback.source.read()
            if frame is None:
                self._end_playback(playback, "finished")
            else:
                playback.frames += 1
        if frame is None and ep._conference is not None and ep._conf_row >= 0 \
                and self._mixed is not None:
            frame = self._mixed[ep._conf_row]
        if frame is None:
            return
        if frame.shape != (FRAME_SAMPLES,):
            frame = np.resize(frame, FRAME_SAMPLES).astype(np.int16)
        ep._last_out = frame
        ep._send_generated(stream.audio_packet(frame, tick))
        ep.stats.frames_sent += 1

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
            now = _monotonic()
            self._check_timeouts(now)
            self._send_reports(now)

    def _send_reports(self, now: float) -> None:
        """RTCP SR/RR for the endpoints whose audio the engine terminates or generates
        (decoded ones). Relayed endpoints forward the phones' own reports instead."""
        for ep in list(self._endpoints):
            if ep.stream is None or ep.closed or ep._rtcp_dest is None or ep._rtcp_transport is None:
                continue
            if ep._peer is not None and ep.stats.frames_sent == 0:
                continue  # a plain relay: the phones report to each other
            if ep._report_at is None:
                # the first report after half the minimum interval (section 6.2)
                ep._report_at = now + RTCP_MIN_INTERVAL * self._rng.uniform(0.25, 0.75)
                continue
            if now < ep._report_at:
                continue
            ep._report_at = now + RTCP_MIN_INTERVAL * self._rng.uniform(0.5, 1.5)
            try:
                ep._rtcp_transport.sendto(ep._rtcp_report(now, time.time()), ep._rtcp_dest)
                ep.stats.rtcp_out += 1
            except OSError as exc:
                logger.debug("%s: RTCP report not sent: %s", ep.label, exc)

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


# --- call-control features on decoded endpoints ---------------------------------------

class Playback:
    """A source playing into one endpoint; returned by `MediaEngine.play()`.

    `done` resolves with "finished" (a finite source ended), "stopped" (`stop()`, or
    replaced by another play) or "closed" (the endpoint closed).
    """

    def __init__(self, engine: MediaEngine, ep: Endpoint, source: FrameSource,
                 closer: Callable[[], None] | None) -> None:
        self.engine = engine
        self.endpoint = ep
        self.source = source
        self.done: asyncio.Future[str] = asyncio.get_running_loop().create_future()
        self.frames = 0
        self._closer = closer

    def __repr__(self) -> str:
        state = self.done.result() if self.done.done() else "playing"
        return f"<Playback {self.source!r} -> {self.endpoint.label} {state} frames={self.frames}>"

    def stop(self) -> None:
        """Stop playing; relay (or conference audio) resumes. Idempotent."""
        self.engine._end_playback(self, "stopped")


class Recording:
    """A recording of one endpoint or of a pair; returned by `MediaEngine.record()`.

    Frames are appended on the frame clock; the file is written by a worker thread
    (`asyncio.to_thread`) every `RECORD_FLUSH_S` and on `stop()`.
    """

    def __init__(self, engine: MediaEngine, endpoints: tuple[Endpoint, ...],
                 recorder: Recorder, stereo: bool) -> None:
        self.engine = engine
        self.endpoints = endpoints
        self.recorder = recorder
        self.stereo = stereo
        self.path = recorder.path
        self._flush: asyncio.Task[int] | None = None
        self._stopped: asyncio.Task[None] | None = None
        self._ticks = 0

    def __repr__(self) -> str:
        return f"<Recording {self.path} {[ep.label for ep in self.endpoints]}>"

    def _tick(self) -> None:
        eps = self.endpoints
        left = _input_frame(eps[0])
        if len(eps) == 2:
            right = _input_frame(eps[1])
        else:
            right = eps[0]._last_out if eps[0]._last_out is not None else _SILENCE
        if self.stereo:
            self.recorder.write(left, right)
        else:
            mixed = np.clip(left.astype(np.int32) + right, -32768, 32767).astype(np.int16)
            self.recorder.write(mixed)
        self._ticks += 1
        if self._ticks % RECORD_FLUSH_TICKS == 0 and (self._flush is None or self._flush.done()):
            self._flush = asyncio.get_running_loop().create_task(
                asyncio.to_thread(self.recorder.flush))

    async def stop(self) -> str:
        """Stop recording and close the file (in a thread); returns its path. Idempotent."""
        if self._stopped is None:
            self.engine._detach_recording(self)
            self._stopped = asyncio.get_running_loop().create_task(self._finish())
        await asyncio.shield(self._stopped)
        return self.path

    async def _finish(self) -> None:
        if self._flush is not None:
            try:
                await self._flush
            except OSError as exc:
                logger.warning("recording %s: flush failed: %s", self.path, exc)
        await asyncio.to_thread(self.recorder.close)


class Conference:
    """N endpoints mixed "everyone minus self"; returned by `MediaEngine.conference()`."""

    def __init__(self, engine: MediaEngine) -> None:
        self.engine = engine
        self.mixer = Mixer(FRAME_SAMPLES)
        self.closed = False

    def __repr__(self) -> str:
        return f"<Conference {[ep.label for ep in self.participants]}>"

    @property
    def participants(self) -> list[Endpoint]:
        return self.mixer.participants  # type: ignore[return-value]

    def add(self, ep: Endpoint, *, muted: bool = False) -> None:
        """Join ep (it is un-relayed first); MediaError if closed or in another conference."""
        if self.closed:
            raise MediaError("conference is closed")
        if ep._conference is self:
            return
        if ep._conference is not None:
            raise MediaError(f"{ep.label} is already in another conference")
        ep._require_stream()
        self.engine.unrelay(ep)
        self.mixer.add(ep, muted=muted)
        self.engine._layout = None
        ep._conference = self
        ep._gen_marker = True
        ep._refresh_relay()
        self.engine._update_decoding(ep)

    def remove(self, ep: Endpoint) -> None:
        """Leave the conference; harmless when not a participant."""
        if ep._conference is not self:
            return
        self.mixer.remove(ep)
        self.engine._layout = None
        ep._conference = None
        ep._conf_row = -1
        ep._refresh_relay()
        self.engine._update_decoding(ep)

    def mute(self, ep: Endpoint, muted: bool = True) -> None:
        """A muted participant still hears the others; they do not hear it."""
        if ep._conference is not self:
            raise MediaError(f"{ep.label} is not in this conference")
        self.mixer.set_mute(ep, muted)
        self.engine._layout = None

    def close(self) -> None:
        """Remove every participant (their endpoints stay open). Idempotent."""
        for ep in self.participants:
            self.remove(ep)
        self.closed = True
        self.engine._conferences.discard(self)
        self.engine._layout = None



@dataclass(slots=True)
class _ConferenceLayout:
    """Rows of the engine's per-tick conference batch (rebuilt when membership or
    mute state changes)."""

    members: list[Endpoint]
    """Every participant of every non-empty conference, each conference contiguous."""
    conferences: list[Conference]
    starts: np.ndarray
    """First row of each conference in `members`."""
    muted: np.ndarray | None
    """Bool per row, None when nobody is muted."""


class DtmfEvents:
    """``async for digit, duration_ms in ep.dtmf_events(): ...``; ends when ep closes."""

    def __init__(self, ep: Endpoint) -> None:
        self.endpoint = ep

    def __repr__(self) -> str:
        return f"<DtmfEvents {self.endpoint.label}>"

    def __aiter__(self) -> DtmfEvents:
        return self

    async def __anext__(self) -> tuple[str, int]:
        queue = self.endpoint._dtmf_queue
        if queue is None or (self.endpoint.closed and queue.empty()):
            raise StopAsyncIteration
        item = await queue.get()
        if item is None:
            queue.put_nowait(None)  # let other readers end too
            raise StopAsyncIteration
        return item


def _input_frame(ep: Endpoint) -> np.ndarray:
    stream = ep.stream
    return stream.last_frame if stream is not None else _SILENCE


def _make_source(source: object, lang: str) -> tuple[FrameSource, Callable[[], None] | None]:
    """Turn what call control passes to play() into a frame source (and its closer)."""
    if isinstance(source, MusicOnHold):
        listener = source.listen()
        return listener, listener.close
    if isinstance(source, MohListener):
        return source, source.close
    if isinstance(source, (str, os.PathLike)):
        return FilePlayer(source), None
    if isinstance(source, (list, tuple)):
        return play_prompts([str(p) for p in source], lang), None
    if hasattr(source, "read"):
        return source, None  # type: ignore[return-value]
    raise MediaError(f"cannot play {source!r}: not a prompt list, file, tone or MOH")
