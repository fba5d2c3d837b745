"""The async client follows exactly the sync client's retry rules (httpx MockTransport)."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable

import httpx
import pytest

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.retry import RetryPolicy
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.clients.aio import AsyncOctopodsClient

KEY = "async-Key-Secret-88"
REQUEST = build_send_request("+15551234567", "Hello")
SENT = httpx.Response(201, json={"request_id": "r", "message_id": 42, "phone_number": "+15551234567"})
DELIVERED = httpx.Response(200, json={"message_id": 42, "status": "delivered"})

Step = Callable[[httpx.Request], httpx.Response]


def scripted(*steps: httpx.Response | Exception) -> tuple[httpx.MockTransport, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        step = steps[min(len(seen), len(steps)) - 1]
        if isinstance(step, Exception):
            raise step
        return step

    return httpx.MockTransport(handler), seen


def run(coro_factory: Callable[[AsyncOctopodsClient], object], *steps: httpx.Response | Exception):
    transport, seen = scripted(*steps)
    sleeps: list[float] = []

    async def record(delay: float) -> None:
        sleeps.append(delay)

    async def main() -> object:
        async with AsyncOctopodsClient(
            ClientSettings(base_url="https://app.octopods.io", api_key=KEY),
            retry_policy=RetryPolicy(max_attempts=4, backoff=0.1, max_backoff=2.0),
            sleep=record,
            transport=transport,
        ) as client:
            return await coro_factory(client)  # type: ignore[misc]

    try:
        return asyncio.run(main()), seen, sleeps
    except errors.OctopodsError as err:
        return err, seen, sleeps


def test_send_request_is_the_documented_one() -> None:
    result, seen, _ = run(lambda c: c.send(REQUEST), SENT)
    assert result.message_id == 42
    [request] = seen
    assert request.method == "POST"
    assert request.url.path == "/api/v1/sms/messages"
    assert request.headers["X-Octopods-Auth"] == KEY
    assert request.headers["User-Agent"].startswith("airflow-provider-octopods/")
    assert json.loads(request.content) == {"destination_phone": "+15551234567", "body": "Hello"}


@pytest.mark.parametrize(
    "failure",
    [
        httpx.ReadTimeout("timed out"),
        httpx.RemoteProtocolError("Server disconnected without sending a response."),
        httpx.ReadError("connection reset"),
    ],
)
def test_send_with_unknown_outcome_is_not_retried(failure: Exception) -> None:
    error, seen, sleeps = run(lambda c: c.send(REQUEST), failure, SENT)
    assert isinstance(error, errors.OctopodsUnknownOutcomeError)
    assert len(seen) == 1
    assert sleeps == []
    assert KEY not in str(error)


@pytest.mark.parametrize(
    "first",
    [
        httpx.ConnectError("refused"),
        httpx.ConnectTimeout("connect timed out"),
        httpx.Response(503, text="busy"),
        httpx.Response(429, headers={"Retry-After": "1.25"}),
    ],
)
def test_send_retried_when_nothing_was_sent(first: httpx.Response | Exception) -> None:
    result, seen, sleeps = run(lambda c: c.send(REQUEST), first, SENT)
    assert result.message_id == 42
    assert len(seen) == 2
    if isinstance(first, httpx.Response) and first.status_code == 429:
        assert sleeps == [1.25]


def test_send_5xx_not_retried() -> None:
    error, seen, _ = run(lambda c: c.send(REQUEST), httpx.Response(502, text="<html>Bad Gateway</html>"), SENT)
    assert isinstance(error, errors.OctopodsServerError)
    assert "HTTP 502" in str(error)
    assert len(seen) == 1


def test_retry_after_http_date_is_honoured() -> None:
    _, _, sleeps = run(
        lambda c: c.send(REQUEST), httpx.Response(429, headers={"Retry-After": "Wed, 21 Oct 2015 07:28:00 GMT"}), SENT
    )
    assert sleeps == [0.0]  # a date in the past: retry at once


@pytest.mark.parametrize(
    "failure",
    [httpx.ReadTimeout("t"), httpx.RemoteProtocolError("x"), httpx.Response(500), httpx.Response(429)],
)
def test_status_reads_retried(failure: httpx.Response | Exception) -> None:
    result, seen, _ = run(lambda c: c.get_status(42), failure, failure, DELIVERED)
    assert result.status.value == "delivered"
    assert len(seen) == 3


def test_rate_limit_exhausted() -> None:
    error, seen, sleeps = run(lambda c: c.get_status(42), httpx.Response(429, headers={"Retry-After": "3"}))
    assert isinstance(error, errors.OctopodsRateLimitError)
    assert len(seen) == 4
    assert sleeps == [2.0, 2.0, 2.0]  # capped at max_backoff


def test_error_codes_mapped_like_the_sync_client() -> None:
    error, _, _ = run(
        lambda c: c.get_status(42), httpx.Response(400, json={"error_code": 1, "error": "Message not found."})
    )
    assert isinstance(error, errors.OctopodsNotFoundError)
    error, _, _ = run(lambda c: c.send(REQUEST), httpx.Response(400, json={"error_code": 5, "error": "rotated"}))
    assert isinstance(error, errors.OctopodsDeprecatedKeyError)
