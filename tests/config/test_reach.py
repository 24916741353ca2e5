"""config.reach: the REACH model and its pure evaluator, with explicit datetimes (no clock)."""
from __future__ import annotations

from datetime import datetime, timezone

import pytest
from zoneinfo import ZoneInfo

from config import reach
from config.reach import (Action, ClassMapping, DeviceOverride, ForwardOverride, IncomingCall, ManualStatus,
                          Profile, ReachConfig, RingGroup, RingStep, ScheduleEntry)

AMS = ZoneInfo("Europe/Amsterdam")
DEVICES = ["acme-201", "acme-202", "acme-203"]
EXTERNAL_CALL = IncomingCall(internal=False, from_number="+31612345678")
INTERNAL_CALL = IncomingCall(internal=True, from_number="202")
ANONYMOUS_CALL = IncomingCall(internal=False, anonymous=True)
MONDAY_10 = datetime(2026, 11, 30, 10, 0, tzinfo=AMS)  # a Monday
MONDAY_13 = datetime(2026, 11, 30, 13, 0, tzinfo=AMS)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=timezone.utc)


def per_day(entry_id: int, status: str, days: str, start: str, end: str) -> ScheduleEntry:
    return ScheduleEntry(entry_id, status, reach.parse_clock(start), reach.parse_clock(end, end=True),
                         reach.parse_days(days))


def period(entry_id: int, status: str, start: str, end: str) -> ScheduleEntry:
    return ScheduleEntry(entry_id, status, reach.parse_week_time(start), reach.parse_week_time(end))


MEETING = per_day(1, "in a meeting", "mon", "09:00", "12:00")


def alice(**changes: object) -> ReachConfig:
    """Alice: desk phone 20 s, then desk + softphone 15 s, then voicemail; in a meeting
    every Monday 09:00-12:00, when her calls go to voicemail."""
    values: dict[str, object] = dict(
        default=Profile("default", ring=(RingGroup(("acme-201",), 20), RingGroup(("acme-201", "acme-202"), 15)),
                        forward_noanswer=reach.VOICEMAIL, caller_id="+31201234567"),
        profiles=(Profile("meeting", "red", forward_always=reach.VOICEMAIL),),
        statuses=("available", "in a meeting"),
        schedule=(MEETING,),
        class_map=(ClassMapping("in a meeting", "any", "meeting"),),
    )
    values.update(changes)
    return ReachConfig(**values)  # type: ignore[arg-type]


# -- week time --------------------------------------------------------------------------------


@pytest.mark.parametrize("text, days", [
    ("mon", {0}), ("mon-fri", {0, 1, 2, 3, 4}), ("sat,sun", {5, 6}), ("fri-mon", {4, 5, 6, 0}),
    ("MON, wed", {0, 2}), ("mon-sun", set(range(7))),
])
def test_parse_days(text: str, days: set[int]) -> None:
    assert reach.parse_days(text) == days


@pytest.mark.parametrize("text", ["", "monday", "mo", "mon-", "mon,,tue"])
def test_parse_days_rejects_unknown_days(text: str) -> None:
    with pytest.raises(ValueError, match="unknown day"):
        reach.parse_days(text)


def test_format_days_compresses_runs() -> None:
    assert reach.format_days({0, 1, 2, 3, 4}) == "mon-fri"
    assert reach.format_days({0, 2, 5, 6}) == "mon,wed,sat-sun"


def test_parse_clock() -> None:
    assert reach.parse_clock("09:30") == 570
    assert reach.parse_clock("0:05") == 5
    assert reach.parse_clock("24:00", end=True) == 1440
    for bad in ("24:00", "9", "12:60", "25:00", "ab:cd"):
        with pytest.raises(ValueError, match="is not HH:MM"):
            reach.parse_clock(bad)


def test_week_time_round_trip() -> None:
    assert reach.parse_week_time("fri 18:00") == 4 * 1440 + 18 * 60
    assert reach.format_week_time(reach.parse_week_time("sun 23:59")) == "sun 23:59"
    with pytest.raises(ValueError, match="is not 'DAY HH:MM'"):
        reach.parse_week_time("friday")


def test_per_day_entry_covers_its_hours_only() -> None:
    minute = reach.week_minute
    assert MEETING.covers(minute(datetime(2026, 11, 30, 9, 0, tzinfo=AMS), AMS))
    assert MEETING.covers(minute(datetime(2026, 11, 30, 11, 59, tzinfo=AMS), AMS))
    assert not MEETING.covers(minute(datetime(2026, 11, 30, 12, 0, tzinfo=AMS), AMS))
    assert not MEETING.covers(minute(datetime(2026, 12, 1, 10, 0, tzinfo=AMS), AMS))  # Tuesday
    assert MEETING.label == "mon 09:00-12:00"


def test_entry_across_midnight_and_the_week_end() -> None:
    night = per_day(1, "night", "sun", "22:00", "06:00")  # Sunday 22:00 → Monday 06:00
    assert night.spans() == [(6 * 1440 + 22 * 60, 7 * 1440), (0, 6 * 60)]
    assert night.covers(reach.week_minute(datetime(2026, 12, 6, 23, 30, tzinfo=AMS), AMS))  # Sunday
    assert night.covers(reach.week_minute(datetime(2026, 12, 7, 5, 59, tzinfo=AMS), AMS))  # Monday
    assert not night.covers(reach.week_minute(datetime(2026, 12, 7, 6, 0, tzinfo=AMS), AMS))
    weekend = period(2, "weekend", "fri 18:00", "mon 08:00")
    assert weekend.label == "fri 18:00 - mon 08:00"
    assert weekend.covers(reach.week_minute(datetime(2026, 12, 5, 12, 0, tzinfo=AMS), AMS))  # Saturday
    assert weekend.covers(reach.week_minute(datetime(2026, 12, 7, 7, 59, tzinfo=AMS), AMS))
    assert not weekend.covers(reach.week_minute(datetime(2026, 12, 4, 17, 59, tzinfo=AMS), AMS))


def test_whole_day_entry_and_empty_entries() -> None:
    assert per_day(1, "x", "sat", "00:00", "24:00").spans() == [(5 * 1440, 6 * 1440)]
    with pytest.raises(ValueError, match="empty or out of range"):
        ScheduleEntry(1, "x", 600, 600, frozenset({0}))


def test_overlaps_are_found_also_across_the_week_end() -> None:
    night = per_day(1, "night", "sun", "22:00", "06:00")
    assert night.overlaps(per_day(2, "early", "mon", "05:00", "07:00"))
    assert not night.overlaps(per_day(3, "day", "mon", "06:00", "22:00"))
    assert reach.first_overlap(period(4, "w", "sat 00:00", "mon 01:00"), [MEETING, night]) == night
    assert reach.first_overlap(MEETING, [MEETING]) is None  # an entry does not overlap itself


# -- status -------------------------------------------------------------------------------------


def test_schedule_selects_the_status_else_available() -> None:
    assert reach.active_status(alice(), MONDAY_10, AMS).status == "in a meeting"
    assert reach.active_status(alice(), MONDAY_10, AMS).reason == "schedule: mon 09:00-12:00"
    assert reach.active_status(alice(), MONDAY_13, AMS).status == "available"
    assert reach.active_status(alice(), MONDAY_13, AMS).reason.startswith("default:")


def test_manual_status_overrides_the_schedule_until_its_end() -> None:
    until = datetime(2026, 11, 30, 11, 0, tzinfo=AMS)
    config = alice(manual=ManualStatus("available", until))
    before = reach.active_status(config, datetime(2026, 11, 30, 10, 59, tzinfo=AMS), AMS)
    assert (before.status, before.reason) == ("available", "manual, until 2026-11-30 11:00")
    after = reach.active_status(config, until, AMS)
    assert (after.status, after.reason) == ("in a meeting", "schedule: mon 09:00-12:00")
    forever = reach.active_status(alice(manual=ManualStatus("in a meeting")), MONDAY_13, AMS)
    assert (forever.status, forever.reason) == ("in a meeting", "manual, until cleared")


def test_schedule_is_local_wall_time_on_both_sides_of_dst() -> None:
    config = alice(schedule=(per_day(1, "in a meeting", "mon-sun", "09:00", "12:00"),))
    # Before spring-forward 09:00 is 08:00 UTC, after it 07:00 UTC.
    assert reach.active_status(config, utc(2026, 3, 28, 8, 0), AMS).status == "in a meeting"
    assert reach.active_status(config, utc(2026, 3, 28, 7, 59), AMS).status == "available"
    assert reach.active_status(config, utc(2026, 3, 30, 7, 0), AMS).status == "in a meeting"
    assert reach.active_status(config, utc(2026, 3, 30, 6, 59), AMS).status == "available"
    # After fall-back 12:00 is 11:00 UTC again.
    assert reach.active_status(config, utc(2026, 10, 26, 10, 59), AMS).status == "in a meeting"
    assert reach.active_status(config, utc(2026, 10, 26, 11, 0), AMS).status == "available"


def test_the_skipped_hour_never_matches_and_the_repeated_hour_matches_twice() -> None:
    config = alice(schedule=(per_day(1, "night shift", "sun", "02:00", "03:00"),))
    # 2026-03-29: 02:00 CET jumps to 03:00 CEST at 01:00 UTC.
    assert reach.active_status(config, utc(2026, 3, 29, 0, 59), AMS).status == "available"  # 01:59 CET
    assert reach.active_status(config, utc(2026, 3, 29, 1, 0), AMS).status == "available"  # 03:00 CEST
    # 2026-10-25: 03:00 CEST falls back to 02:00 CET at 01:00 UTC; 02:30 happens twice.
    assert reach.active_status(config, utc(2026, 10, 25, 0, 30), AMS).status == "night shift"
    assert reach.active_status(config, utc(2026, 10, 25, 1, 30), AMS).status == "night shift"
    assert reach.active_status(config, utc(2026, 10, 25, 2, 0), AMS).status == "available"  # 03:00 CET


# -- call class and profile -----------------------------------------------------------------------


def test_status_and_class_select_the_profile_with_fallbacks() -> None:
    config = alice(
        profiles=(Profile("meeting"), Profile("internal-meeting"), Profile("secret"), Profile("sales")),
        class_map=(ClassMapping("in a meeting", "any", "meeting"),
                   ClassMapping("in a meeting", "internal", "internal-meeting"),
                   ClassMapping("available", "anonymous", "secret"),
                   ClassMapping("available", "did:+31201234500", "sales")))
    cases = [
        (MONDAY_10, INTERNAL_CALL, "internal-meeting", "internal", "in a meeting × internal"),
        (MONDAY_10, EXTERNAL_CALL, "meeting", "external", "in a meeting × any class"),
        (MONDAY_13, EXTERNAL_CALL, "default", "external", "no mapping for status 'available'"),
        (MONDAY_13, ANONYMOUS_CALL, "secret", "anonymous", "available × anonymous"),
        (MONDAY_13, IncomingCall(False, dialled_did="+31201234500"), "sales", "did:+31201234500",
         "available × did:+31201234500"),
        # anonymous beats the DID
        (MONDAY_13, IncomingCall(False, anonymous=True, dialled_did="+31201234500"), "secret", "anonymous",
         "available × anonymous"),
    ]
    for at, call, profile, call_class, why in cases:
        decision = reach.evaluate(config, at, AMS, call, DEVICES)
        assert (decision.profile, decision.call_class, decision.profile_reason) == (profile, call_class, why)


def test_an_unmapped_specific_class_falls_through_to_the_general_one() -> None:
    config = alice(profiles=(Profile("external"),),
                   class_map=(ClassMapping("available", "external", "external"),))
    call = IncomingCall(False, anonymous=True, dialled_did="+31201234500")
    decision = reach.evaluate(config, MONDAY_13, AMS, call, DEVICES)
    assert (decision.profile, decision.call_class) == ("external", "external")


def test_class_reasons() -> None:
    assert reach.call_classes(INTERNAL_CALL) == [("internal", "caller 202, an internal call")]
    assert reach.call_classes(IncomingCall(False, True, "+31201234500")) == [
        ("anonymous", "the caller withheld their number"), ("did:+31201234500", "dialled +31201234500"),
        ("external", "an external call")]
    # internal calls always present the extension: never anonymous
    assert reach.call_classes(IncomingCall(True, anonymous=True))[0][0] == "internal"


def test_custom_profile_inherits_unset_settings_from_default() -> None:
    default = Profile("default", forward_busy="ext:202", caller_id="+31201234567", dnd=False)
    custom = Profile("meeting", forward_always=reach.VOICEMAIL, forward_busy=reach.NO_FORWARD, dnd=True)
    settings, inherited = reach.resolve_profile(custom, default)
    assert settings.forward_always == reach.VOICEMAIL
    assert settings.forward_busy is None  # explicitly off, not inherited
    assert settings.caller_id == "+31201234567"  # from default
    assert settings.dnd is True
    assert settings.noanswer_timeout == reach.DEFAULT_RING_TIMEOUT_S  # built in, through default
    assert "caller_id" in inherited and "forward_busy" not in inherited and "dnd" not in inherited
    own, none_inherited = reach.resolve_profile(default, default)
    assert none_inherited == () and own.forward_busy == "ext:202" and own.call_waiting is True


# -- ring plan ---------------------------------------------------------------------------------------


def test_ring_sequence_steps_and_timeouts() -> None:
    decision = reach.evaluate(alice(), MONDAY_13, AMS, EXTERNAL_CALL, DEVICES)
    assert decision.action is Action.RING
    assert decision.ring == (RingStep(("acme-201",), 20.0), RingStep(("acme-201", "acme-202"), 15.0))
    assert decision.forwards.noanswer == reach.VOICEMAIL
    assert not decision.all_devices


def test_group_without_timeout_rings_for_the_ring_time_and_default_rings_all() -> None:
    config = alice(default=Profile("default", ring=(RingGroup(("acme-202",)), RingGroup(("acme-203",), 30)),
                                   noanswer_timeout=25))
    assert reach.evaluate(config, MONDAY_13, AMS, EXTERNAL_CALL, DEVICES).ring == (
        RingStep(("acme-202",), 25.0), RingStep(("acme-203",), 30.0))
    plain = reach.evaluate(ReachConfig(), MONDAY_13, AMS, EXTERNAL_CALL, DEVICES)
    assert plain.ring == (RingStep(tuple(DEVICES), float(reach.DEFAULT_RING_TIMEOUT_S)),)


def test_devices_the_user_is_not_on_are_skipped() -> None:
    decision = reach.evaluate(alice(), MONDAY_13, AMS, EXTERNAL_CALL, ["acme-202"])
    assert decision.ring == (RingStep(("acme-202",), 15.0),)


def test_no_device_enabled_means_all_devices_ring() -> None:
    config = alice(default=Profile("default", ring=(RingGroup(("old-phone",), 10),)))
    decision = reach.evaluate(config, MONDAY_13, AMS, EXTERNAL_CALL, DEVICES)
    assert decision.all_devices
    assert decision.ring == (RingStep(tuple(DEVICES), float(reach.DEFAULT_RING_TIMEOUT_S)),)


def test_device_override_restricts_the_devices_until_its_end() -> None:
    until = datetime(2026, 11, 30, 14, 0, tzinfo=AMS)
    config = alice(device_override=DeviceOverride(("acme-202",), until))
    during = reach.evaluate(config, MONDAY_13, AMS, EXTERNAL_CALL, DEVICES)
    assert during.ring == (RingStep(("acme-202",), 15.0),)
    desk_only = reach.evaluate(alice(device_override=DeviceOverride(("acme-201",))), MONDAY_13, AMS,
                               EXTERNAL_CALL, DEVICES)
    assert desk_only.ring == (RingStep(("acme-201",), 35.0),)
    assert during.device_override == DeviceOverride(("acme-202",), until)
    after = reach.evaluate(config, until, AMS, EXTERNAL_CALL, DEVICES)
    assert after.ring[0] == RingStep(("acme-201",), 20.0) and after.device_override is None


def test_device_override_outside_the_sequence_rings_its_devices_together() -> None:
    config = alice(device_override=DeviceOverride(("acme-203", "acme-202")))
    decision = reach.evaluate(config, MONDAY_13, AMS, EXTERNAL_CALL, DEVICES)
    assert decision.ring == (RingStep(("acme-202",), 15.0),)
    only_203 = reach.evaluate(alice(device_override=DeviceOverride(("acme-203",))), MONDAY_13, AMS,
                              EXTERNAL_CALL, DEVICES)
    assert only_203.ring == (RingStep(("acme-203",), 20.0),) and not only_203.all_devices
    gone = reach.evaluate(alice(device_override=DeviceOverride(("old-phone",))), MONDAY_13, AMS,
                          EXTERNAL_CALL, DEVICES)
    assert gone.all_devices and gone.ring == (RingStep(tuple(DEVICES), 20.0),)


def test_unregistered_devices_are_skipped_and_none_left_is_unreachable() -> None:
    decision = reach.evaluate(alice(), MONDAY_13, AMS, EXTERNAL_CALL, DEVICES, registered={"acme-202"})
    assert decision.ring == (RingStep(("acme-202",), 15.0),)
    # the desk phone alone in both steps: one step as long as both
    desk = reach.evaluate(alice(), MONDAY_13, AMS, EXTERNAL_CALL, DEVICES, registered={"acme-201"})
    assert desk.ring == (RingStep(("acme-201",), 35.0),)
    nobody = reach.evaluate(alice(), MONDAY_13, AMS, EXTERNAL_CALL, DEVICES, registered=set())
    assert (nobody.action, nobody.action_reason) == (
        Action.UNAVAILABLE, "unreachable (none of the devices to ring is registered)")


def test_unreachable_forward_when_the_user_has_no_device() -> None:
    config = alice(default=Profile("default", forward_unreachable="+31612345678"))
    decision = reach.evaluate(config, MONDAY_13, AMS, EXTERNAL_CALL, [])
    assert (decision.action, decision.destination) == (Action.FORWARD, "+31612345678")
    assert decision.action_reason == "unreachable (no device logged in): forward when unreachable"
    assert reach.evaluate(alice(), MONDAY_13, AMS, EXTERNAL_CALL, []).action is Action.UNAVAILABLE


# -- forwards, DND, barring ------------------------------------------------------------------------


def test_unconditional_forward_of_the_meeting_profile() -> None:
    decision = reach.evaluate(alice(), MONDAY_10, AMS, EXTERNAL_CALL, DEVICES)
    assert (decision.action, decision.destination) == (Action.FORWARD, reach.VOICEMAIL)
    assert decision.action_reason == "forward unconditional (profile)"
    assert decision.ring == ()


def test_star_910_unconditional_beats_the_profile_forwards() -> None:
    config = alice(forward_override=ForwardOverride(reach.FORWARD_ALWAYS, "ext:203"))
    decision = reach.evaluate(config, MONDAY_10, AMS, EXTERNAL_CALL, DEVICES)
    assert (decision.action, decision.destination) == (Action.FORWARD, "ext:203")
    assert decision.action_reason == "forward unconditional (*910)"


def test_star_910_on_busy_suspends_the_unconditional_forward_and_keeps_no_answer() -> None:
    config = alice(forward_override=ForwardOverride(reach.FORWARD_BUSY, "0612345678"))
    decision = reach.evaluate(config, MONDAY_10, AMS, EXTERNAL_CALL, DEVICES)
    assert decision.action is Action.RING
    assert decision.forwards == reach.Forwards(None, "0612345678", reach.VOICEMAIL, None)
    assert decision.forward_override == ForwardOverride("busy", "0612345678")


def test_do_not_disturb_is_busy_or_the_busy_forward() -> None:
    dnd = alice(default=Profile("default", dnd=True))
    decision = reach.evaluate(dnd, MONDAY_13, AMS, EXTERNAL_CALL, DEVICES)
    assert (decision.action, decision.dnd, decision.ring) == (Action.BUSY, True, ())
    to_voicemail = alice(default=Profile("default", dnd=True, forward_busy=reach.VOICEMAIL))
    decision = reach.evaluate(to_voicemail, MONDAY_13, AMS, EXTERNAL_CALL, DEVICES)
    assert (decision.action, decision.destination) == (Action.FORWARD, reach.VOICEMAIL)
    # the unconditional forward comes before DND
    meeting_dnd = alice(profiles=(Profile("meeting", forward_always="ext:202", dnd=True),))
    assert reach.evaluate(meeting_dnd, MONDAY_10, AMS, EXTERNAL_CALL, DEVICES).destination == "ext:202"


def test_incoming_anonymous_barring_rejects_only_anonymous_external_calls() -> None:
    config = alice(barring=frozenset({reach.INCOMING_ANONYMOUS}))
    assert reach.evaluate(config, MONDAY_13, AMS, ANONYMOUS_CALL, DEVICES).action is Action.REJECT
    assert reach.evaluate(config, MONDAY_13, AMS, EXTERNAL_CALL, DEVICES).action is Action.RING
    assert reach.evaluate(alice(), MONDAY_13, AMS, ANONYMOUS_CALL, DEVICES).action is Action.RING


def test_evaluate_needs_an_aware_datetime() -> None:
    with pytest.raises(ValueError, match="aware"):
        reach.evaluate(alice(), datetime(2026, 11, 30, 10, 0), AMS, EXTERNAL_CALL, DEVICES)


@pytest.mark.parametrize("number, categories", [
    ("112", set()),
    ("0201234567", {"all-external"}),
    ("+31 20 123 4567", {"all-external"}),
    ("0800-1234", {"all-external"}),
    ("0612345678", {"all-external", "mobile"}),
    ("+31612345678", {"all-external", "mobile"}),
    ("+31 (0)6 1234 5678", {"all-external", "mobile"}),
    ("06/12345678", {"all-external", "mobile"}),
    ("0900-1234567", {"all-external", "premium"}),
    ("09061234", {"all-external", "premium"}),
    ("0909 1234", {"all-external", "premium"}),
    ("0842123456", {"all-external", "shared-cost"}),
    ("0870123456", {"all-external", "shared-cost"}),
    ("1888", {"all-external", "information"}),
    ("004930123456", {"all-external", "international"}),
    ("+441234567890", {"all-external", "international"}),
    ("+881612345678", {"all-external", "international", "satellite"}),
    ("+870123456789", {"all-external", "international", "satellite"}),
])
def test_classify_number_nl(number: str, categories: set[str]) -> None:
    assert reach.classify_number(number) == categories


def test_classify_number_other_countries_and_bad_input() -> None:
    assert reach.classify_number("0612345678", "DE") == {"all-external"}  # no national ranges for DE
    assert reach.classify_number("+31612345678", "BE") == {"all-external", "international"}
    with pytest.raises(ValueError, match="no numbering rules for country 'XX'"):
        reach.classify_number("0612345678", "XX")
    with pytest.raises(ValueError, match="is not a phone number"):
        reach.classify_number("06-abc")


def test_barred_names_the_most_specific_enabled_category_and_never_112() -> None:
    everything = set(reach.OUTGOING_CATEGORIES)
    assert reach.barred(everything, "112") is None
    assert reach.barred(everything, "+881612345678") == "satellite"
    assert reach.barred({"international", "all-external"}, "+881612345678") == "international"
    assert reach.barred({"mobile"}, "0612345678") == "mobile"
    assert reach.barred({"mobile"}, "0201234567") is None
    assert reach.barred({"premium"}, "0800-1234") is None
    assert reach.barred({"all-external"}, "0800-1234") == "all-external"
    assert reach.barred(set(), "0900-1234567") is None


# -- outgoing caller ID ------------------------------------------------------------------------------


@pytest.mark.parametrize("dialled, result", [
    ("#31#0612345678", ("anonymous", "0612345678")),
    ("#35#0201234567", ("5", "0201234567")),
    ("#30#+31201234567", ("0", "+31201234567")),
    ("0612345678", (None, "0612345678")),
    ("#3#0612345678", (None, "#3#0612345678")),
    ("#312#", (None, "#312#")),
    ("#32#", ("2", "")),
])
def test_parse_caller_id_prefix(dialled: str, result: tuple[str | None, str]) -> None:
    assert reach.parse_caller_id_prefix(dialled) == result


def test_outbound_caller_id() -> None:
    config = alice(caller_ids={"5": "+31201234555"},
                   profiles=(Profile("meeting", caller_id="anonymous"),),
                   class_map=(ClassMapping("in a meeting", "external", "meeting"),))
    assert reach.outbound_caller_id(config, MONDAY_13, AMS, "#31#0612345678") == reach.OutboundCaller(
        "0612345678", "anonymous", "#31# withholds the number")
    assert reach.outbound_caller_id(config, MONDAY_13, AMS, "#35#0612345678").caller_id == "+31201234555"
    profile = reach.outbound_caller_id(config, MONDAY_13, AMS, "0612345678")
    assert (profile.caller_id, profile.reason) == (
        "+31201234567", "profile 'default' (no mapping for status 'available')")
    assert reach.outbound_caller_id(config, MONDAY_10, AMS, "0612345678").caller_id == "anonymous"
    unset = reach.outbound_caller_id(config, MONDAY_13, AMS, "#37#0612345678")
    assert (unset.number, unset.caller_id) == ("0612345678", "+31201234567")
    assert unset.reason.startswith("dynamic caller ID 7 is not set; ")


# -- forward chains -------------------------------------------------------------------------------------


def test_follow_forwards() -> None:
    table = {"201": "ext:202", "202": "ext:203", "203": None, "301": "ext:voicemail", "302": "+31612345678",
             "401": "ext:402", "402": "ext:401", "501": "ext:501"}
    lookup = table.get
    assert reach.follow_forwards("203", lookup) == ("ext:203", False)
    assert reach.follow_forwards("201", lookup) == ("ext:203", False)
    assert reach.follow_forwards("301", lookup) == ("voicemail:301", False)
    assert reach.follow_forwards("302", lookup) == ("+31612345678", False)
    assert reach.follow_forwards("401", lookup) == ("ext:402", True)  # 401 → 402 → 401: ring 402
    assert reach.follow_forwards("501", lookup) == ("ext:501", True)


def test_follow_forwards_stops_at_the_hop_limit() -> None:
    def chain(ext: str) -> str:
        return f"ext:{int(ext) + 1}"

    assert reach.follow_forwards("100", chain, limit=3) == ("ext:103", True)
    assert reach.follow_forwards("100", lambda e: None if e == "103" else chain(e), limit=3) == ("ext:103", False)


# -- parsing of settings --------------------------------------------------------------------------------


def test_parse_ring_and_format_ring() -> None:
    groups = reach.parse_ring("acme-201,acme-202:20;acme-203:15; acme-204")
    assert groups == (RingGroup(("acme-201", "acme-202"), 20), RingGroup(("acme-203",), 15),
                      RingGroup(("acme-204",), None))
    assert reach.format_ring(groups) == "acme-201,acme-202:20;acme-203:15;acme-204"
    assert reach.parse_ring("all") == () and reach.format_ring(()) == "all"
    # a device may ring on in the next group: desk phone, then desk phone and softphone
    assert reach.parse_ring("acme-201:20;acme-201,acme-202:15") == (
        RingGroup(("acme-201",), 20), RingGroup(("acme-201", "acme-202"), 15))


@pytest.mark.parametrize("text, message", [
    ("acme-201:4", "timeout 4 s is outside 5..300 s"),
    ("acme-201:301", "timeout 301 s is outside 5..300 s"),
    ("acme-201:x", "timeout 'x' is not a number"),
    ("acme-201,,acme-202", "has an empty device name"),
    ("acme-201:10;acme-201,acme-201", "device 'acme-201' appears twice in ring group 'acme-201,acme-201'"),
])
def test_parse_ring_errors(text: str, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        reach.parse_ring(text)


@pytest.mark.parametrize("text", ["ext:201", "ext:voicemail", "+31612345678", "0612345678", "00441234567"])
def test_valid_destinations(text: str) -> None:
    assert reach.check_destination(text) == text


@pytest.mark.parametrize("text", ["201", "ext:", "ext:vm", "+31 6 12345678", "612345678", "sip:bob@x"])
def test_invalid_destinations(text: str) -> None:
    with pytest.raises(ValueError, match="is invalid: use ext:NNN, ext:voicemail"):
        reach.check_destination(text)


def test_other_checks() -> None:
    assert reach.check_caller_id("company") == "company"
    assert reach.check_caller_id("+31201234567") == "+31201234567"
    with pytest.raises(ValueError, match="caller ID '0201234567' is invalid"):
        reach.check_caller_id("0201234567")
    assert reach.check_call_class("did:+31201234567") == "did:+31201234567"
    with pytest.raises(ValueError, match="call class 'did:0201234567' is invalid"):
        reach.check_call_class("did:0201234567")
    with pytest.raises(ValueError, match="profile name '' is invalid"):
        reach.check_name("profile", "  ")
    with pytest.raises(ValueError, match="colour 'Red!' is invalid"):
        reach.check_colour("Red!")


def test_parse_local_datetime_uses_the_account_zone() -> None:
    at = reach.parse_local_datetime("2026-12-01 17:00", AMS)
    assert at == datetime(2026, 12, 1, 16, 0, tzinfo=timezone.utc)
    with pytest.raises(ValueError, match="is not YYYY-MM-DD HH:MM"):
        reach.parse_local_datetime("tomorrow", AMS)
