"""Codes a user types: service codes dialled from a device, ``##`` codes typed in a call.

Pure: no I/O, no asyncio, no clock of its own; time arrives as ``now`` (seconds, any
monotonic origin) and the caller is told when to come back (``deadline()``).

``DtmfCodeParser`` (SPEC §28, "## function codes") sits between the keys one party
presses during a call and the other party. Every key goes through ``feed``; what comes
out is what to do with it:

    PassThrough(digits)       forward these keys to the other party now, in order
    Feature(name, number)     the user typed a complete code: hold, transfer, park, ...
    BadCode(digits, why)      the user typed the prefix and then something that is no
                              code; the call plays "invalid code" and logs ``why``

Keys that could begin the prefix are held back until it is clear whether they do; the
keys of a code itself never reach the other party ("##-sequences are not passed on").
The one timeout (``FeatureCodes.timeout``, 3 s) also releases held keys, so a lone "#"
reaches the other party 3 s late; that is the price of never leaking a code's keys.

    state     key                                  result
    idle      one that may start the prefix        held back → prefix (function if complete)
              any other                            PassThrough(key)
    prefix    the next one of the prefix           held back; the whole prefix → function
              any other, or the timeout            PassThrough(what can no longer be the prefix)
    function  "#", or the timeout                  Feature("hold")
              conference/swap/cancel/park key      Feature(name)
              blind/attended transfer key          → number
              any other                            BadCode
    number    0-9 or * (up to 32)                  collected
              "#", or the timeout                  Feature(transfer, number); BadCode if empty
              any other, or one too many           BadCode

``classify_dialled`` (SPEC §1, §7, §28, §29) recognises the fixed service codes a
device dials (901 login, ``*8`` pickup, ``*7`` parking ...) in a Request-URI user part.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from enum import Enum
from typing import Callable, Union

from .slots import MAX_SLOT

# --- keys -------------------------------------------------------------------------
DTMF_KEYS = frozenset("0123456789*#ABCD")  # RFC 4733 section 3.2 events 0-15
PREFIX_KEYS = frozenset("0123456789*#")  # keys every phone has
FUNCTION_KEYS = frozenset("0123456789*")  # "#" right after the prefix means hold
NUMBER_KEYS = frozenset("0123456789*")  # what a transfer target may contain
END_KEY = "#"  # ends a number; right after the prefix: hold at once

# --- limits -----------------------------------------------------------------------
MAX_PREFIX_KEYS = 3
MIN_TIMEOUT_S = 1.0  # shorter and nobody can type a number
MAX_TIMEOUT_S = 10.0  # longer and the other party waits for held keys too long
MAX_NUMBER_DIGITS = 32  # longest transfer target typed after ##1 / ##2
MAX_SLOT_DIGITS = len(str(MAX_SLOT))  # *7 + slot
MAX_GROUP_DIGITS = 2  # privacy groups are numbered 1-99 for *8 + group
EXTENSION_DIGITS = (3, 4, 5)  # SPEC §1

# --- ## features (SPEC §28 table) -------------------------------------------------
HOLD = "hold"
BLIND_TRANSFER = "blind_transfer"
ATTENDED_TRANSFER = "attended_transfer"
CONFERENCE = "conference"
SWAP = "swap"
CANCEL = "cancel"
PARK = "park"
FEATURE_NAMES = (HOLD, BLIND_TRANSFER, ATTENDED_TRANSFER, CONFERENCE, SWAP, CANCEL, PARK)
NUMBER_FEATURES = frozenset({BLIND_TRANSFER, ATTENDED_TRANSFER})  # followed by a number


@dataclass(frozen=True)
class FeatureCodes:
    """The ``##`` codes of one account; the defaults are SPEC §28's table.

    Each function field holds the one key that follows the prefix. ``#`` cannot be a
    function key: right after the prefix it means hold (as does silence).
    """

    prefix: str = "##"
    """1-3 keys of 0-9, * and # that start every code."""
    timeout: float = 3.0
    """Inter-key timeout in seconds: ends the prefix alone (hold) and a number."""
    blind_transfer: str = "1"
    attended_transfer: str = "2"
    conference: str = "3"
    swap: str = "4"
    cancel: str = "0"
    park: str = "7"

    def __post_init__(self) -> None:
        if (
            not isinstance(self.prefix, str)
            or not 1 <= len(self.prefix) <= MAX_PREFIX_KEYS
            or not set(self.prefix) <= PREFIX_KEYS
        ):
            raise ValueError(f"feature code prefix {self.prefix!r} must be 1-3 keys of 0-9, * and #")
        timeout = self.timeout
        is_number = isinstance(timeout, (int, float)) and not isinstance(timeout, bool)
        if not is_number or not MIN_TIMEOUT_S <= timeout <= MAX_TIMEOUT_S:  # NaN fails too
            raise ValueError(f"feature code timeout {timeout!r} must be 1 to 10 seconds")
        taken: dict[str, str] = {}
        for name, key in self.functions().items():
            if not isinstance(key, str) or len(key) != 1 or key not in FUNCTION_KEYS:
                raise ValueError(f"feature code for {name} {key!r} must be one key of 0-9 or * (# means hold)")
            if key in taken:
                raise ValueError(f"feature codes {taken[key]} and {name} are both {key!r}")
            taken[key] = name

    def functions(self) -> dict[str, str]:
        """Feature name → its function key, for every feature but hold."""
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name in FEATURE_NAMES}


@dataclass(frozen=True)
class PassThrough:
    """Keys that belong to the conversation: send them to the other party now."""

    digits: str
    """One or more keys, in the order they were pressed."""


@dataclass(frozen=True)
class Feature:
    """A complete code: the call carries out the feature."""

    name: str
    """One of FEATURE_NAMES; "hold" toggles (the call knows whether to hold or resume)."""
    number: str = ""
    """The target of a blind or attended transfer (0-9 and *); empty for the others."""


@dataclass(frozen=True)
class BadCode:
    """The prefix followed by something that is no code: play "invalid code", log ``why``."""

    digits: str
    """The keys of the failed sequence as typed, prefix included (e.g. "##9")."""
    why: str
    """One line for the log, naming the sequence."""


CodeEvent = Union[PassThrough, Feature, BadCode]


class _State(Enum):
    IDLE = "idle"  # nothing held back
    PREFIX = "prefix"  # holding keys that may be the start of the prefix
    FUNCTION = "function"  # the whole prefix was typed; waiting for the function key
    NUMBER = "number"  # collecting the target of a transfer


class DtmfCodeParser:
    """Splits one party's key presses into conversation keys and ``##`` codes.

    Feed every key with ``feed``; call ``poll`` at or after ``deadline()`` so timeouts
    (hold after a bare prefix, a number ended by silence, a lone "#" released) happen
    even when no further key arrives. ``feed`` runs an overdue timeout first itself.
    """

    def __init__(self, codes: FeatureCodes = FeatureCodes()) -> None:
        self.codes = codes
        self._by_key = {key: name for name, key in codes.functions().items()}
        self._on_key: dict[_State, Callable[[str], list[CodeEvent]]] = {
            _State.IDLE: self._key_in_prefix,
            _State.PREFIX: self._key_in_prefix,
            _State.FUNCTION: self._key_after_prefix,
            _State.NUMBER: self._key_in_number,
        }
        self._state = _State.IDLE
        self._typed = ""  # keys of the current sequence so far (held prefix, or the code)
        self._feature = ""  # the transfer whose number is being collected
        self._number = ""
        self._last_key_at = 0.0

    def __repr__(self) -> str:
        return f"<DtmfCodeParser {self._state.value} typed={self._typed!r} prefix={self.codes.prefix!r}>"

    @property
    def collecting(self) -> bool:
        """True after the whole prefix: the keys now typed form a code, not conversation."""
        return self._state in (_State.FUNCTION, _State.NUMBER)

    def deadline(self) -> float | None:
        """When ``poll`` next has something to do; None while nothing is pending."""
        if self._state is _State.IDLE:
            return None
        return self._last_key_at + self.codes.timeout

    def reset(self) -> None:
        """Forget the current sequence; held keys are dropped (the call has moved on)."""
        self._state = _State.IDLE
        self._typed = self._feature = self._number = ""

    def feed(self, digit: str, now: float) -> list[CodeEvent]:
        """One key pressed by this party at ``now``; returns what to do, in order."""
        if len(digit) != 1 or digit not in DTMF_KEYS:
            raise ValueError(f"{digit!r} is not a DTMF key (0-9, *, #, A-D)")
        events = self.poll(now)
        events.extend(self._on_key[self._state](digit))
        self._last_key_at = now
        return _joined(events)

    def poll(self, now: float) -> list[CodeEvent]:
        """Timeouts: what to do when no key came for ``codes.timeout`` seconds."""
        deadline = self.deadline()
        if deadline is None or now < deadline:
            return []
        state, typed = self._state, self._typed
        feature, number = self._feature, self._number
        self.reset()
        if state is _State.PREFIX:
            return [PassThrough(typed)]  # it was not the prefix after all
        if state is _State.FUNCTION:
            return [Feature(HOLD)]  # SPEC §28: "## (then nothing for 3 s)"
        if number:
            return [Feature(feature, number)]  # SPEC §28: "a number is ended with # or by the timeout"
        return [BadCode(typed, f"{typed} without a number")]

    # --- one handler per state ----------------------------------------------------
    def _key_in_prefix(self, digit: str) -> list[CodeEvent]:
        """Idle or holding part of the prefix: hold back what may still become the prefix."""
        candidate = self._typed + digit
        prefix = self.codes.prefix
        if candidate == prefix:
            self._state, self._typed = _State.FUNCTION, candidate
            return []
        keep = _longest_start_of(prefix, candidate)
        released = candidate[: len(candidate) - len(keep)]
        self._state, self._typed = (_State.PREFIX if keep else _State.IDLE), keep
        return [PassThrough(released)] if released else []

    def _key_after_prefix(self, digit: str) -> list[CodeEvent]:
        typed = self._typed + digit
        if digit == END_KEY:
            self.reset()
            return [Feature(HOLD)]
        name = self._by_key.get(digit)
        if name is None:
            self.reset()
            return [BadCode(typed, f"{typed} is not a feature code")]
        if name in NUMBER_FEATURES:
            self._state, self._typed, self._feature = _State.NUMBER, typed, name
            return []
        self.reset()
        return [Feature(name)]

    def _key_in_number(self, digit: str) -> list[CodeEvent]:
        code, feature, number = self._typed, self._feature, self._number  # code: prefix + function key
        if digit in NUMBER_KEYS and len(number) < MAX_NUMBER_DIGITS:
            self._number += digit
            return []
        self.reset()
        if digit == END_KEY and number:
            return [Feature(feature, number)]
        if digit == END_KEY:
            return [BadCode(code + digit, f"{code} without a number")]
        if digit not in NUMBER_KEYS:
            return [BadCode(code + number + digit, f"{code} number cannot contain {digit}")]
        return [BadCode(code + number + digit, f"{code} number is longer than {MAX_NUMBER_DIGITS} digits")]


def _longest_start_of(prefix: str, keys: str) -> str:
    """The longest tail of ``keys`` that is a proper start of ``prefix`` ("" if none).

    With prefix "**#" and keys "***", the tail "**" may still become the prefix, so
    only the first "*" is released (the overlapping case).
    """
    for length in range(min(len(keys), len(prefix) - 1), 0, -1):
        tail = keys[-length:]
        if prefix.startswith(tail):
            return tail
    return ""


def _joined(events: list[CodeEvent]) -> list[CodeEvent]:
    """Adjacent PassThroughs as one, so the other party gets one burst in order."""
    joined: list[CodeEvent] = []
    for event in events:
        if isinstance(event, PassThrough) and joined and isinstance(joined[-1], PassThrough):
            joined[-1] = PassThrough(joined[-1].digits + event.digits)
        else:
            joined.append(event)
    return joined


# --- service codes dialled from a device (SPEC §1, §7, §28, §29) ---------------------
LOGIN = "login"
LOGOUT = "logout"
QUEUE_LOGIN = "queue_login"
QUEUE_LOGOUT = "queue_logout"
RECORD_PROMPT = "record_prompt"
PICKUP = "pickup"
MOVE_CALL = "move_call"
FORWARD_SET = "forward_set"
TIME_CONFIG = "time_config"
VOICEMAIL_ADMIN = "voicemail_admin"
OWN_VOICEMAIL = "own_voicemail"
PARK_RETRIEVE = "park"
EMERGENCY = "emergency"

# Dialled exactly as written, without anything after them.
FIXED_SERVICE_CODES: dict[str, str] = {
    "901": LOGIN,
    "902": LOGOUT,
    "903": QUEUE_LOGIN,
    "904": QUEUE_LOGOUT,
    "905": RECORD_PROMPT,
    "908": PICKUP,
    "*8": PICKUP,
    "909": MOVE_CALL,
    "*9": MOVE_CALL,
    "*910": FORWARD_SET,
    "915": TIME_CONFIG,
    "920": VOICEMAIL_ADMIN,
    "1233": OWN_VOICEMAIL,
    "*7": PARK_RETRIEVE,
    "112": EMERGENCY,
}

# Extensions an account may not create because dialling them means a service code.
# 3 digits: the whole 900-929 block (room for codes to come) and 112; 4 digits: 1233.
RESERVED_EXTENSIONS: dict[int, frozenset[str]] = {
    3: frozenset({*(str(n) for n in range(900, 930)), "112"}),
    4: frozenset({"1233"}),
    5: frozenset(),
}


@dataclass(frozen=True)
class ServiceCode:
    """A service code recognised in what a device dialled."""

    name: str
    """LOGIN, PICKUP, PARK_RETRIEVE, ... (the constants above)."""
    arg: str = ""
    """What followed the code: the pickup target, the parking slot, the forward number."""


def classify_dialled(dialled: str, digits: int) -> ServiceCode | None:
    """The service code in a Request-URI user part, or None (an extension or a number).

    ``digits`` is the account's extension length. Codes with an argument:

    - ``*8`` + N: pickup; N of ``digits`` digits is an extension (a user or a group
      extension), N of 1-2 digits a privacy group's number (groups are numbered 1-99).
      Any other length is no code.
    - ``*7`` + slot (1-4 digits): retrieve that parked call; ``*7`` alone: the caller's
      own most recently parked call.
    - ``*910`` + number: set an unconditional forward to the number (digits, optionally
      a leading +); ``*910`` alone opens the forwarding voice menu.

    The fixed numbers (901 ... 920, 112, 1233) are dialled as such in every account; an
    extension of the same number would be unreachable, hence RESERVED_EXTENSIONS.
    """
    if digits not in EXTENSION_DIGITS:
        raise ValueError(f"extension length {digits!r} must be 3, 4 or 5")
    name = FIXED_SERVICE_CODES.get(dialled)
    if name is not None:
        return ServiceCode(name)
    if dialled.startswith("*910"):
        number = dialled[4:]
        bare = number[1:] if number.startswith("+") else number
        if _is_digits(bare, 1, MAX_NUMBER_DIGITS):
            return ServiceCode(FORWARD_SET, number)
        return None
    if dialled.startswith("*8"):
        target = dialled[2:]
        if _is_digits(target, digits, digits) or _is_digits(target, 1, MAX_GROUP_DIGITS):
            return ServiceCode(PICKUP, target)
        return None
    if dialled.startswith("*7"):
        slot = dialled[2:]
        if _is_digits(slot, 1, MAX_SLOT_DIGITS):
            return ServiceCode(PARK_RETRIEVE, slot)
        return None
    return None


def is_reserved_extension(number: str, digits: int) -> bool:
    """True if an extension ``number`` in a ``digits``-digit account would hide a service code."""
    return number in RESERVED_EXTENSIONS.get(digits, frozenset())


def _is_digits(text: str, shortest: int, longest: int) -> bool:
    """ASCII digits only (str.isdigit also accepts "²" and other scripts' digits)."""
    return shortest <= len(text) <= longest and all("0" <= c <= "9" for c in text)
