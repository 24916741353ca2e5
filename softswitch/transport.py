"""The only socket code for SIP: asyncio UDP and TCP pumps around ``sip.SipEndpoint``.

Like aioquic's asyncio protocol, this layer feeds bytes and ``loop.time()`` into the sans-IO
endpoint, transmits what it returns, hands its events to the transaction user and re-arms a
single ``loop.call_at`` for the endpoint's next deadline. Nothing here understands SIP.

UDP: one socket; datagrams shorter than a request line (keep-alives) are ignored by the core.
TCP: one connection per peer, framed by ``sip.framing.StreamFramer``; a CRLFCRLF ping is
answered with CRLF (RFC 5626 §3.5.1); responses go back on the connection the request used.
"""
from __future__ import annotations

import asyncio
import logging
import math
import socket
from typing import Callable

from .sip.endpoint import EndpointEvent, SipEndpoint
from .sip.errors import SipError
from .sip.framing import StreamFramer
from .sip.transaction import Peer

log = logging.getLogger(__name__)
trace_log = logging.getLogger("softswitch.trace")

MAX_TCP_CONNECTIONS = 10_000
TCP_IDLE_TIMEOUT = 600.0  # seconds without traffic before an inbound connection is closed
UDP_RECV_BUFFER = 4 * 1024 * 1024
TIMER_GRANULARITY = 0.02  # seconds: transaction timers are served in 20 ms batches


class SipTransport:
    def __init__(self, endpoint: SipEndpoint, on_event: Callable[[EndpointEvent], None], *,
                 trace: bool = False):
        self.endpoint = endpoint
        self.on_event = on_event
        self.trace = trace
        self.loop = asyncio.get_running_loop()
        self._udp: asyncio.DatagramTransport | None = None
        self._tcp_server: asyncio.base_events.Server | None = None
        self._tcp: dict[tuple[str, int], _TcpConnection] = {}
        self._timer: asyncio.TimerHandle | None = None
        self._timer_at: float | None = None
        self._flushing = False
        self._again = False
        self.local: dict[str, tuple[str, int]] = {}
        self._route_cache: dict[str, str] = {}

    # ------------------------------------------------------------------ lifecycle
    async def listen(self, host: str, port: int, *, tcp: bool = True) -> None:
        transport, _ = await self.loop.create_datagram_endpoint(
            lambda: _UdpProtocol(self), local_addr=(host, port), reuse_port=False)
        sock = transport.get_extra_info("socket")
        try:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, UDP_RECV_BUFFER)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, UDP_RECV_BUFFER)
        except OSError:
            pass
        self._udp = transport  # type: ignore[assignment]
        bound = transport.get_extra_info("sockname")
        self.local["udp"] = (host, bound[1])
        if tcp:
            self._tcp_server = await self.loop.create_server(lambda: _TcpConnection(self), host, bound[1])
            self.local["tcp"] = (host, bound[1])
        log.info("SIP listening on %s:%s (udp%s)", host, bound[1], ", tcp" if tcp else "")

    async def close(self) -> None:
        self.flush()
        if self._timer:
            self._timer.cancel()
        for conn in list(self._tcp.values()):
            conn.close()
        if self._tcp_server:
            self._tcp_server.close()
            await self._tcp_server.wait_closed()
        if self._udp:
            self._udp.close()

    @property
    def port(self) -> int:
        return self.local["udp"][1]

    def local_host_for(self, peer_host: str) -> str:
        """The address of ours that ``peer_host`` reaches us on (for Via, Contact and SDP)."""
        bound = self.local["udp"][0]
        if bound not in ("0.0.0.0", "::", ""):
            return bound
        cached = self._route_cache.get(peer_host)
        if cached:
            return cached
        family = socket.AF_INET6 if ":" in peer_host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as s:
            try:
                s.connect((peer_host, 9))
                addr = s.getsockname()[0]
            except OSError:
                addr = "127.0.0.1"
        self._route_cache[peer_host] = addr
        return addr

    # ------------------------------------------------------------------ data path
    def datagram_received(self, data: bytes, addr: tuple) -> None:
        peer: Peer = ("udp", addr[0], addr[1])
        if self.trace:
            trace_log.debug("recv %d bytes from %s:%s\n%s", len(data), addr[0], addr[1], data.decode("utf-8", "replace"))
        self.endpoint.receive(data, peer, self.loop.time())
        self.flush()

    def stream_message(self, data: bytes, peer: Peer) -> None:
        if self.trace:
            trace_log.debug("recv %d bytes from tcp:%s:%s\n%s", len(data), peer[1], peer[2], data.decode("utf-8", "replace"))
        self.endpoint.receive(data, peer, self.loop.time(), datagram=False)
        self.flush()

    def flush(self) -> None:
        """Transmit, dispatch events, re-arm the timer — until the endpoint is quiet."""
        if self._flushing:
            self._again = True
            return
        self._flushing = True
        try:
            while True:
                self._again = False
                for data, peer in self.endpoint.datagrams_to_send():
                    self._send(data, peer)
                for event in self.endpoint.events():
                    try:
                        self.on_event(event)
                    except Exception:  # the TU's bug must not stop the SIP stack
                        log.exception("error handling %s", type(event).__name__)
                if not self._again:
                    break
            self._arm_timer()
        finally:
            self._flushing = False

    def _send(self, data: bytes, peer: Peer) -> None:
        if self.trace:
            trace_log.debug("send %d bytes to %s:%s:%s\n%s", len(data), *peer, data.decode("utf-8", "replace"))
        transport, host, port = peer
        if transport == "udp":
            if self._udp is not None:
                self._udp.sendto(data, (host, port))
            return
        conn = self._tcp.get((host, port))
        if conn is not None:
            conn.write(data)
        else:
            self.loop.create_task(self._connect_and_send(host, port, data))

    async def _connect_and_send(self, host: str, port: int, data: bytes) -> None:
        try:
            _, conn = await asyncio.wait_for(
                self.loop.create_connection(lambda: _TcpConnection(self), host, port), 5.0)
            conn.write(data)
        except (OSError, asyncio.TimeoutError) as exc:
            log.warning("cannot connect to tcp:%s:%s: %s", host, port, exc)

    def _arm_timer(self) -> None:
        deadline = self.endpoint.next_deadline()
        if deadline is not None:
            # Round up to a TIMER_GRANULARITY boundary: thousands of transactions expire per
            # second under load and are handled in batches instead of one loop timer each
            # (T1 = 500 ms, so 20 ms of lateness is harmless).
            deadline = math.ceil(deadline / TIMER_GRANULARITY) * TIMER_GRANULARITY
        if deadline == self._timer_at:
            return
        if self._timer:
            self._timer.cancel()
            self._timer = None
        self._timer_at = deadline
        if deadline is not None:
            self._timer = self.loop.call_at(deadline, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self._timer_at = None
        self.endpoint.handle_timer(self.loop.time())
        self.flush()


class _UdpProtocol(asyncio.DatagramProtocol):
    def __init__(self, owner: SipTransport):
        self.owner = owner

    def datagram_received(self, data: bytes, addr: tuple) -> None:
        try:
            self.owner.datagram_received(data, addr)
        except Exception:
            log.exception("error processing datagram from %s", addr)

    def error_received(self, exc: Exception) -> None:
        log.debug("UDP error: %s", exc)  # ICMP port unreachable from a vanished phone


class _TcpConnection(asyncio.Protocol):
    def __init__(self, owner: SipTransport):
        self.owner = owner
        self.framer = StreamFramer()
        self.transport: asyncio.Transport | None = None
        self.peer: Peer = ("tcp", "", 0)
        self._idle: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        addr = transport.get_extra_info("peername")
        self.peer = ("tcp", addr[0], addr[1])
        if len(self.owner._tcp) >= MAX_TCP_CONNECTIONS:
            log.warning("too many TCP connections; refusing %s", addr)
            transport.close()
            return
        self.owner._tcp[(addr[0], addr[1])] = self
        self._touch()

    def data_received(self, data: bytes) -> None:
        self._touch()
        try:
            pings = self.framer.pings
            messages = self.framer.feed(data)
            if self.framer.pings > pings and self.transport:
                self.transport.write(b"\r\n")  # RFC 5626 §3.5.1 pong
        except SipError as exc:
            log.info("closing tcp connection from %s:%s: %s", self.peer[1], self.peer[2], exc)
            self.close()
            return
        for msg in messages:
            try:
                self.owner.stream_message(msg, self.peer)
            except Exception:
                log.exception("error processing message from %s", self.peer)

    def write(self, data: bytes) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(data)

    def _touch(self) -> None:
        if self._idle:
            self._idle.cancel()
        self._idle = self.owner.loop.call_later(TCP_IDLE_TIMEOUT, self.close)

    def close(self) -> None:
        if self.transport:
            self.transport.close()

    def connection_lost(self, exc: Exception | None) -> None:
        if self._idle:
            self._idle.cancel()
        key = (self.peer[1], self.peer[2])
        if self.owner._tcp.get(key) is self:
            del self.owner._tcp[key]
