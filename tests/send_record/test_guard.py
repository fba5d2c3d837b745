"""The guard's decisions from every try's log, its writes, and tries that overlap."""

from __future__ import annotations

import logging
from typing import Any
from unittest import mock

import pytest

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.models import Encoding, SendRequest, SendResult
from airflow_provider_octopods.send_record import (
    ACCEPTED,
    INTENT,
    OPERATOR_SLOT,
    UNREADABLE,
    VARIABLE_PREFIX,
    Action,
    MemoryStore,
    Prior,
    SendGuard,
    TaskKey,
    log,
)
from airflow_provider_octopods.send_record.log import SLOTS
from tests.send_record.conftest import KEY

REQUEST = build_send_request("+15551234567", "See you at 10:00")
OTHER = build_send_request("+447700900123", "See you at 10:00")
LOG = logging.getLogger(__name__)


def accepted(message_id: int, request: SendRequest = REQUEST, request_id: str | None = "r") -> SendResult:
    return SendResult(request_id, message_id, request.phone, 1, Encoding.GSM7)


def guard(try_number: int, store: Any) -> SendGuard:
    return SendGuard(KEY, try_number=try_number, store=store)


def test_the_record_lifecycle_and_one_write_per_chunk() -> None:
    store = MemoryStore()
    first = guard(1, store)
    requests = [build_send_request(f"+1555123{n:04d}", "Hi") for n in range(200)]
    slots = [first.next_slot(r) for r in requests]
    first.begin(zip(slots, requests, strict=True))
    assert store.writes == 2  # the try's head, written before it reads anything, then the intents
    first.settle(((slot, accepted(n, r)) for n, (slot, r) in enumerate(zip(slots, requests, strict=True))), ())
    assert store.writes == 3
    later = guard(2, store)
    priors = [later.prior(later.next_slot(r)) for r in requests]
    assert all(p is not None and p.accepted and p.try_number == 1 for p in priors)
    assert [p.message_id for p in priors if p] == list(range(200))
    later.clear()
    assert store.values == {}


def test_the_record_holds_no_phone_number_masked_or_not_nor_text() -> None:
    store = MemoryStore()
    record = guard(1, store)
    slot = record.next_slot(REQUEST)
    record.begin([(slot, REQUEST)])
    record.settle([(slot, accepted(9))], ())
    operator = guard(2, store)
    operator.begin([(OPERATOR_SLOT, OTHER)])  # a slot not named by its content keeps a hash of it
    stored = str(store.values)
    assert "See you" not in stored
    for phone in (REQUEST.phone, OTHER.phone):
        assert phone[1:] not in stored
        assert phone[-7:] not in stored
    assert "*" not in stored  # no masked number either


def test_each_entry_is_a_short_list() -> None:
    store = MemoryStore()
    record = guard(1, store)
    slot = record.next_slot(REQUEST)
    record.begin([(slot, REQUEST)])
    assert store.values[f"{KEY.log_key(1)}_j1"][SLOTS] == {slot: [INTENT, mock.ANY]}
    record.settle([(slot, SendResult("req-1", 9, REQUEST.phone, 1, Encoding.GSM7, channel_message_id="wa-1"))], ())
    assert store.values[f"{KEY.log_key(1)}_j2"][SLOTS][slot][2:] == [9, "req-1", "wa-1"]


def test_nothing_recorded_sends() -> None:
    verdict = guard(2, MemoryStore()).decide("a#1", REQUEST)
    assert (verdict.slot, verdict.action, verdict.prior, verdict.changed) == ("a#1", Action.SEND, None, False)


def test_accepted_earlier_gives_back_the_result() -> None:
    store = MemoryStore()
    first = guard(1, store)
    slot = first.next_slot(REQUEST)
    first.begin([(slot, REQUEST)])
    first.settle([(slot, SendResult("req-1", 41, REQUEST.phone, 1, Encoding.GSM7, channel_message_id="wa-1"))], ())
    verdict = guard(2, store).decide(slot, REQUEST)
    assert verdict.action is Action.ACCEPTED_EARLIER
    assert verdict.prior is not None
    assert (verdict.prior.try_number, verdict.prior.message_id) == (1, 41)
    result = verdict.prior.result(REQUEST)
    assert (result.message_id, result.request_id, result.channel_message_id, result.phone) == (
        41,
        "req-1",
        "wa-1",
        REQUEST.phone,
    )
    assert (result.segments, result.encoding) == (REQUEST.segment_info.segments, REQUEST.segment_info.encoding)


def test_an_intent_without_a_result_is_unknown_unless_resend_unknown() -> None:
    store = MemoryStore()
    first = guard(1, store)
    slot = first.next_slot(REQUEST)
    first.begin([(slot, REQUEST)])
    later = guard(2, store)
    refused = later.decide(slot, REQUEST)
    assert refused.action is Action.UNKNOWN
    assert refused.prior == Prior(state=INTENT, try_number=1)
    again = later.decide(slot, REQUEST, resend_unknown=True)
    assert (again.action, again.prior, again.changed) == (Action.SEND, refused.prior, False)


def test_settle_records_results_and_drops_the_intents_of_sends_that_did_not_go_out() -> None:
    store = MemoryStore()
    first = guard(1, store)
    first.begin([("a#1", REQUEST), ("b#1", REQUEST)])
    first.settle([("a#1", accepted(1))], ["b#1"])
    assert first.states() == {"a#1": ACCEPTED}
    assert guard(2, store).prior("b#1") is None


def test_repeats_in_one_try_get_their_own_slots_once_the_earlier_one_is_accepted() -> None:
    record = guard(1, MemoryStore())
    first = record.next_slot(REQUEST)
    assert first == record.slot(REQUEST, 1)
    record.begin([(first, REQUEST)])
    assert record.next_slot(REQUEST) == first  # still in doubt: the repeat is refused, not guessed
    record.settle((), [first])
    assert record.next_slot(REQUEST) == first  # provably not sent: a user's own retry sends it once
    record.begin([(first, REQUEST)])
    record.settle([(first, accepted(1))], ())
    second = record.next_slot(REQUEST)
    assert second == record.slot(REQUEST, 2)
    assert second.endswith("#2")
    assert record.next_slot(OTHER).endswith("#1")  # counted per recipient and text


def test_a_retried_loop_lines_up_with_the_earlier_try() -> None:
    store = MemoryStore()
    first = guard(1, store)
    for n in (1, 2):
        slot = first.next_slot(REQUEST)
        first.begin([(slot, REQUEST)])
        first.settle([(slot, accepted(n))], ())
    later = guard(2, store)
    verdicts = [later.decide(later.next_slot(REQUEST), REQUEST) for _ in range(3)]
    assert [v.action for v in verdicts] == [Action.ACCEPTED_EARLIER, Action.ACCEPTED_EARLIER, Action.SEND]
    assert [v.prior.message_id for v in verdicts[:2]] == [1, 2]


def test_slot_names_are_keyed_hashes_the_same_for_every_try_of_a_task_instance() -> None:
    store = MemoryStore()
    first = guard(1, store)
    content = first.content(REQUEST)
    assert len(content) == 24
    assert int(content, 16) >= 0
    assert content == guard(2, MemoryStore()).content(REQUEST)  # nothing random: no salt in the record
    assert content != first.content(OTHER)
    assert content != first.content(build_send_request(REQUEST.phone, "See you at 11:00"))
    other_task = SendGuard(TaskKey(KEY.dag_id, KEY.run_id, "other", KEY.map_index), store=store)
    assert content != other_task.content(REQUEST)  # keyed by the task instance
    slot = first.next_slot(REQUEST)
    first.begin([(slot, REQUEST)])
    assert guard(2, store).next_slot(REQUEST) == slot


def test_keys_differ_by_task_instance_and_each_try_has_its_own_log() -> None:
    keys = {
        KEY.store_key,
        TaskKey("reminders", "scheduled__2026-11-25", "send_all", 4).store_key,
        TaskKey("reminders", "scheduled__2026-11-26", "send_all", 3).store_key,
        TaskKey("reminders", "scheduled__2026-11-25", "other", 3).store_key,
    }
    assert len(keys) == 4
    assert all(k.startswith(VARIABLE_PREFIX) and len(k) < 64 for k in keys)
    assert [KEY.log_key(n) for n in (1, 12)] == [f"{KEY.store_key}_t1", f"{KEY.store_key}_t12"]
    store = MemoryStore()
    guard(1, store).begin([("a#1", REQUEST)])
    guard(2, store).begin([("b#1", REQUEST)])
    assert {k for k in store.values if "_j" not in k} == {KEY.log_key(1), KEY.log_key(2)}
    assert store.values[KEY.log_key(2)]["try"] == 2


def test_task_key_of_a_task_instance() -> None:
    class TaskInstance:
        dag_id, run_id, task_id = "reminders", "scheduled__2026-11-25", "send_all"

    assert TaskKey.of(TaskInstance()) == TaskKey("reminders", "scheduled__2026-11-25", "send_all", -1)
    mapped = TaskInstance()
    mapped.map_index = 3  # type: ignore[attr-defined]
    assert TaskKey.of(mapped) == KEY


def test_a_changed_content_in_a_slot_the_user_named_is_a_new_send() -> None:
    store = MemoryStore()
    first = guard(1, store)
    first.begin([(OPERATOR_SLOT, REQUEST)])
    first.settle([(OPERATOR_SLOT, accepted(1))], ())
    later = guard(2, store)
    same = later.decide(OPERATOR_SLOT, REQUEST)
    assert same.action is Action.ACCEPTED_EARLIER
    assert same.prior.content == first.content(REQUEST)
    changed = later.decide(OPERATOR_SLOT, OTHER)  # e.g. the upstream data was fixed, then cleared
    assert (changed.action, changed.changed, changed.prior.message_id) == (Action.SEND, True, 1)


def test_a_changed_content_of_unknown_outcome_is_a_new_send_too() -> None:
    store = MemoryStore()
    guard(1, store).begin([(OPERATOR_SLOT, REQUEST)])
    later = guard(2, store)
    assert later.decide(OPERATOR_SLOT, REQUEST).action is Action.UNKNOWN
    assert later.decide(OPERATOR_SLOT, OTHER).action is Action.SEND


def test_a_slot_of_the_users_that_looks_like_a_content_hash_keeps_its_content() -> None:
    """Only a batch vouches that its slots are named by their content (``named_by_content``)."""
    store = MemoryStore()
    slot = "64b7f0c2a9e1d3f4b5a6c7d8#1"  # an id of the user's: 24 hex digits and #1
    first = guard(1, store)
    first.begin([(slot, REQUEST)])
    first.settle([(slot, accepted(1))], ())
    later = guard(2, store)
    assert later.decide(slot, REQUEST).action is Action.ACCEPTED_EARLIER
    assert later.decide(slot, OTHER).changed


def test_slots_named_by_content_store_no_copy_of_it() -> None:
    store = MemoryStore()
    record = guard(1, store)
    slot = record.slot(REQUEST, 1)
    record.begin([(slot, REQUEST), ("user-slot", REQUEST)], named_by_content=True)
    record.begin([("user-slot-2", REQUEST)])
    stored = store.values[f"{KEY.log_key(1)}_j1"][SLOTS]
    assert len(stored[slot]) == len(stored["user-slot"]) == 2  # state and time
    assert store.values[f"{KEY.log_key(1)}_j2"][SLOTS]["user-slot-2"][-1] == record.content(REQUEST)
    record.settle([("user-slot-2", accepted(5))], ())
    assert guard(2, store).prior("user-slot-2").content == record.content(REQUEST)  # kept with the result


def test_an_unreadable_record_makes_every_send_unknown() -> None:
    class Broken(MemoryStore):
        def load(self, key: str) -> dict[str, Any] | None:
            return {UNREADABLE: True, SLOTS: {}}

    record = guard(2, Broken())
    slot = record.next_slot(REQUEST)
    assert record.prior(slot) == Prior(state=UNREADABLE, try_number=None)
    assert record.decide(slot, REQUEST).action is Action.UNKNOWN
    assert record.decide(slot, REQUEST, resend_unknown=True).action is Action.SEND


def test_an_unreadable_earlier_log_makes_the_slots_it_may_hold_unreadable() -> None:
    store = MemoryStore()
    first = guard(1, store)
    first.begin([("a#1", REQUEST), ("b#1", REQUEST)])  # part 1
    first.settle([("a#1", accepted(1))], ())  # part 2
    first.settle([("b#1", accepted(2))], ())  # part 3
    store.values[f"{KEY.log_key(1)}_j2"] = {UNREADABLE: True}
    later = guard(2, store)
    assert later.prior("never-seen#1") == Prior(state=UNREADABLE, try_number=None)
    assert later.decide("never-seen#1", REQUEST).action is Action.UNKNOWN
    assert later.decide("never-seen#1", REQUEST, resend_unknown=True).action is Action.SEND
    assert later.prior("b#1").accepted  # a later part is still read
    assert later.prior("a#1").state == INTENT  # its result was in the part lost
    later.begin([("c#1", REQUEST)])
    assert later.prior("c#1").state == INTENT  # this try's own entries are known
    assert UNREADABLE not in later.states().values()


def test_earlier_logs_are_merged_and_an_accepted_send_wins() -> None:
    store = MemoryStore()
    first = guard(1, store)
    first.begin([("a#1", REQUEST), ("b#1", REQUEST)], named_by_content=True)  # a: unknown; b: accepted below
    first.settle([("b#1", accepted(2))], ())
    second = guard(2, store)
    assert second.decide("a#1", REQUEST, resend_unknown=True).action is Action.SEND
    second.begin([("a#1", REQUEST), ("b#1", REQUEST)], named_by_content=True)  # b: as a zombie might write
    second.settle([("a#1", accepted(1))], ())
    third = guard(3, store)
    assert (third.prior("a#1").state, third.prior("a#1").try_number) == (ACCEPTED, 2)
    assert (third.prior("b#1").state, third.prior("b#1").try_number) == (ACCEPTED, 1)
    assert third.states() == {"a#1": ACCEPTED, "b#1": ACCEPTED}


def test_a_later_try_that_sent_a_changed_content_is_what_counts() -> None:
    """Try 1 sent A in the operator's slot, try 2 sent B there (the data was fixed): a third try
    sending B must find try 2's send, not try 1's, whatever became of it."""
    for second_outcome in (ACCEPTED, INTENT):
        store = MemoryStore()
        first = guard(1, store)
        first.begin([(OPERATOR_SLOT, REQUEST)])
        first.settle([(OPERATOR_SLOT, accepted(1))], ())
        second = guard(2, store)
        assert second.decide(OPERATOR_SLOT, OTHER).changed
        second.begin([(OPERATOR_SLOT, OTHER)])
        if second_outcome == ACCEPTED:
            second.settle([(OPERATOR_SLOT, accepted(2, OTHER))], ())
        third = guard(3, store)
        verdict = third.decide(OPERATOR_SLOT, OTHER)
        expected = Action.ACCEPTED_EARLIER if second_outcome == ACCEPTED else Action.UNKNOWN
        assert (verdict.action, verdict.prior.try_number) == (expected, 2), second_outcome
        assert third.states() == {OPERATOR_SLOT: second_outcome}


def test_a_later_tries_head_makes_begin_withdraw_its_intents_and_stop() -> None:
    store = MemoryStore()
    first = guard(1, store)
    first.begin([("a#1", REQUEST)])
    first.settle([("a#1", accepted(1))], ())
    first.begin([("b#1", REQUEST)])
    second = guard(2, store)
    assert second.decide("b#1", REQUEST).action is Action.UNKNOWN  # announces its head, reads try 1's log
    with pytest.raises(errors.OctopodsSupersededError, match="try 2 of this task instance has started"):
        first.begin([("c#1", REQUEST)], accepted=[("b#1", accepted(2))])
    assert first.states() == {"a#1": ACCEPTED, "b#1": ACCEPTED}  # what was done stays recorded
    third = guard(3, store)
    assert third.prior("c#1") is None  # withdrawn: never sent
    assert third.prior("b#1").accepted


def test_the_head_of_the_try_after_next_stops_a_try_too() -> None:
    """Airflow may give up a try that never ran far enough to write its head."""
    store = MemoryStore()
    first = guard(1, store)
    first.states()
    guard(3, store).states()
    with pytest.raises(errors.OctopodsSupersededError, match="try 3"):
        first.begin([("a#1", REQUEST)])
    assert guard(4, store).prior("a#1") is None


def test_a_try_whose_intent_was_written_before_the_later_try_read_is_unknown_to_it() -> None:
    store = MemoryStore()
    first = guard(1, store)
    first.begin([("a#1", REQUEST)])  # no later try yet: the send may go out
    assert guard(2, store).decide("a#1", REQUEST).action is Action.UNKNOWN


def test_an_intent_write_that_fails_leaves_the_slots_as_before() -> None:
    """Sending again an SMS of unknown outcome (``resend_unknown``) whose new intent cannot be
    written: the earlier try's intent stays, it is not dropped as never sent; a send of this try
    whose intent was recorded stays in doubt, and one never recorded stays unrecorded."""

    class Unreliable(MemoryStore):
        broken = False

        def save(self, key: str, value: dict[str, Any], *, description: str) -> None:
            if self.broken:
                raise OSError("worker killed")
            super().save(key, value, description=description)

    store = Unreliable()
    guard(1, store).begin([("a#1", REQUEST)])
    record = guard(2, store)
    record.begin([("c#1", REQUEST)])
    store.broken = True
    with pytest.raises(OSError, match="killed"):
        record.begin([("a#1", REQUEST), ("b#1", REQUEST), ("c#1", REQUEST)])
    assert record.prior("a#1").try_number == 1
    assert record.prior("b#1") is None
    assert (record.prior("c#1").state, record.prior("c#1").try_number) == (INTENT, 2)
    store.broken = False
    record.settle([], ())  # a later write of this try
    again = guard(3, store)
    assert again.prior("a#1").try_number == 1
    assert again.prior("b#1") is None
    assert again.prior("c#1").try_number == 2


def test_a_guard_whose_read_failed_half_way_reads_again_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(log, "SHARD_SIZE", 10)
    store = MemoryStore()
    first = guard(1, store)
    requests = [build_send_request(f"+1500555{n:04d}", "Hello") for n in range(25)]
    slots = [(first.slot(r, 1), r) for r in requests]
    first.begin(slots, named_by_content=True)
    first.settle([(slot, accepted(7000 + i, r)) for i, (slot, r) in enumerate(slots)], ())
    monkeypatch.setattr(log, "JOURNAL_CHUNKS", 0)
    first.settle([], ())  # folded into shards

    class FlakyStore(MemoryStore):
        failed = False

        def load(self, key: str) -> dict[str, Any] | None:
            if key == f"{KEY.log_key(1)}_1" and not self.failed:
                self.failed = True
                raise OSError("metadata DB busy")
            return super().load(key)

    flaky = FlakyStore()
    flaky.values = store.values
    later = guard(2, flaky)
    with pytest.raises(OSError, match="busy"):
        later.prior(slots[15][0])
    assert later.prior(slots[15][0]).message_id == 7015  # not "never sent"


def test_clear_deletes_the_logs_of_this_try_and_every_earlier_one() -> None:
    store = MemoryStore()
    guard(1, store).begin([("a#1", REQUEST)])
    guard(2, store).states()  # a try that wrote only its head
    third = guard(3, store)
    third.begin([("b#1", REQUEST)])
    third.settle([("b#1", accepted(1))], ())
    assert len({k for k in store.values if "_j" not in k}) == 3
    third.clear()
    assert store.values == {}
    assert third.prior("a#1") is None  # the record is read again


def test_a_try_whose_record_was_deleted_under_it_stops_and_leaves_nothing_behind() -> None:
    """Try 1 stalls with intents written; try 2 sends everything and succeeds (the listener
    deletes the record); try 1 then goes on: it must not send what try 2 sent, nor leave parts."""
    store = MemoryStore()
    first = guard(1, store)
    first.begin([("a#1", REQUEST)])
    second = guard(2, store)
    assert second.decide("a#1", REQUEST).action is Action.UNKNOWN
    second.begin([("b#1", REQUEST)])
    second.settle([("b#1", accepted(2))], ())
    second.clear()
    assert store.values == {}
    with pytest.raises(errors.OctopodsSupersededError, match="send record was deleted"):
        first.begin([("b#1", REQUEST)], accepted=[("a#1", accepted(1))])
    first.settle([("a#1", accepted(1))], ())  # an answer in flight, recorded after the stop
    assert store.values == {}


def test_a_later_try_is_looked_for_up_to_the_last_try_the_task_may_reach() -> None:
    """Tries 2 and 3 failed before sending anything (they wrote no log); try 4 runs while try 1
    still does."""
    store = MemoryStore()
    first = SendGuard(KEY, try_number=1, store=store, last_try=5)
    first.begin([("a#1", REQUEST)])
    fourth = guard(4, store)
    assert fourth.decide("a#1", REQUEST).action is Action.UNKNOWN
    with pytest.raises(errors.OctopodsSupersededError, match="try 4 of this task instance has started"):
        first.begin([("b#1", REQUEST)])


def test_a_text_sent_again_after_a_changed_one_is_found_accepted() -> None:
    """The operator's slot held A (try 1), then B (try 2); try 3 sends A again: try 1 sent it."""
    store = MemoryStore()
    first = guard(1, store)
    first.begin([(OPERATOR_SLOT, REQUEST)])
    first.settle([(OPERATOR_SLOT, accepted(1))], ())
    second = guard(2, store)
    second.begin([(OPERATOR_SLOT, OTHER)])
    second.settle([(OPERATOR_SLOT, accepted(2, OTHER))], ())
    verdict = guard(3, store).decide(OPERATOR_SLOT, REQUEST)
    assert (verdict.action, verdict.prior.try_number) == (Action.ACCEPTED_EARLIER, 1)


def test_clear_deletes_a_record_that_holds_only_damage() -> None:
    store = MemoryStore()
    store.values[KEY.log_key(1)] = {UNREADABLE: True}
    record = guard(2, store)
    assert record.prior("a").state == UNREADABLE
    record.clear()
    assert store.values == {}


def test_send_once_sends_records_and_gives_back_an_earlier_result() -> None:
    store = MemoryStore()
    sent: list[SendRequest] = []

    def send(request: SendRequest) -> SendResult:
        sent.append(request)
        return accepted(len(sent), request)

    assert guard(1, store).send_once(REQUEST, send, LOG).message_id == 1
    assert guard(2, store).send_once(REQUEST, send, LOG).message_id == 1
    assert guard(3, store).send_once(REQUEST, send, LOG, slot="mine").message_id == 2
    assert len(sent) == 2


def test_send_once_keeps_the_intent_of_an_ambiguous_failure_and_drops_it_after_a_not_sent_one() -> None:
    store = MemoryStore()

    def busy(request: SendRequest) -> SendResult:
        raise errors.OctopodsSmsRejectedError("carrier busy")

    def lost(request: SendRequest) -> SendResult:
        raise errors.OctopodsUnknownOutcomeError("no answer")

    record = guard(1, store)
    with pytest.raises(errors.OctopodsSmsRejectedError):
        record.send_once(REQUEST, busy, LOG)
    assert record.states() == {}
    with pytest.raises(errors.OctopodsUnknownOutcomeError):
        record.send_once(REQUEST, lost, LOG)
    assert guard(2, store).prior(record.slot(REQUEST, 1)).state == INTENT


def test_send_once_of_a_superseded_try_fails_the_task_without_sending() -> None:
    from airflow.providers.common.compat.sdk import AirflowFailException

    store = MemoryStore()
    record = guard(1, store)
    record.states()
    guard(2, store).states()

    def send(request: SendRequest) -> SendResult:
        raise AssertionError("must not be sent")

    with pytest.raises(errors.OctopodsSupersededError) as err:
        record.send_once(REQUEST, send, LOG)
    assert isinstance(err.value, AirflowFailException)  # Airflow must not retry this try
    assert record.states() == {}
