"""``*910``: a REACH forward set from the phone (SPEC §29), overriding the profile's
forwards until cleared.

* ``*910`` + number: forward every call unconditionally to that extension or external number;
* ``*910`` alone: clears the forward when one is set; otherwise asks for the number (+ #).
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from config import reach
from config.errors import ConfigError

if TYPE_CHECKING:
    from ..server import SipCore
    from .service import AppCall

log = logging.getLogger(__name__)


def _destination(app: "AppCall", digits: str) -> str:
    if len(digits) == app.account.digits and not digits.startswith("0"):
        return f"ext:{digits}"
    return digits


async def run_forward(core: "SipCore", app: "AppCall") -> None:
    user = app.user
    assert user is not None
    if not await app.answer():
        return
    account = app.account
    number = app.code.arg
    if not number:
        config = core.store.reach_config(user.id)
        if config.forward_override is not None:
            core.store.clear_forward_override(account.name, user.extension)
            log.info("*910 by %s: forward cleared", user.extension)
            await app.play(["forward-cleared"], barge_in=False)
            return
        if not await app.play(["enter-destination"]):
            return
        number = await app.collect(max_digits=20) or ""
        if not number:
            await app.play(["invalid", "goodbye"], barge_in=False)
            return
    destination = _destination(app, number)
    if destination == f"ext:{user.extension}":
        await app.play(["invalid", "goodbye"], barge_in=False)
        return
    try:
        core.store.set_forward_override(account.name, user.extension, reach.FORWARD_ALWAYS, destination)
    except ConfigError as exc:
        log.info("*910 by %s refused: %s", user.extension, exc)
        await app.play(["invalid", "goodbye"], barge_in=False)
        return
    log.info("*910 by %s: every call forwarded to %s", user.extension, destination)
    await app.play(["forward-set"], barge_in=False)
