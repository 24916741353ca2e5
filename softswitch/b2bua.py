"""Calls through the B2BUA: an incoming INVITE becomes a Call with one UAS leg towards the
caller and one UAC leg per registered device of the callee (parallel forking).

The media of every call is anchored: the caller's SDP offer is rewritten with a switch
endpoint (address/port) before it goes to the callees, and the answer likewise on its way
back; the media engine relays between the two endpoints (latching to where RTP really
comes from). Re-INVITEs (hold/resume) on either leg are renegotiated on the other.

    caller ──UAS leg── [ep_a] ══ media relay ══ [ep_b] ──UAC leg(s)── callee device(s)

Call life: routing → ring (first 2xx wins, others get CANCEL with a Reason, RFC 3326)
→ answered → ended by BYE from either side, RTP timeout or shutdown → CDR written.
"""
from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.models import Account, Cdr, LiveCall, User

from .session import Leg, UacLeg, UasLeg
from .sip.message import Request, Response
from .sip.sdp import SdpError, SessionDescription, rewrite
from .sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from media.engine import Endpoint

    from .server import SipCore

log = logging.getLogger(__name__)

RING_TIMEOUT = 60.0  # seconds a call rings before the caller gets 480 (REACH will refine)
COMPLETED_ELSEWHERE = 'SIP;cause=200;text="Call completed elsewhere"'


@dataclass(frozen=True)
class Target:
    """One device to ring: the contact to put in the Request-URI and where to send it."""

    contact: str
    peer: tuple[str, str, int]
    channel: str


class Call:
    def __init__(self, core: "SipCore", account: Account, caller: User, callee: User, uas: UasLeg):
        self.core = core
        self.account = account
        self.caller = caller
        self.callee = callee
        self.uas = uas
        uas.owner = self
        self.call_id = uas.call_id
        self.forks: list[UacLeg] = []
        self.winner: UacLeg | None = None
        self.ep_a: Endpoint | None = None
        self.ep_b: Endpoint | None = None
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.state = "routing"
        self.ended = asyncio.get_running_loop().create_future()
        self.hangup_by = ""
        self.final_status = 0
        self.held = False

    def __repr__(self) -> str:
        return f"<Call {self.caller.extension}->{self.callee.extension} {self.state} {self.call_id}>"

    # ------------------------------------------------------------------ the call's life
    async def run(self, targets: list[Target]) -> None:
        try:
            await self._run(targets)
        except Exception:
            log.exception("[%s] call failed", self.call_id)
            self.uas.reject(500, "Server Internal Error")
            self.final_status = self.final_status or 500
        finally:
            await self._teardown()

    async def _run(self, targets: list[Target]) -> None:
        try:
            offer = SessionDescription.parse(self.uas.remote_sdp) if self.uas.remote_sdp else None
        except SdpError as exc:
            self._fail(400, f"Bad Request (SDP: {exc})")
            return
        if offer is None or offer.audio() is None:
            # Delayed offer (INVITE without SDP) is not supported yet.
            self._fail(488, "Not Acceptable Here (an SDP offer with audio is required)")
            return
        self.ep_a = await self.core.media.create_endpoint(f"{self.call_id}/a")
        self.ep_b = await self.core.media.create_endpoint(f"{self.call_id}/b")
        self.core.track_endpoint(self.ep_a, self)
        self.core.track_endpoint(self.ep_b, self)
        self._apply_remote(self.ep_a, offer)
        self.state = "ringing"
        self._publish()
        for target in targets:
            host = self.core.media_host_for(target.peer[1])
            fork_offer = rewrite(offer, address=host, port=self.ep_b.rtp_port,
                                 session_id=self.uas.sdp_session_id + 1, session_version=1).serialize()
            leg = UacLeg(
                self.core, request_uri=target.contact, peer=target.peer,
                from_=f'"{_quote(self.caller.name)}" <sip:{self.caller.extension}@{self.account.domain}>',
                to=f'"{_quote(self.callee.name)}" <sip:{self.callee.extension}@{self.account.domain}>',
                offer=fork_offer, label=f"{self.call_id}/{target.channel}",
                max_forwards=max(0, (self.uas.txn.request.max_forwards or 70) - 1),
            )
            leg.owner = self
            self.forks.append(leg)
            leg.start()
        winner = await self._ring()
        if winner is None:
            return
        self.winner = winner
        for leg in self.forks:
            if leg is not winner:
                leg.cancel(COMPLETED_ELSEWHERE)
        try:
            answer = SessionDescription.parse(winner.remote_sdp)
        except SdpError as exc:
            log.warning("[%s] callee answered with bad SDP: %s", self.call_id, exc)
            self._fail(502, "Bad Gateway (callee SDP)")
            await winner.bye('SIP;cause=488;text="Bad SDP"')
            return
        self._apply_remote(self.ep_b, answer)
        self.core.media.relay(self.ep_a, self.ep_b)
        caller_answer = rewrite(answer, address=self.core.media_host_for(self.uas.peer[1]), port=self.ep_a.rtp_port,
                                session_id=self.uas.sdp_session_id, session_version=self.uas.next_sdp_version())
        self.answered_at = time.time()
        self.state = "answered"
        self.final_status = 200
        self._publish()
        log.info("[%s] %s answered on %s", self.call_id, self.callee.extension, winner.label)
        if not await self.uas.answer(caller_answer.serialize()):
            log.info("[%s] caller never ACKed the 200 OK; ending the call", self.call_id)
            self.hangup_by = "system"
            return
        await self.ended

    async def _ring(self) -> UacLeg | None:
        """Wait for the first 2xx; relay ringing; stop on CANCEL, timeout or all failing."""
        pending = {leg.final for leg in self.forks}
        failures: list[Response] = []
        deadline = asyncio.get_running_loop().time() + RING_TIMEOUT
        while pending:
            timeout = deadline - asyncio.get_running_loop().time()
            if timeout <= 0 or self.uas.cancelled.done() or self.ended.done():
                break
            done, pending = await asyncio.wait(pending | {self.uas.cancelled, self.ended}, timeout=timeout,
                                               return_when=asyncio.FIRST_COMPLETED)
            pending.discard(self.uas.cancelled)
            pending.discard(self.ended)
            for fut in done:
                if fut is self.uas.cancelled or fut is self.ended:
                    continue
                response: Response = fut.result()
                if 200 <= response.status < 300:
                    return next(leg for leg in self.forks if leg.final is fut)
                failures.append(response)
        for leg in self.forks:
            leg.cancel()
        if self.uas.cancelled.done():
            self.hangup_by = "caller"
            self.final_status = 487
            return None
        if pending:  # ring timeout
            self._fail(480, "Temporarily Unavailable (no answer)")
            return None
        self._fail(*_best_failure(failures))
        return None

    def _fail(self, status: int, reason: str | None = None) -> None:
        self.final_status = status
        self.uas.reject(status, reason)

    async def _teardown(self) -> None:
        self.state = "ended"
        tasks = []
        for leg in [self.uas, *self.forks]:
            if leg.state == "confirmed":
                tasks.append(leg.bye(self._bye_reason()))
            elif isinstance(leg, UacLeg):
                leg.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        quality = self._quality()
        for ep in (self.ep_a, self.ep_b):
            if ep is not None:
                self.core.untrack_endpoint(ep)
                await ep.close()
        self.core.call_ended(self, self._cdr(quality))

    def _bye_reason(self) -> str | None:
        if self.hangup_by == "rtp-timeout":
            return 'SIP;cause=408;text="RTP timeout"'
        if self.hangup_by == "shutdown":
            return 'SIP;cause=503;text="Switch shutting down"'
        return None

    def _quality(self) -> dict:
        """Per side: RTP packets the switch received/sent and, from that phone's RTCP
        receiver reports, the loss and jitter it experienced (RFC 3550 §6.4)."""
        keep = ("packets_in", "packets_out", "remote_fraction_lost", "remote_packets_lost", "remote_jitter_ms",
                "packets_lost", "jitter_ms")
        out = {}
        for side, ep in (("caller", self.ep_a), ("callee", self.ep_b)):
            if ep is not None and self.answered_at is not None:
                q = ep.quality()
                out[side] = {k: q[k] for k in keep if q.get(k) is not None}
        return out

    def _cdr(self, quality: dict | None = None) -> Cdr:
        if self.answered_at is not None:
            disposition = "ANSWERED"
        elif self.final_status == 487:
            disposition = "CANCELLED"
        elif self.final_status in (486, 600):
            disposition = "BUSY"
        elif self.final_status in (480, 408):
            disposition = "NO ANSWER"
        else:
            disposition = "FAILED"
        return Cdr(
            id=0, account_id=self.account.id, call_id=self.call_id, caller=self.caller.extension,
            callee=self.callee.extension, started_at=self.started_at, answered_at=self.answered_at,
            ended_at=time.time(), disposition=disposition, hangup_by=self.hangup_by,
            sip_status=self.final_status, caller_name=self.caller.name,
            answered_by=self.winner.label.rsplit("/", 1)[-1] if self.winner else "",
            quality=quality or {},
        )

    def _publish(self) -> None:
        """Show the call in ``softswitch calls`` (written behind, see CallJournal)."""
        state = "held" if self.held and self.state == "answered" else self.state
        self.core.journal.put(LiveCall(
            call_id=self.call_id, account_id=self.account.id, caller=self.caller.extension,
            callee=self.callee.extension, state=state, started_at=self.started_at,
            answered_at=self.answered_at, legs=tuple(leg.label for leg in [self.uas, *self.forks]),
        ))

    def hangup(self, by: str) -> None:
        """End the call from outside (shutdown, RTP timeout)."""
        if not self.hangup_by:
            self.hangup_by = by
        if not self.ended.done():
            self.ended.set_result(by)
        if self.state in ("routing", "ringing"):
            self._fail(503 if by == "shutdown" else 480, "Service Unavailable" if by == "shutdown" else None)

    # ------------------------------------------------------------------ LegOwner
    def leg_provisional(self, leg: UacLeg, response: Response) -> None:
        if self.state != "ringing":
            return
        if response.status == 183 and response.body and self.ep_a and self.ep_b:
            try:
                early = SessionDescription.parse(response.body)
            except SdpError:
                early = None
            if early is not None and early.audio() is not None:
                self._apply_remote(self.ep_b, early)
                self.core.media.relay(self.ep_a, self.ep_b)
                sdp = rewrite(early, address=self.core.media_host_for(self.uas.peer[1]), port=self.ep_a.rtp_port,
                              session_id=self.uas.sdp_session_id, session_version=self.uas.next_sdp_version())
                self.uas.provisional(183, sdp.serialize())
                return
        self.uas.provisional(180)

    def leg_ended(self, leg: Leg, reason: str) -> None:
        if leg is self.uas:
            if reason.startswith("cancel"):
                return  # _ring() sees uas.cancelled
            self.hangup_by = self.hangup_by or "caller"
        elif leg is self.winner:
            self.hangup_by = self.hangup_by or "callee"
        else:
            return
        log.info("[%s] %s hung up", self.call_id, self.hangup_by)
        if not self.ended.done():
            self.ended.set_result(reason)

    def other(self, leg: Leg) -> Leg | None:
        if leg is self.uas:
            return self.winner
        return self.uas if leg is self.winner else None

    async def leg_reinvite(self, leg: Leg, request: Request, txn: ServerTransaction) -> None:
        """§14: renegotiate on the other leg (hold/resume) and answer with its result."""
        other = self.other(leg)
        mine, theirs = (self.ep_a, self.ep_b) if leg is self.uas else (self.ep_b, self.ep_a)
        if other is None or other.state != "confirmed" or mine is None or theirs is None:
            leg.answer_reinvite(txn, 481 if other is None else 491)
            return
        if not request.body:
            # An offerless re-INVITE: answer with our current view so the dialog stays alive.
            current = SessionDescription.parse(other.remote_sdp)
            sdp = rewrite(current, address=self.core.media_host_for(leg.peer[1]), port=mine.rtp_port,
                          session_id=leg.sdp_session_id, session_version=leg.next_sdp_version())
            leg.answer_reinvite(txn, 200, sdp.serialize())
            return
        try:
            offer = SessionDescription.parse(request.body)
        except SdpError as exc:
            leg.answer_reinvite(txn, 488, reason=f"Not Acceptable Here ({exc})")
            return
        self._apply_remote(mine, offer)
        fwd = rewrite(offer, address=self.core.media_host_for(other.peer[1]), port=theirs.rtp_port,
                      session_id=other.sdp_session_id, session_version=other.next_sdp_version())
        response = await other.reinvite(fwd.serialize())
        if not 200 <= response.status < 300:
            leg.answer_reinvite(txn, response.status if response.status != 408 else 500)
            return
        try:
            answer = SessionDescription.parse(response.body)
        except SdpError:
            leg.answer_reinvite(txn, 488)
            return
        self._apply_remote(theirs, answer)
        audio = offer.audio()
        self.held = audio is not None and audio.direction in ("sendonly", "inactive")
        self._publish()
        back = rewrite(answer, address=self.core.media_host_for(leg.peer[1]), port=mine.rtp_port,
                       session_id=leg.sdp_session_id, session_version=leg.next_sdp_version())
        leg.answer_reinvite(txn, 200, back.serialize())
        log.info("[%s] re-INVITE from %s renegotiated (%s)", self.call_id, leg.label,
                 audio.direction if audio else "no audio")

    def leg_info(self, leg: Leg, request: Request) -> None:
        # DTMF by SIP INFO is passed on to the other leg unchanged (feature codes come later).
        other = self.other(leg)
        if other is not None and other.state == "confirmed" and request.body:
            self.core.spawn(other.request("INFO", body=request.body,
                                          content_type=request.headers.get("Content-Type")))

    def _apply_remote(self, ep: "Endpoint", sdp: SessionDescription) -> None:
        audio = sdp.audio()
        if audio is None:
            return
        address = sdp.media_address(audio)
        if address and audio.port and address not in ("0.0.0.0", "::"):
            ep.set_remote(address, audio.port, audio.rtcp_port)


def _best_failure(failures: list[Response]) -> tuple[int, str | None]:
    """§16.7 step 6 in spirit: busy wins over 'unavailable'; 6xx over everything."""
    if not failures:
        return 480, "Temporarily Unavailable"
    statuses = [r.status for r in failures]
    for code in (600, 603, 486, 488):
        if code in statuses:
            return code, None
    if all(s == 408 for s in statuses):
        return 480, "Temporarily Unavailable (no device answered)"
    best = min(failures, key=lambda r: (r.status // 100 != 4, r.status))
    return best.status, best.reason


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
