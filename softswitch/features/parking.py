"""Call parking (SPEC §7): ``##7`` or a transfer to ``*7`` parks the partner in the lowest
free slot of the account (announced to the parker), the parked party hears music on hold;
``*7``+slot retrieves it (``*7`` alone: your own most recent), by the parker or a member of
a privacy group that grants "retrieve parked calls"; after the account's park timeout
(default 120 s) the parker's devices ring back, up to the recall limit, then the call ends.

Parked calls live in the daemon; ``parked_calls`` in the database mirrors them for
``softswitch parked`` and is cleared at start (a restart ends parked calls with BYE).
"""
from __future__ import annotations

import asyncio
import logging
import time
from typing import TYPE_CHECKING

from config.features import ParkedCall, may_retrieve_parked

from ..b2bua import Call, Party
from .slots import LotFull, ParkingLot

if TYPE_CHECKING:
    from config.models import Account, User

    from ..server import SipCore
    from .service import AppCall

log = logging.getLogger(__name__)


class Parked:
    """The feature in charge of a parked call.

    ``released`` is set when the call leaves its slot (retrieved, recalled, the caller hung
    up, the call ended): it stops the recall's wait and its ringing, so the parker's
    phones get CANCEL instead of ringing on for a call that is no longer parked.
    """

    state_name = "parked"

    def __init__(self, service: "ParkingService", lot: ParkingLot["Parked"], call: Call, party: Party,
                 parker_ext: str) -> None:
        self.service = service
        self.lot = lot
        self.call = call
        self.party = party
        self.slot = 0  # set once the lot gave it one
        self.parker_ext = parker_ext
        self.released: asyncio.Future[None] = asyncio.get_running_loop().create_future()

    def party_left(self, call: Call, party: Party, partner: Party | None) -> bool:
        if party is self.party:
            log.info("[%s] parked caller in slot %d hung up", call.call_id, self.slot)
            self.service.release(self)
            call.feature = None
            call.parked_slot = None
        return False

    def call_ended(self, call: Call) -> None:
        self.service.release(self)


class ParkingService:
    """The parking lots of all accounts, and the recalls of the calls parked in them."""

    def __init__(self, core: "SipCore") -> None:
        self.core = core
        self.lots: dict[int, ParkingLot[Parked]] = {}

    def lot(self, account: "Account") -> ParkingLot[Parked]:
        """The account's lot; an empty lot follows a changed slot range at once (a lot
        holding calls keeps its numbers until it is empty: announced slots stay valid)."""
        lot = self.lots.get(account.id)
        if lot is None or (len(lot) == 0 and (lot.first, lot.count) != (account.park_first_slot, account.park_slots)):
            lot = self.lots[account.id] = ParkingLot(account.park_first_slot, account.park_slots)
        return lot

    def release(self, parked: Parked) -> bool:
        """Take ``parked`` out of its slot; False if it had left it already (the slot may
        hold another call by now, which must stay)."""
        if parked.released.done():
            return False
        parked.released.set_result(None)
        entry = parked.lot.peek(parked.slot)
        if entry is not None and entry.item is parked:
            parked.lot.retrieve(parked.slot)
            self.core.write_behind(self.core.writer.remove_parked, parked.call.account.id, parked.slot)
        return True

    async def recall(self, parked: Parked) -> None:
        """Ring the parker back after the timeout; again after each unanswered recall."""
        from .transfer import ring_user
        call, lot = parked.call, parked.lot
        while True:
            entry = lot.peek(parked.slot)
            if entry is None or entry.item is not parked:
                return
            await asyncio.wait({parked.released}, timeout=max(0.0, entry.recall_at - time.time()))
            if parked.released.done() or parked.party.gone:
                return
            account = _current_account(call)
            parker = self.core.directory.user_by_extension(account.id, parked.parker_ext)
            answered = None
            if parker is not None:
                log.info("[%s] slot %d not retrieved: ringing %s back", call.call_id, parked.slot, parker.extension)
                answered = await ring_user(call, parker, for_party=parked.party, label="park-recall",
                                           stop=[parked.released])
            if parked.released.done() or parked.party.gone:  # retrieved or hung up while it rang
                if answered is not None:
                    await call.drop(answered)
                return
            if answered is not None:
                self.release(parked)
                call.feature = None
                call.parked_slot = None
                call.pair(parked.party, answered)
                call.start_features(answered)
                call.publish()
                log.info("[%s] %s answered the recall of slot %d", call.call_id, parked.parker_ext, parked.slot)
                return
            recalls = lot.rearm(parked.slot, time.time(), account.park_timeout)
            if recalls > account.park_recall_limit:
                log.info("[%s] slot %d: recall limit reached, ending the call", call.call_id, parked.slot)
                self.release(parked)
                await call.drop(parked.party, 'SIP;cause=480;text="Parked call not retrieved"')
                return
            self._publish(parked, lot.peek(parked.slot).recall_at)  # type: ignore[union-attr]

    def _publish(self, parked: Parked, recall_at: float) -> None:
        record = ParkedCall(account_id=parked.call.account.id, slot=parked.slot, call_id=parked.call.call_id,
                            parker_extension=parked.parker_ext, parked_party=f"{parked.party.number} {parked.party.name}".strip(),
                            parked_at=parked.party.joined_at, recall_at=recall_at)
        self.core.write_behind(self.core.writer.put_parked, record)


async def park(call: Call, party: Party, *, parker: Party) -> int | None:
    """Park ``party`` (the parker's partner); the slot, or None after telling the parker why.

    The right and the account's parking settings are read now, not when the call began:
    an administrator's change applies to calls already in progress."""
    service: ParkingService = call.core.parking
    user = _current_user(call, parker)
    if user is None or not user.may_park:
        log.info("[%s] %s may not park calls", call.call_id, parker.number)
        await call.say(parker, ["not-allowed"])
        return None
    account = _current_account(call)
    lot = service.lot(account)
    now = time.time()
    parked = Parked(service, lot, call, party, user.extension)
    try:
        slot = lot.park(user.extension, parked, now, account.park_timeout)
    except LotFull:
        log.warning("[%s] park: all %d slots of %s are taken", call.call_id, account.park_slots, account.name)
        await call.say(parker, ["unavailable"])
        return None
    parked.slot = slot
    call.partner.pop(party, None)
    call.partner.pop(parker, None)
    call.feature = parked
    call.parked_slot = slot
    call.music(party)
    party.joined_at = now
    service._publish(parked, now + account.park_timeout)
    call.core.spawn(service.recall(parked))
    call.publish()
    log.info("[%s] %s parked %s in slot %d", call.call_id, user.extension, party.number, slot)
    return slot


def _current_account(call: Call) -> "Account":
    """The call's account as configured now (``Call.account`` is what it was at the start)."""
    return call.core.directory.account_by_domain(call.account.domain) or call.account


def _current_user(call: Call, party: Party) -> "User | None":
    """The party's user as configured now (``Party.user`` is what it was at the call's start)."""
    if party.user is None:
        return None
    return call.core.directory.user_by_extension(call.account.id, party.user.extension)


async def run_retrieve(core: "SipCore", app: "AppCall") -> None:
    """``*7`` + slot (or ``*7`` alone: the caller's own most recent parked call)."""
    service: ParkingService = core.parking
    user = app.user
    assert user is not None
    lot = service.lot(app.account)
    if app.code.arg:
        if not app.code.arg.isdigit():
            app.reject(404, f"Not Found (no park slot {app.code.arg[:8]})")
            return
        entry = lot.peek(int(app.code.arg))
    else:
        entry = lot.latest_of(user.extension)
    if entry is None:
        what = f"slot {app.code.arg}" if app.code.arg else f"a call parked by {user.extension}"
        app.reject(404, f"Not Found (no parked call in {what})")
        return
    parked = entry.item
    if parked.parker_ext != user.extension:
        parker = core.directory.user_by_extension(app.account.id, parked.parker_ext)
        groups = core.store.privacy_groups_of_user(user.id)
        if parker is None or not may_retrieve_parked(groups, user.id, parker.id):
            log.info("retrieve of slot %d by %s refused: no right over %s's parked calls", parked.slot,
                     user.extension, parked.parker_ext)
            app.reject(403, f"Forbidden (no right to retrieve calls parked by {parked.parker_ext})")
            return
    if not await app.answer(prefer=parked.party.codec):
        return
    if not service.release(parked) or parked.party.gone:  # taken or hung up while answering
        await app.play(["no-parked-call"], barge_in=False)
        return
    call = parked.call
    call.feature = None
    call.parked_slot = None
    party = app.become_party(call)
    call.pair(parked.party, party)
    call.start_features(party)
    log.info("[%s] %s retrieved slot %d", call.call_id, user.extension, parked.slot)
