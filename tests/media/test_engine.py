"""media/engine.py over real UDP sockets on 127.0.0.1, on plain asyncio and on uvloop.

Plain UDP sockets play the phones. Every wait is bounded; asserts never depend on
timing. Each test runs once per event loop implementation through the `run` fixture
(asyncio.Runner with a loop factory), so no pytest-asyncio hook is needed.
"""
from __future__ import annotations

import asyncio
import socket
from collections.abc import Callable, Coroutine
from typing import Any

import pytest
import uvloop

from media.engine import Endpoint, MediaEngine, MediaError
from media.rtp import (ReportBlock, RtcpReceiverReport, RtcpSenderReport, RtpPacket,
                       parse_rtcp, seq_add, serialize_rtcp, ts_add)

HOST = "127.0.0.1"
RANGE = (31000, 31100)
TEST_TIMEOUT = 15.0  # seconds, a whole scenario
RECV_TIMEOUT = 2.0  # seconds, one expected datagram

Runner = Callable[[Coroutine[Any, Any, Any]], Any]
_OPEN: list[MediaEngine | Phone] = []  # closed by the runner even when a test fails


@pytest.fixture(params=["asyncio", "uvloop"])
def run(request: pytest.FixtureRequest) -> Runner:
    factory = uvloop.new_event_loop if request.param == "uvloop" else asyncio.new_event_loop

    async def guarded(coro: Coroutine[Any, Any, Any]) -> Any:
        try:
            return await asyncio.wait_for(coro, TEST_TIMEOUT)
        finally:
            while _OPEN:
                obj = _OPEN.pop()
                if isinstance(obj, MediaEngine):
                    await obj.close()
                else:
                    obj.close()

    def runner(coro: Coroutine[Any, Any, Any]) -> Any:
        with asyncio.Runner(loop_factory=factory) as r:
            return r.run(guarded(coro))
    return runner


def new_engine(port_range: tuple[int, int] = RANGE, **kwargs: Any) -> MediaEngine:
    engine = MediaEngine(HOST, port_range, **kwargs)
    _OPEN.append(engine)
    return engine


class Phone(asyncio.DatagramProtocol):
    """A UDP socket that records what it receives."""

    def __init__(self) -> None:
        self.queue: asyncio.Queue[tuple[bytes, tuple[str, int]]] = asyncio.Queue()
        self.transport: asyncio.DatagramTransport | None = None

    @classmethod
    async def open(cls, port: int = 0) -> Phone:
        loop = asyncio.get_running_loop()
        _, phone = await loop.create_datagram_endpoint(cls, local_addr=(HOST, port))
        _OPEN.append(phone)
        return phone

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        self.queue.put_nowait((data, addr))

    @property
    def port(self) -> int:
        assert self.transport is not None
        return self.transport.get_extra_info("sockname")[1]

    def send(self, data: bytes, port: int) -> None:
        assert self.transport is not None
        self.transport.sendto(data, (HOST, port))

    async def recv(self) -> tuple[bytes, tuple[str, int]]:
        return await asyncio.wait_for(self.queue.get(), RECV_TIMEOUT)

    async def recv_rtp(self) -> RtpPacket:
        data, _ = await self.recv()
        return RtpPacket.parse(data)

    def close(self) -> None:
        assert self.transport is not None
        if not self.transport.is_closing():
            self.transport.close()


def rtp(seq: int, ts: int, ssrc: int, payload: bytes = b"\xd5" * 160, pt: int = 8,
        marker: bool = False) -> bytes:
    return RtpPacket(pt, seq, ts, ssrc, payload, marker=marker).serialize()


async def wait_until(predicate: Callable[[], bool]) -> None:
    """Poll a condition with a bounded number of short sleeps."""
    for _ in range(200):
        if predicate():
            return
        await asyncio.sleep(0.01)
    raise AssertionError("condition not reached")


async def call(engine: MediaEngine, *phones: Phone) -> list[Endpoint]:
    """One endpoint per phone, its remote set to the phone's address.

    A test phone has one socket, so its SDP announces RTCP on the same port.
    """
    eps = []
    for i, phone in enumerate(phones):
        ep = await engine.create_endpoint(f"leg{i}")
        ep.set_remote(HOST, phone.port, phone.port)
        eps.append(ep)
    return eps


def test_relay_both_ways_rtp_and_rtcp(run: Runner) -> None:
    async def scenario() -> None:
        engine = new_engine()
        await engine.start()
        phone_a, phone_b = await Phone.open(), await Phone.open()
        a, b = await call(engine, phone_a, phone_b)
        assert a.rtp_port % 2 == 0 and a.rtcp_port == a.rtp_port + 1
        assert a.local_host == HOST
        engine.relay(a, b)

        phone_a.send(rtp(100, 8000, 0xAAAA), a.rtp_port)
        data, src = await phone_b.recv()
        assert src == (HOST, b.rtp_port)  # sent from b's socket: symmetric RTP
        p = RtpPacket.parse(data)
        assert (p.ssrc, p.sequence_number, p.timestamp) == (b.ssrc, 100, 8000)
        assert p.payload == b"\xd5" * 160

        phone_b.send(rtp(7, 320, 0xBBBB, pt=0), b.rtp_port)
        data, src = await phone_a.recv()
        assert src == (HOST, a.rtp_port)
        p = RtpPacket.parse(data)
        assert (p.ssrc, p.sequence_number, p.payload_type) == (a.ssrc, 7, 0)

        # RTCP on the odd ports: A's SR reaches B translated to b's SSRC, and its report
        # block about a's stream is turned into a report about B's own SSRC.
        sr = RtcpSenderReport(0xAAAA, 1 << 32, 8000, 1, 160,
                              (ReportBlock(a.ssrc, 0, 0, 7, 0, 0, 0),))
        phone_a.transport.sendto(serialize_rtcp([sr]), (HOST, a.rtcp_port))  # type: ignore[union-attr]
        data, src = await phone_b.recv()
        assert src == (HOST, b.rtcp_port)
        (got,) = parse_rtcp(data)
        assert isinstance(got, RtcpSenderReport)
        assert got.ssrc == b.ssrc and got.rtp_timestamp == 8000
        assert got.reports[0].ssrc == 0xBBBB and got.reports[0].highest_sequence == 7

        rr = RtcpReceiverReport(0xBBBB, ())
        phone_b.transport.sendto(serialize_rtcp([rr]), (HOST, b.rtcp_port))  # type: ignore[union-attr]
        data, src = await phone_a.recv()
        assert src == (HOST, a.rtcp_port)
        assert parse_rtcp(data) == [RtcpReceiverReport(a.ssrc, ())]

        stats = engine.stats()
        assert stats["packets_in"] == 2 and stats["packets_out"] == 2
        assert stats["rtcp_in"] == 2 and stats["rtcp_out"] == 2
        assert stats["relays"] == 1
        assert a.stats.ssrc == 0xAAAA and b.stats.ssrc == 0xBBBB
        phone_a.close()
        phone_b.close()
        await engine.close()
        assert engine.stats()["endpoints"] == 0
    run(scenario())


def test_latching_to_a_source_other_than_the_sdp_address(run: Runner) -> None:
    async def scenario() -> None:
        engine = new_engine()
        sdp_phone, natted, phone_b = await Phone.open(), await Phone.open(), await Phone.open()
        a = await engine.create_endpoint("a")
        b = await engine.create_endpoint("b")
        engine.relay(a, b)

        # before the far end's SDP is known nobody may latch
        natted.send(rtp(1, 0, 0x1), a.rtp_port)
        await wait_until(lambda: a.stats.dropped_foreign == 1)
        assert not a.latched and a.remote_rtp is None

        a.set_remote(HOST, sdp_phone.port)
        b.set_remote(HOST, phone_b.port)
        assert a.remote_rtp == (HOST, sdp_phone.port) and not a.latched

        natted.send(rtp(2, 160, 0x1), a.rtp_port)  # the phone behind NAT speaks first
        assert (await phone_b.recv_rtp()).sequence_number == 2
        assert a.latched and a.remote_rtp == (HOST, natted.port)

        phone_b.send(rtp(50, 0, 0x2), b.rtp_port)  # goes to the latched address
        assert (await natted.recv_rtp()).sequence_number == 50
        assert sdp_phone.queue.empty()

        # the SDP address is now foreign: dropped and counted, not relayed
        sdp_phone.send(rtp(3, 320, 0x3), a.rtp_port)
        await wait_until(lambda: a.stats.dropped_foreign == 2)
        natted.send(rtp(4, 480, 0x1), a.rtp_port)
        assert (await phone_b.recv_rtp()).sequence_number == 4  # nothing queued before it

        # a re-INVITE with a new address un-latches
        a.set_remote(HOST, sdp_phone.port)
        assert a.latched  # same SDP address: latch kept
        a.set_remote(HOST, natted.port)
        assert not a.latched and a.remote_rtp == (HOST, natted.port)
        for phone in (sdp_phone, natted, phone_b):
            phone.close()
        await engine.close()
    run(scenario())


def test_garbage_is_counted_not_fatal(run: Runner) -> None:
    async def scenario() -> None:
        engine = new_engine()
        phone_a, phone_b = await Phone.open(), await Phone.open()
        a, b = await call(engine, phone_a, phone_b)
        engine.relay(a, b)
        garbage = [b"", b"\x80", b"\x80" * 11, b"\x40" + bytes(171), b"\x00" * 200,
                   b"SIP/2.0 200 OK\r\n\r\n"]
        # a plain socket: asyncio transports silently skip empty datagrams
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as raw:
            for g in garbage:
                raw.sendto(g, (HOST, a.rtp_port))
            raw.sendto(b"\x80\x00", (HOST, a.rtcp_port))  # too short for RTCP
            raw.sendto(rtp(9, 0, 0x9), (HOST, a.rtcp_port))  # RTP on the RTCP port (PT 8)
        await wait_until(lambda: a.stats.dropped_garbage == len(garbage) + 2)
        phone_a.send(rtp(10, 0, 0x9), a.rtp_port)
        assert (await phone_b.recv_rtp()).sequence_number == 10
        assert phone_b.queue.empty()
        assert engine.stats()["dropped_garbage"] == len(garbage) + 2
        assert a.stats.packets_in == 1
        phone_a.close()
        phone_b.close()
        await engine.close()
    run(scenario())


def test_rebridge_keeps_ssrc_and_sequence_continuous(run: Runner) -> None:
    async def scenario() -> None:
        engine = new_engine()
        phone_a, phone_b, phone_c = await Phone.open(), await Phone.open(), await Phone.open()
        a, b, c = await call(engine, phone_a, phone_b, phone_c)
        engine.relay(a, b)
        for i in range(5):
            phone_a.send(rtp(seq_add(65533, i), ts_add(0xFFFFFF00, 160 * i), 0xA), a.rtp_port)
        got = [await phone_b.recv_rtp() for _ in range(5)]
        assert [p.sequence_number for p in got] == [65533, 65534, 65535, 0, 1]
        assert {p.ssrc for p in got} == {b.ssrc}
        last_ts = got[-1].timestamp

        engine.relay(c, b)  # transfer: B now talks to C
        assert a._peer is None  # a is left unrelayed
        # RFC 4733 telephone-event from C, then voice: payload untouched
        event = bytes([5, 0x80 | 10, 0x03, 0x20])
        phone_c.send(rtp(4000, 90000, 0xC, payload=event, pt=101, marker=True), c.rtp_port)
        for i in range(1, 3):
            phone_c.send(rtp(4000 + i, 90000 + 160 * i, 0xC), c.rtp_port)
        got = [await phone_b.recv_rtp() for _ in range(3)]
        assert {p.ssrc for p in got} == {b.ssrc}
        assert [p.sequence_number for p in got] == [2, 3, 4]
        assert got[0].marker and got[0].payload == event and got[0].payload_type == 101
        assert not got[1].marker
        assert got[0].timestamp != last_ts
        assert [(p.timestamp - got[0].timestamp) % 2**32 for p in got] == [0, 160, 320]

        # same source SSRC but a new relay() call also resyncs (sequence continues)
        engine.relay(c, b)
        phone_c.send(rtp(4003, 90480, 0xC), c.rtp_port)
        p = await phone_b.recv_rtp()
        assert (p.ssrc, p.sequence_number, p.marker) == (b.ssrc, 5, True)

        # C changes SSRC mid-call (restart): B still sees one stream
        phone_c.send(rtp(1, 1, 0xCC), c.rtp_port)
        p = await phone_b.recv_rtp()
        assert (p.ssrc, p.sequence_number, p.marker) == (b.ssrc, 6, True)
        for phone in (phone_a, phone_b, phone_c):
            phone.close()
        await engine.close()
    run(scenario())


def test_hold_stops_sending_toward_that_remote(run: Runner) -> None:
    async def scenario() -> None:
        engine = new_engine()
        phone_a, phone_b = await Phone.open(), await Phone.open()
        a, b = await call(engine, phone_a, phone_b)
        engine.relay(a, b)
        b.set_hold(False)
        phone_a.send(rtp(1, 0, 0xA), a.rtp_port)
        await wait_until(lambda: a.stats.packets_in == 1)
        b.set_hold(True)
        phone_a.send(rtp(2, 160, 0xA), a.rtp_port)
        assert (await phone_b.recv_rtp()).sequence_number == 2
        assert b.stats.packets_out == 1
        phone_a.close()
        phone_b.close()
        await engine.close()
    run(scenario())


def test_ports_freed_on_close_and_exhaustion(run: Runner) -> None:
    async def scenario() -> None:
        engine = new_engine((31000, 31007))  # four pairs
        eps = [await engine.create_endpoint() for _ in range(4)]
        assert sorted(ep.rtp_port for ep in eps) == [31000, 31002, 31004, 31006]
        with pytest.raises(MediaError, match="no free RTP port pair"):
            await engine.create_endpoint()
        await eps[0].close()
        await eps[0].close()  # idempotent
        again = await engine.create_endpoint()
        assert again.rtp_port == eps[0].rtp_port
        await engine.close()
        assert engine.stats()["port_pairs_free"] == 4

        # the sockets really are closed: a new engine binds the same range
        engine2 = new_engine((31000, 31007))
        eps = [await engine2.create_endpoint() for _ in range(4)]
        assert len({ep.rtp_port for ep in eps}) == 4
        await engine2.close()

        # ports taken by someone else are skipped
        blocker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        blocker.bind((HOST, 31003))  # the RTCP port of the second pair
        try:
            engine3 = new_engine((31000, 31007))
            eps = [await engine3.create_endpoint() for _ in range(3)]
            assert sorted(ep.rtp_port for ep in eps) == [31000, 31004, 31006]
            with pytest.raises(MediaError):
                await engine3.create_endpoint()
            await engine3.close()
            with pytest.raises(MediaError, match="closed"):
                await engine3.create_endpoint()
        finally:
            blocker.close()
    run(scenario())


def test_misuse_raises_media_error(run: Runner) -> None:
    async def scenario() -> None:
        engine = new_engine()
        a = await engine.create_endpoint()
        b = await engine.create_endpoint()
        with pytest.raises(MediaError):
            engine.relay(a, a)
        with pytest.raises(MediaError, match="not an IP address"):
            a.set_remote("phone.example.com", 4000)
        await b.close()
        with pytest.raises(MediaError, match="closed"):
            engine.relay(a, b)
        await engine.close()
    run(scenario())


def test_on_timeout_fires_once_per_silent_endpoint(run: Runner) -> None:
    async def scenario() -> None:
        engine = new_engine(rtp_timeout=0.5)
        fired: list[Endpoint] = []
        both = asyncio.Event()

        def on_timeout(ep: Endpoint) -> None:
            fired.append(ep)
            if len(fired) >= 2:
                both.set()
        engine.on_timeout = on_timeout
        await engine.start()
        phone_a, phone_b = await Phone.open(), await Phone.open()
        a, b = await call(engine, phone_a, phone_b)
        idle = await engine.create_endpoint("not relayed")  # never reported
        idle.set_remote(HOST, phone_a.port)
        engine.relay(a, b)
        phone_a.send(rtp(1, 0, 0xA), a.rtp_port)
        await phone_b.recv()
        await asyncio.wait_for(both.wait(), 5.0)
        await asyncio.sleep(1.0)  # several more watchdog rounds: no repeats
        assert sorted(ep.label for ep in fired) == ["leg0", "leg1"]
        assert engine.stats()["timeouts"] == 2
        phone_a.close()
        phone_b.close()
        await engine.close()
    run(scenario())
