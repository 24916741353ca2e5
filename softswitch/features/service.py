"""Calls the switch answers itself: service codes dialled from a device (SPEC §1, §7, §28).

An ``AppCall`` answers the device's INVITE with an endpoint of the switch and then
either talks to the user (prompts and DTMF: 901/902) or hands the answered leg to another
call as a new party (``*8`` pickup, ``*9`` move, ``*7`` retrieve a parked call).
``run_service()`` is the entry point from the dispatcher.
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING, Any

from config.models import Account, Cdr, Channel, User

from ..b2bua import Call, Codec, Party, codec_of
from ..session import Leg, UasLeg
from ..sip.message import Request
from ..sip.sdp import NoCommonCodec, SdpError, SessionDescription, build_answer, build_offer
from ..sip.transaction import ServerTransaction
from .codes import ServiceCode

if TYPE_CHECKING:
    from media.engine import Endpoint

    from ..server import SipCore

log = logging.getLogger(__name__)

DIGIT_FIRST_TIMEOUT = 10.0  # seconds to start typing after a prompt
DIGIT_INTER_TIMEOUT = 5.0  # seconds between two key presses


class AppCall:
    """A device's INVITE answered by the switch (LegOwner of its leg while the app runs)."""

    def __init__(self, core: "SipCore", account: Account, uas: UasLeg, *, user: User | None, channel: Channel,
                 code: ServiceCode, dialled: str) -> None:
        self.core = core
        self.account = account
        self.uas = uas
        uas.owner = self
        self.user = user
        self.channel = channel
        self.code = code
        self.dialled = dialled
        self.call_id = uas.call_id
        self.ep: Endpoint | None = None
        self.codec: Codec | None = None
        self.state = "routing"
        self.started_at = time.time()
        self.answered_at: float | None = None
        self.final_status = 0
        self.hangup_by = ""
        self.gone = asyncio.get_running_loop().create_future()
        self.handed_over = False
        self._digits: Any = None
        self._getter: asyncio.Future | None = None

    def __repr__(self) -> str:
        return f"<AppCall {self.dialled} {self.channel.username} {self.state}>"

    # ------------------------------------------------------------------ answering
    def offer(self) -> SessionDescription | None:
        try:
            offer = SessionDescription.parse(self.uas.remote_sdp) if self.uas.remote_sdp else None
        except SdpError:
            return None
        return offer if offer is not None and offer.audio() is not None else None

    async def answer(self, prefer: Codec | None = None) -> bool:
        """200 OK with our endpoint; in ``prefer``'s codec when the device offers it (or the
        other G.711 law), so the leg can be relayed to a party using ``prefer``."""
        offer = self.offer()
        if offer is None:
            self.reject(488, "Not Acceptable Here (an SDP offer with audio is required)")
            return False
        self.ep = await self.core.media.create_endpoint(f"{self.call_id}/app")
        self.core.track_endpoint(self.ep, self)  # type: ignore[arg-type]
        try:
            answer = build_answer(offer, address=self.core.media_host_for(self.uas.peer[1]), port=self.ep.rtp_port,
                                  supported=prefer.answer_preference() if prefer else ("PCMU", "PCMA", "telephone-event"),
                                  session_id=self.uas.sdp_session_id, session_version=self.uas.next_sdp_version())
        except NoCommonCodec:
            self.reject(488, "Not Acceptable Here (no codec in common with the other party)")
            return False
        audio = offer.audio()
        assert audio is not None
        address = offer.media_address(audio)
        if address and audio.port:
            self.ep.set_remote(address, audio.port, audio.rtcp_port)
        self.codec = codec_of(answer)
        if self.codec is not None:
            self.ep.set_codec(self.codec.pt, self.codec.name, self.codec.clock, telephone_event_pt=self.codec.te_pt)
        # key presses count from the first moment: users type while the first prompt plays
        self._digits = self.ep.dtmf_events().__aiter__()
        self.state = "answered"
        self.answered_at = time.time()
        self.final_status = 200
        if not await self.uas.answer(answer.serialize()):
            self.hangup_by = "system"
            return False
        return True

    def reject(self, status: int, reason: str | None = None) -> None:
        self.final_status = status
        self.uas.reject(status, reason)
        log.info("[%s] %s from %s refused: %d %s", self.call_id, self.dialled, self.channel.username, status,
                 reason or "")

    # ------------------------------------------------------------------ talking to the user
    async def play(self, prompts: list[str], *, barge_in: bool = True) -> bool:
        """Play prompts; with ``barge_in`` a key press stops them (the key is kept for
        ``collect``) — not for a last message before the switch hangs up. False when the
        caller hung up meanwhile."""
        if self.ep is None or self.gone.done():
            return False
        playback = self.core.media.play(self.ep, prompts, lang=self.account.language)
        waits = {playback.done, self.gone}
        if barge_in and self._digits is not None:
            waits.add(self._next_digit())
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
        if not playback.done.done():
            playback.stop()
        return not self.gone.done()

    def _next_digit(self) -> asyncio.Future:
        """The pending read of the next key press, shared by play() and collect() so a key
        that stops a prompt is not lost."""
        if self._getter is None:
            self._getter = asyncio.ensure_future(self._digits.__anext__())
        return self._getter

    async def collect(self, *, max_digits: int, end: str = "#", first_timeout: float = DIGIT_FIRST_TIMEOUT,
                      inter_timeout: float = DIGIT_INTER_TIMEOUT) -> str | None:
        """Key presses until ``end`` (not included), ``max_digits`` or a timeout; None on hang-up.

        Keys typed while a prompt played count (barge-in, type-ahead)."""
        assert self.ep is not None
        if self._digits is None:
            self._digits = self.ep.dtmf_events().__aiter__()
        digits = ""
        timeout = first_timeout
        while len(digits) < max_digits:
            getter = self._next_digit()
            done, _ = await asyncio.wait({getter, self.gone}, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
            if getter not in done:
                if self.gone.done():
                    return None
                break  # timeout: what was typed so far (the read stays pending for later)
            self._getter = None
            try:
                digit, _ = getter.result()
            except StopAsyncIteration:
                return None
            if digit == end:
                break
            digits += digit
            timeout = inter_timeout
        return digits

    def finish(self) -> None:
        if self._getter is not None and not self._getter.done():
            self._getter.cancel()  # a leg handed to a call: its key presses are the call's now
        self._getter = None
        if not self.gone.done():
            self.gone.set_result("done")

    # ------------------------------------------------------------------ handing the leg over
    def become_party(self, call: Call) -> Party:
        """The answered leg joins ``call`` as a new party (pickup, move, retrieve)."""
        assert self.ep is not None and self.user is not None
        self.handed_over = True
        self.core.untrack_endpoint(self.ep)
        party = call.add_party(self.uas, self.ep, user=self.user, channel=self.channel.username,
                               number=self.user.extension, name=self.user.name)
        party.codec = self.codec
        self.finish()
        return party

    # ------------------------------------------------------------------ LegOwner
    def leg_provisional(self, leg: Any, response: Any) -> None:
        pass

    def leg_ended(self, leg: Leg, reason: str) -> None:
        self.hangup_by = self.hangup_by or "caller"
        if not self.gone.done():
            self.gone.set_result(reason)

    async def leg_reinvite(self, leg: Leg, request: Request, txn: ServerTransaction) -> None:
        if self.ep is None or self.codec is None or not request.body:
            leg.answer_reinvite(txn, 488 if request.body else 200, self._current_offer())
            return
        try:
            offer = SessionDescription.parse(request.body)
            answer = build_answer(offer, address=self.core.media_host_for(leg.peer[1]), port=self.ep.rtp_port,
                                  supported=self.codec.answer_preference(), session_id=leg.sdp_session_id,
                                  session_version=leg.next_sdp_version())
        except SdpError as exc:
            leg.answer_reinvite(txn, 488, reason=f"Not Acceptable Here ({exc})")
            return
        leg.answer_reinvite(txn, 200, answer.serialize())

    def _current_offer(self) -> bytes:
        if self.ep is None or self.codec is None:
            return b""
        return build_offer(address=self.core.media_host_for(self.uas.peer[1]), port=self.ep.rtp_port,
                           codecs=self.codec.offer_codecs(), session_id=self.uas.sdp_session_id,
                           session_version=self.uas.next_sdp_version()).serialize()

    def leg_info(self, leg: Leg, request: Request) -> None:
        if self.ep is not None and request.body:
            self.ep.feed_info_dtmf(request.headers.get("Content-Type") or "", request.body)

    async def leg_refer(self, leg: Leg, request: Request, txn: ServerTransaction) -> None:
        leg.respond_in_dialog(txn, 403, "Forbidden (nothing to transfer in a service call)")

    def hangup(self, by: str) -> None:
        """End the service call from outside (shutdown, RTP timeout)."""
        self.hangup_by = self.hangup_by or by
        if self.uas.state == "confirmed":
            self.core.spawn(self.uas.bye('SIP;cause=503;text="Switch shutting down"' if by == "shutdown" else None))
        else:
            self.reject(503 if by == "shutdown" else 480)
        self.finish()

    # ------------------------------------------------------------------ records
    def cdr(self) -> Cdr:
        disposition = "ANSWERED" if self.answered_at else ("CANCELLED" if self.final_status == 487 else "FAILED")
        return Cdr(id=0, account_id=self.account.id, call_id=self.call_id,
                   caller=self.user.extension if self.user else self.channel.username, callee=self.dialled,
                   started_at=self.started_at, answered_at=self.answered_at, ended_at=time.time(),
                   disposition=disposition, hangup_by=self.hangup_by or "system", sip_status=self.final_status,
                   caller_name=self.user.name if self.user else "", answered_by="switch")


async def run_service(core: "SipCore", app: AppCall) -> None:
    """Run the feature behind a service code; always ends with the app call closed."""
    from . import forward, login, parking, pickup, timeconfig
    handlers = {
        "login": login.run_login, "logout": login.run_logout, "pickup": pickup.run_pickup,
        "move_call": pickup.run_move, "park": parking.run_retrieve, "time_config": timeconfig.run_time_config,
        "forward_set": forward.run_forward,
    }
    handler = handlers.get(app.code.name)
    try:
        if handler is None:
            app.reject(404, f"Not Found (service {app.dialled} is not available yet)")
        else:
            await handler(core, app)
    except Exception:
        log.exception("[%s] service %s failed", app.call_id, app.dialled)
        app.reject(500, "Server Internal Error")
    finally:
        if not app.handed_over:
            if app.uas.state == "confirmed":
                await app.uas.bye()
            if app.ep is not None:
                core.untrack_endpoint(app.ep)
                await app.ep.close()
        app.state = "ended"
        core.app_ended(app)
