"""Campaigns: one SMS per recipient across task instances, expiry, and what the store holds."""

from __future__ import annotations

import json
from typing import Any

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
