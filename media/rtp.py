"""RTP and RTCP packets: parse and serialise, pure (no sockets, no clock).

RFC 3550 section 5.1 (RTP fixed header, CSRC list), section 5.3.1 (header
extension), section 6.4 (SR and RR), section 6.5 (SDES) and 6.6 (BYE) as far as a
relay needs them; RFC 3550 appendix A.1 for sequence number arithmetic.

    RtpPacket.parse(data) -> RtpPacket        raises ValueError("RTP packet has ...")
    RtpPacket.serialize() -> bytes
    parse_rtcp(data) -> list[RtcpPacket]      a compound packet, raises ValueError
    serialize_rtcp(packets) -> bytes
    seq_add / seq_diff / seq_newer, ts_add / ts_diff   arithmetic mod 2**16 and 2**32

Malformed input always raises ValueError with a message that names what is wrong;
the caller (media/engine.py) drops and counts such packets.
"""
from __future__ import annotations

import logging
import struct
from dataclasses import dataclass

logger = logging.getLogger(__name__)

RTP_VERSION = 2
RTP_HEADER_SIZE = 12  # RFC 3550 section 5.1: fixed header
RTP_MAX_CSRC = 15  # 4-bit CC field
RTP_SEQ_MOD = 1 << 16
RTP_TS_MOD = 1 << 32
RTP_MAX_PAYLOAD_TYPE = 127

RTCP_HEADER_SIZE = 4
RTCP_REPORT_BLOCK_SIZE = 24  # RFC 3550 section 6.4.1
RTCP_SR = 200
RTCP_RR = 201
RTCP_SDES = 202
RTCP_BYE = 203
RTCP_APP = 204
# RFC 5761 section 4: RTCP packet types 192..223 never collide with RTP payload types
RTCP_PT_MIN = 192
RTCP_PT_MAX = 223

_HEADER = struct.Struct("!BBHII")
_EXT_HEADER = struct.Struct("!HH")
_RTCP_HEADER = struct.Struct("!BBH")
_SR_INFO = struct.Struct("!IQIII")  # ssrc, ntp, rtp ts, packet count, octet count
_REPORT_BLOCK = struct.Struct("!IIIIII")


# --- sequence number and timestamp arithmetic (RFC 3550 appendix A.1) ---------------

def seq_add(seq: int, delta: int) -> int:
    """`seq + delta` modulo 2**16."""
    return (seq + delta) % RTP_SEQ_MOD


def seq_diff(a: int, b: int) -> int:
    """Signed distance a - b in [-32768, 32767], correct across the 16-bit wrap."""
    d = (a - b) % RTP_SEQ_MOD
    return d - RTP_SEQ_MOD if d >= RTP_SEQ_MOD // 2 else d


def seq_newer(a: int, b: int) -> bool:
    """True when sequence number `a` follows `b` (modulo wrap)."""
    return seq_diff(a, b) > 0


def ts_add(ts: int, delta: int) -> int:
    """`ts + delta` modulo 2**32."""
    return (ts + delta) % RTP_TS_MOD


def ts_diff(a: int, b: int) -> int:
    """Signed distance a - b of two 32-bit RTP timestamps, correct across the wrap."""
    d = (a - b) % RTP_TS_MOD
    return d - RTP_TS_MOD if d >= RTP_TS_MOD // 2 else d


# --- RTP --------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class RtpPacket:
    """One RTP packet (RFC 3550 section 5.1)."""

    payload_type: int
    sequence_number: int
    timestamp: int
    ssrc: int
    payload: bytes = b""
    marker: bool = False
    csrc: tuple[int, ...] = ()
    extension_profile: int | None = None
    """The 16-bit "defined by profile" field of the header extension, or None when the
    X bit is clear (RFC 3550 section 5.3.1)."""
    extension: bytes = b""
    """Header extension data (a multiple of 4 bytes), without its 4-byte header."""
    padding: int = 0
    """Number of padding octets including the final count octet; 0 means P bit clear."""

    @classmethod
    def parse(cls, data: bytes) -> RtpPacket:
        """Parse one RTP packet; raise ValueError naming the defect."""
        n = len(data)
        if n < RTP_HEADER_SIZE:
            raise ValueError(f"RTP packet length {n} is shorter than the 12-byte header")
        b0, b1, seq, ts, ssrc = _HEADER.unpack_from(data, 0)
        version = b0 >> 6
        if version != RTP_VERSION:
            raise ValueError(f"RTP packet has version {version}, expected 2")
        cc = b0 & 0x0F
        pos = RTP_HEADER_SIZE + 4 * cc
        if pos > n:
            raise ValueError("RTP packet has truncated CSRC list")
        csrc = struct.unpack_from(f"!{cc}I", data, RTP_HEADER_SIZE) if cc else ()
        ext_profile: int | None = None
        ext = b""
        if b0 & 0x10:
            if pos + 4 > n:
                raise ValueError("RTP packet has truncated extension header")
            ext_profile, ext_words = _EXT_HEADER.unpack_from(data, pos)
            pos += 4
            end = pos + 4 * ext_words
            if end > n:
                raise ValueError("RTP packet has truncated extension data")
            ext = bytes(data[pos:end])
            pos = end
        end = n
        padding = 0
        if b0 & 0x20:
            if n == pos:
                raise ValueError("RTP packet has padding bit set but no padding")
            padding = data[-1]
            if padding == 0:
                raise ValueError("RTP packet has padding count 0")
            if padding > n - pos:
                raise ValueError(f"RTP packet padding {padding} exceeds the payload")
            end = n - padding
        return cls(
            payload_type=b1 & 0x7F,
            sequence_number=seq,
            timestamp=ts,
            ssrc=ssrc,
            payload=bytes(data[pos:end]),
            marker=bool(b1 & 0x80),
            csrc=tuple(csrc),
            extension_profile=ext_profile,
            extension=ext,
            padding=padding,
        )

    def serialize(self) -> bytes:
        """Serialise; raise ValueError for field values that do not fit the wire format."""
        if len(self.csrc) > RTP_MAX_CSRC:
            raise ValueError(f"RTP packet has {len(self.csrc)} CSRCs, at most 15 fit")
        if not 0 <= self.payload_type <= RTP_MAX_PAYLOAD_TYPE:
            raise ValueError(f"RTP payload type {self.payload_type} out of range")
        if len(self.extension) % 4:
            raise ValueError("RTP header extension length is not a multiple of 4")
        if not 0 <= self.padding <= 255:
            raise ValueError(f"RTP padding {self.padding} out of range")
        b0 = (RTP_VERSION << 6) | len(self.csrc)
        if self.padding:
            b0 |= 0x20
        if self.extension_profile is not None:
            b0 |= 0x10
        b1 = self.payload_type | (0x80 if self.marker else 0)
        try:
            parts = [_HEADER.pack(b0, b1, self.sequence_number, self.timestamp, self.ssrc)]
            if self.csrc:
                parts.append(struct.pack(f"!{len(self.csrc)}I", *self.csrc))
        except struct.error as exc:
            raise ValueError(f"RTP header field out of range: {exc}") from None
        if self.extension_profile is not None:
            parts.append(_EXT_HEADER.pack(self.extension_profile, len(self.extension) // 4))
            parts.append(self.extension)
        parts.append(self.payload)
        if self.padding:
            parts.append(bytes(self.padding - 1) + bytes([self.padding]))
        return b"".join(parts)


# --- RTCP -------------------------------------------------------------------------

@dataclass(frozen=True, slots=True)
class ReportBlock:
    """One reception report block (RFC 3550 section 6.4.1)."""

    ssrc: int
    """SSRC of the source this block reports on."""
    fraction_lost: int
    packets_lost: int
    """Cumulative number of packets lost, a signed 24-bit value."""
    highest_sequence: int
    """Extended highest sequence number received (cycles << 16 | seq)."""
    jitter: int
    last_sr: int
    delay_since_last_sr: int

    @classmethod
    def parse(cls, data: bytes, pos: int) -> ReportBlock:
        ssrc, lost_word, highest, jitter, lsr, dlsr = _REPORT_BLOCK.unpack_from(data, pos)
        lost = lost_word & 0xFFFFFF
        if lost & 0x800000:
            lost -= 1 << 24
        return cls(ssrc, lost_word >> 24, lost, highest, jitter, lsr, dlsr)

    def serialize(self) -> bytes:
        lost_word = (self.fraction_lost & 0xFF) << 24 | (self.packets_lost & 0xFFFFFF)
        return _REPORT_BLOCK.pack(self.ssrc, lost_word, self.highest_sequence,
                                  self.jitter, self.last_sr, self.delay_since_last_sr)


@dataclass(frozen=True, slots=True)
class RtcpSenderReport:
    """SR, packet type 200 (RFC 3550 section 6.4.1)."""

    ssrc: int
    ntp_timestamp: int
    rtp_timestamp: int
    packet_count: int
    octet_count: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""
    """Profile-specific extension after the report blocks, kept opaque."""


@dataclass(frozen=True, slots=True)
class RtcpReceiverReport:
    """RR, packet type 201 (RFC 3550 section 6.4.2)."""

    ssrc: int
    reports: tuple[ReportBlock, ...] = ()
    extension: bytes = b""


@dataclass(frozen=True, slots=True)
class RtcpOther:
    """Any other RTCP packet (SDES, BYE, APP, feedback…), kept opaque for relaying."""

    packet_type: int
    count: int
    """The 5-bit count/subtype field of the common header."""
    body: bytes
    """Everything after the 4-byte common header, padding removed."""


RtcpPacket = RtcpSenderReport | RtcpReceiverReport | RtcpOther


def parse_rtcp(data: bytes) -> list[RtcpPacket]:
    """Parse a compound RTCP packet (RFC 3550 section 6.1); raise ValueError on defects."""
    packets: list[RtcpPacket] = []
    pos = 0
    n = len(data)
    if n < RTCP_HEADER_SIZE:
        raise ValueError(f"RTCP packet length {n} is shorter than the 4-byte header")
    while pos < n:
        if pos + RTCP_HEADER_SIZE > n:
            raise ValueError("RTCP packet has truncated header")
        b0, pt, words = _RTCP_HEADER.unpack_from(data, pos)
        if b0 >> 6 != RTP_VERSION:
            raise ValueError(f"RTCP packet has version {b0 >> 6}, expected 2")
        if not RTCP_PT_MIN <= pt <= RTCP_PT_MAX:
            raise ValueError(f"RTCP packet has type {pt} outside 192..223")
        end = pos + 4 * (words + 1)
        if end > n:
            raise ValueError("RTCP packet is truncated (length field exceeds data)")
        body_end = end
        if b0 & 0x20:
            pad = data[end - 1]
            if pad == 0 or pad > end - pos - RTCP_HEADER_SIZE:
                raise ValueError(f"RTCP packet has invalid padding {pad}")
            body_end = end - pad
        packets.append(_parse_one(data, pos + RTCP_HEADER_SIZE, body_end, pt, b0 & 0x1F))
        pos = end
    return packets


def _parse_one(data: bytes, pos: int, end: int, pt: int, count: int) -> RtcpPacket:
    if pt == RTCP_SR:
        if pos + _SR_INFO.size + count * RTCP_REPORT_BLOCK_SIZE > end:
            raise ValueError("RTCP SR is truncated")
        ssrc, ntp, rtp_ts, pkts, octets = _SR_INFO.unpack_from(data, pos)
        pos += _SR_INFO.size
        reports = tuple(ReportBlock.parse(data, pos + i * RTCP_REPORT_BLOCK_SIZE)
                        for i in range(count))
        pos += count * RTCP_REPORT_BLOCK_SIZE
        return RtcpSenderReport(ssrc, ntp, rtp_ts, pkts, octets, reports,
                                bytes(data[pos:end]))
    if pt == RTCP_RR:
        if pos + 4 + count * RTCP_REPORT_BLOCK_SIZE > end:
            raise ValueError("RTCP RR is truncated")
        (ssrc,) = struct.unpack_from("!I", data, pos)
        pos += 4
        reports = tuple(ReportBlock.parse(data, pos + i * RTCP_REPORT_BLOCK_SIZE)
                        for i in range(count))
        pos += count * RTCP_REPORT_BLOCK_SIZE
        return RtcpReceiverReport(ssrc, reports, bytes(data[pos:end]))
    return RtcpOther(pt, count, bytes(data[pos:end]))


def _serialize_one(packet: RtcpPacket) -> bytes:
    if isinstance(packet, RtcpSenderReport):
        pt, count = RTCP_SR, len(packet.reports)
        body = b"".join([
            _SR_INFO.pack(packet.ssrc, packet.ntp_timestamp, packet.rtp_timestamp,
                          packet.packet_count, packet.octet_count),
            *(r.serialize() for r in packet.reports), packet.extension])
    elif isinstance(packet, RtcpReceiverReport):
        pt, count = RTCP_RR, len(packet.reports)
        body = b"".join([struct.pack("!I", packet.ssrc),
                         *(r.serialize() for r in packet.reports), packet.extension])
    else:
        pt, count, body = packet.packet_type, packet.count, packet.body
    if count > 31:
        raise ValueError(f"RTCP packet has {count} items, at most 31 fit")
    pad = -len(body) % 4
    b0 = (RTP_VERSION << 6) | count
    if pad:
        # RFC 3550 section 6.4.1: padding keeps the packet a multiple of 32 bits
        b0 |= 0x20
        body += bytes(pad - 1) + bytes([pad])
    return _RTCP_HEADER.pack(b0, pt, len(body) // 4) + body


def serialize_rtcp(packets: list[RtcpPacket] | tuple[RtcpPacket, ...]) -> bytes:
    """Serialise a compound RTCP packet."""
    return b"".join(_serialize_one(p) for p in packets)


NTP_UNIX_OFFSET = 2_208_988_800  # seconds from 1900-01-01 (NTP epoch) to 1970-01-01
SDES_CNAME = 1


def ntp_timestamp(unix_time: float) -> int:
    """64-bit NTP timestamp (RFC 3550 section 4) of a unix time."""
    seconds = int(unix_time) + NTP_UNIX_OFFSET
    fraction = int((unix_time % 1.0) * (1 << 32)) & 0xFFFFFFFF
    return (seconds & 0xFFFFFFFF) << 32 | fraction


def sdes_cname(ssrc: int, cname: str) -> RtcpOther:
    """An SDES packet with one chunk carrying CNAME (RFC 3550 section 6.5.1): every compound
    RTCP packet must carry it (section 6.1)."""
    text = cname.encode("utf-8")[:255]
    chunk = struct.pack("!IBB", ssrc, SDES_CNAME, len(text)) + text + b"\x00"
    chunk += b"\x00" * (-len(chunk) % 4)  # items end with a null octet, padded to 32 bits
    return RtcpOther(RTCP_SDES, 1, chunk)


def fraction_lost(expected_interval: int, received_interval: int) -> int:
    """The 8-bit fraction of packets lost since the previous report (RFC 3550 A.3)."""
    lost = expected_interval - received_interval
    if expected_interval <= 0 or lost <= 0:
        return 0
    return min(255, (lost << 8) // expected_interval)


def is_rtcp(data: bytes) -> bool:
    """Cheap RFC 5761 section 4 test: version 2 and a packet type in 192..223."""
    return len(data) >= RTCP_HEADER_SIZE and data[0] >> 6 == RTP_VERSION \
        and RTCP_PT_MIN <= data[1] <= RTCP_PT_MAX


__all__ = [
    "RtpPacket", "ReportBlock", "RtcpSenderReport", "RtcpReceiverReport", "RtcpOther",
    "RtcpPacket", "parse_rtcp", "serialize_rtcp", "is_rtcp",
    "seq_add", "seq_diff", "seq_newer", "ts_add", "ts_diff",
]
