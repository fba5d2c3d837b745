"""Every variant and fault of the sandbox, through the sync client (hook) and the async client."""

from __future__ import annotations

import asyncio
import json
import os
import random
import uuid
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.models import DeliveryStatus
from airflow_provider_octopods.api.retry import RetryPolicy
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.sandbox import SandboxServer
from airflow_provider_octopods.sandbox.faults import FaultPlan, FaultSpec

KEY = "hostile-test-key-1"
Factory = Callable[..., SandboxServer]


class SyncDriver:
    """Through OctopodsHook, reading an ``octopods`` connection as a task would."""

    def __init__(self, settings: ClientSettings, policy: RetryPolicy) -> None:
        conn_id = f"octopods_{uuid.uuid4().hex[:8]}"
        os.environ[f"AIRFLOW_CONN_{conn_id.upper()}"] = json.dumps(
            {
                "conn_type": "octopods",
                "host": settings.base_url,
                "password": settings.api_key,
                "extra": {"connect_timeout": settings.connect_timeout, "read_timeout": settings.read_timeout},
            }
        )
        self.hook = OctopodsHook(conn_id, retry_policy=policy)

    def send(self, phone: str, body: str) -> Any:
        return self.hook.send_sms(phone, body)

    def status(self, message_id: Any) -> Any:
        return self.hook.get_status(message_id)


class AsyncDriver:
    def __init__(self, settings: ClientSettings, policy: RetryPolicy) -> None:
        self.settings, self.policy = settings, policy

    def _run(self, call: Callable[[AsyncOctopodsClient], Any]) -> Any:
        async def main() -> Any:
            async with AsyncOctopodsClient(self.settings, retry_policy=self.policy) as client:
                return await call(client)

        return asyncio.run(main())

    def send(self, phone: str, body: str) -> Any:
        return self._run(lambda c: c.send(build_send_request(phone, body)))

    def status(self, message_id: Any) -> Any:
        return self._run(lambda c: c.get_status(message_id))


@pytest.fixture(params=["sync", "async"])
def driver(
    request: pytest.FixtureRequest, octopods_sandbox_factory: Factory
) -> Callable[..., tuple[Any, SandboxServer]]:
    def make(key: str = KEY, read_timeout: float = 2.0, **config: Any) -> tuple[Any, SandboxServer]:
        server = octopods_sandbox_factory(**({"sent_after": 0.0, "final_after": 0.0} | config))
        settings = ClientSettings(base_url=server.url, api_key=key, connect_timeout=1, read_timeout=read_timeout)
        policy = RetryPolicy(max_attempts=4, backoff=0.01, max_backoff=2.0)
        cls = SyncDriver if request.param == "sync" else AsyncDriver
        return cls(settings, policy), server

    return make


# Variants


def test_legacy_variant(driver: Callable[..., Any]) -> None:
    client, _ = driver(variant="legacy")
    result = client.send("+15551234567", "Hi")
    assert result.raw["phone_number"] == "15551234567"
    status = client.status(result.message_id)
    assert (status.status, status.raw_status) == (DeliveryStatus.DELIVERED, "DELIVERED")
    assert status.status_message
    assert status.last_updated


def test_current_variant_with_channel_message_id(driver: Callable[..., Any]) -> None:
    client, _ = driver(channel_message_id=True)
    result = client.send("+15551234567", "Hi")
    assert result.raw["phone_number"] == "+15551234567"
    assert result.channel_message_id.startswith("SM")
    status = client.status(result.message_id)
    assert status.delivered_at is not None
    assert status.failure_reason is None


def test_current_variant_without_plus(driver: Callable[..., Any]) -> None:
    client, _ = driver(plus_in_phone=False)
    result = client.send("+15551234567", "Hi")
    assert result.raw["phone_number"] == "15551234567"
    assert result.phone == "+15551234567"


def test_hubspot_variant(driver: Callable[..., Any]) -> None:
    client, server = driver(variant="hubspot")
    result = client.send("+15551234567", "Hi")
    assert result.message_id is None
    assert result.request_id
    assert len(server.messages()) == 1


def test_unknown_before_the_first_receipt(driver: Callable[..., Any]) -> None:
    client, _ = driver(unknown_for=5.0, sent_after=5.0, final_after=6.0)
    result = client.send("+15551234567", "Hi")
    assert client.status(result.message_id).status is DeliveryStatus.UNKNOWN


def test_unknown_id_and_other_channels_messages_are_not_found(driver: Callable[..., Any]) -> None:
    client, server = driver()
    with pytest.raises(errors.OctopodsNotFoundError):
        client.status(999)
    message_id = client.send("+15551234567", "Hi").message_id
    intruder = (SyncDriver if isinstance(client, SyncDriver) else AsyncDriver)(
        ClientSettings(base_url=server.url, api_key="another-channel-key"), RetryPolicy(max_attempts=1)
    )
    with pytest.raises(errors.OctopodsNotFoundError):
        intruder.status(message_id)


# Faults


def test_503_on_send_is_retried_and_succeeds(driver: Callable[..., Any]) -> None:
    client, server = driver(faults=("http_503:@1:send",))
    assert client.send("+15551234567", "Hi").message_id
    assert len(server.messages()) == 1
    assert [r.status for r in server.requests()] == [503, 201]


@pytest.mark.parametrize("fault", ["http_500", "http_502", "http_500_after", "http_502_after"])
def test_gateway_error_on_send_is_reported_with_its_status(driver: Callable[..., Any], fault: str) -> None:
    client, server = driver(faults=(f"{fault}:@1:send",))
    status = fault.split("_")[1]
    with pytest.raises(errors.OctopodsServerError, match=f"HTTP {status}") as err:
        client.send("+15551234567", "Hi")
    assert "Bad Gateway" in str(err.value) or "Internal Server Error" in str(err.value)
    assert "may or may not have been sent" in str(err.value)
    assert len(server.requests()) == 1
    assert len(server.messages()) == (1 if fault.endswith("_after") else 0)


@pytest.mark.parametrize("fault", ["http_500", "http_502", "http_503", "malformed", "reset_before", "reset_after"])
def test_status_reads_survive_every_fault(driver: Callable[..., Any], fault: str) -> None:
    client, server = driver(faults=(f"{fault}:@1,2:status",))
    message_id = client.send("+15551234567", "Hi").message_id
    assert client.status(message_id).status is DeliveryStatus.DELIVERED
    assert len([r for r in server.requests() if r.method == "GET"]) == 3


def test_malformed_send_answer_is_an_unknown_outcome(driver: Callable[..., Any]) -> None:
    client, server = driver(faults=("malformed:@1:send",))
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match="not the documented JSON"):
        client.send("+15551234567", "Hi")
    assert len(server.messages()) == 1


@pytest.mark.parametrize("fault", ["reset_after", "hang_after"])
def test_lost_answer_after_processing_is_reported_not_retried(driver: Callable[..., Any], fault: str) -> None:
    client, server = driver(faults=(f"{fault}:@1:send",), read_timeout=0.3, hang_seconds=3)
    with pytest.raises(errors.OctopodsUnknownOutcomeError, match="may or may not have been sent"):
        client.send("+15551234567", "Hi")
    assert len(server.messages()) == 1
    assert len(server.requests()) == 1  # never retried


def test_reset_before_processing_is_reported_too(driver: Callable[..., Any]) -> None:
    client, server = driver(faults=("reset_before:@1:send",))
    with pytest.raises(errors.OctopodsUnknownOutcomeError):
        client.send("+15551234567", "Hi")  # the client cannot tell it apart: it must not guess
    assert server.messages() == []


def test_rotated_key(driver: Callable[..., Any]) -> None:
    client, _ = driver(faults=("rotate_key:0",))
    with pytest.raises(errors.OctopodsDeprecatedKeyError):
        client.send("+15551234567", "Hi")


def test_latency_and_jitter_only_slow_down(driver: Callable[..., Any]) -> None:
    client, _ = driver(faults=("latency:0.05", "jitter:0.05"))
    assert client.send("+15551234567", "Hi").message_id


def test_rate_limit_answers_429_with_retry_after_and_the_client_waits(driver: Callable[..., Any]) -> None:
    client, server = driver(rate_limit=2)
    for n in range(4):
        client.send("+15551234567", f"m{n}")
    statuses = [r.status for r in server.requests()]
    assert 429 in statuses
    assert statuses.count(201) == 4
    assert server.stats()["peak_requests_per_second"] >= 3  # 2 admitted + 1 refused in the first second


def test_fault_specs_parse_and_schedules_are_reproducible() -> None:
    assert str(FaultSpec.parse("reset_after:0.05")) == "reset_after:0.05:all"
    assert FaultSpec.parse("http_503:@1,3:send").schedule == frozenset({1, 3})
    for bad in ("nope:0.1", "reset_after", "reset_after:2", "http_503:@0", "latency:-1", "http_500:0.1:admin"):
        with pytest.raises(ValueError, match="fault"):
            FaultSpec.parse(bad)
    specs = (FaultSpec.parse("reset_after:0.3"), FaultSpec.parse("malformed:0.3"))
    first = [FaultPlan(specs, seed=5).decide("send", 0) for _ in range(1)]
    plan_a, plan_b = FaultPlan(specs, seed=5), FaultPlan(specs, seed=5)
    assert [plan_a.decide("send", 0) for _ in range(50)] == [plan_b.decide("send", 0) for _ in range(50)]
    assert first


# Never lost, never twice


@pytest.mark.parametrize("seed", [1, 2])
def test_under_random_faults_nothing_is_lost_and_nothing_sent_twice(driver: Callable[..., Any], seed: int) -> None:
    faults = (
        "reset_before:0.08",
        "reset_after:0.08",
        "malformed:0.05",
        "http_502:0.05",
        "http_503:0.1",
        "hang_after:0.03",
    )
    client, server = driver(faults=faults, seed=seed, read_timeout=0.3, hang_seconds=1, rate_limit=400)
    rng = random.Random(seed)
    sent: dict[str, Any] = {}
    unknown: set[str] = set()
    failed: set[str] = set()
    reported: list[errors.OctopodsError] = []
    for n in range(120):
        body = f"message {n} {rng.random():.6f}"
        try:
            sent[body] = client.send("+15551234567", body).message_id
        except errors.OctopodsUnknownOutcomeError:
            unknown.add(body)
        except errors.OctopodsError as err:
            failed.add(body)
            reported.append(err)
    accepted = {m.body: m.message_id for m in server.messages()}
    assert server.duplicates() == 0  # the client's own retries never sent anything twice
    for body, message_id in accepted.items():
        assert body in sent or body in unknown, f"accepted but reported as not sent: {body}"
        if body in sent:
            assert sent[body] == message_id
    assert set(sent) <= set(accepted)
    assert not failed & set(accepted)
    # failures other than unknown outcomes are ones where nothing was processed
    assert all(decide(Operation.SEND, err).retry_task or err.http_status in (500, 502) for err in reported)
    assert unknown  # the faults did happen
    assert len(sent) > 60


def test_faults_follow_the_requests_the_rate_limit_lets_through(octopods_sandbox_factory: Factory) -> None:
    """So that a seed gives the same faults to the same admitted requests however many 429s the
    timing made (the fault soak relies on it)."""
    import time

    import requests

    from airflow_provider_octopods.api.protocol import AUTH_HEADER, MESSAGES_PATH

    server = octopods_sandbox_factory(rate_limit=1, faults=(FaultSpec.parse("http_503:@2:send"),))

    def post(n: int) -> int:
        payload = {"destination_phone": "+15551234567", "body": f"m{n}"}
        headers = {AUTH_HEADER: KEY}
        return requests.post(server.url + MESSAGES_PATH, json=payload, headers=headers, timeout=5).status_code

    assert [post(1), post(2)] == [201, 429]  # the second is over the limit: no fault drawn for it
    time.sleep(1.2)
    assert post(3) == 503  # the second request let through meets the fault scheduled for the 2nd
