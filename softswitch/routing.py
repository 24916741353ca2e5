"""Routing of a new INVITE: who is calling, what did they dial, which devices ring.

Order of checks (each with its SIP answer):
  unknown domain 404 · authentication 407/403 · no user logged in on the channel 403 ·
  Max-Forwards 0 483 · non-SDP body 415 · Accept without SDP 406 · not an extension of the
  account 404/484 · no such user 404 · user not logged in anywhere / no device registered 480.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from config.models import Account, User

from .b2bua import Target
from .registrar import peer_of_binding

if TYPE_CHECKING:
    from .server import SipCore
    from .sip.message import Request
    from .sip.transaction import Peer

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    account: Account
    caller: User
    callee: User
    targets: list[Target]


@dataclass(frozen=True)
class Refusal:
    status: int
    reason: str | None = None
    headers: tuple[tuple[str, str], ...] = ()


def route_invite(core: "SipCore", request: "Request", peer: "Peer", now: float) -> Route | Refusal:
    # The caller's From names its account.
    from_uri = request.from_.uri
    auth = core.auth.identify(request, from_uri.host if from_uri.is_sip else request.uri.host, now)
    if not auth.ok:
        return Refusal(auth.status, auth.reason, auth.headers)
    account, channel = auth.account, auth.channel
    assert account is not None and channel is not None
    caller = core.directory.user_on_channel(channel.id)
    if caller is None:
        return Refusal(403, "Forbidden (no user logged in on this device; dial 901 to log in)")
    if request.max_forwards == 0:
        return Refusal(483)
    if request.body and request.content_type not in ("application/sdp", ""):
        return Refusal(415, None, (("Accept", "application/sdp"),))
    accept = [a.split(";")[0].strip().lower() for a in request.headers.values("Accept")]
    if accept and not any(a in ("application/sdp", "application/*", "*/*") for a in accept):
        return Refusal(406, None, (("Warning", '399 softswitch "only application/sdp bodies are supported"'),))
    dialled = request.uri.user or ""
    if not dialled.isdigit():
        return Refusal(404, f"Not Found ({dialled[:32]!r} is not a number)")
    if len(dialled) < account.digits:
        return Refusal(484)
    callee = core.directory.user_by_extension(account.id, dialled)
    if callee is None:
        return Refusal(404, f"Not Found (no extension {dialled} in this account)")
    targets: list[Target] = []
    wall = time.time()
    for ch in core.directory.channels_of_user(callee.id):
        for binding in core.location.bindings(ch.id, wall):
            targets.append(Target(binding.contact, peer_of_binding(binding), ch.username))
    if not targets:
        return Refusal(480, f"Temporarily Unavailable ({callee.extension} has no registered device)")
    return Route(account, caller, callee, targets)
