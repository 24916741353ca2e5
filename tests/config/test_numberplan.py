"""The pure routing rules (config.routing) and the numberplan evaluator (config.numberplan).

Every moment is an explicit datetime; nothing here reads a clock. The office of the
fixtures: Day (mon-fri 08:00-18:00), Night (mon-thu 18:00-08:00, per day) and Night
again for the weekend (fri 18:00 → mon 08:00, per period), Christmas for holidays.
"""
from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from config.numberplan import (
    ActivePlan, active_plan, holiday_at, next_schedule_change, route_did, schedule_gaps, week_minute,
)
from config.routing import (
    WEEK_MINUTES, AccountRouting, Holiday, Numberplan, NumberplanSchema, PlanEntry, SchemaConfig, day_entry,
    find_overlap, format_days, format_week_minute, normalise_number, parse_clock, parse_days, parse_host_port,
    parse_local_datetime, parse_week_time, period_entry,
)

TZ = ZoneInfo("Europe/Amsterdam")
UTC = dt.timezone.utc
DID = "+31201234567"
OTHER_DID = "+31201234568"

DAY = day_entry(1, parse_days("mon-fri"), parse_clock("08:00"), parse_clock("18:00"), entry_id=1)
NIGHT = day_entry(2, parse_days("mon-thu"), parse_clock("18:00"), parse_clock("08:00"), entry_id=2)
WEEKEND = period_entry(2, parse_week_time("fri 18:00"), parse_week_time("mon 08:00", end=True), entry_id=3)
SCHEMA = NumberplanSchema(1, 1, 1, "acme")
PLANS = (Numberplan(1, "Day"), Numberplan(2, "Night"), Numberplan(3, "Christmas"))
ENTRIES = (PlanEntry(1, DID, "201", "Day: "), PlanEntry(2, DID, "202"), PlanEntry(3, DID, "203"),
           PlanEntry(1, OTHER_DID, "204"))


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0, fold: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=TZ, fold=fold)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=UTC)


def holiday(holiday_id: int, plan: int, start: dt.datetime, end: dt.datetime, text: str = "") -> Holiday:
    return Holiday(holiday_id, plan, start.timestamp(), end.timestamp(), text)


def office(*, holidays: tuple[Holiday, ...] = (), override: int | None = None,
           schedule: tuple = (DAY, NIGHT, WEEKEND)) -> SchemaConfig:
    return SchemaConfig(SCHEMA, PLANS, ENTRIES, schedule, holidays, override)


CHRISTMAS = holiday(7, 3, local(2026, 12, 24, 18), local(2026, 12, 27, 8), "Christmas")


# -- E.164 normalisation ---------------------------------------------------------------------------


@pytest.mark.parametrize(("country", "written", "e164"), [
    ("NL", "020 123 45 67", "+31201234567"),
    ("NL", "0201234567", "+31201234567"),
    ("NL", "(020) 123-4567", "+31201234567"),
    ("NL", "06-12345678", "+31612345678"),
    ("NL", "+31 (0)20 123 4567", "+31201234567"),
    ("NL", "0031 20 123 4567", "+31201234567"),
    ("NL", "0032 2 123 45 67", "+3221234567"),
    ("NL", "+44 20 7946 0958", "+442079460958"),
    ("NL", "0800.1234", "+318001234"),
    ("BE", "02 123 45 67", "+3221234567"),
    ("BE", "0031 20 1234567", "+31201234567"),
    ("DE", "030 1234567", "+49301234567"),
    ("GB", "020 7946 0958", "+442079460958"),
    ("GB", "+44 (0)20 7946 0958", "+442079460958"),
    ("FR", "01 23 45 67 89", "+33123456789"),
    ("nl", "020 123 45 67", "+31201234567"),
])
def test_normalise_number_by_country(country: str, written: str, e164: str) -> None:
    assert normalise_number(written, country) == e164


@pytest.mark.parametrize(("written", "complaint"), [
    ("", "not a phone number"),
    ("abc", "not a phone number"),
    ("112", "national number starting with 0"),
    ("201234567", "national number starting with 0"),
    ("0", "E.164 numbers have 7-15 digits, this one 2"),
    ("+", "E.164 numbers have 7-15 digits, this one 0"),
    ("00", "E.164 numbers have"),
    ("+0123456789", "a country code never starts with 0"),
    ("+31 20 12a4567", "only digits may follow the prefix"),
    ("+1234567890123456", "this one 16"),
    ("+٣١٢٠١٢٣٤٥٦٧", "only digits"),
])
def test_normalise_number_rejects_garbage(written: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint.replace("+", r"\+").replace(".", r"\.")):
        normalise_number(written, "NL")


def test_normalise_number_rejects_an_unknown_country() -> None:
    with pytest.raises(ValueError, match="country 'XX' is not supported"):
        normalise_number("0201234567", "XX")


# -- trunk hosts -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "expected"), [
    ("sip.carrier.nl", ("sip.carrier.nl", 5060)),
    ("SIP.Carrier.NL.", ("sip.carrier.nl", 5060)),
    ("sip.carrier.nl:5080", ("sip.carrier.nl", 5080)),
    ("192.0.2.10", ("192.0.2.10", 5060)),
    ("192.0.2.10:5070", ("192.0.2.10", 5070)),
    ("2001:db8::1", ("2001:db8::1", 5060)),
    ("[2001:db8::1]", ("2001:db8::1", 5060)),
    ("[2001:DB8::1]:5080", ("2001:db8::1", 5080)),
])
def test_parse_host_port(text: str, expected: tuple[str, int]) -> None:
    assert parse_host_port(text) == expected


@pytest.mark.parametrize(("text", "complaint"), [
    ("", "not a host name"),
    ("bad_host", "not a host name"),
    ("-carrier.nl", "not a host name"),
    ("999.1.1.1", "not a host name"),
    ("carrier.nl:0", "invalid port"),
    ("carrier.nl:65536", "invalid port"),
    ("carrier.nl:", "invalid port"),
    ("carrier.nl:sip", "invalid port"),
    ("[2001:db8::1", "write an IPv6 address as"),
    ("[2001:db8::1]5060", "write an IPv6 address as"),
    ("[not-v6]:5060", "only IPv6 addresses go in brackets"),
    ("[fe80::zz]:5060", "not a host name"),
])
def test_parse_host_port_rejects(text: str, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        parse_host_port(text)


# -- schedule entries ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("text", "days"), [
    ("mon-fri", {0, 1, 2, 3, 4}),
    ("sat,sun", {5, 6}),
    ("mon-wed,fri", {0, 1, 2, 4}),
    ("fri-mon", {4, 5, 6, 0}),
    ("Monday", {0}),
    ("mon-sun", set(range(7))),
])
def test_parse_days(text: str, days: set[int]) -> None:
    assert parse_days(text) == days


@pytest.mark.parametrize("text", ["", "xyz", "mon-", "mon,,tue", "mo"])
def test_parse_days_rejects(text: str) -> None:
    with pytest.raises(ValueError, match="days .* are invalid"):
        parse_days(text)


def test_format_days_uses_ranges() -> None:
    assert format_days({0, 1, 2, 3, 4}) == "mon-fri"
    assert format_days({0, 2, 4}) == "mon,wed,fri"
    assert format_days({0, 1, 3, 5, 6}) == "mon-tue,thu,sat-sun"


def test_parse_clock_allows_24_00_only_as_an_end() -> None:
    assert parse_clock("08:00") == 480
    assert parse_clock("8:05") == 485
    assert parse_clock("24:00", end=True) == 1440
    for bad in ("24:00", "08:60", "8", "08.00", "-1:00"):
        with pytest.raises(ValueError, match="time .* is invalid"):
            parse_clock(bad)


def test_parse_week_time() -> None:
    assert parse_week_time("mon 00:00") == 0
    assert parse_week_time("fri 18:00") == 4 * 1440 + 18 * 60
    assert parse_week_time("sun 24:00", end=True) == WEEK_MINUTES
    with pytest.raises(ValueError, match="use a day and a time"):
        parse_week_time("friday")


def test_entry_validation() -> None:
    with pytest.raises(ValueError, match="starts and ends at 08:00"):
        day_entry(1, {0}, 480, 480)
    with pytest.raises(ValueError, match="one or more weekdays"):
        day_entry(1, set(), 480, 600)
    with pytest.raises(ValueError, match="must be 1-99, not 100"):
        day_entry(100, {0}, 480, 600)
    with pytest.raises(ValueError, match="must be 1-99, not 0"):
        period_entry(0, 0, 60)
    with pytest.raises(ValueError, match="the period starts and ends at fri 18:00"):
        period_entry(1, parse_week_time("fri 18:00"), parse_week_time("fri 18:00"))
    assert period_entry(1, 0, WEEK_MINUTES).intervals() == [(0, WEEK_MINUTES)]


def test_intervals_across_midnight_and_the_week_end() -> None:
    sunday_night = day_entry(2, {6}, parse_clock("22:00"), parse_clock("06:00"))
    assert sunday_night.intervals() == [(6 * 1440 + 1320, WEEK_MINUTES), (0, 360)]
    assert WEEKEND.intervals() == [(4 * 1440 + 1080, WEEK_MINUTES), (0, 480)]
    assert day_entry(1, {6}, 0, 1440).intervals() == [(6 * 1440, WEEK_MINUTES)]
    assert WEEKEND.describe() == "fri 18:00 → mon 08:00"
    assert NIGHT.describe() == "mon-thu 18:00-08:00"


def test_find_overlap_names_the_other_entry_and_the_first_shared_minute() -> None:
    assert find_overlap(WEEKEND, [DAY, NIGHT]) is None  # adjacent, not overlapping
    lunch = day_entry(3, {2}, parse_clock("12:00"), parse_clock("13:00"))
    assert find_overlap(lunch, [NIGHT, DAY]) == (DAY, 2 * 1440 + 720)
    early = day_entry(3, {0}, parse_clock("07:00"), parse_clock("09:00"))
    assert find_overlap(early, [WEEKEND]) == (WEEKEND, 420)  # monday morning, inside the weekend period
    friday_night = day_entry(3, {4}, parse_clock("22:00"), parse_clock("02:00"))
    assert find_overlap(friday_night, [NIGHT, WEEKEND]) == (WEEKEND, 4 * 1440 + 1320)


def test_schedule_gaps() -> None:
    assert schedule_gaps([DAY, NIGHT, WEEKEND]) == []
    assert schedule_gaps([]) == [(0, WEEK_MINUTES)]
    assert schedule_gaps([DAY, NIGHT]) == [(4 * 1440 + 1080, 480)]  # one gap across Sunday midnight
    assert schedule_gaps([DAY])[:2] == [(1080, 1440 + 480), (1440 + 1080, 2 * 1440 + 480)]
    assert format_week_minute(WEEK_MINUTES, end=True) == "sun 24:00"
    morning = day_entry(1, {0}, 0, 480)
    assert schedule_gaps([morning]) == [(480, WEEK_MINUTES)]


# -- the active plan -----------------------------------------------------------------------------------


def test_precedence_override_beats_holiday_beats_schedule() -> None:
    christmas_day = local(2026, 12, 25, 10)  # a Friday: the schedule says Day
    assert active_plan(office(), christmas_day, TZ) == ActivePlan(
        1, "schedule", "time schedule (mon-fri 08:00-18:00)", 1)
    assert active_plan(office(holidays=(CHRISTMAS,)), christmas_day, TZ) == ActivePlan(
        3, "holiday", 'holiday "Christmas" 2026-12-24 18:00 → 2026-12-27 08:00', 7)
    assert active_plan(office(holidays=(CHRISTMAS,), override=2), christmas_day, TZ) == ActivePlan(
        2, "override", "manual override")


def test_holiday_covers_start_but_not_end() -> None:
    config = office(holidays=(CHRISTMAS,))
    assert active_plan(config, local(2026, 12, 24, 17, 59), TZ).reason == "schedule"
    assert active_plan(config, local(2026, 12, 24, 18), TZ).plan == 3
    assert active_plan(config, local(2026, 12, 27, 7, 59), TZ).plan == 3
    assert active_plan(config, local(2026, 12, 27, 8), TZ).reason == "schedule"


def test_overlapping_holidays_the_latest_start_wins() -> None:
    long = holiday(1, 3, local(2026, 7, 1), local(2026, 8, 1), "summer")
    exception = holiday(2, 1, local(2026, 7, 10, 9), local(2026, 7, 10, 12), "open morning")
    assert holiday_at([exception, long], local(2026, 7, 10, 10).timestamp()) == exception
    assert holiday_at([exception, long], local(2026, 7, 10, 12).timestamp()) == long
    same_start = holiday(3, 2, local(2026, 7, 1), local(2026, 7, 2), "newer")
    assert holiday_at([long, same_start], local(2026, 7, 1, 5).timestamp()) == same_start
    assert holiday_at([long], local(2026, 8, 1).timestamp()) is None
    assert active_plan(office(holidays=(long, exception)), local(2026, 7, 10, 10), TZ).detail == (
        'holiday "open morning" 2026-07-10 09:00 → 2026-07-10 12:00')


@pytest.mark.parametrize(("moment", "plan", "entry"), [
    (local(2026, 12, 22, 23), 2, 2),  # Tuesday night: per-day entry running past midnight
    (local(2026, 12, 23, 7, 59), 2, 2),  # Wednesday morning, still Tuesday's night entry
    (local(2026, 12, 23, 8), 1, 1),
    (local(2026, 12, 23, 17, 59), 1, 1),
    (local(2026, 12, 23, 18), 2, 2),
    (local(2026, 12, 25, 18), 2, 3),  # Friday evening: the weekend period
    (local(2026, 12, 27, 23, 59), 2, 3),  # Sunday just before midnight
    (local(2026, 12, 28, 0), 2, 3),  # Monday 00:00: the period wrapped past the week end
    (local(2026, 12, 28, 7, 59), 2, 3),
    (local(2026, 12, 28, 8), 1, 1),
])
def test_schedule_per_day_and_per_period(moment: dt.datetime, plan: int, entry: int) -> None:
    active = active_plan(office(), moment, TZ)
    assert (active.plan, active.reason, active.source_id) == (plan, "schedule", entry)


def test_a_gap_has_no_active_plan() -> None:
    weekdays_only = office(schedule=(DAY, NIGHT))
    assert active_plan(weekdays_only, local(2026, 12, 26, 12), TZ) == ActivePlan(
        None, "none", "the schedule has a gap here")
    assert active_plan(office(schedule=()), local(2026, 12, 26, 12), TZ) == ActivePlan(
        None, "none", "the schema has no time schedule")


def test_the_moment_must_be_aware() -> None:
    with pytest.raises(ValueError, match="aware datetime"):
        active_plan(office(), dt.datetime(2026, 12, 25, 10), TZ)
    with pytest.raises(ValueError, match="aware datetime"):
        next_schedule_change(office(), dt.datetime(2026, 12, 25, 10), TZ)


def test_any_time_zone_of_the_moment_gives_the_same_answer() -> None:
    moment = local(2026, 12, 23, 8)
    assert active_plan(office(), moment.astimezone(UTC), TZ) == active_plan(office(), moment, TZ)
    assert week_minute(moment.astimezone(ZoneInfo("America/New_York")), TZ) == 2 * 1440 + 480


# -- daylight saving (Europe/Amsterdam: 2026-03-29 02:00 → 03:00, 2026-10-25 03:00 → 02:00) -------------


def test_office_hours_are_wall_time_on_both_sides_of_the_spring_change() -> None:
    # Friday before: CET (UTC+1), Monday after: CEST (UTC+2); 08:00 on the wall both times.
    assert active_plan(office(), utc(2026, 3, 27, 6, 59), TZ).plan == 2
    assert active_plan(office(), utc(2026, 3, 27, 7, 0), TZ).plan == 1
    assert active_plan(office(), utc(2026, 3, 30, 5, 59), TZ).plan == 2
    assert active_plan(office(), utc(2026, 3, 30, 6, 0), TZ).plan == 1


def test_office_hours_are_wall_time_on_both_sides_of_the_autumn_change() -> None:
    assert active_plan(office(), utc(2026, 10, 23, 5, 59), TZ).plan == 2  # 07:59 CEST
    assert active_plan(office(), utc(2026, 10, 23, 6, 0), TZ).plan == 1
    assert active_plan(office(), utc(2026, 10, 26, 6, 59), TZ).plan == 2  # 07:59 CET
    assert active_plan(office(), utc(2026, 10, 26, 7, 0), TZ).plan == 1


def test_an_entry_starting_in_the_skipped_hour_takes_effect_when_the_clocks_jump() -> None:
    early = office(schedule=(day_entry(1, {6}, parse_clock("02:30"), parse_clock("06:00"), entry_id=9),))
    assert active_plan(early, utc(2026, 3, 29, 0, 59), TZ).plan is None  # 01:59 CET
    assert active_plan(early, utc(2026, 3, 29, 1, 0), TZ).plan == 1  # 03:00 CEST
    assert next_schedule_change(early, utc(2026, 3, 29, 0, 0), TZ) == utc(2026, 3, 29, 1, 0)
    inside = office(schedule=(day_entry(1, {6}, parse_clock("02:10"), parse_clock("02:50"), entry_id=9),))
    day = [utc(2026, 3, 28, 23) + dt.timedelta(minutes=m) for m in range(0, 240, 5)]
    assert all(active_plan(inside, moment, TZ).plan is None for moment in day)


def test_the_repeated_hour_of_autumn_is_scheduled_twice() -> None:
    night = office(schedule=(day_entry(1, {6}, parse_clock("01:00"), parse_clock("02:30"), entry_id=9),))
    assert active_plan(night, utc(2026, 10, 25, 0, 15), TZ).plan == 1  # 02:15 CEST
    assert active_plan(night, utc(2026, 10, 25, 0, 45), TZ).plan is None  # 02:45 CEST
    assert active_plan(night, utc(2026, 10, 25, 1, 15), TZ).plan == 1  # 02:15 CET, the second pass
    assert active_plan(night, utc(2026, 10, 25, 1, 45), TZ).plan is None
    changes, moment = [], utc(2026, 10, 24, 22)
    for _ in range(4):
        moment = next_schedule_change(night, moment, TZ)
        changes.append(moment.astimezone(UTC))
    assert changes == [utc(2026, 10, 24, 23), utc(2026, 10, 25, 0, 30), utc(2026, 10, 25, 1), utc(2026, 10, 25, 1, 30)]


# -- next schedule change (the 915 IVR's temporary change ends there) -------------------------------------


@pytest.mark.parametrize(("moment", "change"), [
    (local(2026, 12, 25, 17), local(2026, 12, 25, 18)),  # Day → weekend Night
    (local(2026, 12, 25, 19), local(2026, 12, 28, 8)),  # over the weekend
    (local(2026, 12, 22, 20), local(2026, 12, 23, 8)),  # past midnight
    (local(2026, 12, 24, 20), local(2026, 12, 25, 8)),  # Thursday night entry → Friday day
    (local(2026, 12, 23, 8), local(2026, 12, 23, 18)),  # exactly at a change: the next one
])
def test_next_schedule_change(moment: dt.datetime, change: dt.datetime) -> None:
    found = next_schedule_change(office(holidays=(CHRISTMAS,), override=3), moment, TZ)
    assert found == change and found.tzinfo is TZ


def test_next_schedule_change_keeps_wall_time_across_the_spring_change() -> None:
    found = next_schedule_change(office(), local(2026, 3, 27, 19), TZ)
    assert found == utc(2026, 3, 30, 6) and found.strftime("%a %H:%M %Z") == "Mon 08:00 CEST"


def test_next_schedule_change_counts_a_gap_as_a_change() -> None:
    assert next_schedule_change(office(schedule=(DAY,)), local(2026, 12, 23, 9), TZ) == local(2026, 12, 23, 18)
    assert next_schedule_change(office(schedule=(DAY,)), local(2026, 12, 23, 19), TZ) == local(2026, 12, 24, 8)


def test_a_schedule_that_never_changes_has_no_next_change() -> None:
    always = period_entry(1, 0, WEEK_MINUTES, entry_id=5)
    assert next_schedule_change(office(schedule=(always,)), local(2026, 12, 23, 9), TZ) is None
    assert next_schedule_change(office(schedule=()), local(2026, 12, 23, 9), TZ) is None
    same_plan = (day_entry(2, range(7), 0, 720, entry_id=1), day_entry(2, range(7), 720, 1440, entry_id=2))
    assert next_schedule_change(office(schedule=same_plan), local(2026, 12, 23, 9), TZ) is None


# -- inbound routing ------------------------------------------------------------------------------------


def routing(config: SchemaConfig) -> AccountRouting:
    second = SchemaConfig(NumberplanSchema(2, 1, 2, "sales"), (Numberplan(1, "Sales"),),
                          (PlanEntry(1, "+31209999999", "205"),), (period_entry(1, 0, WEEK_MINUTES, 11),))
    return AccountRouting(1, "Europe/Amsterdam", "NL", (config, second))


def test_route_did_follows_the_active_plan() -> None:
    account = routing(office(holidays=(CHRISTMAS,)))
    day = route_did(account, DID, local(2026, 12, 23, 10))
    assert (day.schema, day.extension, day.prefix, day.active.reason) == (1, "201", "Day: ", "schedule")
    night = route_did(account, DID, local(2026, 12, 23, 20))
    assert (night.extension, night.prefix, night.active.plan) == ("202", "", 2)
    christmas = route_did(account, DID, local(2026, 12, 25, 10))
    assert (christmas.extension, christmas.active.reason) == ("203", "holiday")
    sales = route_did(account, "+31209999999", local(2026, 12, 25, 10))
    assert (sales.schema, sales.extension) == (2, "205")


def test_route_did_without_destination() -> None:
    account = routing(office())
    assert route_did(account, "+31200000000", local(2026, 12, 23, 10)) is None  # in no schema
    unmapped = route_did(account, OTHER_DID, local(2026, 12, 23, 20))  # only in the Day plan
    assert unmapped.extension is None and unmapped.active.plan == 2
    gap = route_did(routing(office(schedule=(DAY,))), DID, local(2026, 12, 26, 10))
    assert gap.extension is None and gap.active.reason == "none"


# -- local date/time input ------------------------------------------------------------------------------


def test_parse_local_datetime() -> None:
    assert parse_local_datetime("2026-12-25 10:00", TZ) == local(2026, 12, 25, 10)
    assert parse_local_datetime("2026-12-25", TZ) == local(2026, 12, 25)
    assert parse_local_datetime("2026-12-25T10:00+00:00", TZ) == local(2026, 12, 25, 11)
    ambiguous = parse_local_datetime("2026-10-25 02:30", TZ)
    assert ambiguous.utcoffset() == dt.timedelta(hours=2)  # the first 02:30 (still summer time)
    with pytest.raises(ValueError, match="2026-03-29 02:30 does not exist in Europe/Amsterdam"):
        parse_local_datetime("2026-03-29 02:30", TZ)
    with pytest.raises(ValueError, match="use 'YYYY-MM-DD HH:MM'"):
        parse_local_datetime("christmas", TZ)
