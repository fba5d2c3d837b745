from __future__ import annotations

import json

import pytest

from airflow_provider_octopods.api.delivery import DeliveryTarget
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.models import MessageStatus
from airflow_provider_octopods.api.tracking import FULL_DETAILS_MAX_IDS, BatchPolicy, DeliveryBatch, message_ids


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


@pytest.mark.parametrize("fail_fast", [True, False])
def test_ratio_reached_decides_while_others_are_still_pending(fail_fast: bool) -> None:
    batch = DeliveryBatch([1, 2, 3, 4], BatchPolicy(min_delivered_ratio=0.5, fail_fast=fail_fast))
    batch.record(1, st("delivered"))
    batch.record(2, st("sent"))
    batch.record(4, st("failed", failure_reason="blocked"))
    assert not batch.decided
    batch.record(3, st("read"))
    assert batch.decided
    summary = batch.summary()
    assert summary["outcome"] == "success"
    assert summary["pending"] == [2]
    assert (summary["delivered_count"], summary["failed_count"], summary["pending_count"]) == (2, 1, 1)
    assert summary["message"].endswith("; not final: 2")
    assert summary["statuses"] == {"1": "delivered", "2": "sent", "3": "read", "4": "failed"}


def test_ratio_not_reached_is_not_decided_while_it_still_can_be() -> None:
    batch = DeliveryBatch([1, 2, 3], BatchPolicy(min_delivered_ratio=0.6))
    batch.record(1, st("delivered"))
    batch.record(2, st("sent"))
    assert not batch.decided
    assert batch.summary()["statuses"] == {"1": "delivered", "2": "sent", "3": "unknown"}


def test_full_details_only_for_small_batches() -> None:
    small = DeliveryBatch(list(range(1, FULL_DETAILS_MAX_IDS + 1)), BatchPolicy())
    small.record(1, st("delivered"))
    assert small.summary()["messages"]["1"]["status"] == "delivered"
    assert len(small.summary()["messages"]) == FULL_DETAILS_MAX_IDS
    large = DeliveryBatch(list(range(1, FULL_DETAILS_MAX_IDS + 2)), BatchPolicy())
    large.record(1, st("delivered"))
    large.record(2, st("failed", failure_reason="x" * 500))
    summary = large.summary()
    assert "messages" not in summary
    assert summary["statuses"]["1"] == "delivered"
    assert summary["statuses"][str(FULL_DETAILS_MAX_IDS + 1)] == "unknown"
    assert summary["failed"]["2"] == "x" * 197 + "..."
    assert large.details(2)["reason"] == "x" * 500


def test_summary_of_ten_thousand_ids_stays_under_one_megabyte(capsys: pytest.CaptureFixture[str]) -> None:
    ids = list(range(4_000_000, 4_010_000))
    batch = DeliveryBatch(ids, BatchPolicy(min_delivered_ratio=0.5, fail_fast=False))
    reason = "Carrier rejected the message: destination handset unreachable or blocked by the operator"
    for n, message_id in enumerate(ids):
        if n % 3 == 0:
            batch.record(message_id, st("delivered", status_message="Delivered to handset by the carrier"))
        elif n % 3 == 1:
            batch.record(message_id, st("failed", failure_reason=f"{reason} ({n})"))
        else:
            batch.record(message_id, st("sent", status_message="Accepted by the carrier, awaiting a receipt"))
    summary = batch.summary(timed_out=True)
    size = len(json.dumps(summary))
    assert size < 1_000_000, size
    assert (summary["delivered_count"], summary["failed_count"], summary["pending_count"]) == (3334, 3333, 3333)
    assert len(summary["statuses"]) == 10_000
    assert "messages" not in summary
    assert batch.details(ids[1])["reason"] == f"{reason} (1)"
    assert capsys.readouterr() == ("", "")


def test_summary_of_ten_thousand_failures_with_long_reasons_stays_under_one_megabyte() -> None:
    ids = list(range(4_000_000, 4_010_000))
    batch = DeliveryBatch(ids, BatchPolicy(fail_fast=False))
    for message_id in ids:
        batch.record(message_id, st("undelivered", failure_reason="r" * 300))
    summary = batch.summary()
    assert len(json.dumps(summary)) < 1_000_000
    assert summary["failed"][str(ids[0])] == "r" * 37 + "..."
    assert batch.details(ids[0])["reason"] == "r" * 300


def test_timeout_message_says_what_was_seen() -> None:
    ids = list(range(1, 26))
    batch = DeliveryBatch(ids, BatchPolicy(fail_fast=False))
    for i in (1, 2, 3):
        batch.record(i, st("delivered"))
    for i in (4, 5):
        batch.record(i, st("undelivered"))
    summary = batch.summary(timed_out=True)
    assert summary["outcome"] == "failure"
    message = summary["message"]
    assert "3/25 message(s) reached 'delivered' (needed 25)" in message
    assert "seen by the deadline: 3 delivered, 2 failed, 20 still pending" in message
    assert message.endswith("still pending at the deadline: 6, 7, 8, 9, 10, 11, 12, 13, 14, 15 ... 10 more")
