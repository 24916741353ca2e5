"""Rules of the in-call features, as pure functions over frozen dataclasses (no I/O).

What lives here, with the SPEC section that fixes each rule:

- PINs (§3.6, §29): digits only, 4-12 long; a user may not choose a trivial PIN; PIN
  ``0000`` means "choose a new PIN at the next login".
- Account feature settings (§3.7, §7, §28): twinning, parking timers and slots, the
  ``##`` prefix and its timeout, the number of fixed devices a twinning user may use;
  each checked against the bounds below.
- Logins on devices (§3.6, §3.7, §29): ``plan_login`` decides what a 901 login (or
  ``softswitch login``) does to the user's other devices; ``check_link`` the limits of
  permanent links.
- Privacy groups (§5): a member's rights apply over the OTHER members of the same group;
  ``rights_over`` combines every group two users share.

``config.store.Store`` reads the rows, calls these functions and writes the outcome in
one transaction; the daemon calls the same functions with what it has cached.
"""
from __future__ import annotations

import hmac
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from config.errors import ConfigError
from config.models import PIN_MUST_CHANGE, Account, Channel, User

# -- PINs (SPEC §3.6, §29) -------------------------------------------------------------

MIN_PIN_DIGITS = 4
MAX_PIN_DIGITS = 12


def is_trivial_pin(pin: str) -> bool:
    """True for PINs that are easy to guess: 1111, 1234, 4321, 1212, 123123 (SPEC §29)."""
    if len(set(pin)) == 1:
        return True
    steps = {int(b) - int(a) for a, b in zip(pin, pin[1:])}
    if steps in ({1}, {-1}):
        return True
    return any(
        len(pin) % size == 0 and pin == pin[:size] * (len(pin) // size)
        for size in range(1, len(pin) // 2 + 1)
    )


def check_pin_format(pin: str | int) -> str:
    """The PIN as a string of 4-12 digits, or ConfigError. Says nothing about guessability."""
    pin = str(pin).strip()
    if not pin.isascii() or not pin.isdigit():
        raise ConfigError("PIN must contain digits only")
    if len(pin) < MIN_PIN_DIGITS:
        raise ConfigError(f"PIN must be at least {MIN_PIN_DIGITS} digits")
    if len(pin) > MAX_PIN_DIGITS:
        raise ConfigError(f"PIN must be at most {MAX_PIN_DIGITS} digits")
    return pin


def check_new_pin(pin: str | int, *, allow_reset: bool = False) -> str:
    """A PIN someone chooses: well-formed and not trivial.

    ``allow_reset``: an administrator may set ``0000``, which makes the user choose a new
    PIN at the next login (SPEC §29); a user choosing a PIN never may.
    """
    pin = check_pin_format(pin)
    if allow_reset and pin == PIN_MUST_CHANGE:
        return pin
    if is_trivial_pin(pin):
        raise ConfigError(f"PIN {pin} is too easy to guess; choose another")
    return pin


def check_pin(user: User, pin: str) -> bool:
    """Whether ``pin`` is the user's PIN (constant time: the typed PIN is a secret)."""
    return hmac.compare_digest(user.pin.encode(), pin.encode())


# -- account feature settings ----------------------------------------------------------

MIN_PARK_TIMEOUT_S, MAX_PARK_TIMEOUT_S = 10, 3600  # SPEC §7: default 120 s
MAX_PARK_RECALLS = 20  # ring-backs to the parker before the parked call ends
MAX_PARK_SLOT = 9999  # slots are dialled as *7 + up to 4 digits
MAX_PARK_SLOTS = 999
MIN_DTMF_TIMEOUT_S, MAX_DTMF_TIMEOUT_S = 1.0, 10.0  # SPEC §28: default 3 s
MAX_DTMF_PREFIX_KEYS = 3
DTMF_PREFIX_KEYS = frozenset("0123456789*#")
MAX_FIXED_DEVICES = 10  # SPEC §3.7 says 2 (the default); an account may allow more
MAX_LINKED_CHANNELS_TWINNING = 2  # SPEC §29: "a twinning user can be linked to 1 or 2 channels"


def _check_int(label: str, value: int, low: int, high: int, unit: str = "") -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ConfigError(f"{label} must be {low}-{high}{unit}, not {value!r}")
    return value


def check_park_timeout(seconds: int) -> int:
    return _check_int("park timeout", seconds, MIN_PARK_TIMEOUT_S, MAX_PARK_TIMEOUT_S, " seconds")


def check_park_recall_limit(recalls: int) -> int:
    return _check_int("park recall limit", recalls, 0, MAX_PARK_RECALLS)


def check_park_slots(first_slot: int, slots: int) -> tuple[int, int]:
    """The slot range first_slot .. first_slot + slots - 1 must stay within 1..9999."""
    _check_int("first park slot", first_slot, 1, MAX_PARK_SLOT)
    _check_int("number of park slots", slots, 1, MAX_PARK_SLOTS)
    if first_slot + slots - 1 > MAX_PARK_SLOT:
        raise ConfigError(
            f"park slots {first_slot}-{first_slot + slots - 1} go beyond {MAX_PARK_SLOT}"
        )
    return first_slot, slots


def check_dtmf_prefix(prefix: str) -> str:
    if not 1 <= len(prefix) <= MAX_DTMF_PREFIX_KEYS or not set(prefix) <= DTMF_PREFIX_KEYS:
        raise ConfigError(f"DTMF prefix {prefix!r} must be 1-{MAX_DTMF_PREFIX_KEYS} keys of 0-9, * and #")
    return prefix


def check_dtmf_timeout(seconds: float) -> float:
    if isinstance(seconds, bool) or not MIN_DTMF_TIMEOUT_S <= seconds <= MAX_DTMF_TIMEOUT_S:
        raise ConfigError(
            f"DTMF timeout must be {MIN_DTMF_TIMEOUT_S:g}-{MAX_DTMF_TIMEOUT_S:g} seconds, not {seconds!r}"
        )
    return float(seconds)


def check_max_fixed_devices(devices: int) -> int:
    return _check_int("max fixed devices", devices, 1, MAX_FIXED_DEVICES)


def park_slot_range(account: Account) -> range:
    """The slot numbers of the account's parking lot (701..799 by default)."""
    return range(account.park_first_slot, account.park_first_slot + account.park_slots)


# -- logins on devices (SPEC §3.6, §3.7, §29) --------------------------------------------


@dataclass(frozen=True)
class DeviceLogin:
    """A user's login on one channel (one row of ``logins``)."""

    channel_id: int
    channel: str
    """The channel's username."""
    linked: bool = False
    """Permanently linked (zero-touch): the user cannot log out on this device."""
    logged_in_at: float = 0.0


@dataclass(frozen=True)
class ChannelOccupant:
    """The user logged in on the channel a login is aimed at."""

    user_id: int
    extension: str
    name: str
    linked: bool = False


@dataclass(frozen=True)
class LoginPlan:
    """What logging ``user`` in on ``channel`` does; ``Store.login_user`` applies it."""

    user_id: int
    channel_id: int
    channel: str
    log_out: tuple[DeviceLogin, ...] = ()
    """The user's logins on other devices that end (never a linked one)."""
    needs_confirmation: bool = False
    """Twinning user already on the maximum number of devices: 901 asks "press 1 to log
    in here and out elsewhere", the CLI wants ``--replace``."""
    replaces: ChannelOccupant | None = None
    """Another user logged in on the channel, who is logged out of it."""
    already_here: bool = False
    """The user was logged in on the channel already."""


class LoginNeedsConfirmation(ConfigError):
    """A twinning user is on the maximum number of devices; the login must be confirmed."""

    def __init__(self, user: User, plan: LoginPlan, current: Sequence[DeviceLogin]) -> None:
        devices = [d.channel for d in current if d.channel_id != plan.channel_id]
        super().__init__(
            f"user {user.extension} is already logged in on the maximum of "
            f"{len(devices)} devices ({', '.join(devices)})"
        )
        self.plan = plan


def twinning_enabled(account: Account, user: User) -> bool:
    """Twinning needs both switches on: the account's and the user's (SPEC §3.7)."""
    return account.twinning and user.twinning


def max_devices(account: Account, user: User) -> int:
    """How many devices the user may be logged in on at once (linked ones included)."""
    return account.max_fixed_devices if twinning_enabled(account, user) else 1


def max_linked_channels(account: Account, user: User) -> int:
    return MAX_LINKED_CHANNELS_TWINNING if twinning_enabled(account, user) else 1


def plan_login(
    account: Account,
    user: User,
    current: Sequence[DeviceLogin],
    channel: Channel,
    occupant: ChannelOccupant | None,
) -> LoginPlan:
    """Decide what logging ``user`` in on ``channel`` does to their other devices.

    ``current``: the user's logins now; ``occupant``: who is logged in on ``channel``.
    Without twinning the user moves: every other login ends except permanently linked
    ones. With twinning the user is added, unless that goes beyond the account's maximum
    of fixed devices: then the other (non-linked) logins end, after confirmation. A
    channel another user is permanently linked to cannot be taken over.
    """
    check_takeover(channel, user.id, occupant)
    replaces = occupant if occupant is not None and occupant.user_id != user.id else None
    already_here = any(d.channel_id == channel.id for d in current)
    others = [d for d in current if d.channel_id != channel.id]
    movable = tuple(d for d in others if not d.linked)
    base = LoginPlan(user.id, channel.id, channel.username, replaces=replaces, already_here=already_here)
    if not twinning_enabled(account, user):
        return replace(base, log_out=movable)
    limit = account.max_fixed_devices
    if already_here or len(others) + 1 <= limit:
        return base
    linked = [d for d in others if d.linked]
    if len(linked) + 1 > limit:
        raise ConfigError(
            f"user {user.extension} is permanently linked to {len(linked)} devices "
            f"({', '.join(d.channel for d in linked)}) and may use {limit}; unlink one first"
        )
    return replace(base, log_out=movable, needs_confirmation=True)


def check_takeover(channel: Channel, user_id: int, occupant: ChannelOccupant | None) -> None:
    """A channel another user is permanently linked to cannot be taken over (SPEC §29)."""
    if occupant is not None and occupant.user_id != user_id and occupant.linked:
        raise ConfigError(
            f"channel {channel.username!r} is permanently linked to user "
            f"{occupant.extension} ({occupant.name}); unlink it first"
        )


def check_link(account: Account, user: User, current: Sequence[DeviceLogin], channel: Channel) -> None:
    """Refuse a permanent link beyond SPEC §29's limit: 1 channel, 2 with twinning."""
    linked = [d.channel for d in current if d.linked and d.channel_id != channel.id]
    limit = max_linked_channels(account, user)
    if len(linked) >= limit:
        kind = "with twinning" if twinning_enabled(account, user) else "without twinning"
        raise ConfigError(
            f"user {user.extension} is already linked to {', '.join(linked)}, "
            f"the maximum {kind}; unlink first"
        )


# -- privacy groups (SPEC §5) -----------------------------------------------------------

MAX_PRIVACY_GROUP_NUMBER = 99
MAX_PRIVACY_GROUP_NAME_LENGTH = 64
MAX_NOTIFY_DELAY_S = 300


def check_privacy_group_number(number: int) -> int:
    return _check_int("privacy group number", number, 1, MAX_PRIVACY_GROUP_NUMBER)


def check_privacy_group_name(name: str) -> str:
    """A group name: not empty, and not only digits (a number given where a group is
    expected is always the group's number)."""
    name = name.strip()
    if not name:
        raise ConfigError("privacy group name must not be empty")
    if len(name) > MAX_PRIVACY_GROUP_NAME_LENGTH:
        raise ConfigError(f"privacy group name is longer than {MAX_PRIVACY_GROUP_NAME_LENGTH} characters")
    if name.isdigit():
        raise ConfigError(f"privacy group name {name!r} is only digits; a number names a group by its number")
    return name


def check_notify_delay(seconds: int) -> int:
    return _check_int("notification delay", seconds, 0, MAX_NOTIFY_DELAY_S, " seconds")


@dataclass(frozen=True)
class PrivacyRights:
    """The rights one user has over another, combined over the groups they share."""

    pickup: bool = False
    """May pick up calls ringing for the other (``*8``, 908)."""
    presence: bool = False
    """May see the other's busy lamp (BLF)."""
    notifications: bool = False
    """Gets desktop notifications of the other's incoming calls..."""
    notify_delay: int = 0
    """... this many seconds after the call starts ringing."""
    retrieve_parked: bool = False
    """May take calls the other parked (``*7`` + slot)."""


NO_RIGHTS = PrivacyRights()


@dataclass(frozen=True)
class PrivacyMember:
    """A user in a privacy group, with the rights they get over the other members."""

    group_id: int
    user_id: int
    extension: str
    name: str
    rights: PrivacyRights = NO_RIGHTS


@dataclass(frozen=True)
class PrivacyGroup:
    """A named set of users of one account that have rights over each other (SPEC §5)."""

    id: int
    account_id: int
    number: int
    """1..99, unique in the account (for ``*8`` + group and for the CLI)."""
    name: str
    members: tuple[PrivacyMember, ...] = ()

    def member(self, user_id: int) -> PrivacyMember | None:
        return next((m for m in self.members if m.user_id == user_id), None)


def rights_over(groups: Iterable[PrivacyGroup], user_id: int, other_id: int) -> PrivacyRights:
    """What ``user_id`` may do over ``other_id``: any right that a membership row of
    ``user_id`` grants, in a group where ``other_id`` is a member too. Nothing over
    oneself: privacy rights are about other people's calls."""
    if user_id == other_id:
        return NO_RIGHTS
    grants = [
        mine.rights
        for group in groups
        if (mine := group.member(user_id)) is not None and group.member(other_id) is not None
    ]
    if not grants:
        return NO_RIGHTS
    notified = [r.notify_delay for r in grants if r.notifications]
    return PrivacyRights(
        pickup=any(r.pickup for r in grants),
        presence=any(r.presence for r in grants),
        notifications=bool(notified),
        notify_delay=min(notified, default=0),
        retrieve_parked=any(r.retrieve_parked for r in grants),
    )


def may_pickup(groups: Iterable[PrivacyGroup], picker_id: int, target_id: int) -> bool:
    """``*8`` + extension: the picker needs the pickup right over the called user."""
    return rights_over(groups, picker_id, target_id).pickup


def may_retrieve_parked(groups: Iterable[PrivacyGroup], retriever_id: int, parker_id: int) -> bool:
    """A parked call can be retrieved by whoever parked it, and by users with the
    "retrieve parked calls" right over the parker (SPEC §7)."""
    return retriever_id == parker_id or rights_over(groups, retriever_id, parker_id).retrieve_parked


def pickup_targets(groups: Iterable[PrivacyGroup], picker_id: int) -> frozenset[int]:
    """The users whose ringing calls ``*8`` alone may pick up for ``picker_id``."""
    targets: set[int] = set()
    for group in groups:
        mine = group.member(picker_id)
        if mine is not None and mine.rights.pickup:
            targets.update(m.user_id for m in group.members if m.user_id != picker_id)
    return frozenset(targets)


# -- parked calls (SPEC §7) -------------------------------------------------------------


@dataclass(frozen=True)
class ParkedCall:
    """A call waiting in a park slot, as the daemon publishes it for ``softswitch parked``."""

    account_id: int
    slot: int
    call_id: str
    parker_extension: str
    """Who parked it: the recall rings them."""
    parked_party: str
    """Caller ID of the party on hold, as text ("0201234567", "203 Carol")."""
    parked_at: float
    recall_at: float
    """Unix time of the next ring-back to the parker."""
