"""Composition root: store, SIP endpoint and transport, media engine, registrar, calls.

``SipCore`` is what legs and calls see of the switch (send a request, respond, spawn a
task, look up media addresses). ``dispatch`` maps the endpoint's events to their handler:
out-of-dialog requests by method, in-dialog ones by dialog id, responses and timeouts by
the transaction's owner. ``run()`` is the daemon: one event loop (uvloop when installed),
signal handling with a graceful shutdown that ends active calls with BYE.
"""
from __future__ import annotations

import asyncio
import gc
import json
import logging
import os
import signal
import time
from typing import Any, Coroutine

from config.models import Account, Cdr, User
from config.store import Store
from media.engine import Endpoint, MediaEngine
from media.player import DEFAULT_MOH_FILE, MusicOnHold

from .auth import Authenticator
from .b2bua import Call, Target
from .features.codes import FeatureCodes
from .features.parking import ParkingService
from .features.service import AppCall, run_service
from .location import FLUSH_INTERVAL, CallJournal, Directory, Location
from .registrar import Registrar
from .routing import Refusal, ServiceRoute, route_invite, targets_of
from .session import ALLOW, Leg, UasLeg
from .sip.digest import DigestChallenger
from .sip.endpoint import MessageRejected, RequestReceived, SipEndpoint, StrayResponseReceived, new_branch
from .sip.message import Request, Response, make_response
from .sip.transaction import (
    AckMissing, ClientTransaction, InviteServerTransaction, Peer, ResponseReceived, ServerTransaction,
    TransactionTimedOut,
)
from .transport import SipTransport
from .trunks import TrunkManager

log = logging.getLogger(__name__)

SERVER_NAME = "softswitch"
GC_THRESHOLD = 50_000  # allocations between gen-0 collections (CPython's default: 700)
SHUTDOWN_GRACE = 3.0  # seconds to let BYEs of active calls complete
BINDING_PURGE_INTERVAL = 60.0
# Challenge order (RFC 8760 §2.4: most preferred first). MD5 leads by default because many
# deployed phones and SIPp 3.6 answer only the first challenge and know only MD5;
# ``--digest-algorithms SHA-256,MD5`` prefers SHA-256 for fleets that support it.
DIGEST_ALGORITHMS = ("MD5", "SHA-256")


class SipCore:
    def __init__(self, store: Store, media: MediaEngine, *, trace: bool = False,
                 secret: bytes | None = None, digest_algorithms: tuple[str, ...] = DIGEST_ALGORITHMS):
        self.store = store
        self.media = media
        self.endpoint = SipEndpoint(server_name=SERVER_NAME)
        self.transport: SipTransport | None = None
        self.trace = trace
        self.directory = Directory(store)
        # Write-behind batches go through a second connection in a worker thread, so a burst
        # (thousands of phones re-registering after an outage) never stalls the event loop.
        self.writer = Store(store.path, any_thread=True)
        self.location = Location(self.writer)
        self.journal = CallJournal(self.writer)
        self._write_lock = asyncio.Lock()
        self.auth = Authenticator(self.directory, DigestChallenger(secret or os.urandom(32), algorithms=digest_algorithms))
        self.registrar = Registrar(self.directory, self.location, self.auth)
        self.server_name = SERVER_NAME
        self.legs: dict[tuple[str, str, str], Leg] = {}
        self.calls: set[Call | AppCall] = set()
        self.parking = ParkingService(self)
        self.trunks = TrunkManager(self)
        self.music_on_hold = MusicOnHold([str(DEFAULT_MOH_FILE)])
        self._feature_codes: dict[tuple[str, float], FeatureCodes] = {}
        self._ep_calls: dict[Endpoint, Call] = {}
        self._tasks: set[asyncio.Task[Any]] = set()
        self.media.on_timeout = self._on_rtp_timeout
        self.closing = False
        self._handlers = {
            "REGISTER": self._on_register, "INVITE": self._on_invite, "OPTIONS": self._on_options,
            "CANCEL": self._on_cancel, "BYE": self._no_dialog, "INFO": self._no_dialog,
            "UPDATE": self._no_dialog, "PRACK": self._no_dialog, "NOTIFY": self._no_dialog,
            "REFER": self._no_dialog, "SUBSCRIBE": self._on_subscribe, "PUBLISH": self._on_subscribe,
            "MESSAGE": self._not_allowed,
        }

    # ------------------------------------------------------------------ lifecycle
    async def start(self, host: str, port: int) -> None:
        self.transport = SipTransport(self.endpoint, self.dispatch, trace=self.trace)
        await self.transport.listen(host, port)
        await self.media.start()
        await self.trunks.start()
        self.store.clear_live_calls()
        stale = self.store.clear_parked()
        if stale:
            log.info("%d parked call(s) of the previous run were ended by its shutdown", len(stale))
        loaded = self.location.load(time.time())
        log.info("location service: %d registered contact(s) loaded", loaded)
        self.spawn(self._housekeeping())
        self.spawn(self._persist_bindings())

    async def shutdown(self) -> None:
        """End every call with BYE (CANCEL/503 while ringing), then close."""
        self.closing = True
        calls = list(self.calls)
        for call in calls:
            call.hangup("shutdown")
        if calls:
            log.info("shutting down: ending %d call(s)", len(calls))
            deadline = time.monotonic() + SHUTDOWN_GRACE
            while self.calls and time.monotonic() < deadline:
                await asyncio.sleep(0.05)
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await self.trunks.close()
        await self.media.close()
        if self.transport:
            await self.transport.close()
        await self.persist()
        self.store.clear_live_calls()
        self.writer.close()

    # ------------------------------------------------------------------ services for legs/calls
    def now(self) -> float:
        return asyncio.get_running_loop().time()

    def flush(self) -> None:
        if self.transport:
            self.transport.flush()

    def local_host(self, peer: Peer) -> str:
        assert self.transport is not None
        return self.transport.local_host_for(peer[1])

    def local_via(self, peer: Peer) -> str:
        assert self.transport is not None
        host = self.local_host(peer)
        host = f"[{host}]" if ":" in host else host
        return f"SIP/2.0/{peer[0].upper()} {host}:{self.transport.port}"

    def local_contact(self, peer: Peer) -> str:
        assert self.transport is not None
        host = self.local_host(peer)
        host = f"[{host}]" if ":" in host else host
        suffix = ";transport=tcp" if peer[0] == "tcp" else ""
        return f"<sip:{SERVER_NAME}@{host}:{self.transport.port}{suffix}>"

    def media_host_for(self, peer_host: str) -> str:
        if self.media.advertise_host:
            return self.media.advertise_host
        if self.media.host not in ("0.0.0.0", "::", ""):
            return self.media.host
        assert self.transport is not None
        return self.transport.local_host_for(peer_host)

    def new_branch(self) -> str:
        return new_branch()

    def send_request(self, request: Request, peer: Peer, owner: Leg | None, *, add_via: bool = True) -> ClientTransaction:
        txn = self.endpoint.send_request(request, peer, self.now(), local_via=self.local_via(peer) if add_via else None)
        txn.user_data = owner
        self.flush()
        return txn

    def respond(self, txn: ServerTransaction, response: Response) -> None:
        if not response.headers.get("Server"):
            response.headers.add("Server", SERVER_NAME)
        self.endpoint.respond(txn, response, self.now())
        self.flush()

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        self.endpoint.send_stateless(message, peer)
        self.flush()

    def spawn(self, coro: Coroutine[Any, Any, Any]) -> asyncio.Task[Any]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._task_done)
        return task

    def _task_done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("task failed", exc_info=task.exception())

    def remember_leg(self, leg: Leg) -> None:
        if leg.dialog is not None:
            self.legs[leg.dialog.key] = leg

    def forget_leg(self, leg: Leg) -> None:
        if leg.dialog is not None and self.legs.get(leg.dialog.key) is leg:
            del self.legs[leg.dialog.key]

    def feature_codes(self, account: Account) -> FeatureCodes:
        """The account's ## codes (SPEC §28: prefix and timeout are configurable per account)."""
        key = (account.dtmf_prefix, account.dtmf_timeout)
        codes = self._feature_codes.get(key)
        if codes is None:
            try:
                codes = FeatureCodes(prefix=account.dtmf_prefix, timeout=account.dtmf_timeout)
            except ValueError as exc:
                log.warning("account %s: %s; using the default ## codes", account.name, exc)
                codes = FeatureCodes()
            self._feature_codes[key] = codes
        return codes

    def targets_of(self, user: User) -> list[Target]:
        return targets_of(self, user)

    def write_behind(self, fn: Any, *args: Any) -> None:
        """A small write (parked-call records) through the writer thread, in order."""
        async def write() -> None:
            async with self._write_lock:
                try:
                    await asyncio.to_thread(fn, *args)
                except Exception:
                    log.exception("write of %s failed", getattr(fn, "__name__", fn))
        self.spawn(write())

    def app_ended(self, app: AppCall) -> None:
        self.calls.discard(app)
        self.journal.end(app.call_id, app.cdr())

    def track_endpoint(self, ep: Endpoint, call: Call) -> None:
        self._ep_calls[ep] = call

    def untrack_endpoint(self, ep: Endpoint) -> None:
        self._ep_calls.pop(ep, None)

    def call_ended(self, call: Call, cdr: Cdr) -> None:
        self.calls.discard(call)
        self.journal.end(call.call_id, cdr)

    def _on_rtp_timeout(self, ep: Endpoint) -> None:
        call = self._ep_calls.get(ep)
        if call is not None and call.state == "answered":
            log.info("[%s] no RTP for %.0f s on %s: ending the call", call.call_id, self.media.rtp_timeout, ep.label)
            call.hangup("rtp-timeout")

    async def _housekeeping(self) -> None:
        while True:
            await asyncio.sleep(BINDING_PURGE_INTERVAL)
            try:
                now = time.time()
                purged = self.location.purge_expired(now)
                async with self._write_lock:  # the disk side, through the writer thread
                    purged += await asyncio.to_thread(self.writer.purge_expired_bindings, now)
                if purged:
                    log.info("purged %d expired binding(s)", purged)
            except Exception:
                log.exception("binding purge failed")

    async def _persist_bindings(self) -> None:
        """Write-behind of registrations, live calls and CDRs: a few transactions per interval."""
        while True:
            await asyncio.sleep(FLUSH_INTERVAL)
            await self.persist()

    async def persist(self) -> None:
        """Hand what changed to the writer thread (one batch at a time)."""
        async with self._write_lock:
            bindings, calls = self.location.take_batch(), self.journal.take_batch()
            if bindings is None and calls is None:
                return
            ok_bindings, ok_calls = await asyncio.to_thread(self._write_batches, bindings, calls)
            if not ok_bindings:
                self.location.requeue(bindings)  # type: ignore[arg-type]
            if not ok_calls:
                self.journal.requeue(calls)  # type: ignore[arg-type]

    def _write_batches(self, bindings: Any, calls: Any) -> tuple[bool, bool]:
        """Runs in the worker thread and touches only the writer connection."""
        ok_bindings = bindings is None or self.location.write_batch(bindings)
        ok_calls = calls is None or self.journal.write_batch(calls)
        return ok_bindings, ok_calls

    # ------------------------------------------------------------------ dispatch
    def dispatch(self, event: object) -> None:
        if isinstance(event, RequestReceived):
            self._on_request(event)
        elif isinstance(event, (ResponseReceived, TransactionTimedOut, AckMissing)):
            owner = event.transaction.user_data
            if owner is not None:
                owner.on_transaction_event(event)  # type: ignore[attr-defined]
        elif isinstance(event, StrayResponseReceived):
            self._on_stray(event)
        elif isinstance(event, MessageRejected):
            log.debug("rejected message from %s: %s (%s)", event.peer, event.reason, event.status)

    def _on_request(self, event: RequestReceived) -> None:
        request = event.request
        to_tag = request.to.tag
        if to_tag:
            leg = self.legs.get((request.call_id, to_tag, request.from_.tag or ""))
            if leg is not None:
                leg.on_request(event)
            elif event.transaction is not None:
                self.respond(event.transaction, make_response(request, 481))
            return
        if event.transaction is None:
            return  # an ACK outside any dialog we know: nothing to do
        handler = self._handlers.get(request.method)
        if handler is None:
            # RFC 3261 §8.2.1: an unknown method gets 501 with Allow (RFC 4475 §3.1.1.2)
            self.respond(event.transaction, make_response(request, 501, headers=[("Allow", ALLOW)]))
            return
        handler(request, event.transaction, event.peer)

    def _on_register(self, request: Request, txn: ServerTransaction, peer: Peer) -> None:
        reply = self.registrar.register(request, peer, self.now())
        self.respond(txn, make_response(request, reply.status, reply.reason, to_tag=txn.to_tag or new_branch()[7:15],
                                        headers=reply.headers))

    def _on_options(self, request: Request, txn: ServerTransaction, peer: Peer) -> None:
        self.respond(txn, make_response(request, 200, to_tag=new_branch()[7:15], headers=[
            ("Allow", ALLOW), ("Accept", "application/sdp"), ("Supported", "replaces")]))

    def _on_subscribe(self, request: Request, txn: ServerTransaction, peer: Peer) -> None:
        # Presence/MWI subscriptions arrive with BLF and voicemail; until then: 489 (RFC 6665 §8.3.1)
        self.respond(txn, make_response(request, 489, to_tag=new_branch()[7:15]))

    def _not_allowed(self, request: Request, txn: ServerTransaction, peer: Peer) -> None:
        self.respond(txn, make_response(request, 405, headers=[("Allow", ALLOW)]))

    def _no_dialog(self, request: Request, txn: ServerTransaction, peer: Peer) -> None:
        self.respond(txn, make_response(request, 481))

    def _on_cancel(self, request: Request, txn: ServerTransaction, peer: Peer) -> None:
        invite = self.endpoint.find_invite_server(request, peer)
        if invite is None:
            self.respond(txn, make_response(request, 481))
            return
        self.respond(txn, make_response(request, 200, to_tag=invite.to_tag))
        leg = invite.user_data
        if isinstance(leg, UasLeg):
            leg.on_cancel(request)
        elif invite.state.value == "Proceeding":
            self.respond(invite, make_response(invite.request, 487, to_tag=invite.to_tag))

    def _on_stray(self, event: StrayResponseReceived) -> None:
        response = event.response
        if response.cseq.method == "INVITE" and 200 <= response.status < 300:
            leg = self.legs.get((response.call_id, response.from_.tag or "", response.to.tag or ""))
            if leg is not None:
                leg.ack_retransmitted_2xx(response)

    def _on_invite(self, request: Request, txn: ServerTransaction, peer: Peer) -> None:
        assert isinstance(txn, InviteServerTransaction)
        if self.closing:
            self.respond(txn, make_response(request, 503, headers=[("Retry-After", "30")]))
            return
        # Routing is synchronous and quick: a refusal (407 challenge, 404 …) goes out at
        # once as the only response; a routed call gets 100 Trying before anything else.
        route = route_invite(self, request, peer, self.now())
        if isinstance(route, Refusal):
            if route.status not in (401, 407):
                log.info("INVITE %s from %s refused: %s %s", request.uri_text, request.headers.get("From"),
                         route.status, route.reason or "")
            self.respond(txn, make_response(request, route.status, route.reason, to_tag=new_branch()[7:15],
                                            headers=route.headers))
            return
        self.respond(txn, make_response(request, 100))
        try:
            uas = UasLeg(self, txn, peer, label=f"{request.call_id}/caller")
        except Exception as exc:  # no Contact in the INVITE
            self.respond(txn, make_response(request, 400, f"Bad Request ({exc})"))
            return
        if isinstance(route, ServiceRoute):
            app = AppCall(self, route.account, uas, user=route.caller, channel=route.channel, code=route.code,
                          dialled=route.dialled)
            self.calls.add(app)
            log.info("[%s] service %s (%s) from %s", app.call_id, route.dialled, route.code.name,
                     route.channel.username)
            self.spawn(run_service(self, app))
            return
        call = Call(self, route.account, route.caller, None, uas,
                    caller_channel=route.channel.username if route.channel else f"trunk:{route.trunk}",
                    dialled=route.dialled)
        call.caller_number, call.caller_name = route.caller_number, route.caller_name
        call.caller_anonymous, call.display_prefix = route.anonymous, route.display_prefix
        self.calls.add(call)
        log.info("[%s] call %s (%s) -> %s", call.call_id, route.caller_number or "anonymous", route.caller_name,
                 route.dialled)
        self.spawn(call.run(route.destination))


def tune_gc() -> None:
    """The daemon holds tens of thousands of live objects (transactions linger 32 s for
    retransmissions), and CPython's default gen-0 threshold (700 allocations) then runs
    collections that walk them many times a second. Objects created at start-up are frozen
    out of collection, and collections run less often; memory held by cycles is reclaimed
    a little later, which a long-running server can afford."""
    gc.collect()
    gc.freeze()
    gc.set_threshold(GC_THRESHOLD, 20, 100)


async def serve(*, store_path: str, host: str = "0.0.0.0", sip_port: int = 5060,
                rtp_ports: tuple[int, int] = (10000, 20000), trace_sip: bool = False,
                rtp_timeout: float = 60.0, digest_algorithms: tuple[str, ...] = DIGEST_ALGORITHMS,
                stop: asyncio.Event | None = None) -> None:
    store = Store(store_path)
    media = MediaEngine(host, rtp_ports, rtp_timeout=rtp_timeout)
    core = SipCore(store, media, trace=trace_sip, digest_algorithms=digest_algorithms)
    await core.start(host, sip_port)
    tune_gc()
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass
    log.info("softswitch ready: SIP %s:%s, RTP %s-%s, database %s", host, core.transport.port if core.transport else sip_port,
             rtp_ports[0], rtp_ports[1], store_path)
    try:
        await stop.wait()
    finally:
        log.info("stopping")
        await core.shutdown()
        store.close()


class JsonLogFormatter(logging.Formatter):
    """One JSON object per line (for journald/Loki/ELK): time, level, logger, message, and the
    call id when the message starts with ``[call-id]`` as call-control messages do."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        entry: dict[str, Any] = {
            "ts": self.formatTime(record, "%Y-%m-%dT%H:%M:%S") + f".{int(record.msecs):03d}Z",
            "level": record.levelname, "logger": record.name, "msg": message,
        }
        if message.startswith("[") and "] " in message:
            entry["call_id"] = message[1:message.index("] ")]
        if record.exc_info:
            entry["exc"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


def setup_logging(level: str = "INFO", fmt: str = "text") -> None:
    handler = logging.StreamHandler()
    if fmt == "json":
        formatter: logging.Formatter = JsonLogFormatter()
        formatter.converter = time.gmtime  # type: ignore[assignment]
        handler.setFormatter(formatter)
    else:
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(getattr(logging, level.upper(), logging.INFO))


def run(*, store_path: str, host: str = "0.0.0.0", sip_port: int = 5060, rtp_ports: tuple[int, int] = (10000, 20000),
        log_level: str = "INFO", trace_sip: bool = False, rtp_timeout: float = 60.0,
        digest_algorithms: tuple[str, ...] = DIGEST_ALGORITHMS, log_format: str = "text") -> None:
    """Run the daemon until SIGTERM/SIGINT (the ``softswitch serve`` command)."""
    setup_logging(log_level, log_format)
    if trace_sip:
        logging.getLogger("softswitch.trace").setLevel(logging.DEBUG)
    try:
        import uvloop
    except ImportError:
        uvloop = None
    coro = serve(store_path=store_path, host=host, sip_port=sip_port, rtp_ports=rtp_ports,
                 trace_sip=trace_sip, rtp_timeout=rtp_timeout, digest_algorithms=digest_algorithms)
    if uvloop is not None:
        uvloop.run(coro)
        log.info("stopped (uvloop)")
    else:
        asyncio.run(coro)
        log.info("stopped")
