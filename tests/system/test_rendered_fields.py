"""What Airflow keeps of a send in its rendered-fields table: the phone masked, the body as rendered."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any
from unittest import mock

import pytest
import requests_mock
from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_octopods.operators.octopods import OctopodsSendSmsOperator
from airflow_provider_octopods.sandbox import SandboxServer
from tests.dagrun import RunOutcome

SEND_URL = "https://app.octopods.io/api/v1/sms/messages"
CONTEXT = {"params": {"phone": "+15551234567", "name": "Ada"}}


def rendered(op: OctopodsSendSmsOperator) -> dict[str, Any]:
    """The attributes Airflow stores as rendered fields once ``render_template_fields`` has run."""
    return {name: getattr(op, name) for name in op.template_fields}


def test_the_rendered_phone_is_masked_and_the_body_shown_as_rendered() -> None:
    op = OctopodsSendSmsOperator(task_id="send", phone="{{ params.phone }}", body="Hi {{ params.name }}")
    op.render_template_fields(CONTEXT, jinja_env=op.get_template_env())
    assert rendered(op) == {
        "phone": "+1*******567",
        "body": "Hi Ada",
        "destination_user_name": None,
        "intercom_teammate_id": None,
    }
    assert op.phone_to_send == "+15551234567"


def test_execute_sends_to_the_real_rendered_phone_even_when_rendered_twice(
    octopods_conn: str, requests_mock: requests_mock.Mocker
) -> None:
    requests_mock.post(SEND_URL, status_code=201, json={"request_id": "r", "message_id": 7})
    op = OctopodsSendSmsOperator(task_id="send", phone="{{ params.phone }}", body="Hi {{ params.name }}")
    for _ in range(2):  # Airflow may render a task again (the UI, a resumed deferral)
        op.render_template_fields(CONTEXT, jinja_env=op.get_template_env())
    assert op.phone == "+1*******567"
    assert op.execute({"ti": mock.MagicMock()}) == 7
    assert requests_mock.last_request.json()["destination_phone"] == "+15551234567"


def test_a_literal_phone_is_masked_too() -> None:
    op = OctopodsSendSmsOperator(task_id="send", phone="+447700900123", body="Hello")
    op.render_template_fields({}, jinja_env=op.get_template_env())
    assert op.phone == "+44*******123"
    assert op.phone_to_send == "+447700900123"


def test_a_rendered_value_that_is_not_a_phone_is_hidden_and_still_refused_by_name(
    octopods_conn: str, requests_mock: requests_mock.Mocker
) -> None:
    op = OctopodsSendSmsOperator(task_id="send", phone="{{ params.phone }}", body="Hello")
    op.render_template_fields({"params": {"phone": "5551234567"}}, jinja_env=op.get_template_env())
    assert op.phone == "*******567"
    with pytest.raises(AirflowFailException, match=r"phone: .* has no country code"):
        op.execute({"ti": mock.MagicMock()})
    assert requests_mock.call_count == 0


def test_airflow_stores_masked_phones_for_a_mapped_send(
    sandbox: Callable[..., SandboxServer], run: Callable[..., RunOutcome]
) -> None:
    from airflow.models.renderedtifields import RenderedTaskInstanceFields
    from airflow.utils.session import create_session

    server = sandbox()
    outcome = run("octopods_wiring_mapped")
    assert outcome.task_states["send"] == "success"
    with create_session() as session:
        rows = (
            session.query(RenderedTaskInstanceFields)
            .filter_by(dag_id="octopods_wiring_mapped", run_id=outcome.run_id, task_id="send")
            .all()
        )
    stored = sorted((row.map_index, row.rendered_fields["phone"], row.rendered_fields["body"]) for row in rows)
    assert stored == [
        (0, "+1*******100", "Mapped reminder"),
        (1, "+44*******123", "Mapped reminder"),
        (2, "+1*******567", "Mapped reminder"),
    ]
    assert sorted(message.phone for message in server.messages()) == ["+15005550100", "+15551234567", "+447700900123"]
