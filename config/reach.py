"""REACH, the per-user reachability rules (SPEC §4, §29): the model and its pure evaluator.

The model: the user's active **status** (a manual status until its end time, else the
weekly schedule, else "available") and the **call class** of the incoming call
(anonymous > the dialled DID > external/internal) select a **profile**, through the
user's mapping (status, class) → profile with the fallbacks (status, any class) → the
default profile. A custom profile inherits every setting it leaves unset (``None``) from
the user's default profile; the default profile's unset settings are ``BUILTIN``.

Everything here is pure: functions of (configuration, an aware datetime and time zone,
the call) with no clock and no database. ``config.store_reach`` loads a ``ReachConfig``
in one read; the daemon calls ``evaluate`` for an incoming call, ``outbound_caller_id``
and ``barred`` for an outgoing one, and ``follow_forwards`` to bound forward chains.

Schedules are local wall time (the account's zone, via zoneinfo), the same conventions
as the numberplan schedules: a per-day entry is a set of weekdays and a from/to time,
and a to-time at or before the from-time ends on the next day (22:00-06:00); a
per-period entry runs from one week time to another and may wrap past Sunday midnight.
Consequence of wall time: on the spring-forward day the skipped hour never matches, on
the fall-back day the repeated hour matches twice. The week-minute helpers below repeat
about twenty lines of the numberplan evaluator on purpose: config/reach.py and
config/numberplan.py are independent evaluators.

Input text that cannot be parsed raises ``ValueError`` with one precise line; the store
turns it into ``ConfigError``.
"""
from __future__ import annotations

import enum
import re
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from zoneinfo import ZoneInfo

DEFAULT_PROFILE = "default"
DEFAULT_STATUS = "available"  # the status when no manual status or schedule entry applies
INTERNAL = "internal"
EXTERNAL = "external"
ANONYMOUS = "anonymous"
ANY_CLASS = "any"  # the class of a mapping that applies to every call in that status
DID_CLASS_PREFIX = "did:"
VOICEMAIL = "ext:voicemail"  # the user's own voicemail box
NO_FORWARD = "none"  # a custom profile's explicit "no forward" (None means: inherit)
FORWARD_ALWAYS = "always"  # the two *910 forward kinds, as a phone's CFU/CFB keys
FORWARD_BUSY = "busy"
FORWARD_KINDS = (FORWARD_ALWAYS, FORWARD_BUSY)
CALLER_ID_COMPANY = "company"
CALLER_ID_ANONYMOUS = "anonymous"
FORWARD_CALLER_IDS = ("calling", "called")
CALLER_ID_SLOTS = ("2", "3", "4", "5", "6", "7", "8", "9", "0")  # #3x#; #31# is anonymous
MIN_RING_TIMEOUT_S = 5
MAX_RING_TIMEOUT_S = 300
DEFAULT_RING_TIMEOUT_S = 20
MAX_FORWARD_HOPS = 5  # forwards followed before a chain counts as a loop
MAX_NAME_LENGTH = 32  # profile and status names

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
MINUTES_PER_DAY = 24 * 60
MINUTES_PER_WEEK = 7 * MINUTES_PER_DAY

_CLOCK_RE = re.compile(r"(\d{1,2}):([0-5]\d)")
_E164_RE = re.compile(r"\+[1-9]\d{6,14}")
_EXTERNAL_RE = re.compile(r"\+[1-9]\d{6,14}|0\d{2,14}")
_EXTENSION_DEST_RE = re.compile(r"ext:(\d{3,5}|voicemail)")
_COLOUR_RE = re.compile(r"#[0-9a-fA-F]{6}|[a-z]{3,20}")
_PREFIX_RE = re.compile(r"#3(\d)#(.*)", re.DOTALL)


# -- week time (local wall time, Monday 00:00 = minute 0) ---------------------------------


def parse_clock(text: str, *, end: bool = False) -> int:
    """'09:30' → 570 minutes after midnight; '24:00' only as an end time."""
    match = _CLOCK_RE.fullmatch(text.strip())
    minutes = int(match[1]) * 60 + int(match[2]) if match else -1
    if not 0 <= minutes <= MINUTES_PER_DAY or (minutes == MINUTES_PER_DAY and not end):
        raise ValueError(f"time {text!r} is not HH:MM between 00:00 and {'24:00' if end else '23:59'}")
    return minutes


def format_clock(minutes: int) -> str:
    return f"{minutes // 60:02d}:{minutes % 60:02d}"


def _day(name: str) -> int:
    key = name.strip().lower()
    if key not in DAY_NAMES:
        raise ValueError(f"unknown day {name.strip()!r}: use {', '.join(DAY_NAMES)}")
    return DAY_NAMES.index(key)


def parse_days(text: str) -> frozenset[int]:
    """'mon-fri', 'sat,sun', 'fri-mon' (wraps), 'mon' → weekday numbers (Monday = 0)."""
    days: set[int] = set()
    for part in text.split(","):
        first, sep, last = part.partition("-")
        start = _day(first)
        stop = _day(last) if sep else start
        days.update((start + i) % 7 for i in range((stop - start) % 7 + 1))
    return frozenset(days)


def format_days(days: Iterable[int]) -> str:
    """{0, 1, 2, 3, 4} → 'mon-fri'; {0, 2} → 'mon,wed'."""
    ordered = sorted(set(days))
    runs: list[list[int]] = []
    for day in ordered:
        if runs and day == runs[-1][-1] + 1:
            runs[-1].append(day)
        else:
            runs.append([day])
    return ",".join(DAY_NAMES[r[0]] if len(r) == 1 else f"{DAY_NAMES[r[0]]}-{DAY_NAMES[r[-1]]}" for r in runs)


def parse_week_time(text: str) -> int:
    """'fri 18:00' → minute of the week."""
    day, _, clock = text.strip().partition(" ")
    if not clock:
        raise ValueError(f"week time {text!r} is not 'DAY HH:MM' (e.g. 'fri 18:00')")
    return _day(day) * MINUTES_PER_DAY + parse_clock(clock)


def format_week_time(minute: int) -> str:
    return f"{DAY_NAMES[minute // MINUTES_PER_DAY]} {format_clock(minute % MINUTES_PER_DAY)}"


def week_minute(at: datetime, tz: ZoneInfo) -> int:
    """The local wall-clock minute of the week of an aware instant."""
    local = at.astimezone(tz)
    return local.weekday() * MINUTES_PER_DAY + local.hour * 60 + local.minute


def _spans(start: int, end: int) -> list[tuple[int, int]]:
    """[start, end) in week minutes, split where it passes Sunday 24:00."""
    if end <= MINUTES_PER_WEEK:
        return [(start, end)]
    return [(start, MINUTES_PER_WEEK), (0, end - MINUTES_PER_WEEK)]


@dataclass(frozen=True)
class ScheduleEntry:
    """One entry of a user's weekly status schedule (local wall time).

    Per-day (``days`` set): ``start``/``end`` are minutes of the day, an ``end`` at or
    before ``start`` ends the next day. Per-period (``days`` empty): minutes of the week.
    """

    id: int
    status: str
    start: int
    end: int
    days: frozenset[int] = frozenset()

    def __post_init__(self) -> None:
        limit = MINUTES_PER_WEEK if self.per_period else MINUTES_PER_DAY
        if not (0 <= self.start < limit and 0 <= self.end <= limit) or self.start == self.end:
            raise ValueError(f"schedule entry {self.start}-{self.end} (minutes) is empty or out of range")

    @property
    def per_period(self) -> bool:
        return not self.days

    def spans(self) -> list[tuple[int, int]]:
        """The half-open week-minute intervals the entry covers."""
        if self.per_period:
            return _spans(self.start, self.end if self.end > self.start else self.end + MINUTES_PER_WEEK)
        end = self.end if self.end > self.start else self.end + MINUTES_PER_DAY
        return [span for day in sorted(self.days)
                for span in _spans(day * MINUTES_PER_DAY + self.start, day * MINUTES_PER_DAY + end)]

    def covers(self, minute: int) -> bool:
        return any(start <= minute < end for start, end in self.spans())

    def overlaps(self, other: ScheduleEntry) -> bool:
        return any(a < d and c < b for a, b in self.spans() for c, d in other.spans())

    @property
    def label(self) -> str:
        if self.per_period:
            return f"{format_week_time(self.start)} - {format_week_time(self.end % MINUTES_PER_WEEK)}"
        return f"{format_days(self.days)} {format_clock(self.start)}-{format_clock(self.end)}"


def first_overlap(entry: ScheduleEntry, entries: Iterable[ScheduleEntry]) -> ScheduleEntry | None:
    """The first of ``entries`` that shares a minute with ``entry`` (overlaps are refused)."""
    return next((other for other in entries if other.id != entry.id and entry.overlaps(other)), None)


# -- the configuration ---------------------------------------------------------------------


@dataclass(frozen=True)
class RingGroup:
    """Devices (channel usernames) that ring together, for ``timeout`` seconds."""

    devices: tuple[str, ...]
    timeout: int | None = None  # None: the profile's ring time (noanswer_timeout)


@dataclass(frozen=True)
class Settings:
    """A profile's settings with nothing left to inherit (what a call is handled with)."""

    ring: tuple[RingGroup, ...]  # () rings all of the user's devices together
    forward_always: str | None  # destinations: ext:NNN, ext:voicemail, +31… or 0…
    forward_busy: str | None
    forward_noanswer: str | None
    noanswer_timeout: int  # seconds a ring group rings when it has no timeout of its own
    forward_unreachable: str | None
    caller_id: str  # on external calls: a DID (+31…), "company" or "anonymous"
    forward_caller_id: str  # on forwarded external calls: the "calling" or the "called" number
    dnd: bool
    call_waiting: bool


BUILTIN = Settings(ring=(), forward_always=None, forward_busy=None, forward_noanswer=None,
                   noanswer_timeout=DEFAULT_RING_TIMEOUT_S, forward_unreachable=None,
                   caller_id=CALLER_ID_COMPANY, forward_caller_id="calling", dnd=False, call_waiting=True)
SETTING_FIELDS: tuple[str, ...] = tuple(f.name for f in fields(Settings))
FORWARD_FIELDS = frozenset({"forward_always", "forward_busy", "forward_noanswer", "forward_unreachable"})
SETTING_LABELS: Mapping[str, str] = {
    "ring": "ring sequence",
    "forward_always": "forward unconditional",
    "forward_busy": "forward on busy",
    "forward_noanswer": "forward on no answer",
    "noanswer_timeout": "ring time",
    "forward_unreachable": "forward when unreachable",
    "caller_id": "caller ID",
    "forward_caller_id": "caller ID on forwarded calls",
    "dnd": "do not disturb",
    "call_waiting": "call waiting",
}


@dataclass(frozen=True)
class Profile:
    """A named set of settings; ``None`` inherits (custom profile) or is built in (default).

    A forward field holding ``NO_FORWARD`` means "no forward" and does not inherit.
    """

    name: str
    colour: str = ""
    ring: tuple[RingGroup, ...] | None = None
    forward_always: str | None = None
    forward_busy: str | None = None
    forward_noanswer: str | None = None
    noanswer_timeout: int | None = None
    forward_unreachable: str | None = None
    caller_id: str | None = None
    forward_caller_id: str | None = None
    dnd: bool | None = None
    call_waiting: bool | None = None

    @property
    def is_default(self) -> bool:
        return self.name == DEFAULT_PROFILE


@dataclass(frozen=True)
class ClassMapping:
    """In ``status``, calls of ``call_class`` (or ``ANY_CLASS``) are handled by ``profile``."""

    status: str
    call_class: str
    profile: str


@dataclass(frozen=True)
class ManualStatus:
    """A status set by hand; it overrides the schedule until ``until`` (None: until cleared)."""

    status: str
    until: datetime | None = None


@dataclass(frozen=True)
class ForwardOverride:
    """The forward set from a phone with *910; replaces the profile's unconditional and
    on-busy forwards until cleared (no answer / unreachable stay as in the profile)."""

    kind: str  # FORWARD_ALWAYS or FORWARD_BUSY
    destination: str


@dataclass(frozen=True)
class DeviceOverride:
    """Only these devices ring until ``until`` (None: until cleared)."""

    devices: tuple[str, ...]
    until: datetime | None = None


@dataclass(frozen=True)
class ReachConfig:
    """Everything REACH knows about one user; loaded by the store in one read."""

    default: Profile = Profile(DEFAULT_PROFILE)
    profiles: tuple[Profile, ...] = ()  # custom profiles
    statuses: tuple[str, ...] = (DEFAULT_STATUS,)
    schedule: tuple[ScheduleEntry, ...] = ()
    class_map: tuple[ClassMapping, ...] = ()
    manual: ManualStatus | None = None
    forward_override: ForwardOverride | None = None
    device_override: DeviceOverride | None = None
    caller_ids: Mapping[str, str] = field(default_factory=dict)  # slot → E.164 number
    barring: frozenset[str] = frozenset()

    def profile(self, name: str) -> Profile | None:
        if name == DEFAULT_PROFILE:
            return self.default
        return next((p for p in self.profiles if p.name == name), None)


# -- the call and the decision ---------------------------------------------------------------


@dataclass(frozen=True)
class IncomingCall:
    """What the evaluator needs to know about an incoming call."""

    internal: bool  # from another extension of the account
    anonymous: bool = False  # the external caller withheld their number
    dialled_did: str | None = None  # the DID (E.164) the external caller dialled
    from_number: str = ""  # the caller's extension or number, for explanations


class Action(enum.StrEnum):
    """What the daemon does with the call."""

    RING = "ring"  # run ``ring``; then forwards.noanswer (else 480), busy → forwards.busy (else 486)
    FORWARD = "forward"  # send the call to ``destination`` without ringing
    BUSY = "busy"  # do not disturb without a busy forward: 486 Busy Here
    REJECT = "reject"  # anonymous caller refused: 433 Anonymity Disallowed (RFC 5079)
    UNAVAILABLE = "unavailable"  # no reachable device and no forward: 480 Temporarily Unavailable


@dataclass(frozen=True)
class RingStep:
    """Devices that ring together for ``timeout`` seconds before the next step starts; a
    device that is also in the next step keeps ringing (no new INVITE)."""

    devices: tuple[str, ...]
    timeout: float


@dataclass(frozen=True)
class Forwards:
    """The forwards in effect for this call (profile, after a *910 override)."""

    always: str | None = None
    busy: str | None = None
    noanswer: str | None = None
    unreachable: str | None = None


@dataclass(frozen=True)
class ReachDecision:
    """The evaluator's answer, with the reasons ``softswitch reach show`` prints."""

    status: str
    status_reason: str  # "manual until …", "schedule: mon 09:00-12:00", "default: …"
    call_class: str  # internal, external, anonymous or did:+31…
    class_reason: str
    profile: str
    profile_reason: str
    inherited: tuple[str, ...]  # SETTING_FIELDS the profile took from the default profile
    settings: Settings  # the profile's effective settings
    forwards: Forwards  # effective forwards (after the *910 override)
    forward_override: ForwardOverride | None  # the *910 override, when it applied
    device_override: DeviceOverride | None  # the device override in force, if any
    all_devices: bool  # the profile (or override) enabled none of the user's devices: all ring
    action: Action
    action_reason: str
    destination: str | None = None  # for Action.FORWARD
    ring: tuple[RingStep, ...] = ()  # for Action.RING, in order

    @property
    def dnd(self) -> bool:
        return self.settings.dnd


# -- parsing and checking of settings ------------------------------------------------------


def check_name(kind: str, name: str) -> str:
    """A profile or status name: 1-32 printable characters, trimmed."""
    name = name.strip()
    if not name or len(name) > MAX_NAME_LENGTH or not name.isprintable():
        raise ValueError(f"{kind} name {name!r} is invalid: use 1-{MAX_NAME_LENGTH} printable characters")
    return name


def check_colour(colour: str) -> str:
    if not _COLOUR_RE.fullmatch(colour):
        raise ValueError(f"colour {colour!r} is invalid: use a name like 'red' or #rrggbb")
    return colour


def check_timeout(seconds: int) -> int:
    if not MIN_RING_TIMEOUT_S <= seconds <= MAX_RING_TIMEOUT_S:
        raise ValueError(f"timeout {seconds} s is outside {MIN_RING_TIMEOUT_S}..{MAX_RING_TIMEOUT_S} s")
    return seconds


def check_destination(text: str) -> str:
    """ext:NNN, ext:voicemail, or an external number (+31… or 0…) kept as typed."""
    if not (_EXTENSION_DEST_RE.fullmatch(text) or _EXTERNAL_RE.fullmatch(text)):
        raise ValueError(f"destination {text!r} is invalid: "
                         "use ext:NNN, ext:voicemail, +31… or 0… (digits only)")
    return text


def check_e164(number: str, what: str = "number") -> str:
    if not _E164_RE.fullmatch(number):
        raise ValueError(f"{what} {number!r} is not an E.164 number like +31201234567")
    return number


def check_caller_id(text: str) -> str:
    if text in (CALLER_ID_COMPANY, CALLER_ID_ANONYMOUS):
        return text
    if not _E164_RE.fullmatch(text):
        raise ValueError(f"caller ID {text!r} is invalid: use a DID like +31201234567, 'company' or 'anonymous'")
    return text


def check_call_class(text: str) -> str:
    """internal, external, anonymous, any, or did:+E164."""
    if text in (INTERNAL, EXTERNAL, ANONYMOUS, ANY_CLASS):
        return text
    if text.startswith(DID_CLASS_PREFIX) and _E164_RE.fullmatch(text[len(DID_CLASS_PREFIX):]):
        return text
    raise ValueError(f"call class {text!r} is invalid: use internal, external, anonymous, any or did:+31…")


def parse_ring(text: str) -> tuple[RingGroup, ...]:
    """'acme-201,acme-202:20;acme-203:15' → groups in order; 'all' → () (all devices).

    A device may be in several groups ("desk phone, then desk phone and softphone"): it
    keeps ringing from one step into the next.
    """
    if text.strip().lower() == "all":
        return ()
    groups: list[RingGroup] = []
    for part in text.split(";"):
        names, sep, timeout_text = part.rpartition(":") if ":" in part else (part, "", "")
        timeout = None
        if sep:
            if not timeout_text.strip().isdigit():
                raise ValueError(f"ring group {part.strip()!r}: timeout {timeout_text.strip()!r} is not a number")
            timeout = check_timeout(int(timeout_text))
        devices = tuple(name.strip() for name in names.split(","))
        if not all(devices):
            raise ValueError(f"ring group {part.strip()!r} has an empty device name")
        twice = next((d for i, d in enumerate(devices) if d in devices[:i]), None)
        if twice:
            raise ValueError(f"device {twice!r} appears twice in ring group {part.strip()!r}")
        groups.append(RingGroup(devices, timeout))
    return tuple(groups)


def format_ring(groups: Sequence[RingGroup]) -> str:
    """The inverse of parse_ring."""
    if not groups:
        return "all"
    return ";".join(",".join(g.devices) + ("" if g.timeout is None else f":{g.timeout}") for g in groups)


def parse_local_datetime(text: str, tz: ZoneInfo) -> datetime:
    """'2026-12-01 17:00' in the account's zone → aware datetime (fold 0 on an ambiguous hour)."""
    try:
        value = datetime.fromisoformat(text.strip())
    except ValueError:
        raise ValueError(f"time {text!r} is not YYYY-MM-DD HH:MM") from None
    return value.replace(tzinfo=tz) if value.tzinfo is None else value


def format_local(at: datetime, tz: ZoneInfo) -> str:
    return at.astimezone(tz).strftime("%Y-%m-%d %H:%M")


# -- the evaluator -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StatusChoice:
    """The active status and why (for ``reach show``)."""

    status: str
    reason: str


@dataclass(frozen=True)
class ProfileChoice:
    """The profile for a call, the call class that selected it, and why."""

    profile: Profile
    call_class: str
    class_reason: str
    reason: str


def active_status(config: ReachConfig, at: datetime, tz: ZoneInfo) -> StatusChoice:
    """Manual status (until its end) > schedule entry > DEFAULT_STATUS."""
    manual = config.manual
    if manual is not None and _active_until(manual.until, at):
        until = "until cleared" if manual.until is None else f"until {format_local(manual.until, tz)}"
        return StatusChoice(manual.status, f"manual, {until}")
    minute = week_minute(at, tz)
    entry = next((e for e in config.schedule if e.covers(minute)), None)
    if entry is not None:
        return StatusChoice(entry.status, f"schedule: {entry.label}")
    return StatusChoice(DEFAULT_STATUS, "default: no manual status or schedule entry applies")


def call_classes(call: IncomingCall) -> list[tuple[str, str]]:
    """The classes the call belongs to, most specific first, each with the reason.

    Internal calls always present the caller's extension (SPEC §4), so they are never
    anonymous and never arrive on a DID.
    """
    if call.internal:
        why = f"caller {call.from_number}, an internal call" if call.from_number else "an internal call"
        return [(INTERNAL, why)]
    classes = []
    if call.anonymous:
        classes.append((ANONYMOUS, "the caller withheld their number"))
    if call.dialled_did:
        classes.append((f"{DID_CLASS_PREFIX}{call.dialled_did}", f"dialled {call.dialled_did}"))
    classes.append((EXTERNAL, f"caller {call.from_number}" if call.from_number else "an external call"))
    return classes


def choose_profile(config: ReachConfig, status: str, classes: Sequence[tuple[str, str]]) -> ProfileChoice:
    """(status, first mapped class) → (status, any class) → the default profile."""
    mapped = {(m.status, m.call_class): m.profile for m in config.class_map}
    for call_class, why in classes:
        profile = config.profile(mapped.get((status, call_class), ""))
        if profile is not None:
            return ProfileChoice(profile, call_class, why, f"{status} × {call_class}")
    call_class, why = classes[0]
    profile = config.profile(mapped.get((status, ANY_CLASS), ""))
    if profile is not None:
        return ProfileChoice(profile, call_class, why, f"{status} × any class")
    return ProfileChoice(config.default, call_class, why, f"no mapping for status {status!r}")


def resolve_profile(profile: Profile, default: Profile) -> tuple[Settings, tuple[str, ...]]:
    """The effective settings of ``profile`` and the names of those taken from ``default``."""
    values: dict[str, object] = {}
    inherited: list[str] = []
    for name in SETTING_FIELDS:
        value = getattr(profile, name)
        if value is None and not profile.is_default:
            value = getattr(default, name)
            inherited.append(name)
        if value is None:
            value = getattr(BUILTIN, name)
        values[name] = None if name in FORWARD_FIELDS and value == NO_FORWARD else value
    return Settings(**values), tuple(inherited)  # type: ignore[arg-type]


def _effective_forwards(settings: Settings, override: ForwardOverride | None) -> Forwards:
    forwards = Forwards(settings.forward_always, settings.forward_busy, settings.forward_noanswer,
                        settings.forward_unreachable)
    if override is None:
        return forwards
    if override.kind == FORWARD_ALWAYS:
        return Forwards(override.destination, forwards.busy, forwards.noanswer, forwards.unreachable)
    return Forwards(None, override.destination, forwards.noanswer, forwards.unreachable)


def _ring_plan(settings: Settings, devices: Sequence[str],
               override: DeviceOverride | None) -> tuple[tuple[RingStep, ...], bool]:
    """The ring steps over the user's ``devices``; True when nothing was enabled and all ring."""
    ring_time = float(settings.noanswer_timeout)
    enabled = [d for d in devices if override is None or d in override.devices]
    groups = settings.ring or (RingGroup(tuple(devices)),)
    steps = []
    for group in groups:
        members = tuple(d for d in group.devices if d in enabled)
        if members:
            steps.append(RingStep(members, ring_time if group.timeout is None else float(group.timeout)))
    if not steps and override is not None and enabled:  # the override names devices the profile leaves out
        steps.append(RingStep(tuple(enabled), ring_time))
    if not steps:  # SPEC §29: rather all devices than an unreachable user
        return (RingStep(tuple(devices), ring_time),), True
    return tuple(steps), False


def _reachable(steps: Sequence[RingStep], registered: Collection[str] | None) -> tuple[RingStep, ...]:
    """Drop unregistered devices, then empty steps; a step that rings the same devices as
    the one before it only makes that one longer."""
    kept = steps if registered is None else [
        RingStep(tuple(d for d in s.devices if d in registered), s.timeout) for s in steps]
    merged: list[RingStep] = []
    for step in kept:
        if merged and step.devices == merged[-1].devices:
            merged[-1] = RingStep(step.devices, merged[-1].timeout + step.timeout)
        elif step.devices:
            merged.append(step)
    return tuple(merged)


def _active_until(until: datetime | None, at: datetime) -> bool:
    return until is None or at < until


def evaluate(config: ReachConfig, at: datetime, tz: ZoneInfo, call: IncomingCall, devices: Sequence[str],
             *, registered: Collection[str] | None = None) -> ReachDecision:
    """How an incoming call to the user is handled at ``at``.

    ``devices``: the channels the user is logged in on, in ring order for "all devices".
    ``registered``: those that can be reached now (None: assume all); a ring plan whose
    devices are all unreachable makes the user unreachable.

    Order: anonymous caller refused (call barring) > unconditional forward > do not
    disturb (busy handling) > unreachable > ring.
    """
    if at.tzinfo is None:
        raise ValueError("evaluate needs an aware datetime")
    status = active_status(config, at, tz)
    choice = choose_profile(config, status.status, call_classes(call))
    settings, inherited = resolve_profile(choice.profile, config.default)
    forwards = _effective_forwards(settings, config.forward_override)
    device_override = config.device_override
    if device_override is not None and not _active_until(device_override.until, at):
        device_override = None
    decide = _Decider(status, choice, settings, inherited, forwards, config.forward_override, device_override)
    if call.anonymous and not call.internal and INCOMING_ANONYMOUS in config.barring:
        return decide(Action.REJECT, "anonymous callers are barred")
    if forwards.always is not None:
        source = "*910" if config.forward_override and config.forward_override.kind == FORWARD_ALWAYS else "profile"
        return decide(Action.FORWARD, f"forward unconditional ({source})", forwards.always)
    if settings.dnd:
        if forwards.busy is not None:
            return decide(Action.FORWARD, "do not disturb: forward on busy", forwards.busy)
        return decide(Action.BUSY, "do not disturb")
    plan, all_devices = _ring_plan(settings, devices, device_override) if devices else ((), False)
    steps = _reachable(plan, registered)
    if not steps:
        why = "no device logged in" if not devices else "none of the devices to ring is registered"
        if forwards.unreachable is not None:
            return decide(Action.FORWARD, f"unreachable ({why}): forward when unreachable", forwards.unreachable)
        return decide(Action.UNAVAILABLE, f"unreachable ({why})")
    return decide(Action.RING, "ring the devices in sequence", ring=steps, all_devices=all_devices)


@dataclass(frozen=True)
class _Decider:
    """Builds the ReachDecision once the action is known (keeps evaluate() short)."""

    status: StatusChoice
    choice: ProfileChoice
    settings: Settings
    inherited: tuple[str, ...]
    forwards: Forwards
    forward_override: ForwardOverride | None
    device_override: DeviceOverride | None

    def __call__(self, action: Action, reason: str, destination: str | None = None, *,
                 ring: tuple[RingStep, ...] = (), all_devices: bool = False) -> ReachDecision:
        return ReachDecision(
            status=self.status.status, status_reason=self.status.reason,
            call_class=self.choice.call_class, class_reason=self.choice.class_reason,
            profile=self.choice.profile.name, profile_reason=self.choice.reason, inherited=self.inherited,
            settings=self.settings, forwards=self.forwards, forward_override=self.forward_override,
            device_override=self.device_override, all_devices=all_devices, action=action,
            action_reason=reason, destination=destination, ring=ring)


def follow_forwards(start_ext: str, lookup: Callable[[str], str | None],
                    limit: int = MAX_FORWARD_HOPS) -> tuple[str, bool]:
    """Follow unconditional forwards from extension ``start_ext``; (final destination, loop?).

    ``lookup(ext)`` is the destination extension ``ext`` forwards to now (ext:NNN,
    ext:voicemail, an external number) or None. The result is ``ext:NNN`` (ring that
    extension), ``voicemail:NNN`` (the voicemail of NNN) or the external number. A chain
    that returns to an extension already passed, or needs more than ``limit`` forwards,
    is a loop: the result is then the last extension reached, whose forward is ignored.
    """
    seen = {start_ext}
    current = start_ext
    hops = 0
    while True:
        destination = lookup(current)
        if destination is None:
            return f"ext:{current}", False
        if destination == VOICEMAIL:
            return f"voicemail:{current}", False
        if not destination.startswith("ext:"):
            return destination, False
        target = destination[len("ext:"):]
        if target in seen or hops >= limit:
            return f"ext:{current}", True
        seen.add(target)
        current = target
        hops += 1


# -- outgoing calls: dynamic caller IDs (SPEC §4.7) ---------------------------------------------


@dataclass(frozen=True)
class OutboundCaller:
    """The number to dial (prefix removed) and the caller ID to present."""

    number: str
    caller_id: str  # E.164 DID, "company" or "anonymous"
    reason: str


def parse_caller_id_prefix(dialled: str) -> tuple[str | None, str]:
    """'#35#0201234567' → ('5', '0201234567'); '#31#…' → ('anonymous', …); else (None, dialled)."""
    match = _PREFIX_RE.fullmatch(dialled)
    if match is None:
        return None, dialled
    return (CALLER_ID_ANONYMOUS if match[1] == "1" else match[1]), match[2]


def outbound_caller_id(config: ReachConfig, at: datetime, tz: ZoneInfo, dialled: str) -> OutboundCaller:
    """The caller ID of an external call: #31# > #3x# slot > the profile for (status, external)."""
    slot, number = parse_caller_id_prefix(dialled)
    if slot == CALLER_ID_ANONYMOUS:
        return OutboundCaller(number, CALLER_ID_ANONYMOUS, "#31# withholds the number")
    if slot is not None and slot in config.caller_ids:
        return OutboundCaller(number, config.caller_ids[slot], f"#3{slot}#: dynamic caller ID {slot}")
    status = active_status(config, at, tz)
    choice = choose_profile(config, status.status, [(EXTERNAL, "an outgoing call")])
    settings, _ = resolve_profile(choice.profile, config.default)
    reason = f"profile {choice.profile.name!r} ({choice.reason})"
    if slot is not None:
        reason = f"dynamic caller ID {slot} is not set; {reason}"
    return OutboundCaller(number, settings.caller_id, reason)


# -- call barring (SPEC §4.8, §29) ---------------------------------------------------------------

INCOMING_ANONYMOUS = "incoming-anonymous"
BARRING_CATEGORIES: Mapping[str, str] = {
    "premium": "premium-rate numbers 0900, 0906, 0909",
    "satellite": "satellite networks +870, +881, +882",
    "international": "numbers abroad",
    "shared-cost": "shared-cost and personal numbers 084, 087",
    "information": "information numbers 18xx",
    "mobile": "mobile numbers 06",
    "all-external": "every external number",
    INCOMING_ANONYMOUS: "incoming calls that withhold the caller's number",
}
# Checked in this order, so the most specific category names the reason.
OUTGOING_CATEGORIES = ("premium", "satellite", "international", "shared-cost", "information", "mobile",
                       "all-external")
EMERGENCY_NUMBERS = frozenset({"112"})  # never barred
COUNTRY_CODES: Mapping[str, str] = {"NL": "31", "BE": "32", "DE": "49", "GB": "44", "FR": "33"}
_NL_RANGES = (("900", "premium"), ("906", "premium"), ("909", "premium"), ("84", "shared-cost"),
              ("87", "shared-cost"), ("6", "mobile"))
_SATELLITE_CODES = ("870", "881", "882")
_SEPARATORS_RE = re.compile(r"[\s()./-]")
_INFORMATION_RE = re.compile(r"18\d\d")


def classify_number(number: str, country: str = "NL") -> frozenset[str]:
    """The barring categories an outgoing number falls in (empty for 112).

    Accepts E.164 (+…), international (00…), national (0…) and short numbers. National
    ranges (mobile, premium, 084/087, 18xx) are known for NL only; for the other
    countries of COUNTRY_CODES a number is only external or international. Freephone
    0800 is in no category but "all-external".
    """
    code = COUNTRY_CODES.get(country.upper())
    if code is None:
        raise ValueError(f"no numbering rules for country {country!r}: known are {', '.join(COUNTRY_CODES)}")
    digits = _SEPARATORS_RE.sub("", number.replace("(0)", ""))  # +31 (0)6 …: the 0 is not dialled
    if not re.fullmatch(r"\+?\d+", digits):
        raise ValueError(f"{number!r} is not a phone number")
    if digits in EMERGENCY_NUMBERS:
        return frozenset()
    if digits.startswith("+"):
        international = digits[1:]
    elif digits.startswith("00"):
        international = digits[2:]
    elif digits.startswith("0"):
        international = code + digits[1:]
    else:  # a short national number such as 18xx or 14xxx
        information = country.upper() == "NL" and _INFORMATION_RE.fullmatch(digits)
        return frozenset({"all-external", *(("information",) if information else ())})
    if not international.startswith(code):
        satellite = international.startswith(_SATELLITE_CODES)
        return frozenset({"all-external", "international", *(("satellite",) if satellite else ())})
    national = international[len(code):]
    ranges = _NL_RANGES if country.upper() == "NL" else ()
    return frozenset({"all-external", *(category for prefix, category in ranges if national.startswith(prefix))})


def barred(categories_enabled: Collection[str], number: str, country: str = "NL") -> str | None:
    """The enabled barring category that blocks ``number``, or None (112 is never barred)."""
    categories = classify_number(number, country)
    return next((c for c in OUTGOING_CATEGORIES if c in categories and c in categories_enabled), None)
