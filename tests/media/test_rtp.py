"""media/rtp.py: RTP/RTCP parse and serialise (RFC 3550), sequence arithmetic."""
from __future__ import annotations

import struct

import pytest

from media.ports import PortAllocator
from media.rtp import (ReportBlock, RtcpOther, RtcpReceiverReport, RtcpSenderReport,
                       RtpPacket, is_rtcp, parse_rtcp, seq_add, seq_diff, seq_newer,
                       serialize_rtcp, ts_add, ts_diff)

# A PCMU packet as a phone sends it: V=2, PT=0, seq 0x1234, ts 0x0000a0, ssrc 0xdeadbeef
PCMU = bytes.fromhex("80001234000000a0deadbeef") + b"\xff" * 160


def test_parse_plain_pcmu_packet() -> None:
    p = RtpPacket.parse(PCMU)
    assert (p.payload_type, p.sequence_number, p.timestamp, p.ssrc) == (0, 0x1234, 0xA0,
                                                                         0xDEADBEEF)
    assert p.payload == b"\xff" * 160
    assert not p.marker and p.csrc == () and p.extension_profile is None and p.padding == 0
    assert p.serialize() == PCMU


def test_round_trip_with_csrc_extension_padding_marker() -> None:
    p = RtpPacket(payload_type=101, sequence_number=65535, timestamp=0xFFFFFFFF,
                  ssrc=1, payload=b"\x01\x0a\x00\xa0", marker=True, csrc=(7, 8, 9),
                  extension_profile=0xBEDE, extension=b"\x10\xaa\x00\x00", padding=4)
    data = p.serialize()
    assert data[0] == 0x80 | 0x20 | 0x10 | 3  # V=2, P, X, CC=3
    assert data[1] == 0x80 | 101
    assert len(data) == 12 + 12 + 4 + 4 + 4 + 4
    assert data[-1] == 4
    assert RtpPacket.parse(data) == p


@pytest.mark.parametrize("csrc", [(), (1,), tuple(range(15))])
def test_round_trip_csrc_counts(csrc: tuple[int, ...]) -> None:
    p = RtpPacket(8, 1, 2, 3, b"abc", csrc=csrc)
    assert RtpPacket.parse(p.serialize()) == p


def test_empty_extension_round_trip() -> None:
    p = RtpPacket(0, 1, 2, 3, b"x", extension_profile=0x1000, extension=b"")
    assert RtpPacket.parse(p.serialize()) == p


FULL = RtpPacket(0, 1, 2, 3, b"payload!", csrc=(5, 6), extension_profile=1,
                 extension=b"abcdefgh").serialize()


@pytest.mark.parametrize(("data", "message"), [
    (b"", "shorter than the 12-byte header"),
    (PCMU[:11], "shorter than the 12-byte header"),
    (b"\x40" + PCMU[1:], "version 1"),
    (b"\x00" + PCMU[1:], "version 0"),
    (FULL[:12 + 4], "truncated CSRC list"),
    (FULL[:12 + 8 + 2], "truncated extension header"),
    (FULL[:12 + 8 + 4 + 4], "truncated extension data"),
    (bytes([0xA0]) + PCMU[1:12], "padding bit set but no padding"),
    (bytes([0xA0]) + PCMU[1:12] + b"\x00\x00", "padding count 0"),
    (bytes([0xA0]) + PCMU[1:12] + b"\x00\x09", "padding 9 exceeds"),
])
def test_truncated_or_invalid_packets_raise(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        RtpPacket.parse(data)


def test_every_truncation_of_a_full_packet_raises_or_parses() -> None:
    # Header-only prefixes (up to the extension end) must raise; longer ones parse.
    header_len = 12 + 8 + 4 + 8
    for n in range(header_len):
        with pytest.raises(ValueError):
            RtpPacket.parse(FULL[:n])
    for n in range(header_len, len(FULL) + 1):
        assert RtpPacket.parse(FULL[:n]).payload == b"payload!"[:n - header_len]


def test_serialize_rejects_unrepresentable_fields() -> None:
    with pytest.raises(ValueError, match="CSRC"):
        RtpPacket(0, 0, 0, 0, csrc=tuple(range(16))).serialize()
    with pytest.raises(ValueError, match="multiple of 4"):
        RtpPacket(0, 0, 0, 0, extension_profile=1, extension=b"abc").serialize()
    with pytest.raises(ValueError, match="payload type"):
        RtpPacket(128, 0, 0, 0).serialize()
    with pytest.raises(ValueError, match="out of range"):
        RtpPacket(0, 65536, 0, 0).serialize()


def test_seq_arithmetic_wraps() -> None:
    assert seq_add(65535, 1) == 0
    assert seq_add(0, -1) == 65535
    assert seq_diff(0, 65535) == 1
    assert seq_diff(65535, 0) == -1
    assert seq_diff(100, 100) == 0
    assert seq_diff(32767, 0) == 32767
    assert seq_diff(32768, 0) == -32768
    assert seq_newer(2, 65530) and not seq_newer(65530, 2)
    assert ts_add(0xFFFFFF60, 160) == 0
    assert ts_diff(80, 0xFFFFFFB0) == 160
    assert ts_diff(0xFFFFFFB0, 80) == -160


# --- RTCP ------------------------------------------------------------------------

BLOCK = ReportBlock(ssrc=0x11111111, fraction_lost=3, packets_lost=-2,
                    highest_sequence=0x00011234, jitter=17, last_sr=0x12345678,
                    delay_since_last_sr=655)


def test_rtcp_compound_round_trip() -> None:
    sr = RtcpSenderReport(ssrc=0xDEADBEEF, ntp_timestamp=0x0102030405060708,
                          rtp_timestamp=160, packet_count=50, octet_count=8000,
                          reports=(BLOCK,))
    rr = RtcpReceiverReport(ssrc=0xCAFE, reports=(BLOCK, BLOCK))
    sdes = RtcpOther(202, 1, struct.pack("!I", 0xDEADBEEF) + b"\x01\x03abc\x00")
    bye = RtcpOther(203, 1, struct.pack("!I", 0xDEADBEEF))
    data = serialize_rtcp([sr, rr, sdes, bye])
    assert len(data) % 4 == 0
    assert is_rtcp(data)
    # SR: 4 header + 24 sender info + 24 block; length in 32-bit words minus one
    assert data[:4] == bytes([0x81, 200]) + struct.pack("!H", (4 + 24 + 24) // 4 - 1)
    parsed = parse_rtcp(data)
    assert parsed[:2] == [sr, rr]
    assert parsed[3] == bye
    # the SDES body was padded to 32 bits (RFC 3550 section 6.5) and comes back unpadded
    assert isinstance(parsed[2], RtcpOther) and parsed[2].body == sdes.body
    assert serialize_rtcp(parsed) == data


def test_rtcp_report_block_signed_loss() -> None:
    data = serialize_rtcp([RtcpReceiverReport(1, (BLOCK,))])
    (block,) = parse_rtcp(data)[0].reports  # type: ignore[union-attr]
    assert block.packets_lost == -2 and block.fraction_lost == 3


@pytest.mark.parametrize(("data", "message"), [
    (b"\x80\xc8", "shorter than the 4-byte header"),
    (b"\x40\xc8\x00\x00", "version 1"),
    (b"\x80\x00\x00\x00", "type 0 outside"),
    (b"\x80\xc9\x00\x05" + bytes(8), "length field exceeds"),
    (b"\x81\xc9\x00\x01" + bytes(4), "RR is truncated"),
    (b"\x80\xc8\x00\x01" + bytes(4), "SR is truncated"),
    (b"\xa0\xca\x00\x01" + b"\x00\x00\x00\x09", "invalid padding"),
    (serialize_rtcp([RtcpReceiverReport(1)]) + b"\x80", "truncated header"),
])
def test_rtcp_malformed_raises(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        parse_rtcp(data)


def test_is_rtcp_separates_rtp() -> None:
    assert not is_rtcp(PCMU)
    assert not is_rtcp(b"\x80\xc8")


# --- ports ------------------------------------------------------------------------

def test_port_allocator_pairs_and_round_robin() -> None:
    alloc = PortAllocator(31001, 31010)  # even ports 31002..31008 with their odd mates
    assert alloc.capacity == 4
    assert list(alloc.candidates()) == [31002, 31004, 31006, 31008]
    alloc.take(31002)
    assert list(alloc.candidates()) == [31004, 31006, 31008]
    alloc.take(31004)
    alloc.release(31002)
    # a just-released pair is the last to be reused
    assert list(alloc.candidates()) == [31006, 31008, 31002]
    assert alloc.free == 3
    with pytest.raises(ValueError):
        alloc.take(31004)
    with pytest.raises(ValueError):
        alloc.take(31003)
    with pytest.raises(ValueError):
        PortAllocator(31001, 31001)
