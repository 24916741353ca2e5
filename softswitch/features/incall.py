"""What each ``##`` code does in a call (SPEC §28 table; the parser is ``codes.py``).

| code | action |
|---|---|
| ``##`` | hold / resume the partner (music on hold) |
| ``##1`` n ``#`` | blind transfer of the partner to n; the presser is released |
| ``##2`` n ``#`` | consultation: partner held, n dialled; hang up to complete |
| ``##3`` / ``##4`` / ``##0`` | during a consultation: three-way, swap, cancel |
| ``##7`` | park the partner; the slot is announced, the presser released |

In a three-way call there is no one partner to hold, transfer or park: every code gets
the "invalid" prompt there (hang up to leave the other two talking).
"""
from __future__ import annotations

import logging

from ..b2bua import Call, Party
from . import transfer
from .transfer import Consultation, Unroutable

log = logging.getLogger(__name__)


async def run_code(call: Call, p: Party, name: str, number: str = "") -> None:
    log.info("[%s] %s keyed ##%s%s", call.call_id, p.number, name, f" {number}" if number else "")
    consult = call.feature if isinstance(call.feature, Consultation) else None
    if name in ("conference", "swap", "cancel"):
        if consult is None or consult.holder is not p:
            await _refuse(call, p, name, "only in a consultation of one's own")
            return
        await {"conference": consult.conference, "swap": consult.swap, "cancel": consult.cancel}[name]()
        return
    if call.feature is not None:
        await _refuse(call, p, name, f"the call is {call.feature.state_name}")
        return
    if p in call.conference_members:
        await _refuse(call, p, name, "in a three-way call")
        return
    partner = call.partner.get(p)
    if partner is None or partner.gone:
        await _refuse(call, p, name, "nobody to act on")
        return
    if name == "hold":
        p.code_hold = not p.code_hold
        call.refresh(p)
        call.publish()
        return
    if name == "park":
        from .parking import park
        slot = await park(call, partner, parker=p)
        if slot:
            await call.say(p, ["park-slot", *transfer._digit_prompts(slot)])
            await call.drop(p)
        return
    try:
        target = transfer.resolve_target(call, number, by=p)
    except Unroutable as exc:
        log.info("[%s] ##%s %s from %s refused: %s", call.call_id, name, number, p.number, exc.reason)
        await call.say(p, [exc.prompt])
        return
    if target == "park":
        from .parking import park
        slot = await park(call, partner, parker=p)
        if slot:
            await call.say(p, ["park-slot", *transfer._digit_prompts(slot)])
            await call.drop(p)
        return
    assert not isinstance(target, str)
    if name == "blind_transfer":
        await transfer.blind_transfer(call, partner, p, target, transferor_user=p.user)
    elif name == "attended_transfer":
        consult = Consultation(call, p, partner)
        call.feature = consult
        await consult.run(target)


async def _refuse(call: Call, p: Party, name: str, why: str) -> None:
    """One log line saying why, and the "invalid" prompt to the presser."""
    log.info("[%s] ##%s from %s refused: %s", call.call_id, name, p.number, why)
    await call.say(p, ["invalid"])
