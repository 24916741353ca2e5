"""Parking slots of one account (SPEC §7): which call waits in which slot, and until when.

Pure bookkeeping: no I/O, no clock (time arrives as ``now``), no knowledge of what a
call is (the parked item is whatever the caller stores, hence ``Generic``). The call
model decides rights (who may retrieve) and plays the music; this module answers
"which slot is free", "what is in slot 703", "whose recall is due".

A slot number is what is announced to the parker and what anyone dials after ``*7`` to
retrieve the call. Recalls: ``park`` sets ``recall_at = now + timeout``; ``due(now)``
lists the entries whose recall time has come (they stay listed until ``rearm`` or
``retrieve``); after a ring-back nobody answered, ``rearm`` counts it and sets the next
recall time. The recall limit is the caller's policy: compare what ``rearm`` returns.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Generic, TypeVar

T = TypeVar("T")

DEFAULT_FIRST_SLOT = 701  # SPEC §7: "the platform announces the park slot number (e.g. 701)"
DEFAULT_SLOT_COUNT = 99  # 701-799
MAX_SLOT = 9999  # slots are dialled as *7 + up to 4 digits (softswitch/features/codes.py)


class LotFull(Exception):
    """Every slot of the lot holds a parked call; the call plays "cannot park"."""


@dataclass(frozen=True)
class ParkedEntry(Generic[T]):
    """One parked call, as the lot sees it."""

    slot: int
    """The number announced and dialled after *7."""
    owner: str
    """Who parked it: the only user who may always retrieve it, and whom a recall rings."""
    item: T
    """What the call model stored (its call object, typically)."""
    parked_at: float
    recall_at: float
    """When the parker is rung back if nobody retrieved the call."""
    recalls: int = 0
    """Ring-backs that went unanswered so far."""


class ParkingLot(Generic[T]):
    """The numbered slots ``first`` .. ``first + count - 1`` of one account."""

    def __init__(self, first: int = DEFAULT_FIRST_SLOT, count: int = DEFAULT_SLOT_COUNT) -> None:
        if first < 1 or count < 1 or first + count - 1 > MAX_SLOT:
            raise ValueError(f"parking slots {first}-{first + count - 1} must lie within 1-{MAX_SLOT}")
        self.first = first
        self.count = count
        # Insertion order is parking order (rearm replaces in place), which latest_of uses.
        self._entries: dict[int, ParkedEntry[T]] = {}

    def __repr__(self) -> str:
        return f"<ParkingLot {self.first}-{self.last}: {len(self._entries)} parked>"

    def __len__(self) -> int:
        return len(self._entries)

    @property
    def last(self) -> int:
        return self.first + self.count - 1

    def park(self, owner: str, item: T, now: float, timeout: float) -> int:
        """Put ``item`` in the lowest free slot; the recall is due ``timeout`` s from now."""
        _check_timeout(timeout)
        if len(self._entries) >= self.count:
            raise LotFull(f"all {self.count} parking slots {self.first}-{self.last} are taken")
        slot = next(s for s in range(self.first, self.last + 1) if s not in self._entries)
        self._entries[slot] = ParkedEntry(slot, owner, item, parked_at=now, recall_at=now + timeout)
        return slot

    def retrieve(self, slot: int) -> T | None:
        """Take the item out of ``slot`` (the slot is free again); None if it was empty."""
        entry = self._entries.pop(slot, None)
        return None if entry is None else entry.item

    def peek(self, slot: int) -> ParkedEntry[T] | None:
        """What is in ``slot``, leaving it there (to check rights before retrieving)."""
        return self._entries.get(slot)

    def latest_of(self, owner: str) -> ParkedEntry[T] | None:
        """The call ``owner`` parked most recently and is still parked ("*7" alone)."""
        for entry in reversed(self._entries.values()):
            if entry.owner == owner:
                return entry
        return None

    def due(self, now: float) -> list[ParkedEntry[T]]:
        """Entries whose recall time has come, earliest first."""
        ready = [e for e in self._entries.values() if e.recall_at <= now]
        return sorted(ready, key=lambda e: (e.recall_at, e.slot))

    def rearm(self, slot: int, now: float, timeout: float) -> int:
        """A recall went unanswered: count it, ring again ``timeout`` s from now; returns the count."""
        _check_timeout(timeout)
        entry = self._entries.get(slot)
        if entry is None:
            raise LookupError(f"parking slot {slot} is empty")
        entry = replace(entry, recall_at=now + timeout, recalls=entry.recalls + 1)
        self._entries[slot] = entry
        return entry.recalls

    def entries(self) -> list[ParkedEntry[T]]:
        """Every parked call, by slot number (for `softswitch parked` and BLF keys)."""
        return [self._entries[slot] for slot in sorted(self._entries)]

    def next_deadline(self) -> float | None:
        """The earliest recall time, or None when the lot is empty."""
        return min((e.recall_at for e in self._entries.values()), default=None)


def _check_timeout(timeout: float) -> None:
    if not (timeout > 0 and math.isfinite(timeout)):
        raise ValueError(f"parking recall timeout {timeout!r} must be a positive number of seconds")
