"""One leg of a call: an INVITE session towards one device (RFC 3261 §13–§15).

``UasLeg`` faces the caller (we received the INVITE), ``UacLeg`` faces a callee (we sent
it). Both keep a dialog once established and handle what arrives inside it: BYE, re-INVITE,
INFO, OPTIONS, ACK. What a request *means* for the call (forward a re-INVITE to the other
leg, end both legs on BYE) is decided by the leg's ``owner`` — the ``Call`` — through the
small ``LegOwner`` protocol, in the spirit of sippy's neutral call-control events.

Legs are driven by the dispatcher in ``softswitch.server`` (requests, responses, timeouts)
and by the call's coroutine (``await leg.invite()``, ``await leg.answer(sdp)``, …).
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from typing import TYPE_CHECKING, Iterable, Protocol

from .sip.dialog import Dialog
from .sip.endpoint import RequestReceived
from .sip.message import Request, Response, make_response
from .sip.transaction import (
    AckMissing, ClientTransaction, InviteServerTransaction, Peer, ResponseReceived, ServerTransaction,
    TransactionTimedOut,
)

if TYPE_CHECKING:
    from .server import SipCore

log = logging.getLogger(__name__)

ACK_TIMEOUT = 32.0  # §13.3.1.4: 64·T1 without ACK → the session is not established
ALLOW = "INVITE, ACK, CANCEL, BYE, OPTIONS, INFO, REFER, NOTIFY, REGISTER"


class LegOwner(Protocol):
    """What a leg reports to the call that owns it."""

    def leg_provisional(self, leg: "UacLeg", response: Response) -> None: ...
    def leg_ended(self, leg: "Leg", reason: str) -> None: ...
    async def leg_reinvite(self, leg: "Leg", request: Request, txn: ServerTransaction) -> None: ...
    def leg_info(self, leg: "Leg", request: Request) -> None: ...
    async def leg_refer(self, leg: "Leg", request: Request, txn: ServerTransaction) -> None: ...


class Leg:
    role = "leg"

    def __init__(self, core: "SipCore", peer: Peer, label: str):
        self.core = core
        self.peer = peer
        self.label = label
        self.dialog: Dialog | None = None
        self.owner: LegOwner | None = None
        self.state = "init"  # init, early, confirmed, terminated
        self.sdp_session_id = secrets.randbelow(2**31)
        self.sdp_version = 0
        self.remote_sdp: bytes = b""
        self._reinvite_busy = False
        self._ack_waiter: asyncio.Future[Request] | None = None
        self._pending: dict[ClientTransaction, asyncio.Future[Response]] = {}
        self.user_agent = ""

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.label} {self.state}>"

    @property
    def call_id(self) -> str:
        return self.dialog.call_id if self.dialog else ""

    def next_sdp_version(self) -> int:
        self.sdp_version += 1
        return self.sdp_version

    # ------------------------------------------------------------------ sending
    def send(self, request: Request, *, timeout_status: int = 408) -> asyncio.Future[Response]:
        """Start a client transaction; the future resolves with its final response
        (a synthetic 408 on timeout, §8.1.3.1)."""
        fut: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        txn = self.core.send_request(request, self.peer, self)
        self._pending[txn] = fut
        return fut

    async def request(self, method: str, *, body: bytes = b"", content_type: str | None = None,
                      headers: Iterable[tuple[str, str]] = ()) -> Response:
        assert self.dialog is not None
        req = self.dialog.create_request(method, body=body, content_type=content_type, headers=headers)
        return await self.send(req)

    async def bye(self, reason: str | None = None) -> None:
        """End the dialog (§15.1.1); idempotent."""
        if self.state == "terminated" or self.dialog is None:
            self.state = "terminated"
            self.core.forget_leg(self)
            return
        self.state = "terminated"
        headers = [("Reason", reason)] if reason else []
        try:
            await asyncio.wait_for(self.request("BYE", headers=headers), 40)
        except asyncio.TimeoutError:
            pass
        finally:
            self.core.forget_leg(self)

    async def reinvite(self, sdp: bytes) -> Response:
        """Send a re-INVITE with an offer (§14.1); ACK its 2xx at once."""
        assert self.dialog is not None
        if self._reinvite_busy:
            return make_response(Request("INVITE", "sip:invalid"), 491)
        self._reinvite_busy = True
        try:
            req = self.dialog.create_request("INVITE", body=sdp)
            response = await self.send(req)
            if 200 <= response.status < 300:
                self.dialog.update_target(response)
                self.remote_sdp = response.body
                self._send_ack(req.cseq.seq, b"")
            return response
        finally:
            self._reinvite_busy = False

    def _send_ack(self, cseq: int, body: bytes) -> None:
        assert self.dialog is not None
        ack = self.dialog.create_request("ACK", cseq=cseq, body=body)
        ack.headers.prepend("Via", f"{self.core.local_via(self.peer)};branch={self.core.new_branch()};rport")
        self.core.send_stateless(ack, self.peer)

    # ------------------------------------------------------------------ receiving
    def on_transaction_event(self, event: object) -> None:
        if isinstance(event, ResponseReceived):
            self.on_response(event.transaction, event.response)
        elif isinstance(event, TransactionTimedOut):
            txn = event.transaction
            fut = self._pending.pop(txn, None)  # type: ignore[arg-type]
            if fut and not fut.done():
                fut.set_result(make_response(txn.request, 408, "Request Timeout (no response)"))
            self.on_timeout(txn)  # type: ignore[arg-type]
        elif isinstance(event, AckMissing):
            log.info("%s: no ACK for our final response", self.label)
            if self._ack_waiter and not self._ack_waiter.done():
                self._ack_waiter.set_exception(TimeoutError("no ACK"))

    def on_timeout(self, txn: ClientTransaction) -> None:
        pass

    def on_response(self, txn: ClientTransaction, response: Response) -> None:
        if response.status >= 200:
            fut = self._pending.pop(txn, None)
            if fut and not fut.done():
                fut.set_result(response)
            elif txn.request.method == "INVITE" and 200 <= response.status < 300:
                self.ack_retransmitted_2xx(response)

    def ack_retransmitted_2xx(self, response: Response) -> None:
        """§13.2.2.4: every retransmission of a 2xx to our INVITE gets the ACK again."""
        if self.dialog is not None:
            self._send_ack(response.cseq.seq, b"")

    def on_request(self, event: RequestReceived) -> None:
        """A request inside our dialog (§12.2.2)."""
        request, txn = event.request, event.transaction
        if request.method == "ACK":
            if self._ack_waiter and not self._ack_waiter.done():
                self._ack_waiter.set_result(request)
            return
        assert txn is not None
        assert self.dialog is not None
        if not self.dialog.check_remote_cseq(request):
            self.core.respond(txn, make_response(request, 500, "Server Internal Error (CSeq out of order)",
                                                 headers=[("Retry-After", "1")]))
            return
        self.peer = event.peer if self.peer[0] == "udp" else self.peer
        handler = {
            "BYE": self._on_bye, "INVITE": self._on_reinvite, "INFO": self._on_info,
            "OPTIONS": self._on_options, "REFER": self._on_refer, "NOTIFY": self._on_notify,
        }.get(request.method)
        if handler is None:
            self.core.respond(txn, make_response(request, 501, headers=[("Allow", ALLOW)]))
            return
        handler(request, txn)

    def _on_bye(self, request: Request, txn: ServerTransaction) -> None:
        self.core.respond(txn, make_response(request, 200))
        if self.state != "terminated":
            self.state = "terminated"
            self.core.forget_leg(self)
            if self.owner:
                self.owner.leg_ended(self, "bye")

    def _on_reinvite(self, request: Request, txn: ServerTransaction) -> None:
        if self._reinvite_busy or self.state != "confirmed":
            # §14.2: an INVITE while ours is pending gets 491 (glare)
            self.core.respond(txn, make_response(request, 491, headers=[("Retry-After", "2")]))
            return
        assert self.dialog is not None
        txn.to_tag = self.dialog.local_tag
        self.dialog.update_target(request)
        self._reinvite_busy = True
        self.core.respond(txn, make_response(request, 100))

        async def run() -> None:
            try:
                if self.owner is None:
                    self.core.respond(txn, make_response(request, 481))
                    return
                await self.owner.leg_reinvite(self, request, txn)
            except Exception:
                log.exception("%s: re-INVITE failed", self.label)
                if txn.state.value == "Proceeding":
                    self.core.respond(txn, make_response(request, 500))
            finally:
                self._reinvite_busy = False

        self.core.spawn(run())

    def answer_reinvite(self, txn: ServerTransaction, status: int, body: bytes = b"", reason: str | None = None) -> None:
        assert self.dialog is not None
        headers = [("Contact", self.dialog.local_contact), ("Allow", ALLOW)] if status < 300 else []
        if body:
            headers.append(("Content-Type", "application/sdp"))
        self.core.respond(txn, make_response(txn.request, status, reason, to_tag=self.dialog.local_tag,
                                             headers=headers, body=body))
        if 200 <= status < 300:
            self.remote_sdp = txn.request.body or self.remote_sdp

    def _on_info(self, request: Request, txn: ServerTransaction) -> None:
        self.core.respond(txn, make_response(request, 200))
        if self.owner:
            self.owner.leg_info(self, request)

    def _on_refer(self, request: Request, txn: ServerTransaction) -> None:
        """RFC 3515: the call (owner) decides; it answers 202 and reports by NOTIFY."""
        assert self.dialog is not None
        txn.to_tag = self.dialog.local_tag
        owner = self.owner
        if owner is None or self.state != "confirmed":
            self.core.respond(txn, make_response(request, 481))
            return

        async def run() -> None:
            try:
                await owner.leg_refer(self, request, txn)
            except Exception:
                log.exception("%s: REFER failed", self.label)
                if txn.state.value in ("Trying", "Proceeding"):
                    self.core.respond(txn, make_response(request, 500))

        self.core.spawn(run())

    def respond_in_dialog(self, txn: ServerTransaction, status: int, reason: str | None = None,
                          headers: Iterable[tuple[str, str]] = ()) -> None:
        assert self.dialog is not None
        self.core.respond(txn, make_response(txn.request, status, reason, to_tag=self.dialog.local_tag,
                                             headers=[("Contact", self.dialog.local_contact), *headers]))

    async def notify_refer(self, status: int, reason: str, *, final: bool) -> None:
        """A NOTIFY of the implicit refer subscription with a sipfrag status line (RFC 3515 §2.4.5)."""
        if self.state != "confirmed" or self.dialog is None:
            return
        state = "terminated;reason=noresource" if final else "active;expires=60"
        try:
            await asyncio.wait_for(self.request(
                "NOTIFY", body=f"SIP/2.0 {status} {reason}\r\n".encode(),
                content_type="message/sipfrag;version=2.0",
                headers=[("Event", "refer"), ("Subscription-State", state)]), 10)
        except asyncio.TimeoutError:
            pass

    def _on_notify(self, request: Request, txn: ServerTransaction) -> None:
        self.core.respond(txn, make_response(request, 200))

    def _on_options(self, request: Request, txn: ServerTransaction) -> None:
        self.core.respond(txn, make_response(request, 200, headers=[("Allow", ALLOW)]))


class UasLeg(Leg):
    """The caller's side: we answer its INVITE."""

    role = "uas"

    def __init__(self, core: "SipCore", txn: InviteServerTransaction, peer: Peer, label: str):
        super().__init__(core, peer, label)
        self.txn = txn
        self.local_tag = secrets.token_hex(6)
        txn.to_tag = self.local_tag
        txn.user_data = self
        self.remote_sdp = txn.request.body
        self.user_agent = txn.request.headers.get("User-Agent") or ""
        self.dialog = Dialog.for_uas(txn.request, self.local_tag, core.local_contact(peer))
        core.remember_leg(self)
        self.cancelled: asyncio.Future[Request] = asyncio.get_running_loop().create_future()

    def provisional(self, status: int = 180, body: bytes = b"") -> None:
        if self.state in ("confirmed", "terminated"):
            return
        self.state = "early"
        headers = [("Contact", self.dialog.local_contact)] if self.dialog else []
        if body:
            headers.append(("Content-Type", "application/sdp"))
        self.core.respond(self.txn, make_response(self.txn.request, status, to_tag=self.local_tag,
                                                  headers=headers, body=body))

    def reject(self, status: int, reason: str | None = None, headers: Iterable[tuple[str, str]] = ()) -> None:
        if self.state in ("confirmed", "terminated"):
            return
        self.state = "terminated"
        self.core.respond(self.txn, make_response(self.txn.request, status, reason, to_tag=self.local_tag,
                                                  headers=headers))
        self.core.forget_leg(self)

    async def answer(self, body: bytes) -> bool:
        """Send 200 OK with our SDP and wait for the ACK (§13.3.1.4); False if it never came."""
        if self.state in ("confirmed", "terminated"):
            return False
        assert self.dialog is not None
        self.state = "confirmed"
        self._ack_waiter = asyncio.get_running_loop().create_future()
        headers = [("Contact", self.dialog.local_contact), ("Allow", ALLOW), ("Supported", "replaces")]
        if body:
            headers.append(("Content-Type", "application/sdp"))
        self.core.respond(self.txn, make_response(self.txn.request, 200, to_tag=self.local_tag,
                                                  headers=headers, body=body))
        try:
            await asyncio.wait_for(self._ack_waiter, ACK_TIMEOUT + 1)
            return True
        except (asyncio.TimeoutError, TimeoutError):
            return False

    def on_cancel(self, cancel: Request) -> None:
        """§9.2: CANCEL of a pending INVITE: 487 for the INVITE (the 200 for CANCEL is sent by the dispatcher)."""
        if self.state in ("confirmed", "terminated"):
            return
        reason = cancel.headers.get("Reason")
        self.reject(487)
        if not self.cancelled.done():
            self.cancelled.set_result(cancel)
        if self.owner:
            self.owner.leg_ended(self, f"cancel{': ' + reason if reason else ''}")


class UacLeg(Leg):
    """A callee's side: we send the INVITE (forking creates one per device)."""

    role = "uac"

    def __init__(self, core: "SipCore", *, request_uri: str, peer: Peer, from_: str, to: str, offer: bytes,
                 label: str, extra_headers: Iterable[tuple[str, str]] = (), max_forwards: int = 70,
                 credentials: tuple[str, str] | None = None):
        super().__init__(core, peer, label)
        self.credentials = credentials  # (username, password) for a carrier's 401/407 (trunks)
        self._auth_sent = False
        self.local_tag = secrets.token_hex(6)
        self.request_uri = request_uri
        self.offer = offer
        h = [
            ("Max-Forwards", str(max_forwards)),
            ("From", f"{from_};tag={self.local_tag}"),
            ("To", to),
            ("Call-ID", f"{secrets.token_hex(10)}@{core.server_name}"),
            ("CSeq", "1 INVITE"),
            ("Contact", core.local_contact(peer)),
            ("Allow", ALLOW),
            ("Supported", "replaces"),
            *extra_headers,
        ]
        if offer:
            h.append(("Content-Type", "application/sdp"))
        self.invite_request = Request("INVITE", request_uri, h, offer)
        self.invite_txn: ClientTransaction | None = None
        self.final: asyncio.Future[Response] = asyncio.get_running_loop().create_future()
        self.provisional_seen = False
        self._cancel_reason: str | None = None

    def start(self) -> None:
        self.state = "calling"
        self.invite_txn = self.core.send_request(self.invite_request, self.peer, self)

    def cancel(self, reason: str | None = None) -> None:
        """§9.1: CANCEL once a provisional response has arrived; before that, remember it."""
        if self.state not in ("calling", "early") or self.invite_txn is None:
            return
        self._cancel_reason = reason or self._cancel_reason or "SIP;cause=487;text=\"Cancelled\""
        if not self.provisional_seen:
            self.state = "cancelling"
            return
        self._send_cancel()

    def _send_cancel(self) -> None:
        assert self.invite_txn is not None
        self.state = "cancelling"
        cancel = self.invite_txn.cancel_request()
        if self._cancel_reason:
            cancel.headers.add("Reason", self._cancel_reason)
        self.core.send_request(cancel, self.peer, None, add_via=False)

    def _retry_with_credentials(self, response: Response) -> bool:
        """RFC 3261 §22.2: the same INVITE again (CSeq + 1, new branch) with digest credentials."""
        from .sip.digest import DigestError, build_authorization, parse_challenge
        header = "WWW-Authenticate" if response.status == 401 else "Proxy-Authenticate"
        answer = "Authorization" if response.status == 401 else "Proxy-Authorization"
        assert self.credentials is not None
        try:
            challenge = parse_challenge(response.headers.get(header) or "")
            value = build_authorization(challenge, username=self.credentials[0], password=self.credentials[1],
                                        method="INVITE", uri=self.request_uri, cnonce=secrets.token_hex(8))
        except (DigestError, ValueError) as exc:
            log.warning("%s: cannot answer the %d challenge: %s", self.label, response.status, exc)
            return False
        self._auth_sent = True
        old = self.invite_request
        headers = [(n, v) for n, v in old.headers if n not in ("Via", "CSeq", answer)]
        headers.append(("CSeq", f"{old.cseq.seq + 1} INVITE"))
        headers.append((answer, value))
        self.invite_request = Request("INVITE", self.request_uri, headers, old.body)
        self.invite_txn = self.core.send_request(self.invite_request, self.peer, self)
        return True

    def on_timeout(self, txn: ClientTransaction) -> None:
        if txn is self.invite_txn and not self.final.done():
            self.state = "terminated"
            self.final.set_result(make_response(txn.request, 408, "Request Timeout (device did not answer)"))

    def on_response(self, txn: ClientTransaction, response: Response) -> None:
        if txn is not self.invite_txn:
            super().on_response(txn, response)
            return
        status = response.status
        if status in (401, 407) and self.credentials and not self._auth_sent and self.state != "cancelling":
            if self._retry_with_credentials(response):
                return
        if status < 200:
            if status == 100:
                return
            first = not self.provisional_seen
            self.provisional_seen = True
            if self.state == "cancelling" and first:
                self._send_cancel()
                return
            if self.state == "calling":
                self.state = "early"
            if self.owner and self.state == "early":
                self.owner.leg_provisional(self, response)
            return
        if 200 <= status < 300:
            if self.dialog is None:
                self.dialog = Dialog.for_uac(self.invite_request, response)
                self.remote_sdp = response.body
                self.user_agent = response.headers.get("User-Agent") or response.headers.get("Server") or ""
            self._send_ack(self.invite_request.cseq.seq, b"")
            if self.final.done():
                return  # retransmission
            if self.state == "cancelling":
                # §9.1 race: the callee answered anyway — confirm and end that dialog
                self.state = "confirmed"
                self.core.remember_leg(self)
                self.final.set_result(make_response(txn.request, 487))
                self.core.spawn(self.bye(self._cancel_reason))
                return
            self.state = "confirmed"
            self.core.remember_leg(self)
            self.final.set_result(response)
            return
        self.state = "terminated"
        if not self.final.done():
            self.final.set_result(response)
