"""The provider's counters, emitted through Airflow's own Stats."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
import requests_mock

from airflow_provider_octopods import metrics
from airflow_provider_octopods.api.errors import (
    OctopodsInvalidPhoneError,
    OctopodsServerError,
    OctopodsTransportError,
    OctopodsUnknownOutcomeError,
)
from airflow_provider_octopods.api.retry import RetryPolicy
from airflow_provider_octopods.hooks.octopods import OctopodsHook

SEND_URL = "https://app.octopods.io/api/v1/sms/messages"


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    from airflow.providers.common.compat.sdk import Stats

    seen: Counter[str] = Counter()

    def incr(stat: str, count: int = 1, *args: Any, **kwargs: Any) -> None:
        seen[stat] += count

    monkeypatch.setattr(Stats, "incr", incr)
    return seen


def test_sends_by_outcome_429s_and_status_reads_from_the_hook(
    octopods_conn: str, requests_mock: requests_mock.Mocker, counted: Counter[str]
) -> None:
    requests_mock.post(
        SEND_URL,
        [
            {"status_code": 429, "headers": {"Retry-After": "0"}, "json": {"error": "slow down"}},
            {"status_code": 201, "json": {"message_id": 7}},
            {"status_code": 400, "json": {"error_code": 3, "error": "bad phone"}},
        ],
    )
    requests_mock.get(f"{SEND_URL}/7", json={"message_id": 7, "status": "delivered"})
    hook = OctopodsHook(send_record=False, retry_policy=RetryPolicy(max_attempts=3, backoff=0, max_backoff=0))
    hook.send_sms("+15005550100", "Hi")
    with pytest.raises(OctopodsInvalidPhoneError):
        hook.send_sms("+15005550101", "Hi")
    hook.get_status(7)
    assert counted == {
        "octopods.api.rate_limited": 1,
        "octopods.sms.accepted": 1,
        "octopods.sms.failed": 1,
        "octopods.sms.failed.PHONE_INVALID": 1,
        "octopods.api.status_reads": 1,
    }
    assert not [name for name in counted if "1500555" in name]


@pytest.mark.parametrize(
    ("error", "key"),
    [
        (None, "accepted"),
        (OctopodsUnknownOutcomeError("lost"), "unknown"),
        (OctopodsServerError("boom", http_status=500), "unknown"),
        (OctopodsTransportError("refused"), "failed.OctopodsTransportError"),
        (OctopodsInvalidPhoneError("bad", error_code=3), "failed.PHONE_INVALID"),
        (RuntimeError("odd"), "unknown"),
    ],
)
def test_send_outcome_keys(error: BaseException | None, key: str) -> None:
    assert metrics.send_outcome(error) == key


def test_a_metric_that_cannot_be_emitted_is_dropped(monkeypatch: pytest.MonkeyPatch) -> None:
    from airflow.providers.common.compat.sdk import Stats

    def broken(*args: Any, **kwargs: Any) -> None:
        raise OSError("statsd is gone")

    monkeypatch.setattr(Stats, "incr", broken)
    metrics.incr("sms.accepted")  # no error
    metrics.sent({"accepted": 3, "failed.PHONE_INVALID": 1})


def test_batch_rows_by_outcome(counted: Counter[str]) -> None:
    metrics.batch_rows({"accepted": 5, "accepted_earlier": 2, "invalid": 1, "duplicate": 0, "unknown": 1})
    assert counted == {
        "octopods.batch.rows.accepted": 5,
        "octopods.batch.rows.accepted_earlier": 2,
        "octopods.batch.rows.invalid": 1,
        "octopods.batch.rows.unknown": 1,
    }
