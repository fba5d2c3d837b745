"""The provider's counters, emitted from real Airflow runs (dag.test) through Airflow's Stats."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.dagrun import RunOutcome

Sandbox = Callable[..., SandboxServer]
Run = Callable[..., RunOutcome]


@pytest.fixture
def counted(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    from airflow.providers.common.compat.sdk import Stats

    seen: Counter[str] = Counter()

    def incr(stat: str, count: int = 1, *args: Any, **kwargs: Any) -> None:
        if stat.startswith("octopods."):
            seen[stat] += count

    monkeypatch.setattr(Stats, "incr", incr)
    return seen


def test_a_batch_counts_its_rows_and_sends(sandbox: Sandbox, run: Run, counted: Counter[str]) -> None:
    sandbox()
    outcome = run("octopods_batch_counts")
    assert outcome.task_states["remind"] == "success"
    assert counted["octopods.sms.accepted"] == 940
    assert {name: counted[name] for name in counted if name.startswith("octopods.batch.rows.")} == {
        "octopods.batch.rows.accepted": 940,
        "octopods.batch.rows.invalid": 30,
        "octopods.batch.rows.duplicate": 20,
        "octopods.batch.rows.opted_out": 10,
    }  # outcomes with no row are not emitted
    assert not [name for name in counted if "77009" in name]  # no phone number in any name


def test_alerts_are_counted(sandbox: Sandbox, run: Run, counted: Counter[str]) -> None:
    sandbox()
    run("example_octopods_failure_alerts")
    assert counted["octopods.alert.sent"] == 2  # the task's alert and the DAG's
    assert counted["octopods.sms.accepted"] == 2
