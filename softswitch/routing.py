"""Routing of a new INVITE: who is calling, what did they dial, where does it go.

From a trunk (source address of one of the trunks, ``TrunkManager.match_inbound``): the
DID → a personal number, or the active numberplan of its schema → an extension.
From a device, in order (each with its SIP answer): unknown domain 404 · authentication
407/403 · no user logged in on the channel 403 (only 901 and 112 allowed) · Max-Forwards 0
483 · non-SDP body 415 · Accept without SDP 406 · a service code → ServiceRoute · 0…/+…
(optionally after #3x#/#31#) → rights, barring, caller ID → the trunks · otherwise an
extension of the account (404/484). Users are then delivered by their REACH rules
(``softswitch.delivery``), which decide what rings and the 480/486 when nothing answers.
"""
from __future__ import annotations

import logging
import time
import urllib.parse
from dataclasses import dataclass
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from config import reach
from config.models import Account, Channel, User

from . import delivery
from .b2bua import Target
from .delivery import Destination, ToExternal, ToUser
from .features.codes import EMERGENCY, LOGIN, ServiceCode, classify_dialled
from .registrar import peer_of_binding

if TYPE_CHECKING:
    from config.routing import Trunk

    from .server import SipCore
    from .sip.message import Request
    from .sip.transaction import Peer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    """A call to deliver: who calls (an internal user on a channel, or a caller on a trunk)
    and where it goes (``delivery.ToUser`` / ``ToExternal``)."""

    account: Account
    caller: User | None
    channel: Channel | None
    destination: "Destination"
    caller_number: str
    caller_name: str
    dialled: str
    anonymous: bool = False
    display_prefix: str = ""
    trunk: str = ""


@dataclass(frozen=True)
class ServiceRoute:
    """A service code dialled from a device (901, *8, *7…): the switch answers it."""

    account: Account
    caller: User | None
    channel: Channel
    code: ServiceCode
    dialled: str


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def route_invite(core: "SipCore", request: "Request", peer: "Peer", now: float) -> Route | ServiceRoute | Refusal:
    # The caller's From names its account (devices); a carrier is known by its address.
    from_uri = request.from_.uri
    trunk = core.trunks.match_inbound(peer)
    if trunk is not None and (trunk.port == peer[2] or not from_uri.is_sip
                              or core.directory.account_by_domain(from_uri.host) is None):
        # the same IP as a trunk but another port and one of our domains: a device on the
        # carrier's host (or on loopback in tests), not the carrier
        return _acceptable(request) or route_inbound(core, request, trunk)
    auth = core.auth.identify(request, from_uri.host if from_uri.is_sip else request.uri.host, now)
    if not auth.ok:
        return Refusal(auth.status, auth.reason, auth.headers)
    account, channel = auth.account, auth.channel
    assert account is not None and channel is not None
    caller = core.directory.user_on_channel(channel.id)
    dialled = urllib.parse.unquote(request.uri.user or "")
    code = classify_dialled(dialled, account.digits) if dialled else None
    if caller is None and (code is None or code.name not in (LOGIN, EMERGENCY)):
        return Refusal(403, "Forbidden (no user logged in on this device; dial 901 to log in)")
    refusal = _acceptable(request)
    if refusal is not None:
        return refusal
    if code is not None:
        if code.name == EMERGENCY:
            return _emergency(core, account, caller, channel, dialled)
        return ServiceRoute(account, caller, channel, code, dialled)
    assert caller is not None
    if dialled.startswith(("0", "+", "#3")):
        return route_outbound(core, account, caller, channel, dialled)
    if not dialled.isdigit():
        return Refusal(404, f"Not Found ({dialled[:32]!r} is not a number)")
    if len(dialled) < account.digits:
        return Refusal(484)
    callee = core.directory.user_by_extension(account.id, dialled)
    if callee is None:
        return Refusal(404, f"Not Found (no extension {dialled} in this account)")
    incoming = reach.IncomingCall(internal=True, from_number=caller.extension)
    return Route(account, caller, channel, ToUser(callee, incoming), caller.extension, caller.name, dialled)


def _acceptable(request: "Request") -> Refusal | None:
    if request.max_forwards == 0:
        return Refusal(483)
    if request.body and request.content_type not in ("application/sdp", ""):
        return Refusal(415, None, (("Accept", "application/sdp"),))
    accept = [a.split(";")[0].strip().lower() for a in request.headers.values("Accept")]
    if accept and not any(a in ("application/sdp", "application/*", "*/*") for a in accept):
        return Refusal(406, None, (("Warning", '399 softswitch "only application/sdp bodies are supported"'),))
    return None


def _emergency(core: "SipCore", account: Account, caller: User | None, channel: Channel, dialled: str
               ) -> Route | Refusal:
    """112 is never barred and needs no login; it leaves through the account's trunks."""
    if not core.trunks.candidates(account.id, include_down=True):
        log.warning("emergency call 112 from %s (%s): no trunk is configured", channel.username, account.name)
        return Refusal(503, "Service Unavailable (emergency calls need a trunk; none is configured)")
    log.warning("emergency call 112 from %s (%s)", channel.username, account.name)
    number = delivery.company_number(core, account)
    if caller is not None:
        number = delivery.personal_number(core, caller) or number
    return Route(account, caller, channel, ToExternal("112", number, caller.name if caller else "", asserted=number),
                 number, caller.name if caller else channel.username, dialled)


def route_outbound(core: "SipCore", account: Account, caller: User, channel: Channel, dialled: str
                   ) -> Route | Refusal:
    """A logged-in user dials 0…/+… (optionally after #3x# / #31#): rights, call barring,
    caller ID from REACH (dynamic caller ID, profile, personal or company number)."""
    config = delivery.reach_config(core, caller)
    now = delivery.now_in(account)
    choice = reach.outbound_caller_id(config, now, ZoneInfo(account.timezone), dialled)
    number = delivery.normalise(core, account, choice.number)
    if number is None:
        return Refusal(404, f"Not Found ({choice.number[:32]!r} is not a phone number)")
    if not caller.may_external:
        log.info("%s may not call external numbers (dialled %s)", caller.extension, number)
        return Refusal(403, "Forbidden (you may not call external numbers)")
    country = core.directory.cached(("country", account.id), lambda: core.store.account_country(account.id))
    categories = reach.classify_number(number, country)
    if "international" in categories and not caller.may_international:
        log.info("%s may not call international numbers (dialled %s)", caller.extension, number)
        return Refusal(403, "Forbidden (you may not call international numbers)")
    bar = reach.barred(config.barring, number, country)
    if bar is not None:
        log.info("call from %s to %s barred: %s", caller.extension, number, bar)
        return Refusal(403, f"Forbidden (call barring: {reach.BARRING_CATEGORIES.get(bar, bar)})")
    real = delivery.personal_number(core, caller) or delivery.company_number(core, account)
    anonymous = choice.caller_id == reach.CALLER_ID_ANONYMOUS
    if anonymous or choice.caller_id in ("", reach.CALLER_ID_COMPANY):
        shown = real if anonymous or choice.caller_id == "" else delivery.company_number(core, account)
    else:
        owner = core.store.number_owner(choice.caller_id)
        if owner is None or owner.account_id != account.id:
            log.warning("%s: caller ID %s is not a number of account %s; sending %s", caller.extension,
                        choice.caller_id, account.name, real)
            shown = real
        else:
            shown = choice.caller_id
    log.info("outbound call %s -> %s, caller ID %s (%s)", caller.extension, number,
             "withheld" if anonymous else shown or "none", choice.reason)
    return Route(account, caller, channel, ToExternal(number, "" if anonymous else shown, caller.name,
                                                       anonymous=anonymous, asserted=real or shown),
                 caller.extension, caller.name, dialled)


def route_inbound(core: "SipCore", request: "Request", trunk: "Trunk") -> Route | Refusal:
    """A call from a carrier: DID → personal number or the active numberplan → REACH."""
    account = core.directory.cached(("account-id", trunk.account_id), lambda: core.store.account_by_id(trunk.account_id))
    if account is None:
        return Refusal(404, "Not Found (trunk without account)")
    did = delivery.normalise(core, account, urllib.parse.unquote(request.uri.user or request.to.uri.user or ""))
    if did is None:
        return Refusal(404, f"Not Found ({request.uri.user!r} is not a phone number)")
    from_user = urllib.parse.unquote(request.from_.uri.user or "")
    privacy = (request.headers.get("Privacy") or "").lower()
    anonymous = not from_user or from_user.lower() in ("anonymous", "restricted", "unknown") or "id" in privacy
    caller_number = "" if anonymous else (delivery.normalise(core, account, from_user) or from_user)
    caller_name = "" if anonymous else (request.from_.display or "")
    owner = core.store.number_owner(did)
    if owner is None or owner.account_id != account.id:
        log.info("inbound call on trunk %s to %s: not a number of account %s", trunk.name, did, account.name)
        return Refusal(404, f"Not Found ({did} is not a number of this account)")
    incoming = reach.IncomingCall(internal=False, anonymous=anonymous, dialled_did=did, from_number=caller_number)
    prefix = ""
    if owner.user_id is not None:
        user = core.directory.cached(("user-id", owner.user_id), lambda: core.store.user_by_id(owner.user_id))
        why = "personal number"
    else:
        routing = core.directory.cached(("routing", account.id), lambda: core.store.account_routing(account.id))
        from config.numberplan import route_did
        found = route_did(routing, did, delivery.now_in(account))
        if found is None:
            return Refusal(404, f"Not Found ({did} is in no numberplan)")
        if found.extension is None:
            log.info("inbound call to %s: %s", did, found.active.detail)
            return Refusal(480, f"Temporarily Unavailable ({did}: {found.active.detail or 'no numberplan is active'})")
        user = core.directory.user_by_extension(account.id, found.extension)
        prefix = found.prefix
        why = f"schema {found.schema}, {found.active.reason} plan {found.active.plan}"
    if user is None:
        return Refusal(404, f"Not Found ({did} leads to an extension that does not exist)")
    log.info("inbound call on trunk %s from %s to %s -> %s (%s)", trunk.name, caller_number or "anonymous", did,
             user.extension, why)
    return Route(account, None, None, ToUser(user, incoming), caller_number, caller_name, did, anonymous=anonymous,
                 display_prefix=prefix, trunk=trunk.name)


def targets_of(core: "SipCore", user: User) -> list[Target]:
    """Every registered contact of every device the user is logged in on (twinning rings all)."""
    targets: list[Target] = []
    wall = time.time()
    for ch in core.directory.channels_of_user(user.id):
        for binding in core.location.bindings(ch.id, wall):
            targets.append(Target(binding.contact, peer_of_binding(binding), ch.username))
    return targets
