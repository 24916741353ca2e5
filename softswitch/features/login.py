"""Log in / log out on a device (hotdesking, SPEC §3.6, §3.7, §29): 901 and 902.

901: "enter your extension" + ``#``, "enter your PIN" + ``#``; three wrong tries end the
call. PIN 0000 makes the user choose a new one (trivial PINs refused). A twinning user
already on the maximum number of fixed devices hears "maximum reached: press 1 to log in
here and out of the others". Without twinning a login moves the user to this device.
902: PIN + ``#``; a user on several devices chooses "1: this device, 2: all devices"; a
device the user is permanently linked to cannot be logged out.

Failures per channel are counted: after ``MAX_FAILURES`` wrong logins within
``FAILURE_WINDOW`` seconds the channel is refused for that window, and each refusal is
logged (brute-forcing PINs from one phone is slow and visible).
"""
from __future__ import annotations

import logging
import time
from collections import defaultdict, deque
from typing import TYPE_CHECKING

from config.errors import ConfigError
from config.features import LoginNeedsConfirmation, check_new_pin, check_pin

if TYPE_CHECKING:
    from ..server import SipCore
    from .service import AppCall

log = logging.getLogger(__name__)

MAX_TRIES = 3  # per 901 call
MAX_FAILURES = 6  # per channel within the window
FAILURE_WINDOW = 600.0
PIN_MAX_DIGITS = 12

_failures: dict[int, deque[float]] = defaultdict(deque)


def _blocked(channel_id: int, now: float) -> bool:
    recent = _failures[channel_id]
    while recent and recent[0] < now - FAILURE_WINDOW:
        recent.popleft()
    return len(recent) >= MAX_FAILURES


def _failed(app: "AppCall", what: str) -> None:
    _failures[app.channel.id].append(time.time())
    log.warning("901 login failed on channel %s (%s): %s", app.channel.username, app.account.name, what)


async def run_login(core: "SipCore", app: "AppCall") -> None:
    if _blocked(app.channel.id, time.time()):
        log.warning("901 on channel %s refused: %d failed logins in %.0f min", app.channel.username, MAX_FAILURES,
                    FAILURE_WINDOW / 60)
        app.reject(403, "Forbidden (too many failed logins from this device; try again later)")
        return
    if not await app.answer():
        return
    for attempt in range(MAX_TRIES):
        if not await app.play(["enter-extension"]):
            return
        extension = await app.collect(max_digits=app.account.digits + 1)
        if extension is None:
            return
        if not await app.play(["enter-pin"]):
            return
        pin = await app.collect(max_digits=PIN_MAX_DIGITS)
        if pin is None:
            return
        user = core.directory.user_by_extension(app.account.id, extension) if extension else None
        if user is None or not check_pin(user, pin):
            _failed(app, f"extension {extension or '(none)'}: {'unknown extension' if user is None else 'wrong PIN'}")
            if attempt < MAX_TRIES - 1 and not _blocked(app.channel.id, time.time()):
                if not await app.play(["login-failed"]):
                    return
                continue
            await app.play(["login-failed", "goodbye"], barge_in=False)
            return
        if user.must_change_pin and not await _choose_pin(core, app, user.extension):
            return
        await _log_in(core, app, user.extension)
        return


async def _choose_pin(core: "SipCore", app: "AppCall", extension: str) -> bool:
    for _ in range(MAX_TRIES):
        if not await app.play(["choose-new-pin"]):
            return False
        pin = await app.collect(max_digits=PIN_MAX_DIGITS)
        if pin is None:
            return False
        try:
            check_new_pin(pin)
            core.store.change_pin(app.account.id, extension, pin)
        except ConfigError as exc:
            log.info("901 on %s: new PIN refused: %s", app.channel.username, exc)
            if not await app.play(["pin-too-simple"]):
                return False
            continue
        log.info("user %s chose a new PIN on %s", extension, app.channel.username)
        return await app.play(["pin-changed"])
    await app.play(["goodbye"], barge_in=False)
    return False


async def _log_in(core: "SipCore", app: "AppCall", extension: str) -> None:
    try:
        core.store.login_user(app.account.id, extension, app.channel.username)
    except LoginNeedsConfirmation as exc:
        if not await app.play(["max-devices"]):
            return
        choice = await app.collect(max_digits=1, end="")
        if choice != "1":
            await app.play(["goodbye"], barge_in=False)
            return
        try:
            core.store.login_user(app.account.id, extension, app.channel.username, confirm_replace=True)
        except ConfigError as again:
            log.info("901 on %s: %s", app.channel.username, again)
            await app.play(["not-allowed", "goodbye"], barge_in=False)
            return
        log.info("user %s logged in on %s, out of %s", extension, app.channel.username, exc)
    except ConfigError as exc:  # the channel is linked to someone else, ...
        log.info("901 on %s: %s", app.channel.username, exc)
        await app.play(["not-allowed", "goodbye"], barge_in=False)
        return
    _failures.pop(app.channel.id, None)
    log.info("user %s logged in on channel %s by 901", extension, app.channel.username)
    await app.play(["logged-in", *[f"digit-{d}" for d in extension]], barge_in=False)


async def run_logout(core: "SipCore", app: "AppCall") -> None:
    user = app.user
    if user is None:
        app.reject(403, "Forbidden (nobody is logged in on this device)")
        return
    if not await app.answer():
        return
    for attempt in range(MAX_TRIES):
        if not await app.play(["enter-pin"]):
            return
        pin = await app.collect(max_digits=PIN_MAX_DIGITS)
        if pin is None:
            return
        if check_pin(user, pin):
            break
        _failed(app, f"902 for {user.extension}: wrong PIN")
        if attempt == MAX_TRIES - 1:
            await app.play(["login-failed", "goodbye"], barge_in=False)
            return
        if not await app.play(["login-failed"]):
            return
    logins = core.store.user_logins(user.id)
    everywhere = False
    if len(logins) > 1:
        if not await app.play(["logout-this-or-all"]):
            return
        choice = await app.collect(max_digits=1, end="")
        if choice not in ("1", "2"):
            await app.play(["invalid", "goodbye"], barge_in=False)
            return
        everywhere = choice == "2"
    try:
        if everywhere:
            gone = core.store.logout_everywhere(user)
            if not gone:
                raise ConfigError(f"user {user.extension} is permanently linked to every device")
        else:
            core.store.logout_channel(app.account.id, app.channel.username)
    except ConfigError as exc:
        log.info("902 on %s: %s", app.channel.username, exc)
        await app.play(["not-allowed", "goodbye"], barge_in=False)
        return
    log.info("user %s logged out of %s by 902", user.extension, "all devices" if everywhere else app.channel.username)
    await app.play(["logged-out"], barge_in=False)
