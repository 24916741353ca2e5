"""The sans-IO SIP endpoint: bytes and ``now`` in; events, datagrams and a deadline out.

Owns the transaction layer (RFC 3261 §17): it parses what the shell received, answers what
cannot be processed (400/505/416/420 statelessly, §8.2), matches requests and responses to
transactions (§17.1.3, §17.2.3, with RFC 2543 fall-back matching, §17.2.3 last paragraph),
absorbs retransmissions and adds ``received``/``rport`` to the top Via (§18.2.1, RFC 3581).

The shell (``softswitch.transport``) calls::

    endpoint.receive(data, peer, now)          # every datagram / framed stream message
    endpoint.handle_timer(now)                 # when endpoint.next_deadline() has passed
    for data, peer in endpoint.datagrams_to_send(): ...
    for event in endpoint.events(): ...        # RequestReceived, ResponseReceived, …

Responses are sent to the address the request came from (symmetric response routing, as
RFC 3581 asks for ``rport``; we do it always, which is what phones behind NAT need).
"""
from __future__ import annotations

import heapq
import logging
import secrets
from dataclasses import dataclass
from typing import Callable, Iterator, Union

from .errors import BadExtension, ParseError, SipError
from .headers import Via, split_list
from .message import Request, Response, make_response, parse_message
from .transaction import (
    AckMissing, ClientTransaction, InviteClientTransaction, InviteServerTransaction,
    NonInviteClientTransaction, NonInviteServerTransaction, Peer, ResponseReceived, ServerTransaction,
    State, Transaction, TransactionTerminated, TransactionTimedOut,
)

log = logging.getLogger(__name__)

MAGIC_COOKIE = "z9hG4bK"
MAX_TRANSACTIONS = 100_000  # beyond this, new requests get 503 (a flood must not eat memory)


@dataclass(frozen=True)
class RequestReceived:
    """A new request for the TU. ``transaction`` is None for an ACK to a 2xx (§17.2.1 end)."""

    request: Request
    transaction: ServerTransaction | None
    peer: Peer


@dataclass(frozen=True)
class StrayResponseReceived:
    """A response that matched no client transaction (e.g. a 2xx retransmitted after Timer M)."""

    response: Response
    peer: Peer


@dataclass(frozen=True)
class MessageRejected:
    """A message we could not process; ``status`` is what we answered (0: dropped)."""

    reason: str
    status: int
    peer: Peer


EndpointEvent = Union[RequestReceived, StrayResponseReceived, MessageRejected, ResponseReceived,
                      TransactionTimedOut, AckMissing, TransactionTerminated]


def new_branch() -> str:
    return MAGIC_COOKIE + secrets.token_hex(8)


class SipEndpoint:
    def __init__(self, *, supported: frozenset[str] = frozenset({"replaces", "norefersub"}),
                 branch_factory: Callable[[], str] = new_branch, server_name: str = "softswitch"):
        self.supported = supported
        self.branch_factory = branch_factory
        self.server_name = server_name
        self.server_txns: dict[tuple, ServerTransaction] = {}
        self.client_txns: dict[tuple, ClientTransaction] = {}
        self._accepted: dict[tuple[str, int], InviteServerTransaction] = {}  # (call-id, cseq) → 2xx awaiting ACK
        self._events: list[EndpointEvent] = []
        self._outbox: list[tuple[bytes, Peer]] = []
        self._timers: list[tuple[float, int, Transaction]] = []  # heap of (deadline, id, txn)
        self._dirty: list[Transaction] = []
        self.stats = {"received": 0, "parse_errors": 0, "retransmissions_absorbed": 0, "rejected": 0}

    # ------------------------------------------------------------------ outputs
    def events(self) -> Iterator[EndpointEvent]:
        self._collect()
        while self._events:
            batch, self._events = self._events, []
            yield from batch
            self._collect()

    def datagrams_to_send(self) -> list[tuple[bytes, Peer]]:
        self._collect()
        out, self._outbox = self._outbox, []
        return out

    def next_deadline(self) -> float | None:
        self._collect()
        while self._timers:
            deadline, _, txn = self._timers[0]
            if txn.next_deadline() == deadline and not txn.terminated:
                return deadline
            heapq.heappop(self._timers)  # stale entry: the transaction moved on
        return None

    def handle_timer(self, now: float) -> None:
        self._collect()
        while self._timers and self._timers[0][0] <= now:
            _, _, txn = heapq.heappop(self._timers)
            if not txn.terminated:
                txn.timer_fired(now)
                self._touch(txn)
        self._collect()

    # ------------------------------------------------------------------ inputs
    def receive(self, data: bytes, peer: Peer, now: float, *, datagram: bool = True) -> None:
        if len(data) < 4 or not data.strip():
            return  # keep-alive (CRLF ping, empty or short UDP packet)
        self.stats["received"] += 1
        try:
            message = parse_message(data, datagram=datagram)
        except SipError as exc:
            self.stats["parse_errors"] += 1
            partial = getattr(exc, "message", None)
            if isinstance(partial, Request) and partial.method != "ACK":
                self._reject(partial, exc, peer)
            else:
                log.debug("dropped unparseable message from %s: %s", peer, exc)
                self._events.append(MessageRejected(str(exc), 0, peer))
            return
        if isinstance(message, Response):
            self._receive_response(message, peer, now)
        else:
            self._receive_request(message, peer, now)

    def _receive_response(self, response: Response, peer: Peer, now: float) -> None:
        try:
            response.check()
            key = (response.top_via.branch or "", response.cseq.method)
        except SipError as exc:
            log.debug("dropped malformed response from %s: %s", peer, exc)
            self._events.append(MessageRejected(str(exc), 0, peer))
            return
        txn = self.client_txns.get(key)
        if txn is None:
            self._events.append(StrayResponseReceived(response, peer))
            return
        txn.response_received(response, now)  # type: ignore[attr-defined]
        self._touch(txn)

    def _receive_request(self, request: Request, peer: Peer, now: float) -> None:
        if request.method != "ACK" and self._absorb_retransmission(request, peer, now):
            return
        try:
            request.check()
            _stamp_via(request, peer)
            key = self._server_key(request, peer)
        except SipError as exc:
            if request.method != "ACK":
                try:
                    _stamp_via(request, peer)  # so the error response carries received/rport
                except SipError:
                    pass
                self._reject(request, exc, peer)
            else:  # §17: an ACK is never answered
                self._events.append(MessageRejected(str(exc), 0, peer))
            return
        txn = self.server_txns.get(key)
        if request.method == "ACK":
            # An ACK matching an INVITE transaction in Accepted (RFC 2543 matching, or a UA
            # reusing the INVITE branch) acknowledges the 2xx: it belongs to the TU (RFC 6026 §8.7).
            if txn is not None and txn.state is not State.ACCEPTED:
                txn.request_received(request, now)  # type: ignore[attr-defined]
                self._touch(txn)
                return
            accepted = self._accepted.pop((request.call_id, request.cseq.seq), None)
            if accepted is None and isinstance(txn, InviteServerTransaction):
                accepted = txn
            if accepted is not None:
                accepted.ack_2xx_received(now)
                self._touch(accepted)
            self._events.append(RequestReceived(request, None, peer))
            return
        if txn is not None:
            self.stats["retransmissions_absorbed"] += 1
            txn.request_received(request, now)  # type: ignore[attr-defined]
            self._touch(txn)
            return
        if request.method not in ("CANCEL",):
            # option tags compare case-insensitively; Unsupported echoes them as received
            supported = {t.lower() for t in self.supported}
            unsupported = [t for t in _option_tags(request, "Require") if t.lower() not in supported]
            if unsupported:
                self._reject(request, BadExtension(unsupported), peer)
                return
        if len(self.server_txns) >= MAX_TRANSACTIONS:
            self._reject(request, SipError("overloaded", status_code=503, reason="Service Unavailable"), peer)
            return
        cls = InviteServerTransaction if request.method == "INVITE" else NonInviteServerTransaction
        txn = cls(request, peer, key, now)
        txn.on_sent = self._server_sent
        self.server_txns[key] = txn
        self._events.append(RequestReceived(request, txn, peer))

    def _absorb_retransmission(self, request: Request, peer: Peer, now: float) -> bool:
        """Cheap path for a retransmitted request (§17.2.3): with an RFC 3261 branch only the
        top Via and the method identify the transaction, so a retransmission is answered
        without validating the whole message again — under overload, retransmissions are
        most of the traffic and must not cost a full parse."""
        try:
            branch = request.top_via.branch
            if not branch or not branch.startswith(MAGIC_COOKIE) or len(branch) == len(MAGIC_COOKIE):
                return False
            txn = self.server_txns.get(self._server_key(request, peer))
        except SipError:
            return False
        if txn is None:
            return False
        self.stats["retransmissions_absorbed"] += 1
        txn.request_received(request, now)  # type: ignore[attr-defined]
        self._touch(txn)
        return True

    def _reject(self, request: Request, exc: SipError, peer: Peer) -> None:
        """Answer a request we cannot process, statelessly (§8.2; RFC 4475 §3.1.2, §3.3)."""
        self.stats["rejected"] += 1
        if not request.headers.fields("Via"):
            log.debug("cannot answer request without Via from %s: %s", peer, exc)
            self._events.append(MessageRejected(str(exc), 0, peer))
            return
        extra: list[tuple[str, str]] = []
        if isinstance(exc, BadExtension):
            extra.append(("Unsupported", ", ".join(exc.tags)))
        response = make_response(request, exc.status_code, exc.reason_phrase, to_tag=secrets.token_hex(4),
                                 headers=extra)
        if response.status == 400 and not response.headers.fields("Call-ID"):
            pass  # RFC 4475 §3.3.1: answer what we can even without Call-ID/From/To
        log.info("rejected %s from %s:%s with %s: %s", request.method, peer[1], peer[2], exc.status_code, exc)
        self._outbox.append((response.serialize(), peer))
        self._events.append(MessageRejected(str(exc), exc.status_code, peer))

    # ------------------------------------------------------------------ TU API
    def send_request(self, request: Request, peer: Peer, now: float, *, local_via: str | None = None) -> ClientTransaction:
        """Start a client transaction. Adds a top Via with a fresh branch when ``local_via`` is given
        (``"SIP/2.0/UDP host:port"``); otherwise the request must carry its Via already."""
        if local_via is not None:
            request.headers.prepend("Via", f"{local_via};branch={self.branch_factory()};rport")
            request.invalidate()
        cls = InviteClientTransaction if request.method == "INVITE" else NonInviteClientTransaction
        txn = cls(request, peer, now)
        self.client_txns[txn.key] = txn
        self._touch(txn)
        return txn

    def respond(self, txn: ServerTransaction, response: Response, now: float) -> None:
        txn.send(response, now)
        if txn.on_sent is None:  # a transaction the endpoint did not create
            self._server_sent(txn)

    def _server_sent(self, txn: ServerTransaction) -> None:
        """Called after every send on our server transactions (also ``txn.respond()``)."""
        if isinstance(txn, InviteServerTransaction) and txn.state is State.ACCEPTED:
            self._accepted[(txn.request.call_id, txn.request.cseq.seq)] = txn
        self._touch(txn)

    def send_stateless(self, message: Request | Response, peer: Peer) -> None:
        """ACK for a 2xx (§13.2.2.4) and other messages outside any transaction."""
        self._outbox.append((message.serialize(), peer))

    def find_invite_server(self, cancel: Request, peer: Peer | None = None) -> InviteServerTransaction | None:
        """§9.2: the INVITE transaction a CANCEL refers to (same branch/sent-by, method INVITE;
        from the same source when ``peer`` is given)."""
        try:
            if peer is not None:
                txn = self.server_txns.get(self._server_key(cancel, peer, method="INVITE"))
            else:
                rfc = self._rfc_key(cancel, "INVITE")
                txn = next((t for k, t in self.server_txns.items() if k[:-1] == rfc), None)
        except SipError:
            return None
        return txn if isinstance(txn, InviteServerTransaction) else None

    # ------------------------------------------------------------------ internals
    def _server_key(self, request: Request, peer: Peer, method: str | None = None) -> tuple:
        """§17.2.3 matching, plus the source address: retransmissions come from the same
        place, while two clients (say behind different NATs) whose branches collide, or a
        third party replaying a branch, must not share a transaction."""
        return (*self._rfc_key(request, method), peer)

    def _rfc_key(self, request: Request, method: str | None) -> tuple:
        via = request.top_via
        m = method or ("INVITE" if request.method == "ACK" else request.method)
        branch = via.branch
        # A bare "z9hG4bK" carries no transaction identifier (RFC 4475 §3.2.1 badbranch):
        # fall back to RFC 2543 matching rather than merge every such request into one key.
        if branch and branch.startswith(MAGIC_COOKIE) and len(branch) > len(MAGIC_COOKIE):
            return (branch, via.host.lower(), via.port, m)
        # RFC 2543 matching (§17.2.3): Request-URI, To tag, From tag, Call-ID, CSeq, top Via
        return (request.call_id, request.from_.tag, request.cseq.seq, str(via).lower(), m)

    def _touch(self, txn: Transaction) -> None:
        self._dirty.append(txn)

    def _collect(self) -> None:
        while self._dirty:
            dirty, self._dirty = self._dirty, []
            for txn in dirty:
                if txn.outbox:
                    self._outbox.extend(txn.outbox)
                    txn.outbox.clear()
                if txn.events:
                    self._events.extend(txn.events)
                    txn.events.clear()
                if txn.terminated:
                    self._forget(txn)
                    continue
                deadline = txn.next_deadline()
                if deadline is not None:
                    heapq.heappush(self._timers, (deadline, id(txn), txn))

    def _forget(self, txn: Transaction) -> None:
        if isinstance(txn, ServerTransaction):
            if self.server_txns.get(txn.key) is txn:
                del self.server_txns[txn.key]
            if isinstance(txn, InviteServerTransaction):
                k = (txn.request.call_id, txn.request.cseq.seq)
                if self._accepted.get(k) is txn:
                    del self._accepted[k]
        elif self.client_txns.get(txn.key) is txn:
            del self.client_txns[txn.key]


def _stamp_via(request: Request, peer: Peer) -> None:
    """§18.2.1 received, RFC 3581 §4 rport: record where the request really came from."""
    fields = request.headers.fields("Via")
    if not fields:
        raise ParseError("missing Via header")
    via = request.top_via
    changed = False
    params = dict(via.params)
    if via.host != peer[1]:
        params["received"] = peer[1]
        changed = True
    if "rport" in params and params["rport"] is None:
        params["rport"] = str(peer[2])
        params["received"] = peer[1]
        changed = True
    if not changed:
        return
    stamped = Via(via.transport, via.host, via.port, params, via.protocol)
    new_top = str(stamped)
    items = request.headers._items
    for i, (name, value) in enumerate(items):
        if name == "Via":
            # only the first value of the first Via field changes; split just that one
            rest = split_list(value)[1:] if "," in value else []
            items[i] = (name, ", ".join([new_top, *rest]))
            index = request.headers._index
            if index is not None:  # keep the lookup index in step (the first Via field moved)
                index["Via"][0] = items[i][1]
            break
    # keep the parsed view in step instead of re-parsing every Via
    request._cache["vias"] = [stamped, *request.vias[1:]]


def _option_tags(request: Request, name: str) -> list[str]:
    return [t.strip() for t in request.headers.values(name) if t.strip()]
