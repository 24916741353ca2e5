"""Transfers (SPEC §28): blind and attended, by the phone's transfer key (REFER, RFC 3515;
REFER with Replaces, RFC 3891) or by the ``##1``/``##2`` codes; the consultation that
``##2`` starts, with ``##3`` three-way, ``##4`` swap and ``##0`` cancel.

Blind transfer: the transferor is released at once; the transferee hears music on hold
while the target rings. If the target does not answer, the call returns to the
transferor's devices; if they do not answer either, the call ends. (The target's REACH
forwards come first once REACH routing is in place.)
"""
from __future__ import annotations

import asyncio
import logging
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from media.tones import NL_TONES, ToneGenerator

from ..b2bua import FEATURE_RING_TIMEOUT, Call, Party
from ..sip.errors import SipError
from ..sip.message import Request
from ..sip.transaction import ServerTransaction
from ..sip.uri import NameAddr
from .dial import Answered, dial

if TYPE_CHECKING:
    from config.models import User

    from ..delivery import ToExternal

log = logging.getLogger(__name__)


class Unroutable(Exception):
    """A transfer target that cannot be reached; ``status``/``reason`` for SIP, ``prompt`` for the user."""

    def __init__(self, status: int, reason: str, prompt: str = "number-not-in-use") -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.prompt = prompt


@dataclass(frozen=True)
class External:
    """A transfer target outside the switch: an E.164 number reached through the trunks."""

    number: str


def resolve_target(call: Call, number: str, by: Party | None = None) -> "User | External | str":
    """The user behind an internal number, an external number (with the transferring
    user's right to call it and their call barring checked), or "park" for the park code;
    raises Unroutable."""
    from config import reach

    from .. import delivery
    number = number.strip()
    if number == "*7":
        return "park"
    if not number or not all(c.isdigit() for c in number.lstrip("+")):
        raise Unroutable(404, f"Not Found ({number[:32]!r} is not a number)")
    if number.startswith(("0", "+")):
        e164 = delivery.normalise(call.core, call.account, number)
        if e164 is None:
            raise Unroutable(404, f"Not Found ({number[:32]!r} is not a phone number)")
        user = by.user if by is not None else None
        if user is not None:
            if not user.may_external:
                raise Unroutable(403, "Forbidden (you may not call external numbers)", "not-allowed")
            country = call.core.store.account_country(call.account.id)
            bar = reach.barred(delivery.reach_config(call.core, user).barring, e164, country)
            if bar is not None or ("international" in reach.classify_number(e164, country)
                                   and not user.may_international):
                raise Unroutable(403, f"Forbidden (call barring: {bar or 'international'})", "not-allowed")
        if not call.core.trunks.candidates(call.account.id):
            raise Unroutable(404, f"Not Found (external number {e164}: no trunk is usable)")
        return External(e164)
    user = call.core.directory.user_by_extension(call.account.id, number)
    if user is None:
        raise Unroutable(404, f"Not Found (no extension {number} in this account)")
    return user


def external_destination(call: Call, number: str, *, for_party: Party, via: Party | None) -> "ToExternal":
    """How an external transfer target sees the call: the number of the party that will talk
    to it when that is an external number, else the transferring user's own number."""
    from .. import delivery
    if for_party.user is None and for_party.number.startswith("+"):
        return delivery.ToExternal(number, for_party.number, for_party.name,
                                   asserted=for_party.number)
    user = (via.user if via is not None else None) or for_party.user
    shown = (delivery.personal_number(call.core, user) if user else "") or delivery.company_number(call.core, call.account)
    return delivery.ToExternal(number, shown, user.name if user else "", asserted=shown)


def _identity(call: Call, party: Party) -> str:
    return f'"{_quote(party.name)}" <sip:{party.number}@{call.account.domain}>'


def _to(call: Call, user: "User") -> str:
    return f'"{_quote(user.name)}" <sip:{user.extension}@{call.account.domain}>'


async def ring_user(call: Call, user: "User", *, for_party: Party, label: str, stop: list[asyncio.Future] | None = None,
                    timeout: float = FEATURE_RING_TIMEOUT) -> Party | None:
    """Ring the devices of ``user`` for ``for_party`` (in its codec); the answering device
    becomes a party of ``call``, or None."""
    assert for_party.codec is not None
    result = await dial(call.core, call.core.targets_of(user), codec=for_party.codec, from_=_identity(call, for_party),
                        to=_to(call, user), label=f"{call.call_id}/{label}", timeout=timeout, stop=stop or ())
    if not isinstance(result, Answered):
        log.info("[%s] %s did not answer (%s %s)", call.call_id, user.extension, result.status, result.reason)
        return None
    if for_party.gone or call.state == "ended":
        await result.leg.bye()
        await result.ep.close()
        return None
    party = call.add_party(result.leg, result.ep, user=user, channel=result.channel, number=user.extension,
                           name=user.name)
    party.apply_sdp(result.answer)
    return party


async def reach_user(call: Call, user: "User", *, for_party: Party, label: str,
                     stop: list[asyncio.Future]) -> Party | None:
    """Ring a blind-transfer target by its REACH rules (SPEC §28): its ring sequence, then
    its forward on busy / no answer (or its unconditional / unreachable forward) to another
    extension or, through the trunks, an external number. None: nobody answered."""
    from config import reach

    from .. import delivery
    assert for_party.codec is not None
    incoming = reach.IncomingCall(internal=for_party.user is not None, from_number=for_party.number)
    decision = delivery.decide(call.core, call.account, delivery.ToUser(user, incoming))
    action = decision.action.value
    forward: str | None = None
    if action == "ring":
        busy = True
        for step in decision.ring:
            targets = delivery.targets_for_devices(call.core, user, step.devices)
            if not targets:
                continue
            result = await dial(call.core, targets, codec=for_party.codec, from_=_identity(call, for_party),
                                to=_to(call, user), label=f"{call.call_id}/{label}", timeout=step.timeout, stop=stop)
            if isinstance(result, Answered):
                return _answered(call, result, user=user, for_party=for_party)
            if result.status == 487:  # stopped: the transferee hung up
                return None
            busy = busy and result.status == 486
        forward = decision.forwards.busy if busy else decision.forwards.noanswer
    elif action == "forward":
        forward = decision.destination
    elif action == "busy":
        forward = decision.forwards.busy
    elif action == "unavailable":
        forward = decision.forwards.unreachable
    if not forward or any(f.done() for f in stop):
        return None
    log.info("[%s] transfer target %s forwards to %s (REACH)", call.call_id, user.extension, forward)
    destination = delivery.resolve_forward(call.core, call.account, forward, forwarded_by=user,
                                           caller_number=for_party.number, caller_name=for_party.name,
                                           incoming=incoming, forward_caller_id=decision.settings.forward_caller_id)
    if isinstance(destination, delivery.ToUser):
        if destination.user.id == user.id:
            return None
        return await ring_user(call, destination.user, for_party=for_party, label=f"{label}-fwd", stop=stop)
    if isinstance(destination, delivery.ToExternal):
        return await ring_external(call, destination, for_party=for_party, label=f"{label}-ext", stop=stop)
    log.info("[%s] forward of %s not followed: %s", call.call_id, user.extension, destination.reason)
    return None


async def ring_external(call: Call, dest: "ToExternal", *, for_party: Party, label: str,
                        stop: list[asyncio.Future]) -> Party | None:
    """An external number through the account's trunks, for a party already in a call."""
    from .. import delivery
    assert for_party.codec is not None
    for trunk, target, from_, to, headers in delivery.trunk_targets(call.core, call.account, dest):
        result = await dial(call.core, [target], codec=for_party.codec, from_=from_, to=to,
                            label=f"{call.call_id}/{label}", timeout=delivery.TRUNK_RING_TIMEOUT, stop=stop,
                            credentials=call.core.trunks.credentials(trunk), headers=headers)
        if isinstance(result, Answered):
            party = _answered(call, result, user=None, for_party=for_party)
            if party is not None:
                party.number = dest.number
            return party
        if result.status not in (408, 480, 500, 502, 503, 504):
            return None
        log.warning("[%s] trunk %s failed (%s) for %s; trying the next", call.call_id, trunk.name, result.status,
                    dest.number)
    return None


def _answered(call: Call, result: Answered, *, user: "User | None", for_party: Party) -> Party | None:
    if for_party.gone or call.state == "ended":
        call.core.spawn(_hang_up(result))
        return None
    party = call.add_party(result.leg, result.ep, user=user, channel=result.channel,
                           number=user.extension if user else "", name=user.name if user else "")
    party.apply_sdp(result.answer)
    return party


async def _hang_up(result: Answered) -> None:
    await result.leg.bye()
    await result.ep.close()


def connect_new_partners(call: Call, a: Party, b: Party) -> None:
    """``a`` and ``b`` talk now. A ``##`` hold was meant for the previous partner, so it
    ends here; a phone's own hold (its SDP direction) stays in force."""
    a.code_hold = b.code_hold = False
    call.pair(a, b)


# ---------------------------------------------------------------------- blind transfer
class BlindTransfer:
    """In charge while the target rings: the transferee may hang up meanwhile."""

    state_name = "transferring"

    def __init__(self, call: Call, transferee: Party) -> None:
        self.call = call
        self.transferee = transferee
        self.abandoned = asyncio.get_running_loop().create_future()

    def party_left(self, call: Call, party: Party, partner: Party | None) -> bool:
        if party is self.transferee and not self.abandoned.done():
            self.abandoned.set_result(True)
        return False

    def call_ended(self, call: Call) -> None:
        if not self.abandoned.done():
            self.abandoned.set_result(True)


async def blind_transfer(call: Call, transferee: Party, transferor: Party, target: "User | External",
                         *, transferor_user: "User | None") -> None:
    """Release the transferor, ring the target; failing that the transferor again; else end."""
    log.info("[%s] %s transfers %s to %s (blind)", call.call_id, transferor.number, transferee.number,
             target.number if isinstance(target, External) else target.extension)
    await call.drop(transferor)
    feature = BlindTransfer(call, transferee)
    call.feature = feature
    call.music(transferee)
    if isinstance(target, External):
        party = await ring_external(call, external_destination(call, target.number, for_party=transferee,
                                                               via=transferor),
                                    for_party=transferee, label="xfer-ext", stop=[feature.abandoned])
    else:
        party = await reach_user(call, target, for_party=transferee, label="xfer", stop=[feature.abandoned])
    if party is None and not feature.abandoned.done() and transferor_user is not None:
        log.info("[%s] transfer to %s not answered: back to %s", call.call_id,
                 target.number if isinstance(target, External) else target.extension,
                 transferor_user.extension)
        party = await ring_user(call, transferor_user, for_party=transferee, label="recall",
                                stop=[feature.abandoned])
    if call.feature is feature:
        call.feature = None
    if party is None:
        if not feature.abandoned.done():
            log.info("[%s] transfer failed: ending the call", call.call_id)
            await call.drop(transferee, 'SIP;cause=480;text="Transfer target did not answer"')
        return
    if transferee.gone or transferee not in call.parties:
        await call.drop(party)
        return
    connect_new_partners(call, transferee, party)
    call.start_features(party)


# ---------------------------------------------------------------------- consultation (##2)
class Consultation:
    """``##2``: ``holder`` talks to ``target`` while ``held`` hears music on hold."""

    def __init__(self, call: Call, holder: Party, held: Party) -> None:
        self.call = call
        self.holder = holder
        self.held: Party | None = held
        self.target: Party | None = None
        self.target_user: "User | External | None" = None
        self.stop = asyncio.get_running_loop().create_future()
        self.completed = False  # the holder hung up: connect held and target

    @property
    def state_name(self) -> str:
        return "consulting" if self.target is not None else "consultation ringing"

    async def run(self, target_user: "User | External") -> None:
        call, holder = self.call, self.holder
        self.target_user = target_user
        assert self.held is not None
        holder.code_hold = False  # a ## hold before ##2 becomes the consultation's hold
        call.music(self.held)
        call.partner.pop(self.held, None)
        call.partner.pop(holder, None)
        call.silence(holder)
        try:
            holder.playback = call.core.media.play(holder.ep, ToneGenerator(NL_TONES["ringing"]))
            holder.mode = "prompt"
        except Exception:
            pass
        call.publish()
        shown = target_user.number if isinstance(target_user, External) else target_user.extension
        log.info("[%s] %s consults %s", call.call_id, holder.number, shown)
        if isinstance(target_user, External):
            party = await ring_external(call, external_destination(call, target_user.number, for_party=holder,
                                                                   via=holder),
                                        for_party=holder, label="consult-ext", stop=[self.stop])
        else:
            party = await ring_user(call, target_user, for_party=holder, label="consult", stop=[self.stop])
        if call.feature is not self:
            if party is not None:
                await call.drop(party)
            return
        if party is None:
            await self._failed()
            return
        self.target = party
        call.start_features(party)
        if self.completed:  # the holder hung up while it rang: a transfer to the answering target
            self._finish_transfer()
            return
        if self.held is None:  # the held party hung up: an ordinary call now
            call.feature = None
            connect_new_partners(call, holder, party)
            return
        connect_new_partners(call, holder, party)
        call.publish()

    async def _failed(self) -> None:
        call = self.call
        call.feature = None
        if self.completed:
            if self.held is not None:
                await call.drop(self.held, 'SIP;cause=480;text="Transfer target did not answer"')
            return
        if self.held is None:
            await call.drop(self.holder)
            return
        await call.say(self.holder, ["transfer-failed"])
        call.pair(self.holder, self.held)

    def _finish_transfer(self) -> None:
        call = self.call
        call.feature = None
        if self.held is not None and self.target is not None:
            log.info("[%s] consultation completed: %s connected to %s", call.call_id, self.held.number,
                     self.target.number)
            connect_new_partners(call, self.held, self.target)

    def party_left(self, call: Call, party: Party, partner: Party | None) -> bool:
        if party is self.holder:
            self.completed = True
            if self.target is not None:
                self._finish_transfer()
            return True  # ringing: run() finishes the transfer
        if party is self.target:
            self.target = None
            call.feature = None
            if self.held is not None:
                call.pair(self.holder, self.held)
            else:
                call.core.spawn(call.drop(self.holder))
            return True
        if party is self.held:
            self.held = None
            if self.target is not None:
                call.feature = None
                connect_new_partners(call, self.holder, self.target)
            return True
        return False

    def call_ended(self, call: Call) -> None:
        if not self.stop.done():
            self.stop.set_result(True)

    # the codes that only mean something during a consultation
    async def swap(self) -> None:
        if self.target is None or self.held is None:
            return
        self.held, self.target = self.target, self.held
        self.call.music(self.held)
        self.call.pair(self.holder, self.target)
        self.call.publish()

    async def cancel(self) -> None:
        call = self.call
        if not self.stop.done():
            self.stop.set_result(True)
        target, self.target = self.target, None
        call.feature = None
        if target is not None:
            await call.drop(target)
        if self.held is not None:
            call.pair(self.holder, self.held)

    async def conference(self) -> None:
        call = self.call
        if self.target is None or self.held is None:
            return
        call.feature = None
        call.join_conference([self.holder, self.held, self.target])
        log.info("[%s] three-way call: %s, %s, %s", call.call_id, self.holder.number, self.held.number,
                 self.target.number)


# ---------------------------------------------------------------------- REFER
async def on_refer(call: Call, party: Party, request: Request, txn: ServerTransaction) -> None:
    """The phone's transfer key: blind (Refer-To: target) or attended (Refer-To with Replaces)."""
    leg = party.leg
    refer_to = request.headers.get("Refer-To")
    if not refer_to:
        log.info("[%s] REFER from %s without Refer-To", call.call_id, party.number)
        leg.respond_in_dialog(txn, 400, "Bad Request (REFER without Refer-To)")
        return
    try:
        uri = NameAddr.parse(refer_to).uri
    except (SipError, ValueError) as exc:
        leg.respond_in_dialog(txn, 400, f"Bad Request (Refer-To: {exc})"[:120])
        return
    if call.feature is not None:
        log.info("[%s] REFER from %s while %s", call.call_id, party.number, call.feature.state_name)
        leg.respond_in_dialog(txn, 491, "Request Pending (this call is already being transferred)")
        return
    transferee = call.partner.get(party)
    if transferee is None or transferee.gone:
        leg.respond_in_dialog(txn, 403, "Forbidden (there is nobody to transfer)")
        return
    replaces = _uri_header(uri.headers, "Replaces")
    if replaces is not None:
        await _attended_by_refer(call, party, transferee, replaces, txn)
        return
    try:
        target = resolve_target(call, urllib.parse.unquote(uri.user or ""), by=party)
    except Unroutable as exc:
        log.info("[%s] REFER from %s refused: %s", call.call_id, party.number, exc.reason)
        leg.respond_in_dialog(txn, exc.status, exc.reason)
        return
    leg.respond_in_dialog(txn, 202)
    await leg.notify_refer(100, "Trying", final=False)
    if target == "park":
        from .parking import park
        slot = await park(call, transferee, parker=party)
        await leg.notify_refer(200 if slot else 403, "OK" if slot else "Forbidden", final=True)
        if slot:
            await call.say(party, ["park-slot", *_digit_prompts(slot)])
            await call.drop(party)
        return
    # RFC 5589 §6: the switch has taken over the transfer; the transferor's leg is released.
    await leg.notify_refer(200, "OK", final=True)
    assert not isinstance(target, str)
    await blind_transfer(call, transferee, party, target, transferor_user=party.user)


async def _attended_by_refer(call: Call, transferor: Party, transferee: Party, replaces: str,
                             txn: ServerTransaction) -> None:
    """REFER with Replaces naming the transferor's other dialog with us: connect the
    transferee to whoever is on that other dialog, release both transferor legs.

    The dialog to replace must be another call of the same user (RFC 3891 section 6:
    a Replaces must be authorised; otherwise anyone who learnt a dialog's tags could take
    over someone else's call).
    """
    leg = transferor.leg
    call_id, params = _parse_replaces(replaces)
    other_leg = None
    for key in ((call_id, params.get("to-tag", ""), params.get("from-tag", "")),
                (call_id, params.get("from-tag", ""), params.get("to-tag", ""))):
        other_leg = call.core.legs.get(key)
        if other_leg is not None:
            break
    leg.respond_in_dialog(txn, 202)
    other_call = other_leg.owner if other_leg is not None else None
    other_party = other_call.party_of(other_leg) if isinstance(other_call, Call) else None
    target = other_call.partner.get(other_party) if other_party is not None else None
    if other_party is None or target is None or target.gone:
        log.info("[%s] REFER/Replaces from %s: no such dialog %s", call.call_id, transferor.number, call_id)
        await leg.notify_refer(481, "Call/Transaction Does Not Exist", final=True)
        return
    assert isinstance(other_call, Call)
    if other_party is transferor or not _same_user(transferor, other_party):
        named = "this very dialog" if other_party is transferor else f"a call of {other_party.number}"
        log.info("[%s] REFER/Replaces from %s names %s, not another call of theirs: refused", call.call_id,
                 transferor.number, named)
        await leg.notify_refer(403, "Forbidden", final=True)
        return
    if other_call.feature is not None:
        log.info("[%s] REFER/Replaces from %s: the other call is %s", call.call_id, transferor.number,
                 other_call.feature.state_name)
        await leg.notify_refer(491, "Request Pending", final=True)
        return
    log.info("[%s] %s transfers %s to %s (attended)", call.call_id, transferor.number, transferee.number,
             target.number)
    call.adopt(target)
    connect_new_partners(call, transferee, target)
    call.start_features(target)
    await leg.notify_refer(200, "OK", final=True)
    await asyncio.gather(call.drop(transferor), other_call.drop(other_party), return_exceptions=True)


def _same_user(a: Party, b: Party) -> bool:
    """Both parties are devices of one internal user."""
    return a.user is not None and b.user is not None and a.user.id == b.user.id


def _uri_header(headers: str, name: str) -> str | None:
    for part in headers.split("&"):
        key, _, value = part.partition("=")
        if key.strip().lower() == name.lower():
            return urllib.parse.unquote(value)
    return None


def _parse_replaces(value: str) -> tuple[str, dict[str, str]]:
    call_id, *rest = value.split(";")
    params = {}
    for p in rest:
        k, _, v = p.partition("=")
        params[k.strip().lower()] = v.strip()
    return call_id.strip(), params


def _digit_prompts(number: int | str) -> list[str]:
    return [f"digit-{d}" for d in str(number)]


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')
