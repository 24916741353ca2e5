"""Parking slots (SPEC §7): lowest free slot, retrieval, the parker's latest call, recalls."""
from __future__ import annotations

import math

import pytest

from softswitch.features.slots import LotFull, ParkedEntry, ParkingLot

RECALL_S = 120.0  # SPEC §7 default


class FakeCall:
    """Stands for the call object the call model parks; identity is what matters."""

    def __init__(self, name: str) -> None:
        self.name = name


def test_slots_are_handed_out_lowest_first() -> None:
    lot: ParkingLot[str] = ParkingLot()
    assert [lot.park("201", f"call{i}", 0.0, RECALL_S) for i in range(3)] == [701, 702, 703]
    assert lot.retrieve(702) == "call1"
    assert lot.park("202", "call3", 1.0, RECALL_S) == 702, "a freed slot is reused before higher ones"
    assert lot.park("202", "call4", 1.0, RECALL_S) == 704


def test_a_full_lot_refuses_and_stays_intact() -> None:
    lot: ParkingLot[str] = ParkingLot(first=1, count=2)
    lot.park("201", "a", 0.0, RECALL_S)
    lot.park("201", "b", 0.0, RECALL_S)
    with pytest.raises(LotFull, match="^all 2 parking slots 1-2 are taken$"):
        lot.park("201", "c", 0.0, RECALL_S)
    assert [e.item for e in lot.entries()] == ["a", "b"]
    lot.retrieve(1)
    assert lot.park("201", "c", 0.0, RECALL_S) == 1


def test_default_lot_holds_99_calls_701_to_799() -> None:
    lot: ParkingLot[int] = ParkingLot()
    slots = [lot.park("201", i, 0.0, RECALL_S) for i in range(99)]
    assert slots == list(range(701, 800))
    with pytest.raises(LotFull):
        lot.park("201", 99, 0.0, RECALL_S)


def test_retrieve_returns_the_item_and_frees_the_slot() -> None:
    lot: ParkingLot[FakeCall] = ParkingLot()
    call = FakeCall("caller")
    slot = lot.park("201", call, 10.0, RECALL_S)
    assert lot.retrieve(slot) is call
    assert lot.retrieve(slot) is None
    assert lot.peek(slot) is None and len(lot) == 0 and lot.entries() == []


def test_retrieve_of_an_empty_or_foreign_slot_is_none() -> None:
    lot: ParkingLot[str] = ParkingLot()
    assert lot.retrieve(701) is None
    assert lot.retrieve(5) is None


def test_peek_shows_the_entry_without_taking_it() -> None:
    lot: ParkingLot[str] = ParkingLot()
    slot = lot.park("201", "call", 10.0, RECALL_S)
    expected = ParkedEntry(slot=701, owner="201", item="call", parked_at=10.0, recall_at=130.0, recalls=0)
    assert lot.peek(slot) == expected
    assert lot.peek(slot) == expected
    assert lot.peek(702) is None


def test_latest_of_is_the_owners_most_recent_park() -> None:
    lot: ParkingLot[str] = ParkingLot()
    lot.park("201", "first", 0.0, RECALL_S)  # 701
    lot.park("202", "other", 1.0, RECALL_S)  # 702
    lot.park("201", "second", 2.0, RECALL_S)  # 703
    latest = lot.latest_of("201")
    assert latest is not None and (latest.slot, latest.item) == (703, "second")
    lot.retrieve(703)
    latest = lot.latest_of("201")
    assert latest is not None and latest.item == "first"
    assert lot.latest_of("299") is None


def test_latest_of_follows_parking_order_not_slot_order() -> None:
    lot: ParkingLot[str] = ParkingLot()
    lot.park("201", "a", 0.0, RECALL_S)  # 701
    lot.park("201", "b", 1.0, RECALL_S)  # 702
    lot.retrieve(701)
    assert lot.park("201", "c", 2.0, RECALL_S) == 701
    latest = lot.latest_of("201")
    assert latest is not None and latest.item == "c"


def test_latest_of_is_unchanged_by_a_recall() -> None:
    lot: ParkingLot[str] = ParkingLot()
    lot.park("201", "a", 0.0, RECALL_S)
    lot.park("201", "b", 1.0, RECALL_S)
    lot.rearm(701, 120.0, RECALL_S)
    latest = lot.latest_of("201")
    assert latest is not None and latest.item == "b"


def test_due_lists_recalls_whose_time_has_come_earliest_first() -> None:
    lot: ParkingLot[str] = ParkingLot()
    lot.park("201", "late", 5.0, RECALL_S)  # 701, due 125
    lot.park("202", "early", 0.0, 60.0)  # 702, due 60
    lot.park("203", "same", 5.0, RECALL_S)  # 703, due 125
    assert lot.due(59.9) == []
    assert [e.slot for e in lot.due(60.0)] == [702]
    assert [e.slot for e in lot.due(125.0)] == [702, 701, 703]
    assert [e.slot for e in lot.due(125.0)] == [702, 701, 703], "due entries stay until rearmed or retrieved"


def test_rearm_counts_unanswered_recalls_and_moves_the_recall() -> None:
    lot: ParkingLot[str] = ParkingLot()
    lot.park("201", "call", 0.0, RECALL_S)
    assert lot.rearm(701, 150.0, 30.0) == 1
    entry = lot.peek(701)
    assert entry is not None and (entry.recall_at, entry.recalls, entry.parked_at) == (180.0, 1, 0.0)
    assert lot.due(179.0) == []
    assert lot.rearm(701, 200.0, 30.0) == 2


def test_rearm_of_an_empty_slot_is_a_lookup_error() -> None:
    lot: ParkingLot[str] = ParkingLot()
    with pytest.raises(LookupError, match="^parking slot 701 is empty$"):
        lot.rearm(701, 0.0, RECALL_S)


def test_next_deadline_is_the_earliest_recall() -> None:
    lot: ParkingLot[str] = ParkingLot()
    assert lot.next_deadline() is None
    lot.park("201", "a", 0.0, RECALL_S)  # 120
    lot.park("201", "b", 10.0, 50.0)  # 60
    assert lot.next_deadline() == 60.0
    lot.rearm(702, 60.0, RECALL_S)  # 180
    assert lot.next_deadline() == 120.0
    lot.retrieve(701)
    assert lot.next_deadline() == 180.0
    lot.retrieve(702)
    assert lot.next_deadline() is None


def test_entries_are_listed_by_slot() -> None:
    lot: ParkingLot[str] = ParkingLot(first=1, count=5)
    for item in "abc":
        lot.park("201", item, 0.0, RECALL_S)
    lot.retrieve(1)
    lot.park("202", "d", 1.0, RECALL_S)
    assert [(e.slot, e.item) for e in lot.entries()] == [(1, "d"), (2, "b"), (3, "c")]
    assert repr(lot) == "<ParkingLot 1-5: 3 parked>"


@pytest.mark.parametrize("first, count, message", [
    (0, 10, "parking slots 0-9 must lie within 1-9999"),
    (1, 0, "parking slots 1-0 must lie within 1-9999"),
    (9990, 11, "parking slots 9990-10000 must lie within 1-9999"),
])
def test_lot_bounds_are_validated(first: int, count: int, message: str) -> None:
    with pytest.raises(ValueError, match=f"^{message}$"):
        ParkingLot(first, count)


def test_the_whole_slot_range_is_allowed() -> None:
    lot: ParkingLot[str] = ParkingLot(first=9999, count=1)
    assert lot.park("201", "a", 0.0, RECALL_S) == 9999 and lot.last == 9999


@pytest.mark.parametrize("timeout", [0.0, -1.0, math.inf, math.nan])
def test_recall_timeout_must_be_positive(timeout: float) -> None:
    lot: ParkingLot[str] = ParkingLot()
    with pytest.raises(ValueError, match="parking recall timeout .* must be a positive number of seconds"):
        lot.park("201", "a", 0.0, timeout)
    lot.park("201", "a", 0.0, RECALL_S)
    with pytest.raises(ValueError, match="parking recall timeout"):
        lot.rearm(701, 0.0, timeout)
    assert len(lot) == 1
