"""Typed, frozen views of the configuration and runtime state kept in SQLite.

Pure: no I/O here. ``config.store.Store`` is the only module that opens the database and
returns these objects; call control reads them and never sees a cursor.
"""
from __future__ import annotations

from dataclasses import dataclass, field

PIN_MUST_CHANGE = "0000"  # SPEC §29: this PIN makes the user choose a new one at the next login


@dataclass(frozen=True)
class Account:
    """One customer organisation (tenant) with its own SIP domain (= digest realm)."""

    id: int
    name: str
    domain: str
    digits: int  # 3, 4 or 5: the length of every extension of this account
    language: str = "nl"  # prompt language: "nl" or "en"
    timezone: str = "Europe/Amsterdam"
    # In-call features (issue 4, schema migration 4); bounds in config/features.py.
    twinning: bool = False  # the account's switch; a user twins only when theirs is on too (SPEC §3.7)
    park_timeout: int = 120  # seconds before a parked call rings back the parker (SPEC §7)
    park_recall_limit: int = 3  # ring-backs before an unretrieved parked call ends
    park_first_slot: int = 701
    park_slots: int = 99  # slots park_first_slot .. park_first_slot + park_slots - 1
    dtmf_prefix: str = "##"  # starts an in-call function code (SPEC §28)
    dtmf_timeout: float = 3.0  # inter-digit timeout of in-call codes, seconds
    max_fixed_devices: int = 2  # devices a twinning user may be logged in on (SPEC §3.7)


@dataclass(frozen=True)
class Channel:
    """SIP credentials of exactly one device (SPEC §21)."""

    id: int
    account_id: int
    username: str  # the digest username the device authenticates with
    password: str
    max_bindings: int = 1


@dataclass(frozen=True)
class Binding:
    """One registered contact of a channel (RFC 3261 §10)."""

    channel_id: int
    contact: str  # the Contact URI as the device sent it (LAN address)
    expires_at: float  # unix time
    source: str  # "transport:host:port" the REGISTER arrived from (WAN address)
    user_agent: str = ""
    call_id: str = ""
    cseq: int = 0
    q: float = 1.0
    instance: str = ""  # +sip.instance, when the device sends one
    registered_at: float = 0.0


@dataclass(frozen=True)
class User:
    """A user extension ("toestelnummer") of an account (SPEC §3)."""

    id: int
    account_id: int
    extension: str
    name: str
    pin: str
    twinning: bool = False  # may be on several devices, when the account allows twinning
    # Rights (SPEC §3.4, our default list).
    may_park: bool = False  # park calls (##7, transfer to *7)
    may_time_config: bool = False  # change the active numberplan (915)
    may_external: bool = True  # call external numbers
    may_international: bool = False  # call international numbers
    may_record_prompts: bool = False  # record sound recordings (905)
    may_play_recordings: bool = False  # play back call recordings

    @property
    def must_change_pin(self) -> bool:
        """PIN 0000: the next 901 login asks for a new PIN (SPEC §29)."""
        return self.pin == PIN_MUST_CHANGE


@dataclass(frozen=True)
class Extension:
    """Any number in an account's numbering plan, with its type (user, group, ivr, …)."""

    account_id: int
    number: str
    type: str
    target_id: int | None = None


@dataclass(frozen=True)
class ChannelStatus:
    """One row of the channel overview (SPEC §21)."""

    channel: Channel
    bindings: tuple[Binding, ...] = ()
    user: User | None = None

    @property
    def registered(self) -> bool:
        return bool(self.bindings)


@dataclass(frozen=True)
class Cdr:
    """A call detail record, written when a call ends."""

    id: int
    account_id: int
    call_id: str
    caller: str  # extension (or number) of the calling party
    callee: str  # dialled extension / number
    started_at: float
    answered_at: float | None
    ended_at: float
    disposition: str  # ANSWERED, NO ANSWER, BUSY, FAILED, CANCELLED
    hangup_by: str = ""  # "caller", "callee", "system"
    sip_status: int = 0
    caller_name: str = ""
    answered_by: str = ""  # channel username that answered
    quality: dict = field(default_factory=dict)  # {"caller": {...}, "callee": {...}}: RTP/RTCP figures

    @property
    def duration(self) -> float:
        return max(0.0, self.ended_at - self.started_at)

    @property
    def billsec(self) -> float:
        return 0.0 if self.answered_at is None else max(0.0, self.ended_at - self.answered_at)


@dataclass(frozen=True)
class LiveCall:
    """A call in progress, published by the daemon for ``softswitch calls``."""

    call_id: str
    account_id: int
    caller: str
    callee: str
    state: str  # ringing, answered, held
    started_at: float
    answered_at: float | None = None
    legs: tuple[str, ...] = field(default_factory=tuple)
