from __future__ import annotations

from typing import Any

import pytest
import requests_mock
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor

STATUS_URL = "https://app.octopods.io/api/v1/sms/messages/42"


def sensor(**kw: Any) -> OctopodsDeliverySensor:
    return OctopodsDeliverySensor(**({"task_id": "track", "message_id": 42} | kw))


def test_message_id_is_templated() -> None:
    assert OctopodsDeliverySensor.template_fields == ("message_id",)


@pytest.mark.parametrize(
    "kw",
    [
        {"message_id": {"id": 42}},
        {"message_id": True},
        {"min_delivered_ratio": 0},
        {"deferrable": "yes"},
        {"target_status": "failed"},
    ],
)
def test_bad_parameters_fail_at_parse(kw: dict) -> None:
    with pytest.raises(ValueError, match="task 'track'"):
        sensor(**kw)


@pytest.mark.parametrize(
    ("payload", "done"),
    [
        ({"status": "queued"}, False),
        ({"status": "unknown"}, False),
        ({"status": "SENT"}, False),
        ({"status": "sometimes"}, False),
        ({"status": "DELIVERED", "status_message": "ok"}, True),
        ({"status": "read"}, True),
    ],
)
def test_poke(octopods_conn: str, requests_mock: requests_mock.Mocker, payload: dict, done: bool) -> None:
    requests_mock.get(STATUS_URL, json={"message_id": 42, **payload})
    result = sensor().poke({})
    assert bool(result) is done
    if done:
        assert result.xcom_value["status"] in ("delivered", "read")  # type: ignore[union-attr]


def test_accept_sent(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    requests_mock.get(STATUS_URL, json={"status": "sent"})
    assert sensor(accept_sent=True).poke({})
    assert sensor(target_status="sent").poke({})


@pytest.mark.parametrize("final", ["failed", "UNDELIVERED"])
def test_failure_fails_at_once_with_reason(octopods_conn: str, requests_mock: requests_mock.Mocker, final: str) -> None:
    requests_mock.get(STATUS_URL, json={"status": final, "failure_reason": "not a valid mobile subscriber"})
    with pytest.raises(AirflowFailException, match="not a valid mobile subscriber"):
        sensor().poke({})


def test_transient_errors_keep_poking(
    octopods_conn: str, requests_mock: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("airflow_provider_octopods.clients.sync.time.sleep", lambda _: None)
    requests_mock.get(STATUS_URL, status_code=502, text="<html>Bad Gateway</html>")
    assert sensor().poke({}) is False


@pytest.mark.parametrize(
    ("response", "text"),
    [
        ({"status_code": 400, "json": {"error_code": 1, "error": "Message not found."}}, "not found"),
        ({"status_code": 400, "json": {"error_code": 5, "error": "rotated"}}, "rotated or revoked"),
        ({"status_code": 401, "json": {}}, "refused"),
    ],
)
def test_permanent_errors_fail(
    octopods_conn: str, requests_mock: requests_mock.Mocker, response: dict, text: str
) -> None:
    requests_mock.get(STATUS_URL, **response)
    with pytest.raises(AirflowFailException, match=text):
        sensor().poke({})


@pytest.mark.parametrize("rendered", ["None", "", "abc def"])
def test_unusable_rendered_message_id_fails_before_request(
    octopods_conn: str, requests_mock: requests_mock.Mocker, rendered: str
) -> None:
    task = sensor(message_id="{{ ti.xcom_pull(task_ids='send') }}")
    task.message_id = rendered  # what rendering produced
    with pytest.raises(AirflowFailException, match="message_id"):
        task.poke({})
    assert requests_mock.call_count == 0


def test_timeout_says_what_the_sensor_saw(octopods_conn: str, requests_mock: requests_mock.Mocker) -> None:
    from airflow.providers.common.compat.sdk import AirflowSensorTimeout

    for message_id, status in ((41, "delivered"), (42, "sent"), (43, "failed")):
        requests_mock.get(f"{STATUS_URL[:-3]}/{message_id}", json={"message_id": message_id, "status": status})
    task = sensor(message_id=[41, 42, 43], fail_fast=False, poke_interval=0.05, timeout=0.2)
    with pytest.raises(AirflowSensorTimeout) as err:
        task.execute({"ti": None, "task_instance": None})  # type: ignore[typeddict-item]
    text = str(err.value)
    assert "1 delivered, 1 failed, 1 still pending" in text
    assert "still pending at the deadline: 42" in text


def test_classic_reads_of_many_ids_are_paced(
    octopods_conn: str, requests_mock: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> None:
    clock = [0.0]
    starts: list[float] = []

    def sleep(seconds: float) -> None:
        clock[0] += seconds

    def answer(request: Any, context: Any) -> dict[str, Any]:
        starts.append(clock[0])
        return {"status": "sent"}

    requests_mock.get(requests_mock_matcher(), json=answer)
    task = sensor(message_id=list(range(1, 199)), reads_per_second=10)
    monkeypatch.setattr(task, "_clock", lambda: clock[0])
    monkeypatch.setattr(task, "_sleep", sleep)
    assert task.poke({}) is False
    assert len(starts) == 198
    assert max(sum(1 for s in starts if t <= s < t + 1) for t in starts) <= 10


def requests_mock_matcher() -> Any:
    import re

    return re.compile(r"https://app\.octopods\.io/api/v1/sms/messages/\d+")
