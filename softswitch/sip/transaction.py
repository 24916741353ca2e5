"""The four transaction state machines of RFC 3261 §17, with RFC 6026's Accepted state.

Sans-IO: a transaction never sleeps or reads a clock. Every entry point takes ``now``;
messages to transmit are appended to ``outbox`` and facts for the transaction user (TU)
to ``events``; ``next_deadline()`` says when ``timer_fired(now)`` must be called next.

    INVITE client (§17.1.1, RFC 6026 §8.4)    Calling → Proceeding → Completed → Terminated
                                                               └──(2xx)→ Accepted → Terminated
    non-INVITE client (§17.1.2)               Trying → Proceeding → Completed → Terminated
    INVITE server (§17.2.1, RFC 6026 §8.7)    Proceeding → Completed → Confirmed → Terminated
                                                     └──(2xx)→ Accepted → Terminated
    non-INVITE server (§17.2.2)               Trying → Proceeding → Completed → Terminated

Timers (Table 4 of RFC 3261): A/E/G retransmit over unreliable transports only, doubling
up to T2; B/F/H/J = 64·T1 give up; D = 32 s (UDP), I/K = T4 absorb retransmissions;
L/M = 64·T1 (RFC 6026) absorb retransmitted INVITEs / 2xx after acceptance.
"""
from __future__ import annotations

import enum
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Callable, Optional, Union

from .message import Request, Response, make_response

T1 = 0.5  # RTT estimate (s)
T2 = 4.0  # maximum retransmit interval for non-INVITE requests and INVITE responses (s)
T4 = 5.0  # maximum duration a message remains in the network (s)
TIMER_D_UDP = 32.0
INVITE_SERVER_GUARD = 3600.0  # an INVITE left without a final response this long is dropped  # §17.1.1.2: "at least 32 seconds for unreliable transports"

Peer = tuple[str, str, int]  # (transport "udp"/"tcp", host, port)


class State(enum.Enum):
    CALLING = "Calling"
    TRYING = "Trying"
    PROCEEDING = "Proceeding"
    COMPLETED = "Completed"
    CONFIRMED = "Confirmed"
    ACCEPTED = "Accepted"
    TERMINATED = "Terminated"


# --- events handed to the transaction user (facts, past tense) ---
@dataclass(frozen=True)
class ResponseReceived:
    """A response matched this client transaction and is passed up (§17.1.1.2, §17.1.2.2)."""

    transaction: "ClientTransaction"
    response: Response


@dataclass(frozen=True)
class TransactionTimedOut:
    """Timer B or F fired: no final response (the TU treats it as 408, §8.1.3.1)."""

    transaction: "Transaction"


@dataclass(frozen=True)
class AckMissing:
    """Timer H (or L) fired on an INVITE server transaction: the ACK never came (§13.3.1.4)."""

    transaction: "ServerTransaction"


@dataclass(frozen=True)
class TransactionTerminated:
    transaction: "Transaction"


Event = Union[ResponseReceived, TransactionTimedOut, AckMissing, TransactionTerminated]


class Transaction:
    """What the four machines share: identity, outbox, events and named deadlines."""

    kind = "transaction"

    def __init__(self, request: Request, peer: Peer, key: tuple, now: float):
        self.request = request
        self.peer = peer
        self.key = key
        self.reliable = peer[0] != "udp"
        self.state: State = State.TERMINATED
        self.created = now
        self.outbox: list[tuple[bytes, Peer]] = []
        self.events: list[Event] = []
        self.timers: dict[str, float] = {}
        self.intervals: dict[str, float] = {}
        self.user_data: object = None  # for the TU (the leg/session that owns it)

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.request.method} {self.state.value} key={self.key[0]}>"

    @property
    def terminated(self) -> bool:
        return self.state is State.TERMINATED

    def next_deadline(self) -> float | None:
        return min(self.timers.values()) if self.timers else None

    def timer_fired(self, now: float) -> None:
        """Run every timer whose deadline has passed (in deadline order)."""
        for name, deadline in sorted(self.timers.items(), key=lambda kv: kv[1]):
            if deadline <= now and self.timers.get(name) == deadline:
                del self.timers[name]
                getattr(self, f"_on_timer_{name}")(now)

    def _start(self, name: str, now: float, delay: float) -> None:
        self.timers[name] = now + delay

    def _terminate(self) -> None:
        self.state = State.TERMINATED
        self.timers.clear()
        self.events.append(TransactionTerminated(self))

    def _transmit(self, data: bytes) -> None:
        self.outbox.append((data, self.peer))


# ======================================================================================
# Client transactions
# ======================================================================================

class ClientTransaction(Transaction):
    def __init__(self, request: Request, peer: Peer, now: float):
        branch = request.top_via.branch or ""
        super().__init__(request, peer, (branch, request.cseq.method), now)
        self._wire = request.serialize()
        self.last_response: Response | None = None

    def cancel_request(self) -> Request:
        """Build the CANCEL for this INVITE (§9.1): same Request-URI, Call-ID, From, To, CSeq number, top Via."""
        from .message import Headers

        h = Headers()
        h.add("Via", self.request.headers.values("Via")[0])
        for name in ("Route",):
            for v in self.request.headers.fields(name):
                h.add(name, v)
        h.add("Max-Forwards", "70")
        for name in ("From", "To", "Call-ID"):
            h.add(name, self.request.headers.get(name) or "")
        h.add("CSeq", f"{self.request.cseq.seq} CANCEL")
        return Request("CANCEL", self.request.uri_text, h)


class InviteClientTransaction(ClientTransaction):
    """§17.1.1 with RFC 6026: 2xx moves to Accepted so retransmitted 2xx reach the TU."""

    kind = "invite-client"

    def __init__(self, request: Request, peer: Peer, now: float):
        super().__init__(request, peer, now)
        self.state = State.CALLING
        self._transmit(self._wire)
        if not self.reliable:
            self.intervals["A"] = T1
            self._start("A", now, T1)
        self._start("B", now, 64 * T1)

    def response_received(self, response: Response, now: float) -> None:
        code = response.status
        st = self.state
        if st in (State.CALLING, State.PROCEEDING):
            self.last_response = response
            if code < 200:
                self.state = State.PROCEEDING
                # §17.1.1.2: a provisional response stops retransmissions; Timer B only
                # guards the Calling state (the TU's own timer limits ringing time).
                self.timers.pop("A", None)
                self.timers.pop("B", None)
                self.events.append(ResponseReceived(self, response))
            elif code < 300:
                self.state = State.ACCEPTED
                self.timers.clear()
                self._start("M", now, 64 * T1)
                self.events.append(ResponseReceived(self, response))
            else:
                self.state = State.COMPLETED
                self.timers.clear()
                self._transmit(self._ack_for(response).serialize())
                self._start("D", now, 0.0 if self.reliable else TIMER_D_UDP)
                self.events.append(ResponseReceived(self, response))
        elif st is State.ACCEPTED and 200 <= code < 300:
            # RFC 6026 §8.4: retransmitted 2xx go to the TU, which re-sends its ACK
            self.events.append(ResponseReceived(self, response))
        elif st is State.COMPLETED and code >= 300:
            self._transmit(self._ack_for(response).serialize())  # retransmitted final: ACK again

    def _ack_for(self, response: Response) -> Request:
        """§17.1.1.3: the ACK for a non-2xx final response, sent by the transaction."""
        from .message import Headers

        h = Headers()
        h.add("Via", self.request.headers.values("Via")[0])
        for v in self.request.headers.fields("Route"):
            h.add("Route", v)
        h.add("Max-Forwards", "70")
        h.add("From", self.request.headers.get("From") or "")
        h.add("To", response.headers.get("To") or "")
        h.add("Call-ID", self.request.call_id)
        h.add("CSeq", f"{self.request.cseq.seq} ACK")
        return Request("ACK", self.request.uri_text, h)

    def _on_timer_A(self, now: float) -> None:
        if self.state is State.CALLING:
            self._transmit(self._wire)
            self.intervals["A"] *= 2
            self._start("A", now, self.intervals["A"])

    def _on_timer_B(self, now: float) -> None:
        if self.state is State.CALLING:
            self.events.append(TransactionTimedOut(self))
            self._terminate()

    def _on_timer_D(self, now: float) -> None:
        self._terminate()

    def _on_timer_M(self, now: float) -> None:
        self._terminate()


class NonInviteClientTransaction(ClientTransaction):
    kind = "non-invite-client"

    def __init__(self, request: Request, peer: Peer, now: float):
        super().__init__(request, peer, now)
        self.state = State.TRYING
        self._transmit(self._wire)
        if not self.reliable:
            self.intervals["E"] = T1
            self._start("E", now, T1)
        self._start("F", now, 64 * T1)

    def response_received(self, response: Response, now: float) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return  # Completed: retransmissions of the final response are absorbed
        self.last_response = response
        if response.status < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self.timers.clear()
            self._start("K", now, 0.0 if self.reliable else T4)
        self.events.append(ResponseReceived(self, response))

    def _on_timer_E(self, now: float) -> None:
        if self.state in (State.TRYING, State.PROCEEDING):
            self._transmit(self._wire)
            # §17.1.2.2: in Proceeding the interval is T2; in Trying it doubles up to T2
            nxt = T2 if self.state is State.PROCEEDING else min(2 * self.intervals["E"], T2)
            self.intervals["E"] = nxt
            self._start("E", now, nxt)

    def _on_timer_F(self, now: float) -> None:
        if self.state in (State.TRYING, State.PROCEEDING):
            self.events.append(TransactionTimedOut(self))
            self._terminate()

    def _on_timer_K(self, now: float) -> None:
        self._terminate()


# ======================================================================================
# Server transactions
# ======================================================================================

class ServerTransaction(Transaction, ABC):
    def __init__(self, request: Request, peer: Peer, key: tuple, now: float):
        super().__init__(request, peer, key, now)
        self.last_response: Response | None = None
        self._last_wire: bytes | None = None
        self.to_tag: str | None = None  # the tag our responses carry (set by the TU)
        # Set by the endpoint: told after every send so that responses sent through
        # ``txn.respond()``/``txn.send()`` reach the wire and the timer heap too.
        self.on_sent: Optional[Callable[["ServerTransaction"], None]] = None

    def respond(self, status: int, reason: str | None = None, *, headers=(), body: bytes = b"",
                now: float) -> Response:
        """Convenience: build a response from the request (with our To tag) and send it."""
        response = make_response(self.request, status, reason, to_tag=self.to_tag, headers=headers, body=body)
        self.send(response, now)
        return response

    def send(self, response: Response, now: float) -> None:
        """Send a response through the machine (ignored once a final response went out)."""
        self._send(response, now)
        if self.on_sent is not None:
            self.on_sent(self)

    @abstractmethod
    def _send(self, response: Response, now: float) -> None:
        """The machine's transition for a response the TU sends (§17.2.1, §17.2.2)."""


class InviteServerTransaction(ServerTransaction):
    kind = "invite-server"

    def __init__(self, request: Request, peer: Peer, key: tuple, now: float):
        super().__init__(request, peer, key, now)
        self.state = State.PROCEEDING
        self.ack_seen = False  # the ACK for our 2xx arrived (Accepted state)
        self._start("guard", now, INVITE_SERVER_GUARD)

    def _send(self, response: Response, now: float) -> None:
        if self.state is not State.PROCEEDING:
            return  # a final response was already sent: nothing more may go out
        self.last_response = response
        self._last_wire = response.serialize()
        if response.status >= 200:
            self.timers.pop("guard", None)
        self._transmit(self._last_wire)
        code = response.status
        if code < 200:
            return
        if code < 300:
            # RFC 6026 §8.7: Accepted; the 2xx is retransmitted until the ACK (§13.3.1.4)
            self.state = State.ACCEPTED
            if not self.reliable:
                self.intervals["G"] = T1
                self._start("G", now, T1)
            self._start("L", now, 64 * T1)
        else:
            self.state = State.COMPLETED
            if not self.reliable:
                self.intervals["G"] = T1
                self._start("G", now, T1)
            self._start("H", now, 64 * T1)

    def request_received(self, request: Request, now: float) -> None:
        """A retransmitted INVITE, or the ACK for a non-2xx final response."""
        if request.method == "ACK":
            if self.state is State.ACCEPTED:
                self.ack_2xx_received(now)  # RFC 6026 §8.7: the TU gets it too (endpoint)
            elif self.state is State.COMPLETED:
                self.state = State.CONFIRMED
                self.timers.pop("G", None)
                self.timers.pop("H", None)
                self._start("I", now, 0.0 if self.reliable else T4)
            return
        if self._last_wire is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            self._transmit(self._last_wire)  # §17.2.1: retransmit the most recent response

    def ack_2xx_received(self, now: float) -> None:
        """The TU matched the ACK for our 2xx (different branch, §17.1.1.3): stop retransmitting."""
        self.ack_seen = True
        self.timers.pop("G", None)

    def _on_timer_G(self, now: float) -> None:
        if self.state in (State.COMPLETED, State.ACCEPTED) and self._last_wire is not None:
            self._transmit(self._last_wire)
            self.intervals["G"] = min(2 * self.intervals["G"], T2)
            self._start("G", now, self.intervals["G"])

    def _on_timer_H(self, now: float) -> None:
        if self.state is State.COMPLETED:
            self.events.append(AckMissing(self))
            self._terminate()

    def _on_timer_guard(self, now: float) -> None:
        if self.state is State.PROCEEDING:
            self._terminate()

    def _on_timer_I(self, now: float) -> None:
        self._terminate()

    def _on_timer_L(self, now: float) -> None:
        if not self.ack_seen:
            # 64·T1 without the ACK for our 2xx (§13.3.1.4); over TCP no G ran, still report it
            self.events.append(AckMissing(self))
        self._terminate()


class NonInviteServerTransaction(ServerTransaction):
    kind = "non-invite-server"

    def __init__(self, request: Request, peer: Peer, key: tuple, now: float):
        super().__init__(request, peer, key, now)
        self.state = State.TRYING
        # Not in RFC 3261: a transaction the TU never answers (a bug of ours) must not stay
        # in memory forever. The client gives up after Timer F (64·T1); so do we.
        self._start("guard", now, 64 * T1)

    def _send(self, response: Response, now: float) -> None:
        if self.state not in (State.TRYING, State.PROCEEDING):
            return
        self.last_response = response
        self._last_wire = response.serialize()
        if response.status >= 200:
            self.timers.pop("guard", None)
        self._transmit(self._last_wire)
        if response.status < 200:
            self.state = State.PROCEEDING
        else:
            self.state = State.COMPLETED
            self._start("J", now, 0.0 if self.reliable else 64 * T1)

    def request_received(self, request: Request, now: float) -> None:
        if self._last_wire is not None and self.state in (State.PROCEEDING, State.COMPLETED):
            self._transmit(self._last_wire)

    def _on_timer_J(self, now: float) -> None:
        self._terminate()

    def _on_timer_guard(self, now: float) -> None:
        if self.state in (State.TRYING, State.PROCEEDING):
            self._terminate()
