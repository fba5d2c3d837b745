from __future__ import annotations

import pytest

from airflow_provider_octopods.api.delivery import DeliveryTarget
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.models import MessageStatus
from airflow_provider_octopods.api.tracking import BatchPolicy, DeliveryBatch, message_ids


def st(value: str, **kw: object) -> MessageStatus:
    return MessageStatus.from_response({"status": value, **kw}, message_id=0)


@pytest.mark.parametrize(
    ("value", "ids"),
    [(42, [42]), ("42", [42]), ([1, "2", 1], [1, 2]), ("[1, 2, 3]", [1, 2, 3]), ("['a1', 'b2']", ["a1", "b2"])],
)
def test_message_ids(value: object, ids: list) -> None:
    assert message_ids(value) == ids


@pytest.mark.parametrize("value", [[], "[1, 2", [None], "None", [0]])
def test_bad_message_ids(value: object) -> None:
    with pytest.raises(OctopodsValidationError, match="message_id"):
        message_ids(value)


def test_all_delivered_is_success_and_terminal_ids_leave_pending() -> None:
    batch = DeliveryBatch([1, 2], BatchPolicy())
    batch.record(1, st("delivered"))
    assert batch.pending == [2]
    assert not batch.decided
    batch.record(2, st("DELIVERED"))
    assert batch.decided
    summary = batch.summary()
    assert summary["outcome"] == "success"
    assert summary["delivered"] == [1, 2]
    assert summary["messages"]["1"]["status"] == "delivered"


def test_report_at_end_waits_for_every_message() -> None:
    batch = DeliveryBatch([1, 2, 3], BatchPolicy(fail_fast=False))
    batch.record(1, st("failed", failure_reason="blocked"))
    assert not batch.decided
    batch.record(2, st("delivered"))
    batch.record(3, st("undelivered"))
    summary = batch.summary()
    assert summary["outcome"] == "failure"
    assert summary["failed"] == {"1": "blocked", "3": "undelivered"}
    assert "1/3 message(s) reached 'delivered' (needed 3)" in summary["message"]
    assert "1 (failed: blocked)" in summary["message"]


def test_fail_fast_stops_when_the_ratio_is_out_of_reach() -> None:
    batch = DeliveryBatch([1, 2, 3, 4], BatchPolicy(min_delivered_ratio=0.5))
    batch.record(1, st("failed"))
    batch.record(2, st("failed"))
    assert not batch.decided  # 2 of 4 may still arrive
    batch.record(3, st("failed"))
    assert batch.decided
    assert batch.summary()["outcome"] == "failure"


def test_ratio_success_with_some_failures() -> None:
    batch = DeliveryBatch([1, 2, 3, 4], BatchPolicy(min_delivered_ratio=0.75))
    for i, s in zip([1, 2, 3, 4], ["delivered", "read", "failed", "delivered"], strict=True):
        batch.record(i, st(s))
    assert batch.summary()["outcome"] == "success"


def test_timeout() -> None:
    batch = DeliveryBatch([1, 2], BatchPolicy(target=DeliveryTarget.of("delivered")))
    batch.record(1, st("delivered"))
    batch.record(2, st("sent"))
    summary = batch.summary(timed_out=True)
    assert summary["outcome"] == "timeout"
    assert summary["pending"] == [2]
    assert "still pending at the deadline: 2" in summary["message"]
    relaxed = DeliveryBatch([1, 2], BatchPolicy(min_delivered_ratio=0.5))
    relaxed.record(1, st("delivered"))
    assert relaxed.summary(timed_out=True)["outcome"] == "success"


def test_not_found_is_a_failure() -> None:
    batch = DeliveryBatch([9], BatchPolicy())
    batch.record_failure(9, "message 9 was not found")
    assert batch.decided
    assert batch.summary()["failed"] == {"9": "message 9 was not found"}


@pytest.mark.parametrize("ratio", [0, 1.5, "1", True])
def test_bad_ratio(ratio: object) -> None:
    with pytest.raises(OctopodsValidationError, match="min_delivered_ratio"):
        BatchPolicy(min_delivered_ratio=ratio)  # type: ignore[arg-type]
