"""Campaigns: one SMS per recipient across task instances, expiry, and what the store holds."""

from __future__ import annotations

import json
from typing import Any

import pytest

from airflow_provider_octopods.api.models import SendRequest, SendResult
from airflow_provider_octopods.api.segments import Encoding
from airflow_provider_octopods.send_record import Action, MemoryStore, SendGuard, TaskKey
from airflow_provider_octopods.send_record.campaign import Campaign, campaign_key

PHONE, OTHER = "+447700900123", "+447700900456"


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0
        self.slept = 0.0

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept += seconds


def guard(store: MemoryStore, run_id: str, clock: Clock, *, try_number: int = 1, ttl: float = 3600) -> SendGuard:
    g = SendGuard(TaskKey("dag", run_id, "remind"), try_number=try_number, store=store)
    g.campaign = Campaign("spring", g.key, g.try_number, store=store, ttl=ttl, clock=clock, sleep=clock.sleep)
    return g


def send(g: SendGuard, phone: str, body: str, message_id: int | None = None) -> Action:
    """Decide the send; if it may go, record its intent, and its result when ``message_id`` is given."""
    request = SendRequest(phone, body)
    verdict = g.decide(g.slot(request, 1), request)
    if verdict.action is Action.SEND:
        g.begin([(verdict.slot, request)], named_by_content=True)
        if message_id is not None:
            g.settle([(verdict.slot, SendResult("req", message_id, phone, 1, Encoding.GSM7))], ())
    return verdict.action


def test_an_accepted_recipient_is_not_sent_again_by_another_run_whatever_the_text() -> None:
    store, clock = MemoryStore(), Clock()
    first = guard(store, "run-1", clock)
    assert send(first, PHONE, "Hi Tom", message_id=11) is Action.SEND
    second = guard(store, "run-2", clock)
    request = SendRequest(PHONE, "A different text")
    verdict = second.decide(second.slot(request, 1), request)
    assert verdict.action is Action.ACCEPTED_EARLIER
    assert verdict.prior is not None
    assert verdict.prior.message_id == 11
    assert verdict.prior.by == "DAG dag, run run-1, task remind"
    assert send(second, OTHER, "Hi Ann") is Action.SEND
    assert clock.slept > 0  # each writer waits, then reads its registration back


def test_an_intent_without_a_result_is_unknown_to_later_runs_and_a_withdrawn_one_is_not() -> None:
    store, clock = MemoryStore(), Clock()
    killed = guard(store, "run-1", clock)
    assert send(killed, PHONE, "Hi Tom") is Action.SEND  # no answer recorded: the worker died
    withdrawn = guard(store, "run-2", clock)
    request = SendRequest(OTHER, "Hi Ann")
    slot = withdrawn.slot(request, 1)
    withdrawn.begin([(slot, request)], named_by_content=True)
    withdrawn.settle((), [slot])  # provably not sent
    later = guard(store, "run-3", clock)
    assert send(later, PHONE, "Hi Tom") is Action.UNKNOWN
    assert send(later, OTHER, "Hi Ann") is Action.SEND
    request = SendRequest(PHONE, "Hi Tom")
    assert later.decide(later.slot(request, 1), request, resend_unknown=True).action is Action.SEND


def test_without_a_campaign_another_run_sends_again() -> None:
    store, clock = MemoryStore(), Clock()
    assert send(guard(store, "run-1", clock), PHONE, "Hi Tom", message_id=11) is Action.SEND
    plain = SendGuard(TaskKey("dag", "run-2", "remind"), store=store)
    assert send(plain, PHONE, "Hi Tom") is Action.SEND


def test_an_expired_campaign_is_deleted_and_starts_afresh() -> None:
    store, clock = MemoryStore(), Clock()
    first = guard(store, "run-1", clock, ttl=60)
    assert send(first, PHONE, "Hi Tom", message_id=11) is Action.SEND
    assert first.campaign is not None
    old_log = f"{campaign_key('spring')}_w{first.campaign.writer}"
    assert old_log in store.values
    head = store.values[campaign_key("spring")]
    assert head["expires"] == int(clock.now + 60)
    clock.now += 30
    assert send(guard(store, "run-2", clock, ttl=60), PHONE, "Hi Tom") is Action.ACCEPTED_EARLIER
    clock.now += 61  # 61 s after the last run that used it
    fresh = guard(store, "run-3", clock, ttl=60)
    assert send(fresh, PHONE, "Hi Tom", message_id=12) is Action.SEND
    writers = store.values[campaign_key("spring")]["writers"]
    assert writers == [fresh.campaign.writer]  # type: ignore[union-attr]
    assert not [k for k in store.values if k.startswith(old_log)]


def test_a_registration_lost_to_a_concurrent_writer_is_made_again() -> None:
    store, clock = MemoryStore(), Clock()
    g = guard(store, "run-1", clock)
    other = guard(store, "run-2", clock)
    assert other.campaign is not None
    campaign = g.campaign
    assert campaign is not None
    overwritten: list[bool] = []

    def sleep(seconds: float) -> None:  # another writer overwrites the head while this one waits
        if not overwritten:
            overwritten.append(True)
            store.save(
                campaign.key,
                {
                    "campaign": "spring",
                    "expires": int(clock.now + 3600),
                    "ttl": 3600,
                    "writers": [other.campaign.writer],
                },  # type: ignore[union-attr]
                description="",
            )

    campaign._sleep = sleep
    campaign.open()
    assert store.values[campaign.key]["writers"] == [other.campaign.writer, campaign.writer]  # type: ignore[union-attr]


def test_the_campaign_stores_no_number_and_no_text() -> None:
    store, clock = MemoryStore(), Clock()
    g = guard(store, "run-1", clock)
    send(g, PHONE, "Hi Tom, your secret appointment", message_id=11)
    stored = json.dumps(store.values)
    for secret in (PHONE, PHONE[1:], PHONE[-6:], "Tom", "secret"):
        assert secret not in stored
    campaign_parts: dict[str, Any] = {k: v for k, v in store.values.items() if k.startswith(campaign_key("spring"))}
    assert campaign_parts[campaign_key("spring")]["campaign"] == "spring"


def test_the_same_task_instance_run_again_under_its_old_run_id_is_a_new_writer() -> None:
    """``airflow dags test DAG DATE`` twice: Airflow recreates the same run id, tries from 1, and
    the first run's success deleted its own record; the campaign still knows."""
    store, clock = MemoryStore(), Clock()
    first = guard(store, "manual__2026-12-07", clock)
    assert send(first, PHONE, "Hi Tom", message_id=11) is Action.SEND
    first.clear()  # the task instance succeeded
    again = guard(store, "manual__2026-12-07", clock)
    assert send(again, PHONE, "Hi Tom") is Action.ACCEPTED_EARLIER


def test_another_run_of_the_same_task_stops_the_one_still_sending_and_another_task_does_not() -> None:
    from airflow_provider_octopods.api.errors import OctopodsSupersededError

    store, clock = MemoryStore(), Clock()
    zombie = guard(store, "run-1", clock)
    assert send(zombie, PHONE, "Hi Tom", message_id=11) is Action.SEND
    other_task = SendGuard(TaskKey("dag", "run-9", "other_task"), store=store)
    other_task.campaign = Campaign("spring", other_task.key, 1, store=store, clock=clock, sleep=clock.sleep)
    assert send(other_task, "+447700900777", "Hi") is Action.SEND
    assert send(zombie, "+447700900888", "Hi", message_id=12) is Action.SEND  # another task: not a reason to stop
    retriggered = guard(store, "run-2", clock)
    assert send(retriggered, PHONE, "Hi Tom") is Action.ACCEPTED_EARLIER
    request = SendRequest(OTHER, "Hi Ann")
    with pytest.raises(OctopodsSupersededError, match="another run of this task started sending campaign 'spring'"):
        zombie.begin([(zombie.slot(request, 1), request)], named_by_content=True)
    assert send(guard(store, "run-3", clock), OTHER, "Hi Ann") is Action.SEND  # the intent was withdrawn


def test_a_lost_registration_or_a_deleted_campaign_is_repaired_at_the_next_write_of_intents() -> None:
    store, clock = MemoryStore(), Clock()
    g = guard(store, "run-1", clock, ttl=3600)
    assert send(g, PHONE, "Hi Tom", message_id=11) is Action.SEND
    assert g.campaign is not None
    for key in [k for k in store.values if k.startswith(campaign_key("spring"))]:
        del store.values[key]  # swept as expired, or lost to a concurrent registration
    assert send(g, OTHER, "Hi Ann", message_id=12) is Action.SEND
    assert g.campaign.writer in store.values[campaign_key("spring")]["writers"]
    later = guard(store, "run-2", clock)
    assert send(later, OTHER, "Hi Ann") is Action.ACCEPTED_EARLIER
    assert send(later, PHONE, "Hi Tom") is Action.ACCEPTED_EARLIER  # the whole log was written again


def test_a_campaign_in_use_does_not_expire() -> None:
    store, clock = MemoryStore(), Clock()
    g = guard(store, "run-1", clock, ttl=60)
    assert send(g, PHONE, "Hi Tom", message_id=11) is Action.SEND
    for n in range(5):  # a run longer than the ttl, writing all along
        clock.now += 40
        assert send(g, f"+44770090100{n}", "Hi", message_id=20 + n) is Action.SEND
    assert store.values[campaign_key("spring")]["expires"] > clock.now
    assert send(guard(store, "run-2", clock, ttl=60), PHONE, "Hi Tom") is Action.ACCEPTED_EARLIER


def test_an_unreadable_part_makes_its_recipients_unknown_and_an_unreadable_head_sends_nothing() -> None:
    from airflow_provider_octopods.api.errors import OctopodsConfigurationError
    from airflow_provider_octopods.send_record import UNREADABLE

    store, clock = MemoryStore(), Clock()
    first = guard(store, "run-1", clock)
    assert send(first, PHONE, "Hi Tom", message_id=11) is Action.SEND
    assert first.campaign is not None
    store.values[f"{campaign_key('spring')}_w{first.campaign.writer}"] = {UNREADABLE: True}
    assert send(guard(store, "run-2", clock), OTHER, "Hi Ann") is Action.UNKNOWN
    store.values[campaign_key("spring")] = {UNREADABLE: True}
    with pytest.raises(OctopodsConfigurationError, match="the record of campaign 'spring' cannot be read"):
        send(guard(store, "run-3", clock), OTHER, "Hi Ann")


def test_results_whose_campaign_write_failed_are_written_by_the_next_write() -> None:
    store, clock = MemoryStore(), Clock()
    g = guard(store, "run-1", clock)
    request = SendRequest(PHONE, "Hi Tom")
    slot = g.slot(request, 1)
    g.begin([(slot, request)], named_by_content=True)
    failing = {"on": True}
    save = store.save

    def flaky(key: str, value: dict[str, Any], *, description: str) -> None:
        if failing["on"] and "_w" in key:
            raise OSError("database is locked")
        save(key, value, description=description)

    store.save = flaky  # type: ignore[method-assign]
    with pytest.raises(OSError, match="locked"):
        g.settle([(slot, SendResult("req", 11, PHONE, 1, Encoding.GSM7))], ())
    failing["on"] = False
    g.settle((), ())  # the sender's next flush
    assert send(guard(store, "run-2", clock), PHONE, "Hi Tom") is Action.ACCEPTED_EARLIER
