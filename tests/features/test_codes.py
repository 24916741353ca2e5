"""The ## code parser (SPEC §28 table) and the service-code classifier (SPEC §1, §7, §29)."""
from __future__ import annotations

import math

import pytest

from softswitch.features.codes import (
    FIXED_SERVICE_CODES,
    BadCode,
    CodeEvent,
    DtmfCodeParser,
    Feature,
    FeatureCodes,
    PassThrough,
    ServiceCode,
    classify_dialled,
    is_reserved_extension,
)

KEY_GAP = 0.5  # seconds between two keys in these tests, well inside the 3 s timeout


def typed(keys: str, codes: FeatureCodes = FeatureCodes(), then_silence: bool = False) -> list[CodeEvent]:
    """Feed ``keys`` KEY_GAP apart; with ``then_silence`` also run the timeout that follows."""
    parser = DtmfCodeParser(codes)
    events: list[CodeEvent] = []
    now = 100.0
    for key in keys:
        events.extend(parser.feed(key, now))
        now += KEY_GAP
    if then_silence:
        deadline = parser.deadline()
        assert deadline is not None, "nothing pending, so silence cannot end anything"
        events.extend(parser.poll(deadline))
    assert parser.deadline() is None and not parser.collecting, "a finished sequence leaves the parser idle"
    return events


# --- every code of the SPEC §28 table ------------------------------------------------
@pytest.mark.parametrize("keys, silence, expected", [
    ("##", True, Feature("hold")),
    ("###", False, Feature("hold")),
    ("##1201#", False, Feature("blind_transfer", "201")),
    ("##10612345678#", False, Feature("blind_transfer", "0612345678")),
    ("##2201#", False, Feature("attended_transfer", "201")),
    ("##3", False, Feature("conference")),
    ("##4", False, Feature("swap")),
    ("##0", False, Feature("cancel")),
    ("##7", False, Feature("park")),
])
def test_every_code_of_the_table(keys: str, silence: bool, expected: Feature) -> None:
    assert typed(keys, then_silence=silence) == [expected]


@pytest.mark.parametrize("keys, expected", [
    ("##1201", Feature("blind_transfer", "201")),
    ("##2*31", Feature("attended_transfer", "*31")),
])
def test_number_ended_by_the_timeout(keys: str, expected: Feature) -> None:
    assert typed(keys, then_silence=True) == [expected]


def test_timeout_counts_from_the_last_key() -> None:
    parser = DtmfCodeParser()
    assert parser.feed("#", 0.0) == [] and parser.feed("#", 1.0) == [] and parser.feed("1", 2.0) == []
    assert parser.feed("2", 4.5) == []
    assert parser.deadline() == 7.5
    assert parser.poll(7.4) == []
    assert parser.poll(7.5) == [Feature("blind_transfer", "2")]
    assert parser.poll(100.0) == []


def test_bare_prefix_waits_the_full_timeout_before_hold() -> None:
    parser = DtmfCodeParser()
    parser.feed("#", 10.0)
    parser.feed("#", 10.2)
    assert parser.collecting and parser.deadline() == pytest.approx(13.2)
    assert parser.poll(13.1) == []
    assert parser.poll(13.2) == [Feature("hold")]
    assert not parser.collecting and parser.deadline() is None


# --- the prefix is held back, then released -------------------------------------------
@pytest.mark.parametrize("keys, expected", [
    ("#5", [PassThrough("#5")]),
    ("#*", [PassThrough("#*")]),
    ("#A", [PassThrough("#A")]),
    ("5#5", [PassThrough("5"), PassThrough("#5")]),
])
def test_a_key_that_breaks_the_prefix_releases_the_held_keys(keys: str, expected: list[CodeEvent]) -> None:
    assert typed(keys) == expected


def test_a_lone_hash_passes_through_after_the_timeout() -> None:
    parser = DtmfCodeParser()
    assert parser.feed("#", 0.0) == []
    assert not parser.collecting, "one # is not yet a code"
    assert parser.deadline() == 3.0
    assert parser.poll(2.9) == []
    assert parser.poll(3.0) == [PassThrough("#")]
    assert parser.deadline() is None


def test_feed_runs_an_overdue_timeout_first() -> None:
    parser = DtmfCodeParser()
    parser.feed("#", 0.0)
    assert parser.feed("#", 5.0) == [PassThrough("#")], "the first # timed out; the second starts anew"
    assert parser.feed("#", 5.5) == []
    assert parser.collecting
    assert parser.feed("5", 20.0) == [Feature("hold"), PassThrough("5")]


def test_code_between_conversation_keys() -> None:
    assert typed("12##3#45") == [
        PassThrough("1"), PassThrough("2"), Feature("conference"), PassThrough("#4"), PassThrough("5"),
    ]


def test_code_keys_never_pass_through() -> None:
    events = typed("5##1201#6##7###4##", then_silence=True)
    passed = "".join(e.digits for e in events if isinstance(e, PassThrough))
    assert [e for e in events if isinstance(e, Feature)] == [
        Feature("blind_transfer", "201"), Feature("park"), Feature("hold"), Feature("hold"),
    ]
    assert passed == "564"


# --- conversation keys while idle ----------------------------------------------------
@pytest.mark.parametrize("key", list("0123456789*ABCD"))
def test_keys_that_cannot_start_the_prefix_pass_at_once(key: str) -> None:
    parser = DtmfCodeParser()
    assert parser.feed(key, 0.0) == [PassThrough(key)]
    assert parser.deadline() is None and not parser.collecting


def test_long_conversation_keys_each_pass_at_once() -> None:
    parser = DtmfCodeParser()
    assert [parser.feed(k, float(i)) for i, k in enumerate("0123*9")] == [[PassThrough(k)] for k in "0123*9"]


# --- junk after the prefix ---------------------------------------------------------
@pytest.mark.parametrize("keys, silence, expected", [
    ("##9", False, BadCode("##9", "##9 is not a feature code")),
    ("##5", False, BadCode("##5", "##5 is not a feature code")),
    ("##*", False, BadCode("##*", "##* is not a feature code")),
    ("##A", False, BadCode("##A", "##A is not a feature code")),
    ("##1#", False, BadCode("##1#", "##1 without a number")),
    ("##2#", False, BadCode("##2#", "##2 without a number")),
    ("##1", True, BadCode("##1", "##1 without a number")),
    ("##12D", False, BadCode("##12D", "##1 number cannot contain D")),
    ("##1" + "5" * 33, False, BadCode("##1" + "5" * 33, "##1 number is longer than 32 digits")),
])
def test_junk_after_the_prefix_is_a_bad_code(keys: str, silence: bool, expected: BadCode) -> None:
    assert typed(keys, then_silence=silence) == [expected]


def test_a_32_digit_number_is_accepted() -> None:
    assert typed("##1" + "7" * 32 + "#") == [Feature("blind_transfer", "7" * 32)]


def test_keys_after_a_bad_code_are_conversation_again() -> None:
    assert typed("##95") == [BadCode("##9", "##9 is not a feature code"), PassThrough("5")]


# --- parser state ---------------------------------------------------------------------
def test_collecting_only_inside_a_code() -> None:
    parser = DtmfCodeParser()
    seen = []
    for now, key in enumerate("#" "#" "2" "3" "#"):
        parser.feed(key, float(now))
        seen.append(parser.collecting)
    assert seen == [False, True, True, True, False]


def test_reset_drops_held_keys_and_the_code() -> None:
    parser = DtmfCodeParser()
    parser.feed("#", 0.0)
    parser.reset()
    assert parser.deadline() is None and parser.poll(10.0) == []
    for key in "##12":
        parser.feed(key, 1.0)
    parser.reset()
    assert not parser.collecting and parser.deadline() is None
    assert parser.feed("3", 2.0) == [PassThrough("3")]


@pytest.mark.parametrize("key", ["x", "", "12", "a", "16", " "])
def test_feed_refuses_what_is_no_dtmf_key(key: str) -> None:
    with pytest.raises(ValueError, match="is not a DTMF key"):
        DtmfCodeParser().feed(key, 0.0)


def test_repr_names_state_and_typed_keys() -> None:
    parser = DtmfCodeParser()
    parser.feed("#", 0.0)
    parser.feed("#", 0.1)
    parser.feed("1", 0.2)
    assert repr(parser) == "<DtmfCodeParser number typed='##1' prefix='##'>"


# --- configurable codes ------------------------------------------------------------------
STARS = FeatureCodes(prefix="**")
STAR = FeatureCodes(prefix="*")


@pytest.mark.parametrize("codes, keys, silence, expected", [
    (STARS, "**1201#", False, [Feature("blind_transfer", "201")]),
    (STARS, "**7", False, [Feature("park")]),
    (STARS, "**", True, [Feature("hold")]),
    (STARS, "**#", False, [Feature("hold")]),
    (STARS, "*5", False, [PassThrough("*5")]),
    (STARS, "#", False, [PassThrough("#")]),
    (STARS, "##", False, [PassThrough("#"), PassThrough("#")]),
    (STARS, "***", False, [BadCode("***", "*** is not a feature code")]),  # the prefix matches first
    (STAR, "*3", False, [Feature("conference")]),
    (STAR, "*", True, [Feature("hold")]),
    (STAR, "#", False, [PassThrough("#")]),
    (STAR, "**", False, [BadCode("**", "** is not a feature code")]),
    (FeatureCodes(prefix="##*"), "###*7", False, [PassThrough("#"), Feature("park")]),
    (FeatureCodes(prefix="##*"), "##5", False, [PassThrough("##5")]),
    (FeatureCodes(prefix="##*"), "##", True, [PassThrough("##")]),
    (FeatureCodes(prefix="#*#"), "#*#*", False, [BadCode("#*#*", "#*#* is not a feature code")]),
    (FeatureCodes(prefix="#*#"), "#*#4", False, [Feature("swap")]),
    (FeatureCodes(prefix="9"), "93", False, [Feature("conference")]),
])
def test_configured_prefix(codes: FeatureCodes, keys: str, silence: bool, expected: list[CodeEvent]) -> None:
    assert typed(keys, codes, then_silence=silence) == expected


def test_configured_function_keys() -> None:
    codes = FeatureCodes(blind_transfer="5", attended_transfer="6", conference="8", swap="9", cancel="*", park="1")
    assert typed("##5201#", codes) == [Feature("blind_transfer", "201")]
    assert typed("##6201#", codes) == [Feature("attended_transfer", "201")]
    assert typed("##8", codes) == [Feature("conference")]
    assert typed("##9", codes) == [Feature("swap")]
    assert typed("##*", codes) == [Feature("cancel")]
    assert typed("##1", codes) == [Feature("park")]
    assert typed("##7", codes) == [BadCode("##7", "##7 is not a feature code")]


def test_configured_timeout() -> None:
    parser = DtmfCodeParser(FeatureCodes(timeout=5))
    parser.feed("#", 0.0)
    parser.feed("#", 1.0)
    assert parser.deadline() == 6.0
    assert parser.poll(5.9) == [] and parser.poll(6.0) == [Feature("hold")]


@pytest.mark.parametrize("kwargs, message", [
    ({"prefix": ""}, "feature code prefix '' must be 1-3 keys of 0-9, \\* and #"),
    ({"prefix": "####"}, "feature code prefix '####' must be"),
    ({"prefix": "#a"}, "feature code prefix '#a' must be"),
    ({"prefix": "#A"}, "feature code prefix '#A' must be"),
    ({"prefix": 12}, "feature code prefix 12 must be"),
    ({"timeout": 0.5}, "feature code timeout 0.5 must be 1 to 10 seconds"),
    ({"timeout": 10.5}, "feature code timeout 10.5 must be"),
    ({"timeout": math.nan}, "feature code timeout nan must be"),
    ({"timeout": True}, "feature code timeout True must be"),
    ({"timeout": "3"}, "feature code timeout '3' must be"),
    ({"park": "#"}, "feature code for park '#' must be one key of 0-9 or \\* \\(# means hold\\)"),
    ({"park": "71"}, "feature code for park '71' must be one key"),
    ({"park": ""}, "feature code for park '' must be one key"),
    ({"swap": "A"}, "feature code for swap 'A' must be one key"),
    ({"park": "1"}, "feature codes blind_transfer and park are both '1'"),
    ({"cancel": "3"}, "feature codes conference and cancel are both '3'"),
])
def test_feature_codes_are_validated(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}"):
        FeatureCodes(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize("timeout", [1, 1.0, 3.0, 10])
def test_feature_code_timeout_bounds_are_inclusive(timeout: float) -> None:
    assert FeatureCodes(timeout=timeout).timeout == timeout


def test_default_feature_codes_are_the_spec_table() -> None:
    assert FeatureCodes().functions() == {
        "blind_transfer": "1", "attended_transfer": "2", "conference": "3",
        "swap": "4", "cancel": "0", "park": "7",
    }


# --- service codes dialled from a device ------------------------------------------------
SERVICE_TABLE = [
    ("901", ServiceCode("login")),
    ("902", ServiceCode("logout")),
    ("903", ServiceCode("queue_login")),
    ("904", ServiceCode("queue_logout")),
    ("905", ServiceCode("record_prompt")),
    ("908", ServiceCode("pickup")),
    ("*8", ServiceCode("pickup")),
    ("909", ServiceCode("move_call")),
    ("*9", ServiceCode("move_call")),
    ("*910", ServiceCode("forward_set")),
    ("915", ServiceCode("time_config")),
    ("920", ServiceCode("voicemail_admin")),
    ("1233", ServiceCode("own_voicemail")),
    ("*7", ServiceCode("park")),
    ("112", ServiceCode("emergency")),
]


@pytest.mark.parametrize("digits", [3, 4, 5])
@pytest.mark.parametrize("dialled, expected", SERVICE_TABLE)
def test_fixed_service_codes_in_every_account(dialled: str, expected: ServiceCode, digits: int) -> None:
    assert classify_dialled(dialled, digits) == expected


def test_the_table_covers_every_fixed_code() -> None:
    assert {dialled for dialled, _ in SERVICE_TABLE} == set(FIXED_SERVICE_CODES)


@pytest.mark.parametrize("dialled, digits, expected", [
    ("*8201", 3, ServiceCode("pickup", "201")),
    ("*81201", 4, ServiceCode("pickup", "1201")),
    ("*812012", 5, ServiceCode("pickup", "12012")),
    ("*81", 3, ServiceCode("pickup", "1")),
    ("*842", 4, ServiceCode("pickup", "42")),
    ("*842", 5, ServiceCode("pickup", "42")),
    ("*8201", 4, None),  # 3 digits: neither a 4-digit extension nor a group number
    ("*8201", 5, None),
    ("*81201", 3, None),
    ("*82a1", 3, None),
    ("*8*", 3, None),
    ("*7701", 3, ServiceCode("park", "701")),
    ("*71", 4, ServiceCode("park", "1")),
    ("*79999", 5, ServiceCode("park", "9999")),
    ("*712345", 5, None),
    ("*77x", 3, None),
    ("*9100612345678", 3, ServiceCode("forward_set", "0612345678")),
    ("*910+31201234567", 4, ServiceCode("forward_set", "+31201234567")),
    ("*910201", 3, ServiceCode("forward_set", "201")),
    ("*910+", 3, None),
    ("*910#", 3, None),
    ("*910" + "1" * 33, 3, None),
    ("*91", 3, None),
    ("*9201", 3, None),
])
def test_service_codes_with_an_argument(dialled: str, digits: int, expected: ServiceCode | None) -> None:
    assert classify_dialled(dialled, digits) == expected


@pytest.mark.parametrize("dialled, digits", [
    ("201", 3), ("1201", 4), ("12012", 5), ("0201234567", 3), ("+31201234567", 4),
    ("900", 3), ("9011", 4), ("90", 3), ("1234", 4), ("", 3), ("*", 3), ("#31#201", 3),
    ("*6", 3), ("**7", 3), ("*8\u00b201", 3), ("*7\u0661", 3), ("1123", 4),
])
def test_what_is_no_service_code(dialled: str, digits: int) -> None:
    assert classify_dialled(dialled, digits) is None


@pytest.mark.parametrize("digits", [0, 2, 6, "3"])
def test_classify_refuses_an_impossible_extension_length(digits: object) -> None:
    with pytest.raises(ValueError, match="extension length .* must be 3, 4 or 5"):
        classify_dialled("901", digits)  # type: ignore[arg-type]


@pytest.mark.parametrize("digits", [3, 4, 5])
def test_every_numeric_code_of_extension_length_is_reserved(digits: int) -> None:
    colliding = {code for code in FIXED_SERVICE_CODES if code.isdigit() and len(code) == digits}
    assert all(is_reserved_extension(code, digits) for code in colliding)


@pytest.mark.parametrize("number, digits, reserved", [
    ("900", 3, True), ("915", 3, True), ("929", 3, True), ("930", 3, False), ("899", 3, False),
    ("112", 3, True), ("201", 3, False), ("1233", 4, True), ("1234", 4, False), ("9010", 4, False),
    ("12330", 5, False),
])
def test_reserved_extensions(number: str, digits: int, reserved: bool) -> None:
    assert is_reserved_extension(number, digits) is reserved
