from __future__ import annotations

import pytest

from airflow_provider_octopods.api.delivery import DeliveryTarget, Outcome, describe
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.models import DeliveryStatus, MessageStatus

P, S, F = Outcome.PENDING, Outcome.SUCCESS, Outcome.FAILURE


def status(value: str, **kw: object) -> MessageStatus:
    return MessageStatus.from_response({"status": value, **kw}, message_id=1)


@pytest.mark.parametrize(
    ("api_status", "delivered", "sent_ok", "read"),
    [
        ("queued", P, P, P),
        ("unknown", P, P, P),
        ("something-new", P, P, P),
        ("sent", P, S, P),
        ("SENT", P, S, P),
        ("delivered", S, S, P),
        ("DELIVERED", S, S, P),
        ("read", S, S, S),
        ("deleted", S, S, F),
        ("failed", F, F, F),
        ("UNDELIVERED", F, F, F),
    ],
)
def test_verdicts(api_status: str, delivered: Outcome, sent_ok: Outcome, read: Outcome) -> None:
    s = status(api_status)
    assert DeliveryTarget.of("delivered").judge(s) is delivered
    assert DeliveryTarget.of("delivered", accept_sent=True).judge(s) is sent_ok
    assert DeliveryTarget.of("sent").judge(s) is sent_ok
    assert DeliveryTarget.of("read").judge(s) is read


@pytest.mark.parametrize("target", ["queued", "failed", "", None, 3])
def test_bad_target(target: object) -> None:
    with pytest.raises(OctopodsValidationError, match="target_status: must be one of sent, delivered, read"):
        DeliveryTarget.of(target)


def test_accept_sent_must_be_bool() -> None:
    with pytest.raises(OctopodsValidationError, match="accept_sent"):
        DeliveryTarget.of("delivered", accept_sent="yes")


def test_describe_includes_reason_and_odd_spelling() -> None:
    assert describe(status("failed", failure_reason="not a mobile")) == "message 1 is failed: not a mobile"
    assert describe(status("Bounced")) == "message 1 is unknown (API said 'Bounced')"


def test_status_enum_properties() -> None:
    assert DeliveryStatus.parse(None) is DeliveryStatus.UNKNOWN
    assert {s for s in DeliveryStatus if s.is_terminal} == {
        DeliveryStatus.DELIVERED,
        DeliveryStatus.READ,
        DeliveryStatus.DELETED,
        DeliveryStatus.FAILED,
        DeliveryStatus.UNDELIVERED,
    }
