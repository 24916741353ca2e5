"""The time-configuration IVR, 915 (SPEC §19; needs the user's time-configuration right).

    [schema number + # — only when the account has several schemas]
    1 temporary change until the next scheduled change  → numberplan + #, confirm with #
    2 permanent change (manual override)                → numberplan + #, confirm with #
    3 back to the time schedule (override and 915 temporary changes removed)

Option 1 is written as a holiday entry ("915 temporary change") that ends at the next
change of the time schedule, so ``numberplan active`` and ``holiday list`` explain it.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from zoneinfo import ZoneInfo

from config.errors import ConfigError
from config.numberplan import active_plan, next_schedule_change

from .. import delivery

if TYPE_CHECKING:
    from ..server import SipCore
    from .service import AppCall

log = logging.getLogger(__name__)

TEMPORARY_DESCRIPTION = "915 temporary change"
MAX_TRIES = 3


async def run_time_config(core: "SipCore", app: "AppCall") -> None:
    user = app.user
    assert user is not None
    if not await app.answer():
        return
    if not user.may_time_config:
        log.info("915 from %s refused: no time-configuration right", user.extension)
        await app.play(["not-allowed", "goodbye"], barge_in=False)
        return
    account = app.account
    schemas = core.store.schemas(account.id)
    schema = schemas[0].number
    if len(schemas) > 1:
        chosen = await _ask_number(app, "timecfg-enter-schema", {s.number for s in schemas})
        if chosen is None:
            return
        schema = chosen
    for _ in range(MAX_TRIES):
        if not await app.play(["timecfg-menu"]):
            return
        option = await app.collect(max_digits=1, end="")
        if option in ("1", "2", "3"):
            break
        if option is None or not await app.play(["invalid"]):
            return
    else:
        await app.play(["goodbye"], barge_in=False)
        return
    tz = ZoneInfo(account.timezone)
    now = delivery.now_in(account)
    try:
        if option == "3":
            core.store.clear_override(account.id, schema)
            config = core.store.schema_config(account.id, schema)
            for holiday in config.holidays:
                if holiday.description == TEMPORARY_DESCRIPTION and holiday.start <= now.timestamp() < holiday.end:
                    core.store.delete_holiday(account.id, holiday.id)
            log.info("915 by %s: schema %d back to its time schedule", user.extension, schema)
            await _say_active(core, app, schema, ["timecfg-schedule-restored"])
            return
        plans = {p.number for p in core.store.numberplans(account.id, schema)}
        plan = await _ask_number(app, "timecfg-enter-numberplan", plans)
        if plan is None:
            return
        if not await app.play(["timecfg-confirm"]):
            return
        if await app.collect(max_digits=1, end="") != "#":
            await app.play(["goodbye"], barge_in=False)
            return
        if option == "2":
            core.store.set_override(account.id, schema, plan)
            log.info("915 by %s: schema %d numberplan %d set permanently", user.extension, schema, plan)
        else:
            config = core.store.schema_config(account.id, schema)
            until = next_schedule_change(config, now, tz)
            if until is None:
                log.info("915 by %s: schema %d has no scheduled change to return at", user.extension, schema)
                await app.play(["invalid", "goodbye"], barge_in=False)
                return
            core.store.add_holiday(account.id, schema, plan, now, until, TEMPORARY_DESCRIPTION)
            log.info("915 by %s: schema %d numberplan %d until %s", user.extension, schema, plan,
                     until.isoformat(timespec="minutes"))
    except ConfigError as exc:
        log.info("915 by %s refused: %s", user.extension, exc)
        await app.play(["invalid", "goodbye"], barge_in=False)
        return
    await _say_active(core, app, schema, ["timecfg-changed"])


async def _ask_number(app: "AppCall", prompt: str, valid: set[int]) -> int | None:
    for _ in range(MAX_TRIES):
        if not await app.play([prompt]):
            return None
        digits = await app.collect(max_digits=3)
        if digits is None:
            return None
        if digits.isdigit() and int(digits) in valid:
            return int(digits)
        if not await app.play(["invalid"]):
            return None
    await app.play(["goodbye"], barge_in=False)
    return None


async def _say_active(core: "SipCore", app: "AppCall", schema: int, first: list[str]) -> None:
    account = app.account
    config = core.store.schema_config(account.id, schema)
    active = active_plan(config, delivery.now_in(account), ZoneInfo(account.timezone))
    prompts = list(first)
    if active.plan is not None:
        prompts += ["timecfg-active-plan", *[f"digit-{d}" for d in str(active.plan)]]
    await app.play(prompts, barge_in=False)
