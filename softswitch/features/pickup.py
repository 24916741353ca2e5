"""Call pickup (``*8``, ``*8``+extension, ``*8``+privacy group, 908) and moving the call to
another of your devices (``*9``/909), SPEC §28.

Pickup answers a call that is ringing (not yet answered) for a user the picker has the
pickup right for (a privacy group granting "call pickup" that holds both); the ringing
devices stop with "Call completed elsewhere". ``*9`` connects the dialling device to the
user's active call on another device and ends the first device's leg; the remote party
keeps its RTP stream (same SSRC, continuous sequence numbers) apart from a short gap.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from config.features import may_pickup

from ..b2bua import Call

if TYPE_CHECKING:
    from ..server import SipCore
    from .service import AppCall

log = logging.getLogger(__name__)


def _ringing_calls(core: "SipCore", account_id: int) -> list[Call]:
    calls = [c for c in core.calls if isinstance(c, Call) and c.account.id == account_id and c.state == "ringing"
             and c.callee is not None and not c.picked_up.done()]
    return sorted(calls, key=lambda c: c.started_at)


async def run_pickup(core: "SipCore", app: "AppCall") -> None:
    user = app.user
    assert user is not None
    arg = app.code.arg
    groups = core.store.privacy_groups_of_user(user.id)
    # never your own call: not one ringing for you, not one you are making from another device
    ringing = [c for c in _ringing_calls(core, app.account.id)
               if c.callee.id != user.id and (c.caller is None or c.caller.id != user.id)]  # type: ignore[union-attr]
    if arg and len(arg) == app.account.digits:
        ringing = [c for c in ringing if c.callee.extension == arg]  # type: ignore[union-attr]
        what = f"for {arg}"
    elif arg:
        group = next((g for g in groups if str(g.number) == arg.lstrip("0") or str(g.number) == arg), None)
        if group is None:
            app.reject(403, f"Forbidden (you are not in privacy group {arg})")
            return
        members = {m.user_id for m in group.members}
        ringing = [c for c in ringing if c.callee.id in members]  # type: ignore[union-attr]
        what = f"in privacy group {arg}"
    else:
        what = "that you may pick up"
    if not ringing:
        app.reject(404, f"Not Found (no ringing call {what})")
        return
    allowed = [c for c in ringing if may_pickup(groups, user.id, c.callee.id)]  # type: ignore[union-attr]
    if not allowed:
        log.info("pickup by %s refused: no pickup right over %s", user.extension,
                 ", ".join(sorted({c.callee.extension for c in ringing})))  # type: ignore[union-attr]
        app.reject(403, f"Forbidden (no pickup right {what})")
        return
    call = allowed[0]
    caller_codec = _offered_codec(call)
    if not await app.answer(prefer=caller_codec):
        return
    if call.state != "ringing" or call.picked_up.done():  # answered or ended while we answered
        await app.play(["unavailable"], barge_in=False)
        return
    party = app.become_party(call)
    log.info("[%s] %s picked up the call for %s", call.call_id, user.extension,
             call.callee.extension)  # type: ignore[union-attr]
    call.picked_up.set_result(party)


def _offered_codec(call: Call):  # type: ignore[no-untyped-def]
    """The caller's first offered G.711 codec, as the codec the picker should answer in."""
    from ..b2bua import Codec
    from ..sip.sdp import negotiate
    if call.offer is None:
        return None
    common = negotiate(call.offer)
    audio = [c for c in common if c[1].lower() != "telephone-event"]
    if not audio:
        return None
    te = next((c[0] for c in common if c[1].lower() == "telephone-event"), None)
    return Codec(audio[0][0], audio[0][1], audio[0][2], te)


async def run_move(core: "SipCore", app: "AppCall") -> None:
    """``*9``: the user's call on another device continues on this one."""
    user = app.user
    assert user is not None
    found = None
    for call in core.calls:
        if not isinstance(call, Call) or call.state != "answered" or call.account.id != app.account.id:
            continue
        for party in call.parties:
            if party.user is not None and party.user.id == user.id and party.channel != app.channel.username:
                found = (call, party)
                break
        if found:
            break
    if found is None:
        app.reject(404, f"Not Found (no active call of {user.extension} on another device)")
        return
    call, old = found
    partner = call.partner.get(old)
    if not await app.answer(prefer=(partner or old).codec):
        return
    if old.gone or old not in call.parties:
        await app.play(["unavailable"], barge_in=False)
        return
    party = app.become_party(call)
    party.phone_hold = False
    if partner is not None:
        call.pair(partner, party)
    elif old in call.conference_members:
        call.join_conference([party])
    call.start_features(party)
    log.info("[%s] %s moved the call from %s to %s", call.call_id, user.extension, old.channel, app.channel.username)
    await call.drop(old)
