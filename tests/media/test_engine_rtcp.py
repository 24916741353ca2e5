"""The engine's own RTCP reports (RFC 3550 §6.4) for endpoints whose audio it generates."""
from __future__ import annotations

import asyncio

import numpy as np
import pytest

from media.codecs.g711 import ulaw_encode
from media.engine import MediaEngine
from media.rtp import (RTCP_SDES, RtcpOther, RtcpSenderReport, RtpPacket, fraction_lost, ntp_timestamp,
                       parse_rtcp, sdes_cname, serialize_rtcp)
from media.tones import NL_TONES, ToneGenerator

HOST = "127.0.0.1"
RANGE = (31400, 31450)
WAIT = 12.0  # bound: the first report comes 1.25-3.75 s after the endpoint starts sending


class Collector(asyncio.DatagramProtocol):
    def __init__(self) -> None:
        self.datagrams: asyncio.Queue[bytes] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.datagrams.put_nowait(data)


def test_helpers() -> None:
    assert ntp_timestamp(0.5) == (2_208_988_800 << 32) | (1 << 31)
    assert fraction_lost(100, 75) == 64 and fraction_lost(10, 10) == 0 and fraction_lost(0, 0) == 0
    [packet] = parse_rtcp(serialize_rtcp([sdes_cname(7, "a@b")]))
    assert isinstance(packet, RtcpOther) and packet.packet_type == RTCP_SDES and b"a@b" in packet.body


async def test_playing_endpoint_sends_sender_reports_with_a_block_about_what_it_receives() -> None:
    engine = MediaEngine(HOST, RANGE)
    await engine.start()
    loop = asyncio.get_running_loop()
    rtp_t, rtp = await loop.create_datagram_endpoint(Collector, local_addr=(HOST, 0))
    rtcp_t, rtcp = await loop.create_datagram_endpoint(Collector, local_addr=(HOST, 0))
    try:
        ep = await engine.create_endpoint("rtcp")
        ep.set_codec(0, "PCMU")
        ep.set_remote(HOST, rtp_t.get_extra_info("sockname")[1], rtcp_t.get_extra_info("sockname")[1])
        engine.play(ep, ToneGenerator(NL_TONES["dial"]))
        # the far end sends 40 packets with 10 of them missing: a quarter lost
        frame = ulaw_encode(np.zeros(160, dtype=np.int16))
        for i in range(50):
            if 20 <= i < 30:
                continue
            rtp_t.sendto(RtpPacket(0, 1000 + i, 160 * i, 0xABCD, frame).serialize(), (HOST, ep.rtp_port))
            await asyncio.sleep(0.02)
        deadline = loop.time() + WAIT
        report = None
        while report is None and loop.time() < deadline:
            data = await asyncio.wait_for(rtcp.datagrams.get(), deadline - loop.time())
            packets = parse_rtcp(data)
            report = next((p for p in packets if isinstance(p, RtcpSenderReport)), None)
        assert report is not None, "no sender report within the bound"
        assert report.ssrc == ep.ssrc and report.packet_count > 0 and report.octet_count > 0
        assert any(isinstance(p, RtcpOther) and p.packet_type == RTCP_SDES for p in packets)
        [block] = report.reports
        assert block.ssrc == 0xABCD
        assert block.packets_lost == 10 and block.fraction_lost == 51  # 10 of 50 → 0.2 × 256
        assert block.highest_sequence == 1049
        assert engine.stats()["rtcp_out"] >= 1
    finally:
        rtp_t.close()
        rtcp_t.close()
        await engine.close()


@pytest.mark.parametrize("seconds", [2.0])
async def test_plain_relay_sends_no_reports_of_its_own(seconds: float) -> None:
    engine = MediaEngine(HOST, RANGE)
    await engine.start()
    loop = asyncio.get_running_loop()
    _, rtcp = await loop.create_datagram_endpoint(Collector, local_addr=(HOST, 0))
    try:
        a = await engine.create_endpoint("a")
        b = await engine.create_endpoint("b")
        port = rtcp.transport.get_extra_info("sockname")[1]  # type: ignore[union-attr]
        a.set_remote(HOST, port - 1, port)
        b.set_remote(HOST, port - 1, port)
        engine.relay(a, b)
        await asyncio.sleep(seconds)
        assert rtcp.datagrams.empty()
    finally:
        rtcp.transport.close()  # type: ignore[union-attr]
        await engine.close()
