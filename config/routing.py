"""Routing configuration as frozen values, and the pure rules that validate it (SPEC §19).

Nothing here does I/O or reads a clock: ``config.store`` reads and writes these objects,
``config.numberplan`` evaluates them, the CLI parses administrator input with the
``parse_*`` functions. Invalid input raises ``ValueError`` with one precise line; the
store turns it into ``ConfigError``.

Contents:

- phone-number normalisation to E.164 (ITU-T E.164) by the numbering rules of the
  account's country (``COUNTRIES``);
- trunks (a carrier's SIP server), phone numbers (DIDs), numberplan schemas,
  numberplans, DID → extension entries, time-schedule entries, holidays;
- time-schedule arithmetic in *week minutes*: minute 0 is Monday 00:00 local wall time,
  ``WEEK_MINUTES`` (10080) is the next Monday 00:00. An entry covers half-open intervals
  ``[start, end)`` of the week; ``find_overlap`` is the validation the store applies.
"""
from __future__ import annotations

import datetime as dt
import ipaddress
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal
from zoneinfo import ZoneInfo

DAY_MINUTES = 24 * 60
WEEK_MINUTES = 7 * DAY_MINUTES
DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")  # index = datetime.weekday()
_DAY_WORDS = {
    **{name: index for index, name in enumerate(DAY_NAMES)},
    **{name: index for index, name in enumerate(
        ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"))},
}

MIN_PLAN = 1
MAX_PLAN = 99  # SPEC §19: up to 99 numberplans per schema
MAX_SCHEMA = 99  # schema numbers are keyed in on the 915 IVR, two digits at most
MAIN_SCHEMA = 1  # exists for every account; cannot be renamed or deleted (SPEC §19)
DEFAULT_SIP_PORT = 5060  # RFC 3261 §19.1.2
TRANSPORTS = ("udp", "tcp")
MIN_TRUNK_PRIORITY = 1  # tried first
MAX_TRUNK_PRIORITY = 99
MAX_PREFIX_LENGTH = 20  # display prefix shown before the caller's name on the phone
MAX_DESCRIPTION_LENGTH = 100
MAX_HOSTNAME_LENGTH = 253  # RFC 1035 §2.3.4
# ITU-T E.164: at most 15 digits including the country code; none in use is shorter than 7.
MIN_E164_DIGITS = 7
MAX_E164_DIGITS = 15

# Characters people write inside phone numbers ("020-123 45 67", "(020) 1234567").
_NUMBER_PUNCTUATION = str.maketrans("", "", " -./()\t")
_HOST_LABEL_RE = re.compile(r"[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?")
_CLOCK_RE = re.compile(r"(\d{1,2}):(\d{2})")


# -- countries and E.164 ------------------------------------------------------------------


@dataclass(frozen=True)
class NumberingRules:
    """How people in one country dial: the prefixes that ``normalise_number`` removes."""

    country: str  # ISO 3166-1 alpha-2 code
    calling_code: str  # ITU-T E.164 country code, without '+'
    trunk_prefix: str  # dialled before a national number ("0" in NL: 020 1234567)
    international_prefix: str  # dialled before a country code ("00" in NL: 0032 2 ...)


COUNTRIES: dict[str, NumberingRules] = {
    rules.country: rules
    for rules in (
        NumberingRules("NL", "31", "0", "00"),
        NumberingRules("BE", "32", "0", "00"),
        NumberingRules("DE", "49", "0", "00"),
        NumberingRules("GB", "44", "0", "00"),
        NumberingRules("FR", "33", "0", "00"),
        NumberingRules("AT", "43", "0", "00"),
        NumberingRules("CH", "41", "0", "00"),
    )
}
DEFAULT_COUNTRY = "NL"


def check_country(country: str) -> str:
    """The upper-case ISO code when ``COUNTRIES`` knows it, else ValueError."""
    code = country.strip().upper()
    if code not in COUNTRIES:
        raise ValueError(f"country {country!r} is not supported (known: {', '.join(sorted(COUNTRIES))})")
    return code


def normalise_number(number: str, country: str) -> str:
    """``number`` as written or dialled in ``country`` → E.164 (``+31201234567``).

    Rules (``COUNTRIES`` gives the prefixes; NL shown): spaces, dashes, dots, slashes and
    parentheses are ignored, and so is a "(0)" after the country code ("+31 (0)20 …");
    ``+…`` is kept; ``00…`` (international prefix) becomes ``+…``; ``0…`` (trunk prefix)
    becomes ``+31…``. Anything else — letters, short codes such as 112, a number without
    a prefix — is not an E.164 number and raises ValueError.
    """
    rules = COUNTRIES[check_country(country)]
    text = number.strip()
    if text.startswith(("+", rules.international_prefix)):
        text = text.replace("(0)", "", 1)
    digits = text.translate(_NUMBER_PUNCTUATION)
    if digits.startswith("+"):
        international = digits[1:]
    elif digits.startswith(rules.international_prefix):
        international = digits[len(rules.international_prefix):]
    elif rules.trunk_prefix and digits.startswith(rules.trunk_prefix):
        international = rules.calling_code + digits[len(rules.trunk_prefix):]
    else:
        raise ValueError(
            f"{number!r} is not a phone number: write it with + and the country code, "
            f"or as a national number starting with {rules.trunk_prefix}")
    return "+" + _check_e164_digits(international, number)


def _check_e164_digits(digits: str, original: str) -> str:
    if digits and (not digits.isascii() or not digits.isdigit()):
        raise ValueError(f"{original!r} is not a phone number: only digits may follow the prefix")
    if digits.startswith("0"):
        raise ValueError(f"{original!r} is not a phone number: a country code never starts with 0")
    if not MIN_E164_DIGITS <= len(digits) <= MAX_E164_DIGITS:
        raise ValueError(
            f"{original!r} is not a phone number: E.164 numbers have {MIN_E164_DIGITS}-{MAX_E164_DIGITS} "
            f"digits, this one {len(digits)}")
    return digits


# -- trunks and phone numbers ---------------------------------------------------------------


@dataclass(frozen=True)
class Trunk:
    """A SIP connection to a carrier; numbers are sent out through trunks by priority."""

    id: int
    account_id: int
    name: str
    host: str  # host name or IP address literal (IPv6 without brackets)
    port: int = DEFAULT_SIP_PORT
    transport: str = "udp"  # "udp" or "tcp"
    username: str = ""  # digest credentials the carrier gave us; "" = none
    password: str = field(default="", repr=False)
    register: bool = False  # send REGISTER to the carrier (needs username and password)
    priority: int = MIN_TRUNK_PRIORITY  # lower is tried first; equal priorities by name

    @property
    def address(self) -> str:
        """``host:port`` with an IPv6 literal in brackets (RFC 3986 §3.2.2)."""
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{host}:{self.port}"


@dataclass(frozen=True)
class PhoneNumber:
    """A DID (external number) owned by an account, optionally a user's personal number."""

    id: int
    account_id: int
    number: str  # E.164
    description: str = ""
    trunk_id: int | None = None  # the trunk the carrier delivers it on; None = any/unknown
    user_id: int | None = None  # set: the personal number of this user, never in a numberplan


def parse_host_port(text: str) -> tuple[str, int]:
    """``host[:port]``, ``[v6]:port`` or a bare IPv6 literal → (host, port); port default 5060."""
    text = text.strip()
    if text.startswith("["):
        host, bracket, rest = text[1:].partition("]")
        if not bracket or (rest and not rest.startswith(":")):
            raise ValueError(f"trunk host {text!r} is invalid: write an IPv6 address as [2001:db8::1]:5060")
        port = _check_port(rest[1:], text) if rest else DEFAULT_SIP_PORT
        if ":" not in host:
            raise ValueError(f"trunk host {text!r} is invalid: only IPv6 addresses go in brackets")
    elif text.count(":") == 1:
        host, _, port_text = text.partition(":")
        port = _check_port(port_text, text)
    else:
        host, port = text, DEFAULT_SIP_PORT
    return check_host(host), port


def _check_port(port_text: str, original: str) -> int:
    if not port_text.isascii() or not port_text.isdigit() or not 1 <= int(port_text) <= 65535:
        raise ValueError(f"trunk host {original!r} has an invalid port: use 1-65535")
    return int(port_text)


def check_host(host: str) -> str:
    """A host name (RFC 1123 labels) or an IPv4/IPv6 literal, lower-cased."""
    host = host.strip().lower().rstrip(".")
    try:
        return str(ipaddress.ip_address(host))
    except ValueError:
        pass
    labels = host.split(".")
    if (not host or len(host) > MAX_HOSTNAME_LENGTH or host.replace(".", "").isdigit()
            or not all(_HOST_LABEL_RE.fullmatch(label) for label in labels)):
        raise ValueError(f"trunk host {host!r} is not a host name or IP address")
    return host


# -- numberplan schemas -----------------------------------------------------------------------


@dataclass(frozen=True)
class NumberplanSchema:
    """A set of up to 99 numberplans with one time configuration (SPEC §19)."""

    id: int
    account_id: int
    number: int  # 1 = the main schema, named after the account
    name: str


@dataclass(frozen=True)
class Numberplan:
    """One numberplan of a schema: a name and, in ``PlanEntry`` rows, DID → extension."""

    number: int  # 1..99
    name: str


@dataclass(frozen=True)
class PlanEntry:
    """Calls to ``did`` go to ``extension`` while numberplan ``plan`` is active."""

    plan: int
    did: str  # E.164
    extension: str
    prefix: str = ""  # display prefix shown on the answering phone


def check_plan_number(plan: int) -> int:
    if not MIN_PLAN <= plan <= MAX_PLAN:
        raise ValueError(f"numberplan number must be {MIN_PLAN}-{MAX_PLAN}, not {plan}")
    return plan


# -- time schedule --------------------------------------------------------------------------


@dataclass(frozen=True)
class ScheduleEntry:
    """One time-schedule entry of a schema: while it covers the local wall time, ``plan`` is active.

    ``kind == "day"``: on each weekday in ``days`` (0 = Monday) from ``start`` to ``end``,
    minutes of the day (``end`` may be 1440 = 24:00); ``end <= start`` means until ``end``
    on the next day (22:00-06:00). ``kind == "period"``: from week minute ``start`` to week
    minute ``end``; ``end <= start`` wraps past Sunday midnight (fri 18:00 → mon 08:00).
    """

    id: int
    plan: int
    kind: Literal["day", "period"]
    start: int
    end: int
    days: frozenset[int] = frozenset()

    def intervals(self) -> list[tuple[int, int]]:
        """The half-open week-minute intervals covered, none wrapping past WEEK_MINUTES."""
        if self.kind == "period":
            return _wrapped(self.start, self.end)
        spans: list[tuple[int, int]] = []
        for day in sorted(self.days):
            start = day * DAY_MINUTES + self.start
            end = day * DAY_MINUTES + self.end + (DAY_MINUTES if self.end <= self.start else 0)
            spans.extend(_wrapped(start, end - WEEK_MINUTES if end > WEEK_MINUTES else end))  # sun night → mon
        return spans

    def covers(self, week_minute: int) -> bool:
        return any(start <= week_minute < end for start, end in self.intervals())

    def describe(self) -> str:
        """``mon-fri 08:00-18:00`` or ``fri 18:00 → mon 08:00``."""
        if self.kind == "period":
            return f"{format_week_minute(self.start)} → {format_week_minute(self.end, end=True)}"
        return f"{format_days(self.days)} {format_clock(self.start)}-{format_clock(self.end)}"


def _wrapped(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) on the week circle as non-wrapping pieces."""
    if end > start:
        return [(start, end)]
    return [piece for piece in ((start, WEEK_MINUTES), (0, end)) if piece[1] > piece[0]]


def day_entry(plan: int, days: Iterable[int], start: int, end: int, entry_id: int = 0) -> ScheduleEntry:
    """A validated per-day entry (minutes of the day; ``end`` 1440 = 24:00)."""
    day_set = frozenset(days)
    if not day_set or not day_set <= set(range(7)):
        raise ValueError("a per-day entry needs one or more weekdays")
    if not 0 <= start < DAY_MINUTES or not 0 < end <= DAY_MINUTES:
        raise ValueError("times of day run from 00:00 to 24:00")
    if start == end:
        raise ValueError(f"the entry starts and ends at {format_clock(start)}: for a whole day use 00:00-24:00")
    return ScheduleEntry(entry_id, check_plan_number(plan), "day", start, end, day_set)


def period_entry(plan: int, start: int, end: int, entry_id: int = 0) -> ScheduleEntry:
    """A validated per-period entry (week minutes; ``end`` may be 10080 = sun 24:00)."""
    if not 0 <= start < WEEK_MINUTES or not 0 < end <= WEEK_MINUTES:
        raise ValueError("week times run from mon 00:00 to sun 24:00")
    if start == end % WEEK_MINUTES and not (start == 0 and end == WEEK_MINUTES):
        raise ValueError(
            f"the period starts and ends at {format_week_minute(start)}: for the whole week use mon 00:00 → sun 24:00")
    return ScheduleEntry(entry_id, check_plan_number(plan), "period", start, end)


def find_overlap(entry: ScheduleEntry, others: Sequence[ScheduleEntry]) -> tuple[ScheduleEntry, int] | None:
    """The entry of ``others`` that ``entry`` runs into first (counting from its start), and
    the first minute of the week they share; None when they share none."""
    for start, end in entry.intervals():
        clashes = [(max(start, other_start), other) for other in others
                   for other_start, other_end in other.intervals() if max(start, other_start) < min(end, other_end)]
        if clashes:
            minute, other = min(clashes, key=lambda clash: clash[0])
            return other, minute
    return None


def parse_days(text: str) -> frozenset[int]:
    """``mon-fri``, ``sat,sun``, ``mon-wed,fri``, ``fri-mon`` (wraps) → weekday numbers (0 = Monday)."""
    days: set[int] = set()
    for part in text.lower().replace(" ", "").split(","):
        first, dash, last = part.partition("-")
        start = _day_index(first, text)
        stop = _day_index(last, text) if dash else start
        span = (stop - start) % 7
        days.update((start + offset) % 7 for offset in range(span + 1))
    return frozenset(days)


def _day_index(name: str, original: str) -> int:
    index = _DAY_WORDS.get(name)
    if index is None:
        raise ValueError(f"days {original!r} are invalid: use mon, tue, wed, thu, fri, sat, sun, "
                         "ranges such as mon-fri and lists such as sat,sun")
    return index


def format_days(days: Iterable[int]) -> str:
    """Weekday numbers → ``mon-fri``, ``mon,wed,fri``, ``sat-sun``, ``mon-sun``."""
    ordered = sorted(set(days))
    runs: list[list[int]] = []
    for day in ordered:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(DAY_NAMES[r[0]] if len(r) == 1 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}" for r in runs)


def parse_clock(text: str, *, end: bool = False) -> int:
    """``08:00`` → minutes of the day; ``24:00`` only as an end time."""
    match = _CLOCK_RE.fullmatch(text.strip())
    hours, minutes = (int(match.group(1)), int(match.group(2))) if match else (-1, -1)
    limit = DAY_MINUTES if end else DAY_MINUTES - 1
    if not match or minutes > 59 or not 0 <= hours * 60 + minutes <= limit:
        raise ValueError(f"time {text!r} is invalid: use HH:MM from 00:00 to {'24:00' if end else '23:59'}")
    return hours * 60 + minutes


def format_clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def parse_week_time(text: str, *, end: bool = False) -> int:
    """``fri 18:00`` → week minutes (Monday 00:00 = 0); ``sun 24:00`` only as an end."""
    day_text, _, clock_text = text.strip().partition(" ")
    if not clock_text:
        raise ValueError(f"week time {text!r} is invalid: use a day and a time, e.g. 'fri 18:00'")
    return _day_index(day_text.lower(), text) * DAY_MINUTES + parse_clock(clock_text, end=end)


def format_week_minute(minute: int, *, end: bool = False) -> str:
    """Week minutes → ``fri 18:00``; with ``end``, 10080 reads ``sun 24:00``."""
    if end and minute == WEEK_MINUTES:
        return "sun 24:00"
    minute %= WEEK_MINUTES
    return f"{DAY_NAMES[minute // DAY_MINUTES]} {format_clock(minute % DAY_MINUTES)}"


# -- holidays and override -------------------------------------------------------------------


@dataclass(frozen=True)
class Holiday:
    """While ``start <= t < end`` (unix seconds), ``plan`` is active unless overridden.

    Overlapping holidays are allowed: the one that started latest wins (a short exception
    inside a long holiday), equal starts by the higher id (the newer entry).
    """

    id: int
    plan: int
    start: float
    end: float
    description: str = ""

    def covers(self, timestamp: float) -> bool:
        return self.start <= timestamp < self.end


@dataclass(frozen=True)
class SchemaConfig:
    """Everything the evaluator needs about one schema, read in one transaction."""

    schema: NumberplanSchema
    plans: tuple[Numberplan, ...] = ()
    entries: tuple[PlanEntry, ...] = ()
    schedule: tuple[ScheduleEntry, ...] = ()
    holidays: tuple[Holiday, ...] = ()
    override: int | None = None  # the manually chosen plan, None = follow holidays/schedule

    def plan(self, number: int) -> Numberplan | None:
        return next((p for p in self.plans if p.number == number), None)

    def plan_entries(self, number: int) -> list[PlanEntry]:
        return [e for e in self.entries if e.plan == number]

    def entry(self, plan: int, did: str) -> PlanEntry | None:
        return next((e for e in self.entries if e.plan == plan and e.did == did), None)

    def routes(self, did: str) -> bool:
        """True when some numberplan of this schema maps ``did`` (the DID belongs to it)."""
        return any(e.did == did for e in self.entries)


@dataclass(frozen=True)
class AccountRouting:
    """The routing configuration of one account: what the daemon caches per account."""

    account_id: int
    timezone: str  # IANA zone name; schedules and holidays are local wall time there
    country: str
    schemas: tuple[SchemaConfig, ...] = ()

    def schema_of(self, did: str) -> SchemaConfig | None:
        return next((s for s in self.schemas if s.routes(did)), None)


# -- local times ---------------------------------------------------------------------------


def parse_local_datetime(text: str, tz: ZoneInfo) -> dt.datetime:
    """``2026-12-25 10:00`` (or ``2026-12-25``) in ``tz`` → an aware datetime.

    A wall time that occurs twice (the repeated hour when clocks go back) means its first
    occurrence; one that does not exist (the skipped hour when clocks go forward) is an
    error, since no moment has it. A text with a UTC offset is taken as is.
    """
    try:
        parsed = dt.datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"date/time {text!r} is invalid: use 'YYYY-MM-DD HH:MM'") from None
    if parsed.tzinfo is not None:
        return parsed.astimezone(tz)
    aware = parsed.replace(tzinfo=tz, fold=0)
    if aware.astimezone(dt.timezone.utc).astimezone(tz).replace(tzinfo=None) != parsed:
        raise ValueError(f"{text.strip()} does not exist in {tz.key}: the clocks skip that hour (summer time starts)")
    return aware


def format_local(timestamp: float, tz: ZoneInfo) -> str:
    return dt.datetime.fromtimestamp(timestamp, tz).strftime("%Y-%m-%d %H:%M")
