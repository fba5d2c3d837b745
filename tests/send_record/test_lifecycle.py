"""The guard of the running task instance, as the hook uses it, and the record's deletion on success.

Requests go to requests-mock; records to a stand-in for Airflow Variables (real Airflow runs:
tests/system).
"""

from __future__ import annotations

import contextlib
import json
import threading
from typing import Any
from unittest import mock

import pytest
import requests_mock
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.models import SendResult
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.send_record import (
    ACCEPTED,
    OPERATOR_SLOT,
    MemoryStore,
    SendGuard,
    current_guard,
    guard_for,
    lifecycle,
    task_succeeded,
)
from tests.send_record.conftest import KEY, RunningTask, Variables

SEND_URL = "https://app.octopods.io/api/v1/sms/messages"


def created(*message_ids: int) -> list[dict[str, Any]]:
    return [{"status_code": 201, "json": {"request_id": "r", "message_id": n}} for n in message_ids]


def test_no_guard_outside_a_running_task() -> None:
    assert current_guard(MemoryStore()) is None


def test_every_caller_of_one_try_shares_a_guard_and_the_next_try_gets_its_own(running_task: RunningTask) -> None:
    first = current_guard()
    assert first is not None
    assert (first.key, first.try_number) == (KEY, 1)
    assert current_guard() is first
    assert guard_for(running_task.ti) is first
    memory = MemoryStore()
    elsewhere = current_guard(memory)
    assert elsewhere is not first
    assert elsewhere.store is memory
    running_task.new_try()
    second = current_guard()
    assert second is not None
    assert second.try_number == 2


def test_hook_loop_retried_skips_what_an_earlier_try_sent(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask
) -> None:
    requests_mock.post(SEND_URL, created(1, 2))
    hook = OctopodsHook()
    first = [hook.send_sms("+15551234567", "Hi").message_id, hook.send_sms("+15551234567", "Hi").message_id]
    assert first == [1, 2]  # the same text twice on purpose: sent twice
    running_task.new_try()
    again = [hook.send_sms("+15551234567", "Hi").message_id for _ in range(2)]
    assert again == [1, 2]
    assert requests_mock.call_count == 2


def test_not_sent_failure_forgets_the_intent_so_a_retry_sends(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask
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
    running_task.new_try()
    assert OctopodsHook().send_sms("+15551234567", "Hi").message_id == 5


def test_ambiguous_failure_keeps_the_intent_and_the_retry_refuses_to_guess(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask
) -> None:
    requests_mock.post(SEND_URL, status_code=502, text="<html>Bad gateway</html>")
    with pytest.raises(errors.OctopodsServerError) as err:
        OctopodsHook().send_sms("+15551234567", "Hi")
    assert isinstance(err.value, AirflowFailException)  # Airflow must not retry
    assert "may or may not have been sent" in str(err.value)
    running_task.new_try()
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match=r"try 1.*outcome is unknown.*resend_unknown=True") as (
        unknown
    ):
        OctopodsHook().send_sms("+15551234567", "Hi")
    assert isinstance(unknown.value, AirflowFailException)
    assert "5551234567" not in str(unknown.value)
    assert requests_mock.call_count == 1
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 8})
    assert OctopodsHook(resend_unknown=True).send_sms("+15551234567", "Hi").message_id == 8


def test_hook_without_record_always_sends(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask, variables: Variables
) -> None:
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 3})
    hook = OctopodsHook(send_record=False)
    assert hook.send_guard() is None
    hook.send_sms("+15551234567", "Hi")
    running_task.new_try()
    hook.send_sms("+15551234567", "Hi")
    assert requests_mock.call_count == 2
    assert variables.values == {}


def test_hook_outside_a_task_always_sends(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 3})
    store = MemoryStore()
    hook = OctopodsHook(record_store=store)
    hook.send_sms("+15551234567", "Hi")
    hook.send_sms("+15551234567", "Hi")
    assert requests_mock.call_count == 2
    assert store.values == {}


def test_hook_with_a_store_of_its_own(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask, variables: Variables
) -> None:
    requests_mock.post(SEND_URL, created(1, 2))
    store = MemoryStore()
    assert OctopodsHook(record_store=store).send_sms("+15551234567", "Hi").message_id == 1
    running_task.new_try()
    assert OctopodsHook(record_store=store).send_sms("+15551234567", "Hi").message_id == 1
    assert requests_mock.call_count == 1
    assert variables.values == {}
    assert {value["try"] for key, value in store.values.items() if "_j" not in key} == {1, 2}


def test_invalid_input_from_the_hook_fails_the_task_for_good(octopods_conn: str, running_task: RunningTask) -> None:
    with pytest.raises(errors.OctopodsValidationError, match="phone: ") as err:
        OctopodsHook().send_sms("+1555CALLNOW", "Hi")
    assert isinstance(err.value, AirflowFailException)
    assert isinstance(err.value, ValueError)
    assert err.value.field == "phone"


def test_operator_slot_with_changed_content_is_sent_as_a_new_message(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask
) -> None:
    requests_mock.post(SEND_URL, created(1, 2))
    hook = OctopodsHook()
    assert hook.send(build_send_request("+15551234567", "Hi"), slot=OPERATOR_SLOT).message_id == 1
    running_task.new_try()
    assert hook.send(build_send_request("+15551234567", "Hi"), slot=OPERATOR_SLOT).message_id == 1
    running_task.new_try()
    changed = build_send_request("+447700900123", "Hi")  # e.g. the upstream data was fixed, then cleared
    assert hook.send(changed, slot=OPERATOR_SLOT).message_id == 2
    running_task.new_try()  # e.g. the delivery wait timed out: the changed SMS is not sent again
    assert hook.send(changed, slot=OPERATOR_SLOT).message_id == 2
    assert requests_mock.call_count == 2


def test_a_slot_of_the_users_that_looks_like_a_content_hash_is_still_sent_once(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask
) -> None:
    """Only a batch vouches that its slots are named by their content: any other slot keeps the
    content it was sent with, however it looks (here an id of the user's, 24 hex digits and #1)."""
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 1})
    slot = "64b7f0c2a9e1d3f4b5a6c7d8#1"
    hook = OctopodsHook()
    assert hook.send(build_send_request("+15551234567", "Hi"), slot=slot).message_id == 1
    running_task.new_try()
    assert hook.send(build_send_request("+15551234567", "Hi"), slot=slot).message_id == 1
    assert requests_mock.call_count == 1


def test_user_retry_inside_one_try_sends_once_after_a_not_sent_failure(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask
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
    running_task.new_try()
    assert hook.send_sms("+15551234567", "Hi").message_id == 5  # an Airflow retry finds it
    assert requests_mock.call_count == 2


def test_threads_sending_the_same_sms_at_once_never_share_a_slot(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask
) -> None:
    """Found in review: two threads sending the same text to the same number could both take slot
    #1 (the second between the first's slot and its intent); a retry then found #1 accepted and
    sent the other one again. Now slot, check and intent are one step: the second one gets slot #2
    or, while the first is in flight, is refused."""
    requests_mock.post(SEND_URL, created(1, 2))
    both_have_a_slot, both_have_checked = threading.Barrier(2), threading.Barrier(2)
    original_prior = SendGuard.prior

    def prior(self: SendGuard, slot: str, **kwargs: Any) -> Any:
        # The window: each thread waits for the other to have taken its slot, then to have checked
        # it (without the lock both take #1 and find it free); with the lock the other one cannot
        # come this far before this send's intent is recorded, and the waits time out.
        with contextlib.suppress(threading.BrokenBarrierError):
            both_have_a_slot.wait(0.5)
        found = original_prior(self, slot, **kwargs)
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

    with mock.patch.object(SendGuard, "prior", prior):
        threads = [threading.Thread(target=send) for _ in range(2)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
    assert len(results) + len(refused) == 2
    running_task.new_try()
    guard = current_guard()
    assert guard is not None
    accepted_slots = [s for s in guard.states().values() if s == ACCEPTED]
    assert requests_mock.call_count == len(results) == len(accepted_slots)  # each result its own send and slot


def test_a_send_whose_intent_could_not_be_recorded_is_not_refused_later_in_the_try(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask, variables: Variables
) -> None:
    """Found in review: the intent stayed in memory, the next write stored it, and the same SMS
    sent again later in the try was refused as "outcome unknown" although nothing went out."""
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 5})
    original = variables.set
    failed: list[str] = []

    def first_intent_fails(key: str, value: str, description: str | None = None) -> None:
        if "intent" in value and not failed:
            failed.append(key)
            raise OSError("metadata DB busy")
        original(key, value, description)

    hook = OctopodsHook()
    with mock.patch.object(variables, "set", first_intent_fails), pytest.raises(OSError, match="busy"):
        hook.send_sms("+15551234567", "Hi")
    assert failed
    assert requests_mock.call_count == 0
    assert hook.send_sms("+15551234567", "Hi").message_id == 5  # user code tried again: sent once
    assert requests_mock.call_count == 1


def test_a_try_airflow_gave_up_sends_nothing_more_once_the_next_one_started(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask
) -> None:
    requests_mock.post(SEND_URL, created(1, 2))
    hook = OctopodsHook()
    assert hook.send_sms("+15551234567", "Hi").message_id == 1
    next_try = SendGuard(KEY, try_number=2)  # started elsewhere: it writes its head, then reads
    sent = {next_try.slot(build_send_request("+15551234567", "Hi"), 1): ACCEPTED}
    assert next_try.states() == sent
    with pytest.raises(errors.OctopodsSupersededError, match="try 2 of this task instance has started") as err:
        hook.send_sms("+15551234567", "Hello")
    assert isinstance(err.value, AirflowFailException)  # this try is over; Airflow's retry runs already
    assert requests_mock.call_count == 1
    assert SendGuard(KEY, try_number=3).states() == sent  # the withdrawn intent is not there


def test_listener_deletes_every_tries_log_of_a_succeeded_task_instance(
    octopods_conn: str, requests_mock: requests_mock.Mocker, running_task: RunningTask, variables: Variables
) -> None:
    requests_mock.post(SEND_URL, status_code=502, text="<html>Bad gateway</html>")
    with pytest.raises(errors.OctopodsServerError):
        OctopodsHook().send_sms("+15551234567", "Hi")
    running_task.new_try()
    requests_mock.post(SEND_URL, status_code=201, json={"message_id": 8})
    OctopodsHook(resend_unknown=True).send_sms("+15551234567", "Hi")
    heads = {key for key in variables.values if "_j" not in key}
    assert heads == {KEY.log_key(1), KEY.log_key(2)}
    from airflow_provider_octopods.listeners import on_task_instance_success

    on_task_instance_success(previous_state=None, task_instance=running_task.ti)
    assert variables.values == {}
    assert KEY not in lifecycle._ACTIVE


def test_listener_does_nothing_for_a_task_that_sent_nothing_here(variables: Variables) -> None:
    variables.values[KEY.log_key(1)] = json.dumps({"slots": {}})  # another worker's
    ti = mock.Mock(dag_id=KEY.dag_id, run_id=KEY.run_id, task_id=KEY.task_id, map_index=KEY.map_index)
    task_succeeded(ti)
    assert KEY.log_key(1) in variables.values
    assert not ti.get_ti_count.called


def test_a_success_airflow_refused_keeps_the_record_for_the_retry() -> None:
    """Found in review: Airflow 3 calls the success listener even when the API server refused the
    success (the task instance had been given up after lost heartbeats, and its retry may run)."""
    store = MemoryStore()
    ti = mock.Mock(dag_id=KEY.dag_id, run_id=KEY.run_id, task_id=KEY.task_id, map_index=KEY.map_index, try_number=1)
    guard = guard_for(ti, store)
    guard.begin([(guard.next_slot(build_send_request("+15551234567", "Hi")), build_send_request("+15551234567", "Hi"))])
    ti.get_ti_count.return_value = 0  # the metadata DB does not hold it as succeeded
    from airflow_provider_octopods.listeners import on_task_instance_success

    on_task_instance_success(previous_state=None, task_instance=ti)
    assert SendGuard(KEY, try_number=2, store=store).states() != {}
    assert ti.get_ti_count.call_args.kwargs == {
        "dag_id": KEY.dag_id,
        "map_index": KEY.map_index,
        "task_ids": [KEY.task_id],
        "run_ids": [KEY.run_id],
        "states": ["success"],
    }
    assert KEY not in lifecycle._ACTIVE


def test_a_record_that_cannot_be_deleted_never_fails_the_succeeded_task(caplog: pytest.LogCaptureFixture) -> None:
    class Undeletable(MemoryStore):
        def delete(self, key: str) -> None:
            raise OSError("metadata DB gone")

    store = Undeletable()
    ti = mock.Mock(dag_id=KEY.dag_id, run_id=KEY.run_id, task_id=KEY.task_id, map_index=KEY.map_index, try_number=1)
    ti.get_ti_count.return_value = 1
    guard_for(ti, store).states()
    task_succeeded(ti)
    assert "Could not delete the Octopods send record" in caplog.text
    assert KEY not in lifecycle._ACTIVE


def test_plugin_registers_the_listener() -> None:
    from airflow_provider_octopods import listeners
    from airflow_provider_octopods.plugins import OctopodsPlugin

    assert listeners in OctopodsPlugin.listeners
