"""A stand-in for Airflow Variables, and a task instance that seems to run in this process."""

from __future__ import annotations

from collections.abc import Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from airflow_provider_octopods.send_record import TaskKey, lifecycle

KEY = TaskKey("reminders", "scheduled__2026-11-25", "send_all", 3)


class Variables:
    """What ``VariableStore`` uses of Airflow's ``Variable``, in memory."""

    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.descriptions: dict[str, str | None] = {}

    def get(self, key: str, default: Any = None) -> Any:
        return self.values.get(key, default)

    def set(self, key: str, value: str, description: str | None = None) -> None:
        self.values[key] = value
        self.descriptions[key] = description

    def delete(self, key: str) -> None:
        self.values.pop(key, None)


@pytest.fixture
def variables(monkeypatch: pytest.MonkeyPatch) -> Variables:
    """Airflow Variables, as the default record store reaches them, kept in memory."""
    fake = Variables()
    monkeypatch.setattr("airflow_provider_octopods.send_record.store.variables", lambda: fake)
    return fake


class RunningTask:
    """Try ``ti.try_number`` of the task instance :data:`KEY`, as ``get_current_context`` shows it."""

    def __init__(self) -> None:
        self.ti = SimpleNamespace(
            dag_id=KEY.dag_id, run_id=KEY.run_id, task_id=KEY.task_id, map_index=KEY.map_index, try_number=1
        )

    def new_try(self) -> None:
        """Airflow runs the task instance again (a retry, or a clear)."""
        self.ti.try_number += 1


@pytest.fixture
def running_task(monkeypatch: pytest.MonkeyPatch, variables: Variables) -> Iterator[RunningTask]:
    """Make the provider believe it runs in try 1 of :data:`KEY`, with records in ``variables``."""
    task = RunningTask()
    monkeypatch.setattr("airflow.providers.common.compat.sdk.get_current_context", lambda: {"ti": task.ti})
    yield task
    lifecycle._ACTIVE.pop(KEY, None)
