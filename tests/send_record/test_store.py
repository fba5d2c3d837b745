"""The stores: Airflow Variables (with a stand-in for them) and the in-memory test double."""

from __future__ import annotations

from typing import Any

import pytest

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.send_record import UNREADABLE, MemoryStore, Prior, SendGuard, VariableStore
from tests.send_record.conftest import KEY, Variables


def test_variable_store_keeps_compact_json_with_a_description(variables: Variables) -> None:
    store = VariableStore()
    store.save("k", {"slots": {"a#1": ["intent", 1]}}, description="what it is")
    assert variables.values == {"k": '{"slots":{"a#1":["intent",1]}}'}
    assert variables.descriptions == {"k": "what it is"}
    assert store.load("k") == {"slots": {"a#1": ["intent", 1]}}
    store.delete("k")
    store.delete("k")  # absent: no error
    assert store.load("k") is None


@pytest.mark.parametrize("raw", ["[1, 2]", "not json", '"text"', "null"])
def test_variable_store_reports_garbage_as_unreadable(variables: Variables, raw: str) -> None:
    variables.values["k"] = raw
    assert VariableStore().load("k") == {UNREADABLE: True}


def test_a_variable_of_no_known_shape_makes_every_unknown_send_unknown(variables: Variables) -> None:
    variables.values[KEY.log_key(1)] = '{"no": "slots"}'
    record = SendGuard(KEY, try_number=2)  # Variables by default
    prior = record.prior(record.next_slot(build_send_request("+15551234567", "Hi")))
    assert prior == Prior(state=UNREADABLE, try_number=None)
    assert KEY.log_key(2) in variables.values  # this try's head, written before it read


def test_memory_store_copies_values_through_json() -> None:
    store = MemoryStore()
    value: dict[str, Any] = {"slots": {"a#1": ("intent", 1)}}
    store.save("k", value, description="")
    value["slots"]["b#1"] = ["intent", 2]
    loaded = store.load("k")
    assert loaded == {"slots": {"a#1": ["intent", 1]}}  # a tuple comes back a list, as from JSON
    loaded["slots"].clear()
    assert store.load("k") == {"slots": {"a#1": ["intent", 1]}}
    assert store.writes == 1
    store.delete("k")
    store.delete("k")
    assert store.load("k") is None
