"""The send record and the hook's use of it, with an in-memory store (real Airflow runs: tests/system)."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any
from unittest import mock

import pytest
import requests_mock
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octopods import send_record
from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.models import Encoding, SendResult
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.send_record import MemoryStore, SendRecord, TaskKey

SEND_URL = "https://app.octopods.io/api/v1/sms/messages"
KEY = TaskKey("reminders", "scheduled__2026-11-25", "send_all", 3)
REQUEST = build_send_request("+15551234567", "See you at 10:00")


def accepted(message_id: int, phone: str = "+15551234567") -> SendResult:
    return SendResult("r", message_id, phone, 1, Encoding.GSM7)


def test_record_lifecycle_and_one_write_per_chunk() -> None:
    store = MemoryStore()
    record = SendRecord(KEY, try_number=1, store=store)
    requests = [build_send_request(f"+1555123{n:04d}", "Hi") for n in range(200)]
    slots = [record.next_slot(r) for r in requests]
    record.begin(zip(slots, requests, strict=True))
    assert store.writes == 1
    record.accept((slot, accepted(n, r.phone)) for n, (slot, r) in enumerate(zip(slots, requests, strict=True)))
    assert store.writes == 2
    later = SendRecord(KEY, try_number=2, store=store)
    priors = [later.prior(later.next_slot(r)) for r in requests]
    assert all(p is not None and p.accepted for p in priors)
    assert [p.message_id for p in priors if p] == list(range(200))
    later.clear()
    assert store.values == {}


def test_record_holds_no_phone_number_or_text() -> None:
    store = MemoryStore()
    record = SendRecord(KEY, try_number=1, store=store)
    slot = record.next_slot(REQUEST)
    record.begin([(slot, REQUEST)])
    record.accept([(slot, accepted(9))])
    stored = str(store.values)
    assert "5551234567" not in stored
    assert "See you" not in stored
    assert "+1*******567" in stored


def test_repeats_in_one_try_get_their_own_slots_once_the_earlier_one_is_accepted() -> None:
    record = SendRecord(KEY, try_number=1, store=MemoryStore())
    first = record.next_slot(REQUEST)
    record.begin([(first, REQUEST)])
    assert record.next_slot(REQUEST) == first  # still in doubt: the repeat is refused, not guessed
    record.forget([first])
    assert record.next_slot(REQUEST) == first  # provably not sent: a user's own retry sends it once
    record.begin([(first, REQUEST)])
    record.accept([(first, accepted(1))])
    second = record.next_slot(REQUEST)
    assert second != first
    assert second.endswith("#2")


def test_slot_names_are_keyed_hashes_that_differ_between_records() -> None:
    one, other = SendRecord(KEY, store=MemoryStore()), SendRecord(KEY, store=MemoryStore())
    assert one.content(REQUEST) != other.content(REQUEST)  # a random salt per record
    store = MemoryStore()
    first = SendRecord(KEY, try_number=1, store=store)
    slot = first.next_slot(REQUEST)
    first.begin([(slot, REQUEST)])
    assert SendRecord(KEY, try_number=2, store=store).next_slot(REQUEST) == slot  # same salt, same slot


def test_an_unreadable_record_makes_every_send_unknown() -> None:
    class Broken(MemoryStore):
        def load(self, key: str) -> dict | None:
            return {send_record.UNREADABLE: True, "entries": {}}

    record = SendRecord(KEY, try_number=2, store=Broken())
    prior = record.prior(record.next_slot(REQUEST))
    assert prior is not None
    assert not prior.accepted


def test_variable_store_reports_garbage_as_unreadable(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import Variable

    monkeypatch.setattr(send_record, "variables", lambda: Variable)
    monkeypatch.setattr(Variable, "get", classmethod(lambda cls, key, default=None: "[1, 2]"))
    assert send_record.VariableStore().load("k") == {send_record.UNREADABLE: True}
    monkeypatch.setattr(Variable, "get", classmethod(lambda cls, key, default=None: '{"no": "entries"}'))
    record = SendRecord(KEY, try_number=2, store=send_record.VariableStore())
    prior = record.prior(record.next_slot(REQUEST))
    assert prior is not None
    assert not prior.accepted


def test_keys_differ_by_task_instance() -> None:
    keys = {
        KEY.store_key,
        TaskKey("reminders", "scheduled__2026-11-25", "send_all", 4).store_key,
        TaskKey("reminders", "scheduled__2026-11-26", "send_all", 3).store_key,
        TaskKey("reminders", "scheduled__2026-11-25", "other", 3).store_key,
    }
    assert len(keys) == 4
    assert all(k.startswith(send_record.VARIABLE_PREFIX) and len(k) < 64 for k in keys)


@pytest.fixture
def store() -> Iterator[MemoryStore]:
    """Make the hook believe it runs in try 1 of a task instance, with records in memory."""
    memory = MemoryStore()
    tries = iter(range(1, 100))
    current: dict[str, SendRecord] = {}

    def fake_current(store: object = None) -> SendRecord:
        return current["record"]

    def new_try() -> None:
        current["record"] = SendRecord(KEY, try_number=next(tries), store=memory)

    new_try()
    memory.new_try = new_try  # type: ignore[attr-defined]
    with mock.patch("airflow_provider_octopods.send_record.current_record", fake_current):
        yield memory


def test_hook_loop_retried_skips_what_an_earlier_try_sent(
    octopods_conn: str, requests_mock: requests_mock.Mocker, store: MemoryStore
) -> None:
    requests_mock.post(SEND_URL, [{"status_code": 201, "json": {"request_id": "r", "message_id": n}} for n in (1, 2)])
    hook = OctopodsHook()
    first = [hook.send_sms("+15551234567", "Hi").message_id, hook.send_sms("+15551234567", "Hi").message_id]
    assert first == [1, 2]  # the same text twice on purpose: sent twice
    store.new_try()  # type: ignore[attr-defined]
    again = [hook.send_sms("+15551234567", "Hi").message_id for _ in range(2)]
    assert again == [1, 2]
    assert requests_mock.call_count == 2


def test_not_sent_failure_forgets_the_intent_so_a_retry_sends(
    octopods_conn: str, requests_mock: requests_mock.Mocker, store: MemoryStore
) -> None:
    requests_mock.post(
        SEND_URL,
        [
            {"status_code": 400, "json": {"error_code": 4, "error": "carrier busy"}},
            {"status_code": 201, "json": {"message_id": 5}},
        ],
    )
    with pytest.raises(errors.OctopodsSmsRejectedError) as err:
        OctopodsHook().send_sms("+15551234567", "Hi")
    assert not isinstance(err.value, AirflowFailException)  # Airflow may retry: nothing was sent
    store.new_try()  # type: ignore[attr-defined]
    assert OctopodsHook().send_sms("+15551234567", "Hi").message_id == 5


def test_ambiguous_failure_keeps_the_intent_and_the_retry_refuses_to_guess(
    octopods_conn: str, requests_mock: requests_mock.Mocker, store: MemoryStore
) -> None:
    requests_mock.post(SEND_URL, status_code=502, text="<html>Bad gateway</html>")
    with pytest.raises(errors.OctopodsServerError) as err:
        OctopodsHook().send_sms("+15551234567", "Hi")
    assert isinstance(err.value, AirflowFailException)  # Airflow must not retry
    assert "may or may not have been sent" in str(err.value)
    store.new_try()  # type: ignore[attr-defined]
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match=r"try 1.*outcome is unknown.*resend_unknown=True"):
        OctopodsHook().send_sms("+15551234567", "Hi")
    assert requests_mock.call_count == 1
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 8})
    assert OctopodsHook(resend_unknown=True).send_sms("+15551234567", "Hi").message_id == 8


def test_hook_without_record_always_sends(
    octopods_conn: str, requests_mock: requests_mock.Mocker, store: MemoryStore
) -> None:
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 3})
    hook = OctopodsHook(send_record=False)
    hook.send_sms("+15551234567", "Hi")
    store.new_try()  # type: ignore[attr-defined]
    hook.send_sms("+15551234567", "Hi")
    assert requests_mock.call_count == 2
    assert store.values == {}


def test_invalid_input_from_the_hook_fails_the_task_for_good(octopods_conn: str, store: MemoryStore) -> None:
    with pytest.raises(errors.OctopodsValidationError, match="phone: ") as err:
        OctopodsHook().send_sms("+1555CALLNOW", "Hi")
    assert isinstance(err.value, AirflowFailException)
    assert isinstance(err.value, ValueError)
    assert err.value.field == "phone"


def test_listener_deletes_the_record_of_a_succeeded_task_instance() -> None:
    store = MemoryStore()
    record = SendRecord(KEY, try_number=1, store=store)
    record.begin([(record.next_slot(REQUEST), REQUEST)])
    send_record._ACTIVE[KEY] = record
    ti = mock.Mock(dag_id=KEY.dag_id, run_id=KEY.run_id, task_id=KEY.task_id, map_index=KEY.map_index)
    from airflow_provider_octopods.listeners import on_task_instance_success

    on_task_instance_success(previous_state=None, task_instance=ti)
    assert store.values == {}
    assert KEY not in send_record._ACTIVE


def test_plugin_registers_the_listener() -> None:
    from airflow_provider_octopods import listeners
    from airflow_provider_octopods.plugins import OctopodsPlugin

    assert listeners in OctopodsPlugin.listeners


def test_operator_slot_with_changed_content_is_sent_as_a_new_message(
    octopods_conn: str, requests_mock: requests_mock.Mocker, store: MemoryStore
) -> None:
    requests_mock.post(SEND_URL, [{"status_code": 201, "json": {"message_id": n}} for n in (1, 2)])
    hook = OctopodsHook()
    assert hook.send(build_send_request("+15551234567", "Hi"), slot=send_record.OPERATOR_SLOT).message_id == 1
    store.new_try()  # type: ignore[attr-defined]
    assert hook.send(build_send_request("+15551234567", "Hi"), slot=send_record.OPERATOR_SLOT).message_id == 1
    store.new_try()  # type: ignore[attr-defined]
    changed = build_send_request("+447700900123", "Hi")  # e.g. the upstream data was fixed, then cleared
    assert hook.send(changed, slot=send_record.OPERATOR_SLOT).message_id == 2
    assert requests_mock.call_count == 2


def test_a_slot_of_the_users_that_looks_like_a_content_hash_is_still_sent_once(
    octopods_conn: str, requests_mock: requests_mock.Mocker, store: MemoryStore
) -> None:
    """Only a batch vouches that its slots are named by their content: any other slot keeps the
    content it was sent with, however it looks (here an id of the user's, 24 hex digits and #1)."""
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 1})
    slot = "64b7f0c2a9e1d3f4b5a6c7d8#1"
    hook = OctopodsHook()
    assert hook.send(build_send_request("+15551234567", "Hi"), slot=slot).message_id == 1
    store.new_try()  # type: ignore[attr-defined]
    assert hook.send(build_send_request("+15551234567", "Hi"), slot=slot).message_id == 1
    assert requests_mock.call_count == 1


def test_user_retry_inside_one_try_sends_once_after_a_not_sent_failure(
    octopods_conn: str, requests_mock: requests_mock.Mocker, store: MemoryStore
) -> None:
    requests_mock.post(
        SEND_URL,
        [
            {"status_code": 400, "json": {"error_code": 4, "error": "busy"}},
            {"status_code": 201, "json": {"message_id": 5}},
        ],
    )
    hook = OctopodsHook()
    with pytest.raises(errors.OctopodsSmsRejectedError):
        hook.send_sms("+15551234567", "Hi")
    assert hook.send_sms("+15551234567", "Hi").message_id == 5  # the user's own retry
    store.new_try()  # type: ignore[attr-defined]
    assert hook.send_sms("+15551234567", "Hi").message_id == 5  # an Airflow retry finds it
    assert requests_mock.call_count == 2


def test_fail_for_good_errors_survive_pickling() -> None:
    import pickle

    from airflow_provider_octopods.task_outcomes import final

    error = final(errors.OctopodsValidationError("phone", "+1***123 is too short"))
    again = pickle.loads(pickle.dumps(error))  # noqa: S301 - our own bytes
    assert isinstance(again, AirflowFailException)
    assert isinstance(again, errors.OctopodsValidationError)
    assert (again.field, str(again)) == ("phone", "phone: +1***123 is too short")


class CountingStore(MemoryStore):
    def __init__(self) -> None:
        super().__init__()
        self.saved: list[tuple[str, int]] = []
        self.deleted: list[str] = []

    def save(self, key: str, value: dict, *, description: str) -> None:  # type: ignore[type-arg]
        self.saved.append((key, len(value[send_record.SLOTS])))
        super().save(key, value, description=description)

    def delete(self, key: str) -> None:
        self.deleted.append(key)
        super().delete(key)


def journal_key(number: int) -> str:
    return f"{KEY.store_key}_j{number}"


def test_a_write_stores_only_its_changes_and_the_journal_is_folded_into_shards(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(send_record, "SHARD_SIZE", 100)
    monkeypatch.setattr(send_record, "JOURNAL_CHUNKS", 4)
    store = CountingStore()
    record = SendRecord(KEY, try_number=1, store=store)
    requests = [build_send_request(f"+1500555{n:04d}", "Your appointment is tomorrow") for n in range(250)]
    slots = [(f"{record.content(r)}#1", r) for r in requests]
    writes: list[list[tuple[str, int]]] = []
    for start in range(0, 250, 50):  # chunks of 50: intents, then results, as a batch does
        chunk = slots[start : start + 50]
        results = [
            (slot, SendResult(None, 1000 + start + i, r.phone, 1, Encoding.GSM7)) for i, (slot, r) in enumerate(chunk)
        ]
        for write, changes in ((record.begin, chunk), (record.accept, results)):
            store.saved.clear()
            write(changes)  # type: ignore[operator]
            writes.append(list(store.saved))
    journal = [w for w in writes if len(w) == 1 and "_j" in w[0][0]]
    folds = [w for w in writes if w not in journal]
    assert all(size == 50 for [(_, size)] in journal)  # a write is one Variable of its own 50 changes
    assert len(journal) == 8  # 10 writes: the first makes the head, the 6th folds 4 parts in
    assert [[key for key, _ in w] for w in folds] == [
        [KEY.store_key],
        [f"{KEY.store_key}_1", KEY.store_key],  # the shards changed (150 slots now), then the head
    ]
    assert all(size <= 100 for w in folds for _, size in w)
    assert store.values[KEY.store_key]["shards"] == 2
    assert sorted(store.values) == sorted(  # 4 parts of the second journal over those of the first
        [KEY.store_key, f"{KEY.store_key}_1", *(journal_key(n) for n in range(1, 5))]
    )
    generation = store.values[KEY.store_key]["generation"]
    assert [store.values[journal_key(n)]["generation"] for n in range(1, 5)] == [generation] * 4
    again = SendRecord(KEY, try_number=2, store=store)  # a later try sees the shards and the journal,
    # which holds the 100 slots of a third shard not written yet
    assert [again.prior(slot).message_id for slot, _ in slots] == list(range(1000, 1250))  # type: ignore[union-attr]
    again.forget([slots[0][0]])
    assert SendRecord(KEY, store=store).prior(slots[0][0]) is None
    again.clear()
    assert store.values == {}


class FailingStore(MemoryStore):
    """Raises on the ``nth`` save (or delete) of a key that ``matches``, as a crash would end the write."""

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

    def save(self, key: str, value: dict, *, description: str) -> None:  # type: ignore[type-arg]
        if self.fail_save(key):
            raise OSError("worker killed")
        super().save(key, value, description=description)

    def delete(self, key: str) -> None:
        if self.fail_delete(key):
            raise OSError("worker killed")
        super().delete(key)


def filled(store: MemoryStore, n: int = 30) -> list[tuple[str, Any]]:
    """A record of ``n`` sends written as a batch would: intents then results, one write each, by fives."""
    record = SendRecord(KEY, try_number=1, store=store)
    requests = [build_send_request(f"+1500555{i:04d}", "Hello") for i in range(n)]
    slots = [(f"{record.content(r)}#1", r) for r in requests]
    for start in range(0, n, 5):
        chunk = slots[start : start + 5]
        record.begin(chunk)
        accepted_now = chunk[:4]  # the fifth one failed for sure: its intent is dropped
        record.settle(
            [
                (slot, SendResult(None, 500 + start + i, r.phone, 1, Encoding.GSM7))
                for i, (slot, r) in enumerate(accepted_now)
            ],
            [chunk[4][0]],
        )
    return slots


def filled_in_small_shards(store: MemoryStore, monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, Any]]:
    """:func:`filled` with 30 sends, in shards of 8 and a journal that is not folded."""
    monkeypatch.setattr(send_record, "SHARD_SIZE", 8)
    monkeypatch.setattr(send_record, "JOURNAL_CHUNKS", 100)
    return filled(store)


def expected(slots: list[tuple[str, Any]]) -> dict[str, str]:
    return {slot: send_record.ACCEPTED for i, (slot, _) in enumerate(slots) if i % 5 != 4}


@pytest.mark.parametrize("crash_at", ["a shard", "the head"])
def test_a_fold_cut_short_leaves_the_old_base_and_its_whole_journal(
    monkeypatch: pytest.MonkeyPatch, crash_at: str
) -> None:
    store = MemoryStore()
    slots = filled_in_small_shards(store, monkeypatch)
    assert any(None in store.values[journal_key(n)][send_record.SLOTS].values() for n in (1, 2))  # dropped: null
    record = SendRecord(KEY, try_number=2, store=store)
    assert record.states() == expected(slots)
    monkeypatch.setattr(send_record, "JOURNAL_CHUNKS", 1)  # the next write folds
    crashed_key = KEY.store_key if crash_at == "the head" else f"{KEY.store_key}_2"
    record.store = FailingStore(store.values, saves=lambda key: key == crashed_key)
    extra = build_send_request("+15005559999", "Hello")
    with pytest.raises(OSError, match="killed"):
        record.begin([("extra#1", extra)])
    states = SendRecord(KEY, try_number=3, store=store).states()
    assert {slot: state for slot, state in states.items() if slot != "extra#1"} == expected(slots)


def test_a_new_journal_overwrites_the_old_one_and_a_reader_stops_at_the_first_older_part(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = CountingStore()
    slots = filled_in_small_shards(store, monkeypatch)
    assert sorted(k for k in store.values if "_j" in k) == sorted(journal_key(n) for n in range(1, 12))  # 12 writes
    monkeypatch.setattr(send_record, "JOURNAL_CHUNKS", 2)
    record = SendRecord(KEY, try_number=2, store=store)
    extra = build_send_request("+15005559999", "Hello")
    first = store.values[KEY.store_key]["generation"]
    record.begin([("extra#1", extra)])  # folds the 11 parts in: a new generation
    second = store.values[KEY.store_key]["generation"]
    assert second != first
    record.accept([("extra#1", SendResult(None, 9, extra.phone, 1, Encoding.GSM7))])  # part 1 of it
    assert store.values[journal_key(1)]["generation"] == second
    assert store.values[journal_key(2)]["generation"] == first  # not read: the journal ended at part 1
    assert SendRecord(KEY, store=store).states() == expected(slots) | {"extra#1": send_record.ACCEPTED}
    record.begin([("extra#2", extra)])
    record.forget(["extra#2"])  # 2 parts: the next write folds again
    record.begin([("extra#3", extra)])
    assert store.values[KEY.store_key]["generation"] not in (first, second)
    assert SendRecord(KEY, store=store).states() == expected(slots) | {
        "extra#1": send_record.ACCEPTED,
        "extra#3": send_record.INTENT,
    }
    assert store.deleted == []  # folding deletes nothing: the next journal writes over the old one
    SendRecord(KEY, store=store).clear()  # every part, of every generation
    assert store.values == {}


def test_a_part_of_the_journal_that_cannot_be_read_makes_every_slot_it_may_hold_unknown() -> None:
    store = MemoryStore()
    slots = filled(store, 10)
    store.values[journal_key(2)] = {send_record.UNREADABLE: True}
    record = SendRecord(KEY, try_number=2, store=store)
    assert record.prior("never-seen").state == send_record.UNREADABLE  # type: ignore[union-attr]
    assert record.prior(slots[8][0]).accepted  # type: ignore[union-attr]  # a later part is still read


def test_a_store_that_answers_every_key_is_read_as_unreadable_not_forever() -> None:
    class Echo(MemoryStore):
        def load(self, key: str) -> dict | None:  # type: ignore[type-arg]
            return {"generation": "same", send_record.SLOTS: {}}

    record = SendRecord(KEY, try_number=2, store=Echo())
    assert record.prior("never-seen").state == send_record.UNREADABLE  # type: ignore[union-attr]


def test_a_missing_shard_counts_as_empty_and_an_unreadable_one_makes_every_unknown_slot_unknown(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(send_record, "SHARD_SIZE", 1)
    store = MemoryStore()
    record = SendRecord(KEY, try_number=1, store=store)
    first, second = (build_send_request(p, "hi") for p in ("+15005550100", "+15005550101"))
    record.begin([("a", first), ("b", second)])
    store.values.pop(f"{KEY.store_key}_1")  # deleted by hand
    assert SendRecord(KEY, store=store).prior("b") is None
    assert SendRecord(KEY, store=store).prior("a").state == send_record.INTENT  # type: ignore[union-attr]
    store.values[f"{KEY.store_key}_1"] = {send_record.UNREADABLE: True}
    assert SendRecord(KEY, store=store).prior("never-seen").state == send_record.UNREADABLE  # type: ignore[union-attr]


def test_a_record_whose_intents_were_all_dropped_is_kept_and_written_on(monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing is deleted before success: a delete that failed half way could leave a gap in the
    journal, and the writes after it would never be read (found in review)."""
    monkeypatch.setattr(send_record, "SHARD_SIZE", 1)
    store = CountingStore()
    record = SendRecord(KEY, try_number=1, store=store)
    first, second = (build_send_request(p, "hi") for p in ("+15005550100", "+15005550101"))
    record.begin([("a", first), ("b", second)])
    assert [key for key, _ in store.saved] == [f"{KEY.store_key}_1", KEY.store_key]  # shards, then the head
    record.forget(["a", "b"])  # nothing went out
    record.begin([("c", first)])
    record.accept([("c", SendResult(None, 9, first.phone, 1, Encoding.GSM7))])
    assert store.deleted == []
    assert SendRecord(KEY, store=store).states() == {"c": send_record.ACCEPTED}


class CommitsThenFails(MemoryStore):
    """Stores the ``fail_at``-th save, then raises: the metadata DB committed, the answer was lost."""

    def __init__(self, fail_at: int) -> None:
        super().__init__()
        self.fail_at = fail_at

    def save(self, key: str, value: dict, *, description: str) -> None:  # type: ignore[type-arg]
        super().save(key, value, description=description)
        if self.writes == self.fail_at:
            raise OSError("connection to the metadata DB lost")


def test_a_part_stored_by_a_write_that_failed_is_never_read_in_a_later_life_of_the_record() -> None:
    """Found in review: a stale ``{A: null}`` part left after the record was deleted and made again
    was read as current, so an accepted send of A looked never made."""
    store = CommitsThenFails(fail_at=3)
    record = SendRecord(KEY, try_number=1, store=store)
    a, b = (build_send_request(p, "hi") for p in ("+15005550100", "+15005550101"))
    record.begin([("a", a)])  # the head
    record.begin([("b", b)])  # part 1
    with pytest.raises(OSError, match="lost"):
        record.forget(["a"])  # part 2 {a: null} is stored, the write is reported failed
    record.clear()  # the task instance succeeded
    assert store.values == {}
    again = SendRecord(KEY, try_number=1, store=store)  # cleared by hand: a deliberate re-run
    again.begin([("b", b)])
    again.begin([("a", a)])
    again.accept([("a", SendResult(None, 7, a.phone, 1, Encoding.GSM7))])
    assert SendRecord(KEY, store=store).prior("a").accepted  # type: ignore[union-attr]


def test_a_record_found_damaged_stays_so_through_later_folds(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: a fold wrote a clean head, and slots only the damaged part held became
    "never sent" for the next try."""
    store = MemoryStore()
    filled(store, 10)
    store.values[journal_key(2)] = {send_record.UNREADABLE: True}
    monkeypatch.setattr(send_record, "JOURNAL_CHUNKS", 1)
    record = SendRecord(KEY, try_number=2, store=store)
    record.begin([("new#1", build_send_request("+15005559999", "Hello"))])  # folds
    assert journal_key(2) not in {
        k for k, v in store.values.items() if v.get("generation") == store.values[KEY.store_key]["generation"]
    }
    assert SendRecord(KEY, try_number=3, store=store).prior("never-seen").state == send_record.UNREADABLE  # type: ignore[union-attr]


@pytest.mark.parametrize("entry", [[], 5, "accepted", None])
def test_an_entry_of_no_known_shape_makes_the_record_unreadable(entry: Any) -> None:
    store = MemoryStore()
    filled(store, 5)
    store.values[journal_key(1)][send_record.SLOTS]["odd#1"] = entry
    store.values[KEY.store_key][send_record.SLOTS]["odder#1"] = entry
    record = SendRecord(KEY, try_number=2, store=store)
    assert record.prior("odd#1").state == send_record.UNREADABLE  # type: ignore[union-attr]
    assert record.prior("odder#1").state == send_record.UNREADABLE  # type: ignore[union-attr]


def test_versions_before_the_journal_read_a_record_of_this_one_as_damaged(monkeypatch: pytest.MonkeyPatch) -> None:
    """They read ``entries`` of the head and shards only; a mapping there would let them miss the
    journal and send again. What they do with a value that is not one: count all as unknown."""
    monkeypatch.setattr(send_record, "SHARD_SIZE", 4)
    store = MemoryStore()
    filled(store, 10)
    shards = [v for k, v in store.values.items() if "_j" not in k]
    assert len(shards) == 2  # the head and shard 1, from the first write; the rest is in the journal
    assert all(not isinstance(value["entries"], Mapping) and value["entries"] for value in shards)


def test_clear_deletes_a_record_that_holds_only_damage() -> None:
    store = MemoryStore()
    store.values[KEY.store_key] = {send_record.UNREADABLE: True}
    record = SendRecord(KEY, try_number=2, store=store)
    assert record.prior("a").state == send_record.UNREADABLE  # type: ignore[union-attr]
    record.clear()
    assert store.values == {}


def test_entries_written_as_objects_by_an_earlier_version_are_read() -> None:
    store = MemoryStore()
    salt = "0" * 32
    probe = SendRecord(KEY, store=store)
    store.values[KEY.store_key] = {"salt": salt, "shards": 1, "entries": {}}  # as an earlier version wrote it
    older = f"{probe.content(build_send_request('+15551234568', 'Hi'))}#1"
    store.values[KEY.store_key]["entries"] = {
        older: {"state": "accepted", "try": 1, "phone": "+1*******568", "at": 1.5, "message_id": 7},
        send_record.OPERATOR_SLOT: {"state": "intent", "try": 1, "phone": "+1*******567", "content": "abc"},
    }
    record = SendRecord(KEY, try_number=2, store=store)
    slot = record.next_slot(REQUEST)
    record.begin([(slot, REQUEST)])  # the first write makes the head of this version
    record.accept([(slot, SendResult("req-1", 9, REQUEST.phone, 1, Encoding.GSM7))])
    assert store.values[journal_key(1)][send_record.SLOTS][slot] == [
        "accepted",
        2,
        "+1*******567",
        mock.ANY,
        9,
        "req-1",
    ]
    later = SendRecord(KEY, try_number=3, store=store)
    assert later.prior(older) == send_record.Prior(state="accepted", try_number=1, message_id=7, content=older[:-2])
    operator_slot = later.prior(send_record.OPERATOR_SLOT)
    assert operator_slot is not None
    assert (operator_slot.state, operator_slot.content) == ("intent", "abc")


def test_a_record_whose_read_failed_half_way_is_read_again_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(send_record, "SHARD_SIZE", 10)
    store = MemoryStore()
    record = SendRecord(KEY, try_number=1, store=store)
    requests = [build_send_request(f"+1500555{n:04d}", "Hello") for n in range(25)]
    slots = [(f"{record.content(r)}#1", r) for r in requests]
    record.begin(slots)
    record.accept([(slot, SendResult(None, 7000 + i, r.phone, 1, Encoding.GSM7)) for i, (slot, r) in enumerate(slots)])

    class FlakyStore(MemoryStore):
        failed = False

        def load(self, key: str) -> dict | None:  # type: ignore[type-arg]
            if key.endswith("_1") and not self.failed:
                self.failed = True
                raise OSError("metadata DB busy")
            return super().load(key)

    flaky = FlakyStore()
    flaky.values = store.values
    later = SendRecord(KEY, try_number=2, store=flaky)
    with pytest.raises(OSError, match="busy"):
        later.prior(slots[15][0])
    assert later.prior(slots[15][0]).message_id == 7015  # type: ignore[union-attr]  # not "never sent"


def test_a_try_reading_while_another_process_folds_reads_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Found in review: a try Airflow believes dead may still write. If it folds while a new try
    reads (the head of one generation, then the first part of the next), the reader lost every
    change since the old base; now it sees the head changed and reads the record again."""
    monkeypatch.setattr(send_record, "JOURNAL_CHUNKS", 4)
    shared = MemoryStore()
    zombie = SendRecord(KEY, try_number=1, store=shared)
    a = build_send_request("+15005550100", "hi")
    zombie.begin([("first", a)])  # the head
    zombie.accept([("first", SendResult(None, 1, a.phone, 1, Encoding.GSM7))])  # part 1: accepted
    zombie.begin([("y1", a)])
    zombie.begin([("y2", a)])
    zombie.begin([("y3", a)])  # part 4: the next write folds

    class FoldsMeanwhile(MemoryStore):
        fired = False

        def load(self, key: str) -> dict | None:  # type: ignore[type-arg]
            if key == journal_key(1) and not self.fired:  # between the head and the first part
                self.fired = True
                zombie.begin([("z1", a)])  # the fold: a new head
                zombie.begin([("z2", a)])  # part 1 of the new journal
            return super().load(key)

    meanwhile = FoldsMeanwhile()
    meanwhile.values = shared.values
    reader = SendRecord(KEY, try_number=2, store=meanwhile)
    assert reader.prior("first").accepted  # type: ignore[union-attr]
    assert reader.prior("z2").state == send_record.INTENT  # type: ignore[union-attr]
    reader.accept([("z2", SendResult(None, 2, a.phone, 1, Encoding.GSM7))])  # written to the new journal
    assert SendRecord(KEY, store=shared).prior("z2").accepted  # type: ignore[union-attr]


def test_a_record_that_keeps_changing_under_the_reader_counts_as_unreadable() -> None:
    class Folding(MemoryStore):
        def load(self, key: str) -> dict | None:  # type: ignore[type-arg]
            if key == KEY.store_key:
                self.reads = getattr(self, "reads", 0) + 1
                return {"salt": "s", "generation": f"g{self.reads}", send_record.SLOTS: {}}
            return None

    assert SendRecord(KEY, store=Folding()).prior("a").state == send_record.UNREADABLE  # type: ignore[union-attr]


def test_clear_deletes_a_shard_a_fold_wrote_before_its_head_failed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(send_record, "SHARD_SIZE", 2)
    store = MemoryStore()
    a = build_send_request("+15005550100", "hi")
    failing = FailingStore(store.values, saves=lambda key: key == KEY.store_key)
    with pytest.raises(OSError, match="killed"):
        SendRecord(KEY, store=failing).begin([("b", a), ("c", a), ("d", a)])  # shard 1 written, not the head
    SendRecord(KEY, try_number=2, store=store).begin([("a", a)])  # a head of one shard
    SendRecord(KEY, try_number=2, store=store).clear()
    assert store.values == {}


def test_threads_sending_the_same_sms_at_once_never_share_a_slot(
    octopods_conn: str, requests_mock: requests_mock.Mocker, store: MemoryStore
) -> None:
    """Found in review: two threads sending the same text to the same number could both take slot
    #1 (the second between the first's slot and its intent); a retry then found #1 accepted and
    sent the other one again. Now slot, check and intent are one step: the second one gets slot #2
    or, while the first is in flight, is refused."""
    import contextlib
    import threading

    requests_mock.post(SEND_URL, [{"status_code": 201, "json": {"message_id": n}} for n in (1, 2)])
    both_have_a_slot, both_have_checked = threading.Barrier(2), threading.Barrier(2)
    original_prior = SendRecord.prior

    def prior(self: SendRecord, slot: str) -> Any:
        # The window: each thread waits for the other to have taken its slot, then to have checked
        # it (without the lock both take #1 and find it free); with the lock the other one cannot
        # come this far before this send's intent is recorded, and the waits time out.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_have_a_slot.wait(0.5)
        found = original_prior(self, slot)
        with contextlib.suppress(threading.BrokenBarrierError):
            both_have_checked.wait(0.5)
        return found

    hook = OctopodsHook()
    results: list[SendResult] = []
    refused: list[Exception] = []

    def send() -> None:
        try:
            results.append(hook.send_sms("+15551234567", "Hi"))
        except errors.OctopodsUnknownOutcomeError as err:  # the other one was still in flight
            refused.append(err)

    with mock.patch.object(SendRecord, "prior", prior):
        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
    assert len(results) + len(refused) == 2
    accepted_slots = [s for s in SendRecord(KEY, store=store).states().values() if s == send_record.ACCEPTED]
    assert requests_mock.call_count == len(results) == len(accepted_slots)  # each result its own send and slot


def test_a_success_airflow_refused_keeps_the_record_for_the_retry() -> None:
    """Found in review: Airflow 3 calls the success listener even when the API server refused the
    success (the task instance had been given up after lost heartbeats, and its retry may run)."""
    store = MemoryStore()
    record = SendRecord(KEY, try_number=1, store=store)
    record.begin([(record.next_slot(REQUEST), REQUEST)])
    send_record._ACTIVE[KEY] = record
    ti = mock.Mock(dag_id=KEY.dag_id, run_id=KEY.run_id, task_id=KEY.task_id, map_index=KEY.map_index)
    ti.get_ti_count.return_value = 0  # the metadata DB does not hold it as succeeded
    from airflow_provider_octopods.listeners import on_task_instance_success

    on_task_instance_success(previous_state=None, task_instance=ti)
    assert SendRecord(KEY, store=store).states() != {}
    assert ti.get_ti_count.call_args.kwargs == {
        "dag_id": KEY.dag_id,
        "map_index": KEY.map_index,
        "task_ids": [KEY.task_id],
        "run_ids": [KEY.run_id],
        "states": ["success"],
    }


def test_a_send_whose_intent_could_not_be_recorded_is_not_refused_later_in_the_try(
    octopods_conn: str, requests_mock: requests_mock.Mocker, store: MemoryStore
) -> None:
    """Found in review: the intent stayed in memory, the next write stored it, and the same SMS
    sent again later in the try was refused as "outcome unknown" although nothing went out."""
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 5})
    saves = {"n": 0}
    original = MemoryStore.save

    def first_save_fails(self: MemoryStore, key: str, value: dict, *, description: str) -> None:  # type: ignore[type-arg]
        saves["n"] += 1
        if saves["n"] == 1:
            raise OSError("metadata DB busy")
        original(self, key, value, description=description)

    hook = OctopodsHook()
    with mock.patch.object(MemoryStore, "save", first_save_fails), pytest.raises(OSError, match="busy"):
        hook.send_sms("+15551234567", "Hi")
    assert requests_mock.call_count == 0
    assert hook.send_sms("+15551234567", "Hi").message_id == 5  # user code tried again: sent once
    assert requests_mock.call_count == 1


def test_a_failed_intent_write_leaves_what_an_earlier_try_recorded() -> None:
    """Sending again an SMS of unknown outcome (``resend_unknown``) whose new intent cannot be
    written: the earlier try's intent stays, it is not dropped as never sent."""
    store = MemoryStore()
    SendRecord(KEY, try_number=1, store=store).begin([("a#1", REQUEST)])
    failing = FailingStore(store.values, saves=lambda key: True)
    record = SendRecord(KEY, try_number=2, store=failing)
    with pytest.raises(OSError, match="killed"):
        record.begin([("a#1", REQUEST), ("b#1", REQUEST)])
    record.store = store
    record.accept([])  # a later write of this try
    again = SendRecord(KEY, try_number=3, store=store)
    assert again.prior("a#1").try_number == 1  # type: ignore[union-attr]
    assert again.prior("b#1") is None
