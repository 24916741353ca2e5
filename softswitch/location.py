"""Runtime state kept in memory and written behind: registrations (the location service,
RFC 3261 §10.3), the live-call list and CDRs; plus a cached directory of accounts/channels.

The daemon keeps bindings in memory — a REGISTER refresh then costs no disk write on the
request's path — and persists changes write-behind: at most every ``FLUSH_INTERVAL``
seconds, one SQLite transaction with everything that changed (and at shutdown). A crash
loses at most that interval of refreshes; the phones' next REGISTER repairs it. At start
the bindings are loaded from the store, so a restart keeps registrations.

Also here: ``Directory``, a cache of accounts and channels (the two lookups of every
REGISTER and INVITE), dropped whenever another process — the CLI — commits a write
(``config_version``, checked at most every 5 ms), so CLI changes apply at once.
"""
from __future__ import annotations

import logging
import time
from typing import Protocol, Sequence

from config.models import Account, Binding, Cdr, Channel, LiveCall, User

log = logging.getLogger(__name__)

FLUSH_INTERVAL = 0.25  # seconds between write-behind transactions
MAX_CACHED = 200_000  # accounts + channels held by the directory cache
VERSION_CHECK_INTERVAL = 0.005  # s: PRAGMA data_version at most this often (once per burst)


class BindingStore(Protocol):
    def all_bindings(self, now: float) -> list[Binding]: ...
    def apply_bindings(self, saves: Sequence[Binding], removals: Sequence[tuple[int, str]],
                       cleared: Sequence[int]) -> None: ...
    def channel_by_id(self, channel_id: int) -> Channel | None: ...


class Location:
    def __init__(self, store: BindingStore):
        self.store = store
        self._by_channel: dict[int, list[Binding]] = {}
        self._saves: dict[tuple[int, str], Binding] = {}
        self._removals: set[tuple[int, str]] = set()
        self._cleared: set[int] = set()

    def load(self, now: float) -> int:
        self._by_channel.clear()
        bindings = self.store.all_bindings(now)
        for b in bindings:
            self._by_channel.setdefault(b.channel_id, []).append(b)
        return len(bindings)

    def bindings(self, channel_id: int, now: float) -> list[Binding]:
        """Unexpired bindings, best first (highest q, then most recent)."""
        live = [b for b in self._by_channel.get(channel_id, ()) if b.expires_at > now]
        live.sort(key=lambda b: (-b.q, -b.registered_at))
        return live

    def save(self, binding: Binding, max_bindings: int) -> None:
        """Add or refresh; beyond ``max_bindings`` the oldest others go (a new device replaces the old)."""
        current = [b for b in self._by_channel.get(binding.channel_id, ()) if b.contact != binding.contact]
        current.sort(key=lambda b: b.registered_at, reverse=True)
        keep, dropped = current[: max_bindings - 1], current[max_bindings - 1 :]
        self._by_channel[binding.channel_id] = [binding, *keep]
        for b in dropped:
            self._removals.add((b.channel_id, b.contact))
            self._saves.pop((b.channel_id, b.contact), None)
        key = (binding.channel_id, binding.contact)
        self._removals.discard(key)
        self._saves[key] = binding

    def remove(self, channel_id: int, contact: str) -> None:
        self._by_channel[channel_id] = [b for b in self._by_channel.get(channel_id, ()) if b.contact != contact]
        self._saves.pop((channel_id, contact), None)
        self._removals.add((channel_id, contact))

    def remove_all(self, channel_id: int) -> None:
        for b in self._by_channel.pop(channel_id, ()):
            self._saves.pop((channel_id, b.contact), None)
        self._cleared.add(channel_id)

    def purge_expired(self, now: float) -> int:
        purged = 0
        for channel_id in list(self._by_channel):
            live = [b for b in self._by_channel[channel_id] if b.expires_at > now]
            purged += len(self._by_channel[channel_id]) - len(live)
            if live:
                self._by_channel[channel_id] = live
            else:
                del self._by_channel[channel_id]
        return purged

    @property
    def dirty(self) -> bool:
        return bool(self._saves or self._removals or self._cleared)

    def flush(self) -> None:
        """Persist everything changed since the last flush in one transaction."""
        batch = self.take_batch()
        if batch is not None and not self.write_batch(batch):
            self.requeue(batch)

    def take_batch(self) -> tuple[list[Binding], list[tuple[int, str]], list[int]] | None:
        """Detach what changed (on the event loop); ``write_batch`` may then run in a thread."""
        if not self.dirty:
            return None
        batch = (list(self._saves.values()), sorted(self._removals), sorted(self._cleared))
        self._saves, self._removals, self._cleared = {}, set(), set()
        return batch

    def write_batch(self, batch: tuple[list[Binding], list[tuple[int, str]], list[int]]) -> bool:
        """Write one detached batch (safe in a worker thread: touches only the store)."""
        saves, removals, cleared = batch
        try:
            self.store.apply_bindings(saves, removals, cleared)
            return True
        except Exception:
            log.exception("could not persist %d binding change(s); will retry", len(saves) + len(removals))
            return False

    def requeue(self, batch: tuple[list[Binding], list[tuple[int, str]], list[int]]) -> None:
        """Put a batch that failed back (on the event loop); newer changes to the same contact win."""
        saves, removals, cleared = batch
        for b in saves:
            self._saves.setdefault((b.channel_id, b.contact), b)
        self._removals.update(r for r in removals if r not in self._saves)
        self._cleared.update(cleared)


class DirectoryStore(Protocol):
    def config_version(self) -> int: ...
    def account_by_domain(self, domain: str) -> Account | None: ...
    def channel_by_username(self, account_id: int, username: str) -> Channel | None: ...
    def user_on_channel(self, channel_id: int) -> User | None: ...
    def user_by_extension(self, account_id: int, extension: str) -> User | None: ...
    def channels_of_user(self, user_id: int) -> list[Channel]: ...


class Directory:
    """Accounts, channels and users as the hot paths look them up, cached until the
    configuration changes (``config_version``, bumped by triggers on every write to the
    configuration tables from any process, checked at most every 5 ms)."""

    def __init__(self, store: DirectoryStore):
        self.store = store
        self._version = -1
        self._checked = 0.0
        self._cache: dict[tuple, object] = {}

    def _fresh(self) -> None:
        now = time.monotonic()
        if now - self._checked < VERSION_CHECK_INTERVAL:
            return
        self._checked = now
        version = self.store.config_version()
        if version != self._version or len(self._cache) > MAX_CACHED:
            self._version = version
            self._cache.clear()

    def _get(self, key: tuple, load):  # type: ignore[no-untyped-def]
        self._fresh()
        try:
            return self._cache[key]
        except KeyError:
            value = self._cache[key] = load()
            return value

    def account_by_domain(self, domain: str) -> Account | None:
        return self._get(("account", domain.lower()), lambda: self.store.account_by_domain(domain))

    def channel_by_username(self, account_id: int, username: str) -> Channel | None:
        return self._get(("channel", account_id, username),
                         lambda: self.store.channel_by_username(account_id, username))

    def user_on_channel(self, channel_id: int) -> User | None:
        return self._get(("user-on", channel_id), lambda: self.store.user_on_channel(channel_id))

    def user_by_extension(self, account_id: int, extension: str) -> User | None:
        return self._get(("user", account_id, extension),
                         lambda: self.store.user_by_extension(account_id, extension))

    def channels_of_user(self, user_id: int) -> tuple[Channel, ...]:
        return self._get(("channels-of", user_id), lambda: tuple(self.store.channels_of_user(user_id)))

    def cached(self, key: tuple, load):  # type: ignore[no-untyped-def]
        """Any other configuration read, cached under ``key`` until the configuration changes."""
        return self._get(key, load)


class CallStore(Protocol):
    def apply_call_changes(self, live: Sequence[LiveCall], ended: Sequence[str], cdrs: Sequence[Cdr]) -> None: ...


class CallJournal:
    """Write-behind for the live-call list and CDRs: a call's state changes cost no commit
    on the signalling path; ``flush()`` writes what changed in one transaction."""

    def __init__(self, store: CallStore):
        self.store = store
        self._live: dict[str, LiveCall] = {}
        self._ended: set[str] = set()
        self._cdrs: list[Cdr] = []

    def put(self, call: LiveCall) -> None:
        self._live[call.call_id] = call
        self._ended.discard(call.call_id)

    def end(self, call_id: str, cdr: Cdr | None) -> None:
        self._live.pop(call_id, None)
        self._ended.add(call_id)
        if cdr is not None:
            self._cdrs.append(cdr)

    @property
    def dirty(self) -> bool:
        return bool(self._live or self._ended or self._cdrs)

    def flush(self) -> None:
        batch = self.take_batch()
        if batch is not None and not self.write_batch(batch):
            self.requeue(batch)

    def take_batch(self) -> tuple[list[LiveCall], list[str], list[Cdr]] | None:
        if not self.dirty:
            return None
        batch = (list(self._live.values()), sorted(self._ended), self._cdrs)
        self._live, self._ended, self._cdrs = {}, set(), []
        return batch

    def write_batch(self, batch: tuple[list[LiveCall], list[str], list[Cdr]]) -> bool:
        """Write one detached batch (safe in a worker thread: touches only the store)."""
        live, ended, cdrs = batch
        try:
            self.store.apply_call_changes(live, ended, cdrs)
            return True
        except Exception:
            log.exception("could not write %d CDR(s) / live call changes; will retry", len(cdrs))
            return False

    def requeue(self, batch: tuple[list[LiveCall], list[str], list[Cdr]]) -> None:
        live, ended, cdrs = batch
        for c in live:
            self._live.setdefault(c.call_id, c)
        self._ended.update(e for e in ended if e not in self._live)
        self._cdrs = cdrs + self._cdrs
