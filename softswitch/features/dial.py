"""Ringing devices on behalf of a feature (transfer target, consultation, park recall).

``dial()`` rings every target at once with an offer from one new switch endpoint, in the
codec of the party the answering device will be relayed to (``Codec.offer_codecs``); the
first 2xx wins and the others get CANCEL with "Call completed elsewhere". It returns the
answered leg and endpoint, which the caller turns into a ``Party`` of its call.
"""
from __future__ import annotations

import asyncio
import logging
import secrets
from dataclasses import dataclass
from typing import TYPE_CHECKING, Iterable

from ..b2bua import COMPLETED_ELSEWHERE, Codec, Target
from ..session import Leg, UacLeg
from ..sip.message import Request, Response
from ..sip.sdp import SdpError, SessionDescription, build_offer
from ..sip.transaction import ServerTransaction

if TYPE_CHECKING:
    from media.engine import Endpoint

    from ..server import SipCore

log = logging.getLogger(__name__)


@dataclass
class Answered:
    leg: UacLeg
    ep: "Endpoint"
    answer: SessionDescription
    channel: str


@dataclass
class NotAnswered:
    status: int
    reason: str


class _Ringing:
    """LegOwner of the legs while they ring: nothing is connected yet."""

    def __init__(self) -> None:
        self.ringing = asyncio.get_running_loop().create_future()

    def leg_provisional(self, leg: UacLeg, response: Response) -> None:
        if response.status in (180, 183) and not self.ringing.done():
            self.ringing.set_result(True)

    def leg_ended(self, leg: Leg, reason: str) -> None:
        pass

    async def leg_reinvite(self, leg: Leg, request: Request, txn: ServerTransaction) -> None:
        leg.answer_reinvite(txn, 491)

    def leg_info(self, leg: Leg, request: Request) -> None:
        pass

    async def leg_refer(self, leg: Leg, request: Request, txn: ServerTransaction) -> None:
        leg.respond_in_dialog(txn, 403, "Forbidden (the call is not connected yet)")


async def dial(core: "SipCore", targets: list[Target], *, codec: Codec, from_: str, to: str, label: str,
               timeout: float, stop: Iterable[asyncio.Future] = (), credentials: tuple[str, str] | None = None,
               headers: tuple[tuple[str, str], ...] = ()) -> Answered | NotAnswered:
    """Ring ``targets`` in parallel; the first to answer wins (see the module docstring)."""
    if not targets:
        return NotAnswered(480, "no registered device")
    ep = await core.media.create_endpoint(label)
    owner = _Ringing()
    legs: list[UacLeg] = []
    for target in targets:
        session_id = secrets.randbelow(2**31)
        offer = build_offer(address=core.media_host_for(target.peer[1]), port=ep.rtp_port,
                            codecs=codec.offer_codecs(), session_id=session_id, session_version=1)
        leg = UacLeg(core, request_uri=target.contact, peer=target.peer, from_=from_, to=to,
                     offer=offer.serialize(), label=f"{label}/{target.channel}", extra_headers=headers,
                     credentials=credentials)
        leg.sdp_session_id, leg.sdp_version = session_id, 1
        leg.owner = owner
        legs.append(leg)
        leg.start()
    stops = set(stop)
    pending = {leg.final for leg in legs}
    failures: list[Response] = []
    winner: UacLeg | None = None
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    try:
        while pending and winner is None:
            remaining = deadline - loop.time()
            if remaining <= 0 or any(f.done() for f in stops):
                break
            done, pending = await asyncio.wait(pending | stops, timeout=remaining, return_when=asyncio.FIRST_COMPLETED)
            pending -= stops
            for fut in done:
                if fut in stops:
                    continue
                response: Response = fut.result()
                if 200 <= response.status < 300 and winner is None:
                    winner = next(leg for leg in legs if leg.final is fut)
                elif response.status >= 300:
                    failures.append(response)
    except asyncio.CancelledError:
        # The feature that rang was torn down: no phone may ring on for nobody, and an
        # answer arriving later would be a dialog nobody owns.
        for leg in legs:
            leg.cancel()
        core.spawn(ep.close())
        raise
    for leg in legs:
        if leg is not winner:
            leg.cancel(COMPLETED_ELSEWHERE if winner is not None else None)
    if winner is None:
        await ep.close()
        if any(f.done() for f in stops):
            return NotAnswered(487, "stopped")
        if pending:
            return NotAnswered(480, "no answer")
        busy = any(r.status in (486, 600) for r in failures)
        return NotAnswered(486 if busy else 480, "busy" if busy else "unavailable")
    try:
        answer = SessionDescription.parse(winner.remote_sdp)
    except SdpError as exc:
        log.warning("%s answered with bad SDP: %s", winner.label, exc)
        await winner.bye('SIP;cause=488;text="Bad SDP"')
        await ep.close()
        return NotAnswered(502, "bad SDP in the answer")
    return Answered(winner, ep, answer, winner.label.rsplit("/", 1)[-1])
