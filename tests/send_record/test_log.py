"""The log of one try: shards, journal, folds, damage, deletion and writes that fail."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_octopods.send_record import ACCEPTED, INTENT, UNREADABLE, MemoryStore, log
from airflow_provider_octopods.send_record.log import SLOTS, TryLog, entry_fields, make_entry
from tests.send_record.conftest import KEY

HEAD = KEY.log_key(1)


def journal_key(number: int) -> str:
    return f"{HEAD}_j{number}"


def shard_key(index: int) -> str:
    return f"{HEAD}_{index}"


def try_log(store: Any) -> TryLog:
    return TryLog(HEAD, store, header={"try": 1}, description="test")


def read(store: Any) -> TryLog:
    """The log as another process reads it from ``store``."""
    reader = try_log(store)
    reader.read()
    return reader


def states(store: Any) -> dict[str, str]:
    return {slot: entry_fields(entry)[0] for slot, entry in read(store).items()}


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[tuple[str, int]] = []
        self.deleted: list[str] = []

    def save(self, key: str, value: dict[str, Any], *, description: str) -> None:
        self.saved.append((key, len(value.get(SLOTS, {}))))
        super().save(key, value, description=description)

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        super().delete(key)


class FailingStore(MemoryStore):
    """Raises on a save (or delete) of a key that ``saves`` (``deletes``) picks, as a crash would end the write."""

    def __init__(
        self,
        values: dict[str, Any],
        *,
        saves: Callable[[str], bool] = lambda key: False,
        deletes: Callable[[str], bool] = lambda key: False,
    ) -> None:
        super().__init__()
        self.values = values
        self.fail_save, self.fail_delete = saves, deletes

    def save(self, key: str, value: dict[str, Any], *, description: str) -> None:
        if self.fail_save(key):
            raise OSError("worker killed")
        super().save(key, value, description=description)

    def delete(self, key: str) -> None:
        if self.fail_delete(key):
            raise OSError("worker killed")
        super().delete(key)


class CommitsThenFails(MemoryStore):
    """Stores the ``fail_at``-th save, then raises: the metadata DB committed, the answer was lost."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at

    def save(self, key: str, value: dict[str, Any], *, description: str) -> None:
        super().save(key, value, description=description)
        if self.writes == self.fail_at:
            raise OSError("connection to the metadata DB lost")


def filled(store: MemoryStore, n: int = 30) -> list[str]:
    """A log of ``n`` sends written as a batch would: intents then results, one write each, by fives."""
    writer = try_log(store)
    writer.save()  # the head, written before anything else (as the guard does)
    slots = [f"{n:024x}#1" for n in range(n)]
    for start in range(0, n, 5):
        chunk = slots[start : start + 5]
        for slot in chunk:
            writer.put(slot, make_entry(INTENT))
        writer.save()
        for i, slot in enumerate(chunk[:4]):
            writer.put(slot, make_entry(ACCEPTED, 500 + start + i))
        writer.drop(chunk[4])  # the fifth one failed for sure: its intent is dropped
        writer.save()
    return slots


def filled_in_small_shards(store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """:func:`filled` with 30 sends, in shards of 8 and a journal that is not folded."""
    monkeypatch.setattr(log, "SHARD_SIZE", 8)
    monkeypatch.setattr(log, "JOURNAL_CHUNKS", 100)
    return filled(store)


def expected(slots: list[str]) -> dict[str, str]:
    return {slot: ACCEPTED for i, slot in enumerate(slots) if i % 5 != 4}


def test_an_entry_is_a_short_list_without_trailing_empty_fields() -> None:
    intent = make_entry(INTENT)
    assert intent[0] == INTENT
    assert len(intent) == 2
    assert isinstance(intent[1], int)
    assert make_entry(ACCEPTED, 7, "req-1")[2:] == (7, "req-1")
    assert make_entry(INTENT, None, None, None, "abc")[2:] == (None, None, None, "abc")
    assert entry_fields(list(make_entry(ACCEPTED, 7))) == [ACCEPTED, intent[1], 7, None, None, None]


@pytest.mark.parametrize("entry", [[], 5, "accepted", None, ["sent", 1], {"state": "accepted", "message_id": 7}])
def test_entry_fields_knows_only_lists_of_a_known_state(entry: Any) -> None:
    """Entries written as objects by versions before 0.3 are of no known shape any more."""
    assert entry_fields(entry) is None


def test_a_write_stores_only_its_changes_and_the_journal_is_folded_into_shards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(log, "SHARD_SIZE", 100)
    monkeypatch.setattr(log, "JOURNAL_CHUNKS", 4)
    store = CountingStore()
    writer = try_log(store)
    slots = [f"{n:024x}#1" for n in range(250)]
    writes: list[list[tuple[str, int]]] = []
    for start in range(0, 250, 50):  # chunks of 50: intents, then results, as a batch does
        chunk = slots[start : start + 50]
        for entries in ([make_entry(INTENT)] * 50, [make_entry(ACCEPTED, 1000 + start + i) for i in range(50)]):
            store.saved.clear()
            for slot, entry in zip(chunk, entries, strict=True):
                writer.put(slot, entry)
            writer.save()
            writes.append(list(store.saved))
    journal = [w for w in writes if len(w) == 1 and "_j" in w[0][0]]
    folds = [w for w in writes if w not in journal]
    assert all(size == 50 for [(_, size)] in journal)  # a write is one value of its own 50 changes
    assert len(journal) == 8  # 10 writes: the first makes the head, the 6th folds 4 parts in
    assert [[key for key, _ in w] for w in folds] == [
        [shard_key(0), HEAD],
        [shard_key(0), shard_key(1), HEAD],  # the shards changed (150 slots now), then the head
    ]
    assert all(size <= 100 for w in folds for _, size in w)
    assert store.values[HEAD]["shards"] == 2
    assert store.values[HEAD]["try"] == 1  # the header, for people reading the store
    assert SLOTS not in store.values[HEAD]  # the head holds no entries: checking it is cheap
    assert sorted(store.values) == sorted(  # 4 parts of the second journal over those of the first
        [HEAD, shard_key(0), shard_key(1), *(journal_key(n) for n in range(1, 5))]
    )
    generation = store.values[HEAD]["generation"]
    assert [store.values[journal_key(n)]["generation"] for n in range(1, 5)] == [generation] * 4
    # Another process sees the shards and the journal, which holds the 100 slots of a third shard
    # not written yet.
    again = read(store)
    assert not again.unreadable
    assert [entry_fields(again.get(slot))[2] for slot in slots] == list(range(1000, 1250))
    writer.drop(slots[0])
    writer.save()
    assert read(store).get(slots[0]) is None
    writer.delete()
    assert store.values == {}


def test_a_log_not_in_the_store_reads_as_absent_and_empty() -> None:
    reader = try_log(MemoryStore())
    assert reader.read() is False
    assert (reader.stored, reader.unreadable, list(reader.items())) == (False, False, [])


@pytest.mark.parametrize("crash_at", ["a shard", "the head"])
def test_a_fold_cut_short_leaves_the_old_base_and_its_whole_journal(
    monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    store = MemoryStore()
    slots = filled_in_small_shards(store, monkeypatch)
    assert any(None in store.values[journal_key(n)][SLOTS].values() for n in (1, 2))  # dropped: null
    writer = read(store)
    assert states(store) == expected(slots)
    monkeypatch.setattr(log, "JOURNAL_CHUNKS", 1)  # the next write folds
    crashed_key = HEAD if crash_at == "the head" else shard_key(2)
    writer.store = FailingStore(store.values, saves=lambda key: key == crashed_key)
    writer.put("extra#1", make_entry(INTENT))
    with pytest.raises(OSError, match="killed"):
        writer.save()
    assert {slot: state for slot, state in states(store).items() if slot != "extra#1"} == expected(slots)


def test_a_new_journal_overwrites_the_old_one_and_a_reader_stops_at_the_first_older_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = CountingStore()
    slots = filled_in_small_shards(store, monkeypatch)
    assert sorted(k for k in store.values if "_j" in k) == sorted(journal_key(n) for n in range(1, 13))  # 12 writes
    monkeypatch.setattr(log, "JOURNAL_CHUNKS", 2)
    writer = read(store)
    first = store.values[HEAD]["generation"]
    writer.put("extra#1", make_entry(INTENT))
    writer.save()  # folds the 12 parts in: a new generation
    second = store.values[HEAD]["generation"]
    assert second != first
    writer.put("extra#1", make_entry(ACCEPTED, 9))
    writer.save()  # part 1 of it
    assert store.values[journal_key(1)]["generation"] == second
    assert store.values[journal_key(2)]["generation"] == first  # not read: the journal ended at part 1
    assert states(store) == expected(slots) | {"extra#1": ACCEPTED}
    writer.put("extra#2", make_entry(INTENT))
    writer.save()
    writer.drop("extra#2")  # 2 parts: the next write folds again
    writer.save()
    writer.put("extra#3", make_entry(INTENT))
    writer.save()
    assert store.values[HEAD]["generation"] not in (first, second)
    assert states(store) == expected(slots) | {"extra#1": ACCEPTED, "extra#3": INTENT}
    assert store.deleted == []  # folding deletes nothing: the next journal writes over the old one
    read(store).delete()  # every part, of every generation
    assert store.values == {}


def test_a_part_of_the_journal_that_cannot_be_read_makes_the_log_unreadable() -> None:
    store = MemoryStore()
    slots = filled(store, 10)
    store.values[journal_key(2)] = {UNREADABLE: True}
    reader = read(store)
    assert reader.unreadable
    assert entry_fields(reader.get(slots[8]))[0] == ACCEPTED  # a later part is still read


def test_a_store_that_answers_every_key_is_read_as_unreadable_not_forever() -> None:
    class Echo(MemoryStore):
        def load(self, key: str) -> dict[str, Any] | None:
            return {"generation": "same", SLOTS: {}}

    reader = try_log(Echo())
    assert reader.read()
    assert reader.unreadable


def test_a_missing_shard_counts_as_empty_and_an_unreadable_one_makes_the_log_unreadable(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(log, "SHARD_SIZE", 1)
    store = MemoryStore()
    writer = try_log(store)
    writer.put("a", make_entry(INTENT))
    writer.put("b", make_entry(INTENT))
    writer.save()
    store.values.pop(shard_key(1))  # deleted by hand
    reader = read(store)
    assert reader.get("b") is None
    assert entry_fields(reader.get("a"))[0] == INTENT
    assert not reader.unreadable
    store.values[shard_key(1)] = {UNREADABLE: True}
    assert read(store).unreadable


def test_a_log_whose_intents_were_all_dropped_is_kept_and_written_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is deleted before success: a delete that failed half way could leave a gap in the
    journal, and the writes after it would never be read."""
    monkeypatch.setattr(log, "SHARD_SIZE", 1)
    store = CountingStore()
    writer = try_log(store)
    writer.put("a", make_entry(INTENT))
    writer.put("b", make_entry(INTENT))
    writer.save()
    assert [key for key, _ in store.saved] == [shard_key(0), shard_key(1), HEAD]  # shards, then the head
    writer.drop("a")
    writer.drop("b")
    writer.save()  # nothing went out
    writer.put("c", make_entry(INTENT))
    writer.save()
    writer.put("c", make_entry(ACCEPTED, 9))
    writer.save()
    assert store.deleted == []
    assert states(store) == {"c": ACCEPTED}


def test_a_part_stored_by_a_write_that_failed_is_never_read_in_a_later_life_of_the_log() -> None:
    """Found in review: a stale ``{a: null}`` part left after the record was deleted and made again
    was read as current, so an accepted send of ``a`` looked never made."""
    store = CommitsThenFails(fail_at=4)
    writer = try_log(store)
    writer.put("a", make_entry(INTENT))
    writer.save()  # the shard, then the head
    writer.put("b", make_entry(INTENT))
    writer.save()  # part 1
    writer.drop("a")
    with pytest.raises(OSError, match="lost"):
        writer.save()  # part 2 {a: null} is stored, the write is reported failed
    writer.delete()  # the task instance succeeded: every part goes, part 2 too
    assert store.values == {}
    again = try_log(store)  # cleared by hand: a deliberate re-run
    for slot in ("b", "a"):
        again.put(slot, make_entry(INTENT))
        again.save()
    again.put("a", make_entry(ACCEPTED, 7))
    again.save()
    assert entry_fields(read(store).get("a"))[0] == ACCEPTED


def test_a_journal_write_that_failed_is_made_again_by_the_next_write() -> None:
    store = MemoryStore()
    writer = try_log(store)
    writer.save()
    writer.store = FailingStore(store.values, saves=lambda key: True)
    writer.put("a", make_entry(INTENT))
    with pytest.raises(OSError, match="killed"):
        writer.save()
    assert read(store).get("a") is None  # nothing of it is in the store
    writer.store = store
    writer.put("b", make_entry(INTENT))
    writer.save()  # what the failed write held comes with this one (the guard undoes what must not)
    assert states(store) == {"a": INTENT, "b": INTENT}


def test_delete_removes_journal_parts_and_shards_past_the_known_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "SHARD_SIZE", 2)
    store = MemoryStore()
    writer = try_log(store)
    writer.put("a", make_entry(INTENT))
    writer.save()  # the head, one shard
    writer.put("b", make_entry(INTENT))
    writer.save()  # part 1
    store.values[journal_key(2)] = {"generation": "of a write reported failed", SLOTS: {}}
    store.values[shard_key(1)] = {SLOTS: {}}  # of a fold whose head was never written
    store.values[shard_key(2)] = {SLOTS: {}}
    reader = read(store)
    assert states(store) == {"a": INTENT, "b": INTENT}
    reader.delete()
    assert store.values == {}
    assert (reader.stored, list(reader.items())) == (False, [])


def test_delete_deletes_a_shard_a_fold_wrote_before_its_head_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "SHARD_SIZE", 2)
    store = MemoryStore()
    failing = try_log(FailingStore(store.values, saves=lambda key: key == HEAD))
    for slot in "bcd":
        failing.put(slot, make_entry(INTENT))
    with pytest.raises(OSError, match="killed"):
        failing.save()  # shard 1 written, not the head
    assert shard_key(1) in store.values
    writer = try_log(store)
    writer.put("a", make_entry(INTENT))
    writer.save()  # a head of one shard
    read(store).delete()
    assert store.values == {}


def test_a_log_found_damaged_stays_so_through_later_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: a fold wrote a clean head, and slots only the damaged part held became
    "never sent" for the next try."""
    store = MemoryStore()
    filled(store, 10)
    store.values[journal_key(2)] = {UNREADABLE: True}
    monkeypatch.setattr(log, "JOURNAL_CHUNKS", 1)
    writer = read(store)
    writer.put("new#1", make_entry(INTENT))
    writer.save()  # folds
    assert store.values[HEAD][UNREADABLE] is True
    assert journal_key(2) not in {
        k for k, v in store.values.items() if v.get("generation") == store.values[HEAD]["generation"]
    }
    assert read(store).unreadable


@pytest.mark.parametrize("entry", [[], 5, "accepted", None, ["sent", 1], {"state": "accepted", "message_id": 7}])
def test_an_entry_of_no_known_shape_in_a_shard_makes_the_log_unreadable(entry: Any) -> None:
    store = MemoryStore()
    slots = filled(store, 5)
    store.values.setdefault(shard_key(0), {SLOTS: {}})[SLOTS]["odd#1"] = entry
    reader = read(store)
    assert reader.unreadable
    assert reader.get("odd#1") is None
    assert entry_fields(reader.get(slots[0]))[0] == ACCEPTED  # the well-formed entries are still read


@pytest.mark.parametrize("entry", [[], 5, "accepted", ["sent", 1], {"state": "accepted", "message_id": 7}])
def test_an_entry_of_no_known_shape_in_the_journal_makes_the_log_unreadable(entry: Any) -> None:
    store = MemoryStore()
    filled(store, 5)
    store.values[journal_key(1)][SLOTS]["odd#1"] = entry
    assert read(store).unreadable


def test_null_in_the_journal_drops_a_slot_and_a_part_without_slots_is_damage() -> None:
    store = MemoryStore()
    slots = filled(store, 5)
    assert read(store).get(slots[4]) is None  # the fifth one's intent was dropped by a null
    assert not read(store).unreadable
    store.values[journal_key(1)] = {"generation": store.values[HEAD]["generation"]}
    assert read(store).unreadable


def test_a_head_without_a_generation_makes_the_log_unreadable_and_delete_removes_it() -> None:
    store = MemoryStore()
    store.values[HEAD] = {UNREADABLE: True}
    reader = try_log(store)
    assert reader.read()
    assert reader.unreadable
    reader.delete()
    assert store.values == {}


def test_a_log_whose_read_failed_half_way_is_read_again_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "SHARD_SIZE", 10)
    store = MemoryStore()
    writer = try_log(store)
    slots = [f"{n:024x}#1" for n in range(25)]
    for slot in slots:
        writer.put(slot, make_entry(INTENT))
    writer.save()
    for i, slot in enumerate(slots):
        writer.put(slot, make_entry(ACCEPTED, 7000 + i))
    writer.save()

    class FlakyStore(MemoryStore):
        failed = False

        def load(self, key: str) -> dict[str, Any] | None:
            if key == shard_key(1) and not self.failed:
                self.failed = True
                raise OSError("metadata DB busy")
            return super().load(key)

    flaky = FlakyStore()
    flaky.values = store.values
    reader = try_log(flaky)
    with pytest.raises(OSError, match="busy"):
        reader.read()
    assert reader.read()
    assert entry_fields(reader.get(slots[15]))[2] == 7015  # not "never sent"


def test_a_reader_of_a_log_its_owner_folds_meanwhile_reads_it_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: a try Airflow believes dead may still write its log. If it folds while a
    later try reads it (the head of one generation, then the first part of the next), the reader
    lost every change since the old base; it sees the head changed and reads the log again."""
    monkeypatch.setattr(log, "JOURNAL_CHUNKS", 4)
    shared = MemoryStore()
    owner = try_log(shared)
    owner.put("first", make_entry(INTENT))
    owner.save()  # the head
    owner.put("first", make_entry(ACCEPTED, 1))
    owner.save()  # part 1: accepted
    for slot in ("y1", "y2", "y3"):
        owner.put(slot, make_entry(INTENT))
        owner.save()  # part 4 with y3: the next write folds

    class FoldsMeanwhile(MemoryStore):
        fired = False

        def load(self, key: str) -> dict[str, Any] | None:
            if key == journal_key(1) and not self.fired:  # between the head and the first part
                self.fired = True
                owner.put("z1", make_entry(INTENT))
                owner.save()  # the fold: a new head
                owner.put("z2", make_entry(INTENT))
                owner.save()  # part 1 of the new journal
            return super().load(key)

    meanwhile = FoldsMeanwhile()
    meanwhile.values = shared.values
    reader = try_log(meanwhile)
    assert reader.read()
    assert not reader.unreadable
    assert entry_fields(reader.get("first"))[0] == ACCEPTED
    assert entry_fields(reader.get("z2"))[0] == INTENT


def test_a_log_that_keeps_changing_under_the_reader_counts_as_unreadable() -> None:
    class Folding(MemoryStore):
        reads = 0

        def load(self, key: str) -> dict[str, Any] | None:
            if key == HEAD:
                self.reads += 1
                return {"generation": f"g{self.reads}", SLOTS: {}}
            return None

    reader = try_log(Folding())
    assert reader.read()
    assert reader.unreadable


def test_undo_gives_slots_their_earlier_entries_again() -> None:
    store = MemoryStore()
    writer = try_log(store)
    writer.put("a", make_entry(ACCEPTED, 1))
    writer.save()
    before = {"a": writer.get("a"), "b": writer.get("b")}
    writer.put("a", make_entry(INTENT))
    writer.put("b", make_entry(INTENT))
    writer.undo(before)
    writer.save()
    assert states(store) == {"a": ACCEPTED}
