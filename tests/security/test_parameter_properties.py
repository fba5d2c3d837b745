"""Any value of any parameter ends in an accepted object or the project's error naming the parameter.

Each parameter of the send operator, the sensor, the notifier and the batch operator gets
arbitrary values: wrong types, huge and hostile strings (control characters, bidirectional
controls, lone surrogates), nested and deeply nested lists, None, negative, NaN, infinite and
huge numbers, bools where numbers are expected. Construction must accept the value or raise the
error the DAG import shows (a ``ValueError`` naming the parameter); the checks that run after
rendering must accept it or raise ``OctopodsValidationError`` for that parameter. Airflow's own
parameters (``task_id``, ``retries``...) are Airflow's to check and are left out.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from decimal import Decimal
from typing import Any
from unittest import mock

import pytest
import requests_mock
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.batch import plan_batch
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.tracking import message_ids
from airflow_provider_octopods.api.validation import validate_region
from airflow_provider_octopods.batch.rows import load_rows
from airflow_provider_octopods.notifications.octopods import OctopodsNotifier
from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator, OctopodsSendSmsOperator
from airflow_provider_octopods.sensors.octopods import OctopodsDeliverySensor
from tests.conftest import connection_json

PHONE = "+15551234567"
TEMPLATE = "{{ params.value }}"
PROPERTIES = settings(
    max_examples=100,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


def deeply_nested() -> list[Any]:
    value: list[Any] = []
    for _ in range(5_000):
        value = [value]
    return value


def huge_int() -> int:
    return 10**5_000  # too long for str() or repr() since Python 3.11


PARSER_OVERFLOW = "[" + "-" * 10_000 + "1]"  # Python's parser gives up on it with MemoryError
HOSTILE_STRINGS = [
    "",
    " ",
    "x" * 100_000,
    "\x00",
    "a\x1b[31mb",
    "\x07",
    "\ud800",
    "+1555\udfff1234567",
    "\u202e+15551234567",
    "\u200b\ufeff",
    "[" * 10_000,
    "9" * 5_000,
    "[1, [2, [3]]]",
    "1e400",
    "-1",
    "nan",
    "inf",
    "None",
    "yes",
    "US",
    "gb",
    "delivered",
    "+15551234567",
    "+1-800-FLOWERS",
    "+1 650 253 0000 ext. 12",
    "{{ params.value }}",
    "{% for x in y %}",
]
SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([0, -1, 2**63, -(2**63), 10**400]),
    st.floats(),
    st.sampled_from([float("nan"), float("inf"), float("-inf"), -0.0, 5e-324]),
    st.decimals(),
    st.just(Decimal("sNaN")),
    st.text(alphabet=st.characters(exclude_categories=()), max_size=40),
    st.sampled_from(HOSTILE_STRINGS),
    st.binary(max_size=8),
    st.just(object()),
)
NESTED = st.recursive(
    SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=4),
        st.tuples(inner, inner),
        st.dictionaries(st.text(max_size=4), inner, max_size=3),
    ),
    max_leaves=8,
)
# Values that break repr() (an int of more than 4,300 digits, a list nested 5,000 deep) and a
# string that overflows Python's parser.
REPR_HAZARDS = st.one_of(
    st.builds(huge_int), st.builds(lambda: [huge_int()]), st.builds(deeply_nested), st.just(PARSER_OVERFLOW)
)
VALUES = st.one_of(NESTED, REPR_HAZARDS)
# The batch's templated fields get the values without REPR_HAZARDS: a list nested 5,000 deep
# already breaks Airflow's own scan of templated values for XComArgs, before ours runs.
AIRFLOW_GAPS = {("batch", name) for name in OctopodsSendBatchOperator.template_fields} | {("batch", "dry_run")}


def assert_refusal_names(err: Exception, field: str) -> None:
    assert isinstance(err, ValueError), f"{type(err).__name__}: {err}"
    assert f"{field}: " in str(err), str(err)


@contextmanager
def accepted_or_refused(field: str) -> Iterator[None]:
    """The block may succeed; if it raises, it is the project's error naming ``field``."""
    try:
        yield
    except ValueError as err:  # OctopodsValidationError, or the ValueError of a DAG import
        assert_refusal_names(err, field)


@pytest.fixture(autouse=True)
def _connection(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", connection_json())


# -- construction ------------------------------------------------------------------------------

SEND_PARAMETERS = [
    "phone",
    "body",
    "octopods_conn_id",
    "default_region",
    "destination_user_name",
    "open_intercom_conversation",
    "intercom_teammate_id",
    "wait_for_delivery",
    "target_status",
    "accept_sent",
    "poll_interval",
    "delivery_timeout",
    "resend_unknown",
    "deferrable",
]
SENSOR_PARAMETERS = [
    "message_id",
    "octopods_conn_id",
    "target_status",
    "accept_sent",
    "min_delivered_ratio",
    "fail_fast",
    "deferrable",
    "max_in_flight",
    "reads_per_second",
]
NOTIFIER_PARAMETERS = [
    "phones",
    "body",
    "octopods_conn_id",
    "default_region",
    "dedup_window",
    "max_recipients",
    "max_segments",
    "include_cause",
]
BATCH_PARAMETERS = [
    "recipients",
    "body",
    "phone_field",
    "region_field",
    "default_region",
    "opt_out",
    "allow_duplicates",
    "dry_run",
    "rate_limit",
    "max_in_flight",
    "max_failure_ratio",
    "fail_on_invalid",
    "resend_unknown",
    "report_path",
    "max_xcom_ids",
    "chunk_size",
    "octopods_conn_id",
]
BUILDERS: dict[str, tuple[Callable[..., Any], dict[str, Any], list[str]]] = {
    "send": (OctopodsSendSmsOperator, {"task_id": "send", "phone": PHONE, "body": "Hello"}, SEND_PARAMETERS),
    "sensor": (OctopodsDeliverySensor, {"task_id": "track", "message_id": 42}, SENSOR_PARAMETERS),
    "notifier": (OctopodsNotifier, {"phones": PHONE}, NOTIFIER_PARAMETERS),
    "batch": (
        OctopodsSendBatchOperator,
        {"task_id": "remind", "recipients": [{"phone": PHONE}], "body": "Hi"},
        BATCH_PARAMETERS,
    ),
}
CONSTRUCTION_CASES = [(kind, name) for kind, (_, _, names) in BUILDERS.items() for name in names]


@pytest.mark.parametrize(("kind", "name"), CONSTRUCTION_CASES, ids=[f"{k}-{n}" for k, n in CONSTRUCTION_CASES])
@PROPERTIES
@given(data=st.data())
def test_construction_accepts_or_refuses_naming_the_parameter(kind: str, name: str, data: st.DataObject) -> None:
    build, base, _ = BUILDERS[kind]
    value = data.draw(NESTED if (kind, name) in AIRFLOW_GAPS else VALUES, label=name)
    with accepted_or_refused(name):
        build(**(base | {name: value}))


# -- the checks that run after rendering ---------------------------------------------------------

SEND_TEMPLATED = ["phone", "body", "destination_user_name", "intercom_teammate_id"]


@pytest.mark.parametrize("name", SEND_TEMPLATED)
@PROPERTIES
@given(value=VALUES)
@example(value="Hello \ud800")
@example(value=10**5_000)
def test_the_send_checks_any_rendered_value(name: str, value: Any) -> None:
    op = OctopodsSendSmsOperator(task_id="send", phone=TEMPLATE, body=TEMPLATE).prepare_for_execution()
    op.render_template_fields({"params": {"value": "x"}}, jinja_env=op.get_template_env())
    op.phone = PHONE  # then, what rendering produced: a valid phone and body, and one hostile value
    op.body = "Hello"
    setattr(op, name, value)
    with accepted_or_refused(name):
        build_send_request(
            op.phone,
            op.body,
            default_region=op.default_region,
            destination_user_name=op.destination_user_name,
            open_intercom_conversation=op.open_intercom_conversation,
            intercom_teammate_id=op.intercom_teammate_id,
        )


@PROPERTIES
@given(value=NESTED)
@example(value="9" * 5_000)
@example(value=["9" * 5_000])
def test_the_sensor_checks_any_rendered_message_id(value: Any) -> None:
    OctopodsDeliverySensor(task_id="track", message_id=TEMPLATE)
    with accepted_or_refused("message_id"):
        message_ids(value)


@pytest.mark.parametrize("name", ["phones", "body"])
@PROPERTIES
@given(value=VALUES)
@example(value="Build broke \ud800")
@example(value=["+15551234567", 10**5_000])
def test_the_notifier_sends_or_logs_the_reason_for_any_rendered_value(name: str, value: Any) -> None:
    notifier = OctopodsNotifier(phones=PHONE, body="Build broke", max_segments=2)
    setattr(notifier, name, value)  # what rendering produced
    with requests_mock.Mocker() as api, mock.patch.object(OctopodsNotifier, "log") as log:
        api.post("https://app.octopods.io/api/v1/sms/messages", status_code=201, json={"message_id": 1})
        notifier.notify({})
    unexpected = [c for c in log.error.call_args_list if c.args[0] == "Octopods alert was not sent: %s"]
    for call in unexpected:  # the catch-all: only the project's errors may reach it
        assert_refusal_names(call.args[1], name)


@PROPERTIES
@given(rows=NESTED.filter(lambda v: not isinstance(v, str)), region=VALUES)
def test_the_batch_sorts_out_any_rendered_rows(rows: Any, region: Any) -> None:
    with accepted_or_refused("recipients"):
        loaded = load_rows(rows)
        plan = plan_batch(
            loaded, render=lambda row: f"Hi {row.get('name')}", region_field="region", default_region="US"
        )
        assert plan.total == len(loaded)
    with accepted_or_refused("default_region"):
        validate_region(region)


# A row's region is text from a CSV file or a JSON list (an unhashable region is reported).
REGIONS = st.one_of(
    st.none(), st.text(alphabet=st.characters(exclude_categories=()), max_size=4), st.sampled_from(HOSTILE_STRINGS)
)


@PROPERTIES
@given(row=st.fixed_dictionaries({}, optional={"phone": VALUES, "name": VALUES, "region": REGIONS}))
def test_a_batch_row_of_any_values_is_sent_or_reported(row: dict[str, Any]) -> None:
    plan = plan_batch([row], render=lambda r: f"Hi {r.get('name')}", region_field="region")
    assert len(plan.sends) + len(plan.set_aside) == 1
    for result in plan.set_aside:
        assert result.error is None or result.error.split(":")[0] in ("phone", "body", "region")


def test_a_refusal_is_not_mistaken_for_another_error() -> None:
    with pytest.raises(AssertionError), accepted_or_refused("phone"):
        raise OctopodsValidationError("body", "is empty")
    with pytest.raises(TypeError), accepted_or_refused("phone"):
        raise TypeError("phone: not a ValueError")
