"""The record gives nothing back: what a task stores about its sends tells no one the number.

Anyone who can read Airflow Variables can read send records. Through the hook's public API only,
two task instances alike in every way send the same texts to two numbers that masking cannot tell
apart (same country code, same last digits): once the keyed hashes, the random generations and
the timestamps are set aside, their records must be identical, so nothing else stored depends on
the number; and nothing stored may hold the number, masked or not, nor its last digits.
"""

from __future__ import annotations

import copy
import re
import time
from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest
import requests_mock

from airflow_provider_octopods.api import build_send_request, errors
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.send_record import MemoryStore, task_succeeded

SEND_URL = "https://app.octopods.io/api/v1/sms/messages"
PHONES = ("+15551234567", "+15559994567")  # masked alike: +1*******567
TEXT = "Your order is ready for pickup"
LOST = "Your courier is on the way"  # its answer is lost: the record keeps an intent
OPERATOR_TEXT = "Thanks for your order"  # sent in a slot the user named: the record keeps its hash
HASHES = re.compile(r"\b(?:[0-9a-f]{24}|[0-9a-f]{16})\b")


def record_of(phone: str, monkeypatch: pytest.MonkeyPatch, mocker: requests_mock.Mocker) -> dict[str, Any]:
    """The values a task instance stores when it sends the three texts to ``phone``."""
    store = MemoryStore()
    ti = SimpleNamespace(dag_id="orders", run_id="manual__2026-12-01", task_id="notify", map_index=-1, try_number=1)
    monkeypatch.setattr(
        "airflow.providers.common.compat.sdk.get_current_context", lambda: {"ti": ti, "task_instance": ti}
    )
    try:
        hook = OctopodsHook(record_store=store)
        mocker.post(SEND_URL, status_code=201, json={"request_id": "req-1", "message_id": 1})
        hook.send_sms(phone, TEXT)
        mocker.post(SEND_URL, status_code=502, text="<html>Bad gateway</html>")
        with pytest.raises(errors.OctopodsServerError):
            hook.send_sms(phone, LOST)
        mocker.post(SEND_URL, status_code=201, json={"request_id": "req-2", "message_id": 2})
        hook.send(build_send_request(phone, OPERATOR_TEXT), slot="operator")
        return copy.deepcopy(store.values)
    finally:
        task_succeeded(ti)  # this process forgets the task instance


def normalised(value: Any, start: float, end: float) -> Any:
    """``value`` with keyed hashes and generations as ``<hex>`` and timestamps as ``<time>``."""
    if isinstance(value, dict):
        return {normalised(k, start, end): normalised(v, start, end) for k, v in value.items()}
    if isinstance(value, list):
        return [normalised(v, start, end) for v in value]
    if isinstance(value, str):
        return HASHES.sub("<hex>", value)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and start <= value <= end:
        return "<time>"
    return value


def strings(value: Any) -> Iterator[str]:
    """Every string in ``value``, keys included."""
    if isinstance(value, dict):
        for key, item in value.items():
            yield from strings(key)
            yield from strings(item)
    elif isinstance(value, list):
        for item in value:
            yield from strings(item)
    elif isinstance(value, str):
        yield value


@pytest.fixture
def records(
    octopods_conn: str, requests_mock: requests_mock.Mocker, monkeypatch: pytest.MonkeyPatch
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The records of the two numbers, normalised."""
    start = time.time() - 1
    raw = [record_of(phone, monkeypatch, requests_mock) for phone in PHONES]
    end = time.time() + 1
    assert requests_mock.call_count == 6
    assert all(raw), "the hook recorded nothing: it did not find the running task instance"
    for record in raw:
        stored = repr(record)
        for phone in PHONES:
            assert phone[2:] not in stored  # the whole national number
        for text in (TEXT, LOST, OPERATOR_TEXT):
            assert text not in stored
    first, second = (normalised(record, start, end) for record in raw)
    return first, second


def test_nothing_stored_besides_keyed_hashes_depends_on_the_number(
    records: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    first, second = records
    assert first == second


def test_no_stored_string_holds_the_masked_number_or_its_last_digits(
    records: tuple[dict[str, Any], dict[str, Any]],
) -> None:
    found = [
        (text, clue)
        for record in records
        for text in strings(record)
        for clue in (mask_phone(PHONES[0]), PHONES[0][-4:], PHONES[0][-3:])
        if clue in text
    ]
    assert found == []
