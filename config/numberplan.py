"""Which numberplan is active, and where an inbound DID goes (SPEC §19): pure functions.

Every function takes the configuration (``config.routing.SchemaConfig`` /
``AccountRouting``, read by the store in one transaction) and an aware ``datetime``; none
reads a clock or the database, so tests and the 915 IVR can ask about any moment.

Precedence (SPEC §19): **manual override** > **holiday** > **time schedule**. Among
overlapping holidays the one that started latest wins (ties: the newer entry).

Time zones: schedule entries are local *wall-clock* times of the account's time zone
(``zoneinfo``): "08:00-18:00" means 08:00 to 18:00 on the clock on the wall, also on the
days the clocks change. A moment is looked up by its local wall time, which settles the
two awkward hours:

- clocks forward (Europe/Amsterdam: last Sunday of March, 02:00 → 03:00): 02:00-02:59
  never happens; an entry starting inside that hour takes effect at 03:00, one ending
  inside it ends at the jump, one lying wholly inside it does not apply that day;
- clocks back (last Sunday of October, 03:00 → 02:00): 02:00-02:59 happens twice and the
  schedule applies to both passes; a boundary inside that hour is crossed twice.

Holidays are instants (stored as unix time), so they are unaffected.
"""
from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Literal
from zoneinfo import ZoneInfo

from config.routing import (
    DAY_MINUTES, WEEK_MINUTES, AccountRouting, Holiday, SchemaConfig, ScheduleEntry, format_local,
)

Reason = Literal["override", "holiday", "schedule", "none"]

# The schedule repeats weekly in wall time; one day more covers a week of wall time even
# across a daylight-saving change.
_SEARCH_WINDOW = dt.timedelta(days=8)
_OFFSET_PROBE = dt.timedelta(hours=1)  # no two UTC-offset changes are closer than this


@dataclass(frozen=True)
class ActivePlan:
    """The numberplan a schema uses at one moment, and why."""

    plan: int | None  # None: no plan is active (the schedule has a gap)
    reason: Reason
    detail: str  # for people: 'holiday "Christmas" 2026-12-24 18:00 → 2026-12-27 08:00'
    source_id: int | None = None  # the holiday's or schedule entry's id; None otherwise


@dataclass(frozen=True)
class DidRoute:
    """Where an inbound call to a DID goes at one moment."""

    did: str  # E.164
    schema: int  # number of the schema that routes the DID
    active: ActivePlan
    extension: str | None  # None: no plan is active, or the active plan does not map the DID
    prefix: str = ""  # display prefix for the answering phone


def _check_aware(at: dt.datetime) -> None:
    if at.tzinfo is None or at.utcoffset() is None:
        raise ValueError(f"numberplan evaluation needs an aware datetime, got naive {at.isoformat()}")


def week_minute(at: dt.datetime, tz: ZoneInfo) -> int:
    """Minutes since Monday 00:00 of ``at``'s local wall time in ``tz``."""
    local = at.astimezone(tz)
    return local.weekday() * DAY_MINUTES + local.hour * 60 + local.minute


def schedule_entry_at(schedule: Sequence[ScheduleEntry], minute: int) -> ScheduleEntry | None:
    """The entry covering week minute ``minute`` (entries never overlap; the store checks)."""
    return next((entry for entry in schedule if entry.covers(minute)), None)


def holiday_at(holidays: Sequence[Holiday], timestamp: float) -> Holiday | None:
    """The holiday in force at ``timestamp``: of those covering it, the latest to start."""
    covering = [h for h in holidays if h.covers(timestamp)]
    return max(covering, key=lambda h: (h.start, h.id), default=None)


def active_plan(config: SchemaConfig, at: dt.datetime, tz: ZoneInfo) -> ActivePlan:
    """The active numberplan of ``config`` at ``at``: override > holiday > schedule."""
    _check_aware(at)
    if config.override is not None:
        return ActivePlan(config.override, "override", "manual override")
    holiday = holiday_at(config.holidays, at.timestamp())
    if holiday is not None:
        name = f'"{holiday.description}" ' if holiday.description else ""
        detail = f"holiday {name}{format_local(holiday.start, tz)} → {format_local(holiday.end, tz)}"
        return ActivePlan(holiday.plan, "holiday", detail, holiday.id)
    entry = schedule_entry_at(config.schedule, week_minute(at, tz))
    if entry is not None:
        return ActivePlan(entry.plan, "schedule", f"time schedule ({entry.describe()})", entry.id)
    why = "the schedule has a gap here" if config.schedule else "the schema has no time schedule"
    return ActivePlan(None, "none", why)


def route_did(routing: AccountRouting, did: str, at: dt.datetime) -> DidRoute | None:
    """Where a call to ``did`` (E.164) goes at ``at``; None when no schema of the account routes it."""
    config = routing.schema_of(did)
    if config is None:
        return None
    active = active_plan(config, at, ZoneInfo(routing.timezone))
    entry = None if active.plan is None else config.entry(active.plan, did)
    if entry is None:
        return DidRoute(did, config.schema.number, active, None)
    return DidRoute(did, config.schema.number, active, entry.extension, entry.prefix)


# -- schedule changes and gaps ---------------------------------------------------------------


def _schedule_plan(schedule: Sequence[ScheduleEntry], at: dt.datetime, tz: ZoneInfo) -> int | None:
    entry = schedule_entry_at(schedule, week_minute(at, tz))
    return None if entry is None else entry.plan


def _boundaries(schedule: Sequence[ScheduleEntry]) -> set[int]:
    """Week minutes where an entry starts or ends: the schedule's plan is constant between them."""
    return {edge % WEEK_MINUTES for entry in schedule for span in entry.intervals() for edge in span}


def next_schedule_change(config: SchemaConfig, at: dt.datetime, tz: ZoneInfo) -> dt.datetime | None:
    """The first moment after ``at`` when the time schedule selects another plan (or none).

    Override and holidays are ignored: this is when a temporary change made with the 915
    IVR (option 1) ends. None when the schedule never changes (empty, or one plan all
    week). The result is in ``tz``; for a boundary in the skipped hour of spring it is
    the moment the clocks jump.
    """
    _check_aware(at)
    schedule = config.schedule
    boundaries = _boundaries(schedule)
    if len({_plan_at_minute(schedule, m) for m in boundaries | {0}}) <= 1:
        return None
    current = _schedule_plan(schedule, at, tz)
    for instant in sorted(_candidate_instants(boundaries, at, tz)):
        if instant > at and _schedule_plan(schedule, instant, tz) != current:
            return instant.astimezone(tz)
    return None  # unreachable: a schedule with two plans changes within a week


def _plan_at_minute(schedule: Sequence[ScheduleEntry], minute: int) -> int | None:
    entry = schedule_entry_at(schedule, minute)
    return None if entry is None else entry.plan


def _candidate_instants(boundaries: set[int], at: dt.datetime, tz: ZoneInfo) -> Iterator[dt.datetime]:
    """Every instant in the search window at which the local wall time reaches a boundary:
    each existing occurrence of a boundary wall time, and every UTC-offset change (where
    the wall clock jumps over or back across boundaries)."""
    first_day = at.astimezone(tz).date() - dt.timedelta(days=1)
    for day_offset in range(_SEARCH_WINDOW.days + 2):
        day = first_day + dt.timedelta(days=day_offset)
        midnight = dt.datetime.combine(day, dt.time())
        for minute in boundaries:
            if minute // DAY_MINUTES == day.weekday():
                yield from _occurrences(midnight + dt.timedelta(minutes=minute % DAY_MINUTES), tz)
    yield from _offset_changes(at, at + _SEARCH_WINDOW, tz)


def _occurrences(wall: dt.datetime, tz: ZoneInfo) -> Iterator[dt.datetime]:
    """The instants whose local wall time in ``tz`` is ``wall``: none, one or two."""
    seen: set[dt.datetime] = set()
    for fold in (0, 1):
        instant = wall.replace(tzinfo=tz, fold=fold).astimezone(dt.timezone.utc)
        if instant.astimezone(tz).replace(tzinfo=None) == wall and instant not in seen:
            seen.add(instant)
            yield instant


def _offset_changes(start: dt.datetime, stop: dt.datetime, tz: ZoneInfo) -> Iterator[dt.datetime]:
    """The instants in [start, stop) where ``tz``'s UTC offset changes, to the second."""
    probe = start.astimezone(dt.timezone.utc)
    while probe < stop:
        following = probe + _OFFSET_PROBE
        if probe.astimezone(tz).utcoffset() != following.astimezone(tz).utcoffset():
            yield _bisect_offset_change(probe, following, tz)
        probe = following


def _bisect_offset_change(before: dt.datetime, after: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The first whole second with the new offset (offsets change on whole seconds)."""
    offset = before.astimezone(tz).utcoffset()
    low, high = math.floor(before.timestamp()), math.ceil(after.timestamp())
    while high - low > 1:
        middle = (low + high) // 2
        if dt.datetime.fromtimestamp(middle, tz).utcoffset() == offset:
            low = middle
        else:
            high = middle
    return dt.datetime.fromtimestamp(high, dt.timezone.utc)


def schedule_gaps(schedule: Sequence[ScheduleEntry]) -> list[tuple[int, int]]:
    """The parts of the week no entry covers, as (start, end) week minutes, in week order.

    A gap across Sunday midnight is one pair with ``end < start`` (sun 22:00 → mon 06:00
    is (10020, 360)); an empty schedule is one gap, (0, WEEK_MINUTES).
    """
    covered = sorted(span for entry in schedule for span in entry.intervals())
    gaps: list[tuple[int, int]] = []
    reached = 0
    for start, end in covered:
        if start > reached:
            gaps.append((reached, start))
        reached = max(reached, end)
    if reached < WEEK_MINUTES:
        gaps.append((reached, WEEK_MINUTES))
    if len(gaps) > 1 and gaps[0][0] == 0 and gaps[-1][1] == WEEK_MINUTES:
        gaps = gaps[1:-1] + [(gaps[-1][0], gaps[0][1])]
    return gaps
