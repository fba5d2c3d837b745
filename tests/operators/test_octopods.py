from __future__ import annotations

from typing import Any
from unittest import mock

import pytest
import requests
import requests_mock
from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

from airflow_provider_octopods.api import errors
from airflow_provider_octopods.operators.octopods import OctopodsSendSmsOperator
from tests.conftest import TEST_KEY

SEND_URL = "https://app.octopods.io/api/v1/sms/messages"
ACCEPTED = {"status_code": 201, "json": {"request_id": "r-1", "message_id": 42, "phone_number": "+15551234567"}}


def operator(**kw: Any) -> OctopodsSendSmsOperator:
    args: dict[str, Any] = {"task_id": "send", "phone": "+15551234567", "body": "Hello"} | kw
    return OctopodsSendSmsOperator(**args)


def context() -> dict[str, Any]:
    return {"ti": mock.MagicMock()}


def test_template_fields() -> None:
    assert set(OctopodsSendSmsOperator.template_fields) == {
        "phone",
        "body",
        "destination_user_name",
        "intercom_teammate_id",
    }


@pytest.mark.parametrize(
    ("kw", "field"),
    [
        ({"phone": 15551234567}, "phone"),
        ({"body": None}, "body"),
        ({"wait_for_delivery": "yes"}, "wait_for_delivery"),
        ({"target_status": "queued"}, "target_status"),
        ({"accept_sent": 1}, "accept_sent"),
        ({"poll_interval": 0}, "poll_interval"),
        ({"delivery_timeout": "long"}, "delivery_timeout"),
        ({"default_region": "Ireland"}, "default_region"),
        ({"open_intercom_conversation": "perhaps"}, "open_intercom_conversation"),
    ],
)
def test_bad_parameter_types_fail_at_dag_parse(kw: dict, field: str) -> None:
    with pytest.raises(ValueError, match=f"task 'send'.* {field}: "):
        operator(**kw)


def test_sends_and_returns_message_id(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.post(SEND_URL, **ACCEPTED)
    ctx = context()
    assert operator(open_intercom_conversation="on").execute(ctx) == 42
    ctx["ti"].xcom_push.assert_called_once_with(
        key="send_result",
        value={
            "request_id": "r-1",
            "message_id": 42,
            "phone": "+1*******567",
            "segments": 1,
            "encoding": "GSM-7",
            "channel_message_id": None,
        },
    )
    assert requests_mock.last_request.json()["open_intercom_conversation"] is True


@pytest.mark.parametrize(
    ("kw", "text"),
    [
        ({"phone": "not a number"}, "phone: "),
        ({"body": ""}, "body: is empty"),
        ({"body": "x" * 1601}, "body: is 1601 characters"),
    ],
)
def test_rendered_bad_input_fails_without_retry_and_without_request(
    octopods_conn: str, requests_mock: requests_mock.Mocker, kw: dict, text: str
) -> None:
    task = operator()
    for name, rendered in kw.items():
        setattr(task, name, rendered)  # what rendering produced
    with pytest.raises(AirflowFailException, match=text):
        task.execute(context())
    assert requests_mock.call_count == 0


@pytest.mark.parametrize(
    ("response", "fails_for_good", "text"),
    [
        ({"status_code": 400, "json": {"error_code": 1, "error": "missing"}}, True, "ARGUMENT_MISSING"),
        ({"status_code": 400, "json": {"error_code": 2, "error": "empty"}}, True, "EMPTY_BODY"),
        ({"status_code": 400, "json": {"error_code": 3, "error": "Invalid Phone number."}}, True, "PHONE_INVALID"),
        ({"status_code": 400, "json": {"error_code": 5, "error": "rotated"}}, True, "DEPRECATED_API_KEY"),
        ({"status_code": 401, "json": {"error": "bad key"}}, True, "API key was refused"),
        ({"exc": requests.ReadTimeout("read timeout")}, True, "may or may not have been sent"),
        ({"status_code": 400, "json": {"error_code": 4, "error": "carrier said no"}}, False, "SMS_ERROR"),
    ],
)
def test_api_errors_decide_whether_airflow_may_retry(
    octopods_conn: str, requests_mock: requests_mock.Mocker, response: dict, fails_for_good: bool, text: str
) -> None:
    requests_mock.post(SEND_URL, **response)
    expected = AirflowFailException if fails_for_good else errors.OctopodsError
    with pytest.raises(expected, match=text) as err:
        operator().execute(context())
    assert TEST_KEY not in str(err.value)


def test_hubspot_workspace_succeeds_untracked(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.post(SEND_URL, status_code=201, json={"request_id": "hub"})
    assert operator(wait_for_delivery=True).execute(context()) is None
    assert requests_mock.call_count == 1  # no status polling for an untrackable message


def test_wait_for_delivery_polls_until_delivered(
    octopods_conn: str, requests_mock: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("airflow_provider_octopods.operators.octopods.time.sleep", lambda _: None)
    requests_mock.post(SEND_URL, **ACCEPTED)
    requests_mock.get(
        f"{SEND_URL}/42",
        [
            {"json": {"status": "queued"}},
            {"status_code": 503, "text": "busy"},
            {"json": {"status": "sent"}},
            {"json": {"status": "delivered", "delivered_at": "2026-04-24T10:23:49Z"}},
        ],
    )
    ctx = context()
    op = operator(wait_for_delivery=True, poll_interval=1)
    op.hook.retry_policy = None
    assert op.execute(ctx) == 42
    pushed = {c.kwargs["key"]: c.kwargs["value"] for c in ctx["ti"].xcom_push.call_args_list}
    assert pushed["delivery_status"]["status"] == "delivered"
    assert pushed["delivery_status"]["delivered_at"] == "2026-04-24T10:23:49+00:00"


@pytest.mark.parametrize("final", ["failed", "undelivered"])
def test_wait_for_delivery_fails_at_once_without_retry(
    octopods_conn: str, requests_mock: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch, final: str
) -> None:
    monkeypatch.setattr("airflow_provider_octopods.operators.octopods.time.sleep", lambda _: None)
    requests_mock.post(SEND_URL, **ACCEPTED)
    requests_mock.get(f"{SEND_URL}/42", json={"status": final, "failure_reason": "carrier blocked"})
    with pytest.raises(AirflowFailException, match=f"failed: 42 \\({final.lower()}: carrier blocked\\)"):
        operator(wait_for_delivery=True).execute(context())


def test_wait_for_delivery_timeout_lets_airflow_retry(
    octopods_conn: str, requests_mock: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = iter(range(0, 10_000, 10))
    monkeypatch.setattr("airflow_provider_octopods.operators.octopods.time.monotonic", lambda: next(clock))
    monkeypatch.setattr("airflow_provider_octopods.operators.octopods.time.sleep", lambda _: None)
    requests_mock.post(SEND_URL, **ACCEPTED)
    requests_mock.get(f"{SEND_URL}/42", json={"status": "sent"})
    with pytest.raises(AirflowException, match=r"delivery timeout: 0/1.*still pending at the deadline: 42") as err:
        operator(wait_for_delivery=True, delivery_timeout=60, poll_interval=5).execute(context())
    assert not isinstance(err.value, AirflowFailException)  # a retry resumes waiting; the send record stops a resend
    assert sum(r.method == "POST" for r in requests_mock.request_history) == 1


def test_accept_sent_stops_at_sent(
    octopods_conn: str, requests_mock: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    requests_mock.post(SEND_URL, **ACCEPTED)
    requests_mock.get(f"{SEND_URL}/42", json={"status": "sent"})
    assert operator(wait_for_delivery=True, accept_sent=True).execute(context()) == 42
