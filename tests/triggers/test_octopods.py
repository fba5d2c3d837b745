"""The trigger on its own: serialization, and runs against the sandbox on 127.0.0.1."""

from __future__ import annotations

import asyncio
import importlib
import json
import time
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.triggers.octopods import OctopodsDeliveryTrigger
from tests.conftest import TEST_KEY

Sandbox = Callable[..., SandboxServer]


def make(**kw: Any) -> OctopodsDeliveryTrigger:
    args: dict[str, Any] = {
        "message_ids": [1],
        "octopods_conn_id": "octopods_default",
        "poll_interval": 0.1,
        "deadline": time.time() + 10,
    }
    return OctopodsDeliveryTrigger(**(args | kw))


def collect(trigger: OctopodsDeliveryTrigger) -> list[dict[str, Any]]:
    async def main() -> list[dict[str, Any]]:
        return [event.payload async for event in trigger.run()]

    return asyncio.run(main())


def test_serialize_round_trip_without_the_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", json.dumps({"conn_type": "octopods", "password": TEST_KEY}))
    trigger = make(
        message_ids=[4829174, "abc"],
        target_status="sent",
        accept_sent=True,
        min_delivered_ratio=0.9,
        fail_fast=False,
        max_in_flight=3,
        reads_per_second=25,
    )
    classpath, kwargs = trigger.serialize()
    json.dumps(kwargs)  # JSON-safe
    assert TEST_KEY not in json.dumps(kwargs)
    module, _, name = classpath.rpartition(".")
    again = getattr(importlib.import_module(module), name)(**kwargs)
    assert again.serialize() == (classpath, kwargs)
    assert isinstance(again.deadline, float)


def send(server: SandboxServer, phones: list[str]) -> list[int]:
    import requests

    ids = []
    for phone in phones:
        response = requests.post(
            server.url + "/api/v1/sms/messages",
            json={"destination_phone": phone, "body": "x"},
            headers={"X-Octopods-Auth": TEST_KEY},
            timeout=5,
        )
        ids.append(response.json()["message_id"])
    return ids


@pytest.fixture
def server(octopods_sandbox_factory: Sandbox, monkeypatch: pytest.MonkeyPatch) -> SandboxServer:
    sandbox = octopods_sandbox_factory(sent_after=0.05, final_after=0.25)
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", sandbox.connection_json(TEST_KEY))
    return sandbox


def test_one_event_with_every_outcome_and_no_repeat_reads(server: SandboxServer) -> None:
    ids = send(server, ["+15005550100", "+15005550101", "+15005550102", "+15005550100"])
    [event] = collect(make(message_ids=ids, fail_fast=False))
    assert event["outcome"] == "failure"
    assert event["delivered"] == [ids[0], ids[3]]
    assert set(event["failed"]) == {str(ids[1]), str(ids[2])}
    assert event["messages"][str(ids[2])]["status"] == "undelivered"
    assert TEST_KEY not in json.dumps(event)
    reads = [r.path.rsplit("/", 1)[1] for r in server.requests() if r.method == "GET"]
    for message_id in ids:
        assert reads.count(str(message_id)) <= 5  # final after 0.25 s, polled every 0.1 s, then never again
    last_read = max(i for i, r in enumerate(reads) if r == str(ids[0]))
    assert last_read < len(reads)


def test_deadline_reports_pending(server: SandboxServer) -> None:
    ids = send(server, ["+15005550103", "+15005550100"])  # the first stays "sent"
    started = time.monotonic()
    [event] = collect(make(message_ids=ids, deadline=time.time() + 0.6))
    assert time.monotonic() - started < 3
    assert event["outcome"] == "timeout"
    assert event["pending"] == [ids[0]]
    assert event["delivered"] == [ids[1]]


def test_unknown_id_fails_as_not_found(server: SandboxServer) -> None:
    [event] = collect(make(message_ids=[999]))
    assert event["outcome"] == "failure"
    assert "not found" in event["failed"]["999"]


def test_refused_key_ends_with_an_error_event(
    octopods_sandbox_factory: Sandbox, monkeypatch: pytest.MonkeyPatch
) -> None:
    locked = octopods_sandbox_factory(api_keys=frozenset({"the-right-key"}))
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", locked.connection_json("a-wrong-key"))
    [event] = collect(make(message_ids=[1, 2]))
    assert event["outcome"] == "error"
    assert "API key was refused" in event["message"]
    assert "a-wrong-key" not in json.dumps(event)


def test_missing_connection_is_an_error_event(monkeypatch: pytest.MonkeyPatch) -> None:
    [event] = collect(make(octopods_conn_id="octopods_missing"))
    assert event["outcome"] == "error"
    assert "'octopods_missing' was not found" in event["message"]


class CountingClient(AsyncOctopodsClient):
    """Adds latency to each request and records how many were in flight at once, and when each started."""

    def __init__(self, settings: Any, *, latency: float, **kwargs: Any) -> None:
        super().__init__(settings, **kwargs)
        self.latency = latency
        self.in_flight = 0
        self.peak = 0
        self.starts: list[float] = []

    async def _once(self, call: Any, booking: Any = None) -> Any:
        self.in_flight += 1
        self.peak = max(self.peak, self.in_flight)
        self.starts.append(time.monotonic())
        try:
            await asyncio.sleep(self.latency)
            return await super()._once(call, booking)
        finally:
            self.in_flight -= 1


def test_polling_is_spread_and_bounded(server: SandboxServer, monkeypatch: pytest.MonkeyPatch) -> None:
    ids = send(server, ["+15005550103"] * 40)  # never delivered: every id is read each round
    made: list[CountingClient] = []

    async def client(self: OctopodsHook, **kwargs: Any) -> AsyncOctopodsClient:
        made.append(CountingClient(await self.aget_settings(), latency=0.05, **kwargs))
        return made[-1]

    monkeypatch.setattr(OctopodsHook, "aget_async_client", client)
    [event] = collect(make(message_ids=ids, poll_interval=0.4, deadline=time.time() + 1.5, max_in_flight=3))
    [counting] = made
    assert event["outcome"] == "timeout"
    assert counting.peak <= 3
    first_round = counting.starts[:40]
    assert first_round[-1] - first_round[0] >= 0.3  # spread over the interval, not one burst
    assert 40 <= len(counting.starts) <= 40 * 4  # at most one read per id per interval


def test_the_client_comes_from_the_hook_with_the_triggers_limits(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = send(server, ["+15005550100"])
    asked: list[dict[str, Any]] = []
    real = OctopodsHook.aget_async_client

    async def recording(self: OctopodsHook, **kwargs: Any) -> AsyncOctopodsClient:
        asked.append({"conn_id": self.octopods_conn_id, **kwargs})
        return await real(self, **kwargs)

    monkeypatch.setattr(OctopodsHook, "aget_async_client", recording)
    [event] = collect(make(message_ids=ids, max_in_flight=4, reads_per_second=50))
    assert event["outcome"] == "success"
    [kwargs] = asked
    assert (kwargs["conn_id"], kwargs["max_connections"]) == ("octopods_default", 4)
    assert kwargs["rate_limiter"] is not None


def test_reads_per_second_bounds_the_reads_the_server_sees(server: SandboxServer) -> None:
    ids = send(server, ["+15005550103"] * 30)  # never delivered: every id is read each round
    [event] = collect(
        make(message_ids=ids, poll_interval=0.2, deadline=time.time() + 2.5, max_in_flight=10, reads_per_second=12)
    )
    assert event["outcome"] == "timeout"
    assert server.stats()["peak_per_second_by_endpoint"]["status"] <= 12
    assert server.stats()["status_reads"] >= 12  # it did read, at its pace


def test_an_unexpected_error_in_one_read_does_not_stop_that_message(
    server: SandboxServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    ids = send(server, ["+15005550100", "+15005550100"])
    real = AsyncOctopodsClient.get_status
    broken_once: list[object] = []

    async def flaky(self: AsyncOctopodsClient, message_id: Any) -> Any:
        if message_id == ids[0] and not broken_once:
            broken_once.append(message_id)
            raise RuntimeError("a bug while reading")
        return await real(self, message_id)

    monkeypatch.setattr(AsyncOctopodsClient, "get_status", flaky)
    [event] = collect(make(message_ids=ids))
    assert event["outcome"] == "success"
    assert sorted(event["delivered"]) == sorted(ids)
    assert event["read_errors"] == 1


def test_event_for_ten_thousand_ids_stays_under_one_megabyte(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow_provider_octopods.api.models import DeliveryStatus, MessageStatus

    async def answer(self: AsyncOctopodsClient, message_id: Any) -> MessageStatus:
        status = DeliveryStatus.FAILED if message_id % 10 == 0 else DeliveryStatus.DELIVERED
        return MessageStatus(message_id, status, status.value, failure_reason="not a valid mobile subscriber")

    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", json.dumps({"conn_type": "octopods", "password": TEST_KEY}))
    monkeypatch.setattr(AsyncOctopodsClient, "get_status", answer)
    ids = list(range(4_800_000, 4_810_000))
    [event] = collect(make(message_ids=ids, poll_interval=0.5, max_in_flight=200, fail_fast=False))
    assert (event["total"], len(event["delivered"]), len(event["failed"])) == (10_000, 9_000, 1_000)
    assert len(json.dumps(event)) < 1_000_000
