"""Where a call goes once routing knows the destination: REACH for users, trunks for
external numbers (issue 5; SPEC §4, §19, §29).

``Destination`` is what routing hands to a call: ``ToUser`` (an extension: REACH decides
what rings, in which order, and where the call is forwarded) or ``ToExternal`` (a number
reached through the account's trunks, in priority order with fail-over). This module
turns them into concrete plans; ``b2bua.Call`` executes them.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from config import reach
from config.models import Account, User

from .b2bua import Target

if TYPE_CHECKING:
    from config.routing import Trunk

    from .server import SipCore

log = logging.getLogger(__name__)

MAX_FORWARD_HOPS = reach.MAX_FORWARD_HOPS
TRUNK_RING_TIMEOUT = 120.0  # the carrier decides how long the far end rings
EMERGENCY_NUMBER = "112"  # sent to the trunks as dialled (routing._emergency), never normalised


@dataclass(frozen=True)
class ToUser:
    user: User
    incoming: reach.IncomingCall


@dataclass(frozen=True)
class ToExternal:
    number: str  # E.164
    caller_number: str  # what to present (E.164 or extension); "" when anonymous
    caller_name: str
    anonymous: bool = False
    asserted: str = ""  # the real identity for P-Asserted-Identity (E.164)


@dataclass(frozen=True)
class Refused:
    status: int
    reason: str


Destination = ToUser | ToExternal | Refused


def now_in(account: Account) -> dt.datetime:
    return dt.datetime.fromtimestamp(time.time(), ZoneInfo(account.timezone))


def reach_config(core: "SipCore", user: User) -> reach.ReachConfig:
    return core.directory.cached(("reach", user.id), lambda: core.store.reach_config(user.id))


def decide(core: "SipCore", account: Account, dest: ToUser) -> reach.ReachDecision:
    """The user's REACH decision for this call now (SPEC §29: status × class → profile)."""
    channels = core.directory.channels_of_user(dest.user.id)
    devices = [c.username for c in channels]
    wall = time.time()
    registered = {c.username for c in channels if core.location.bindings(c.id, wall)}
    return reach.evaluate(reach_config(core, dest.user), now_in(account), ZoneInfo(account.timezone),
                          dest.incoming, devices, registered=registered)


def targets_for_devices(core: "SipCore", user: User, devices: tuple[str, ...]) -> list[Target]:
    wanted = set(devices)
    return [t for t in core.targets_of(user) if t.channel in wanted]


def company_number(core: "SipCore", account: Account) -> str:
    """The account's main number: its first DID that is not a personal number."""
    numbers = core.directory.cached(("numbers", account.id), lambda: core.store.numbers(account.id))
    for n in numbers:
        if n.user_id is None:
            return n.number
    return ""


def personal_number(core: "SipCore", user: User) -> str:
    numbers = core.directory.cached(("personal", user.id), lambda: core.store.personal_numbers(user.id))
    return numbers[0].number if numbers else ""


def resolve_forward(core: "SipCore", account: Account, destination: str, *, forwarded_by: User,
                    caller_number: str, caller_name: str, incoming: reach.IncomingCall,
                    forward_caller_id: str) -> Destination:
    """A REACH forward destination (``ext:NNN``, ``ext:voicemail``, an external number)."""
    if destination == reach.VOICEMAIL or destination.startswith("voicemail:"):
        return Refused(480, f"Temporarily Unavailable ({forwarded_by.extension} forwards to voicemail, "
                            "which is not available yet)")
    if destination.startswith("ext:"):
        user = core.directory.user_by_extension(account.id, destination[4:])
        if user is None:
            return Refused(404, f"Not Found ({forwarded_by.extension} forwards to {destination[4:]}, which does not exist)")
        return ToUser(user, incoming)
    number = normalise(core, account, destination)
    if number is None:
        return Refused(404, f"Not Found ({forwarded_by.extension} forwards to {destination!r}, not a number)")
    # SPEC §29: the caller ID on a forwarded external call is the calling or the called number
    if forward_caller_id == "called" or not caller_number:
        shown = personal_number(core, forwarded_by) or company_number(core, account)
        return ToExternal(number, shown, forwarded_by.name, asserted=shown)
    if incoming.internal:
        # the calling number of a colleague is an extension, which means nothing to the
        # carrier or the person called: present the colleague's own external number
        colleague = core.directory.user_by_extension(account.id, caller_number)
        shown = (personal_number(core, colleague) if colleague else "") or company_number(core, account)
        return ToExternal(number, shown, caller_name, asserted=shown)
    return ToExternal(number, caller_number, caller_name, anonymous=incoming.anonymous,
                      asserted=caller_number if caller_number.startswith("+") else company_number(core, account))


def normalise(core: "SipCore", account: Account, number: str) -> str | None:
    from config.routing import normalise_number
    country = core.directory.cached(("country", account.id), lambda: core.store.account_country(account.id))
    try:
        return normalise_number(number, country)
    except ValueError:
        return None


def trunk_plan(core: "SipCore", account: Account, dest: ToExternal) -> list["Trunk"]:
    """The account's trunks in the order to try them (TrunkManager: up ones first). An
    emergency call also tries the trunks the keep-alive believes down, last: the belief
    may be wrong, and 112 must not be refused while any trunk might carry it."""
    return core.trunks.candidates(account.id, include_down=dest.number == EMERGENCY_NUMBER)


def no_trunk_reason(core: "SipCore", account: Account) -> str:
    """The 503 reason when ``trunk_plan`` is empty. The trunks the account has are down,
    failing authentication or without an address (``TrunkManager.candidates`` leaves those
    out): each is named with its state in the reason and gets one log line, so the
    administrator sees that the carrier, not the configuration, is the problem."""
    trunks = core.directory.cached(("trunks", account.id), lambda: core.store.trunks(account.id))
    if not trunks:
        return "Service Unavailable (no trunk is configured for external calls)"
    states = []
    for trunk in trunks:
        status = core.trunks.status_of(trunk)
        state = "not monitored yet" if status is None else status.state.value
        if status is not None and status.detail:
            state += f" ({status.detail})"
        log.warning("trunk %s of %s not tried: %s", trunk.name, account.name, state)
        states.append(f"{trunk.name} {state}")
    return f"Service Unavailable (no trunk is available: {'; '.join(states)})"


def trunk_targets(core: "SipCore", account: Account, dest: ToExternal
                  ) -> list[tuple["Trunk", Target, str, str, tuple[tuple[str, str], ...]]]:
    """Per usable trunk, in order: the target, From, To and the caller-ID headers of an
    INVITE for ``dest`` (RFC 3325 P-Asserted-Identity; RFC 3323 ``Privacy: id`` when the
    number is withheld)."""
    out = []
    for trunk in trunk_plan(core, account, dest):
        peer = core.trunks.peer_of(trunk)
        if peer is None:
            continue
        host = trunk.address
        headers: list[tuple[str, str]] = []
        if dest.anonymous:
            from_ = '"Anonymous" <sip:anonymous@anonymous.invalid>'
            headers.append(("Privacy", "id"))
        else:
            from_ = f'"{_quote(dest.caller_name)}" <sip:{dest.caller_number}@{trunk.host}>'
        if dest.asserted:
            headers.append(("P-Asserted-Identity", f"<sip:{dest.asserted}@{trunk.host}>"))
        target = Target(f"sip:{dest.number}@{host}", peer, f"trunk:{trunk.name}")
        out.append((trunk, target, from_, f"<sip:{dest.number}@{trunk.host}>", tuple(headers)))
    return out


def _quote(text: str) -> str:
    return text.replace("\\", "\\\\").replace('"', '\\"')

