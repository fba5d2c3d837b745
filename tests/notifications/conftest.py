"""Every notifier test gets its own in-memory stand-in for Airflow Variables (alert ledgers, the
once-per-try marks), so that no test sees what another left behind."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest


class Variables:
    def __init__(self) -> None:
        self.values: dict[str, str] = {}
        self.lock = threading.Lock()

    def get(self, key: str, default: Any = None) -> Any:
        with self.lock:
            return self.values.get(key, default)

    def set(self, key: str, value: str, description: str | None = None) -> None:
        time.sleep(0.005)  # a write takes a moment, as an API round trip does
        with self.lock:
            self.values[key] = value

    def delete(self, key: str) -> None:
        with self.lock:
            self.values.pop(key, None)


@pytest.fixture(autouse=True)
def variables(monkeypatch: pytest.MonkeyPatch) -> Variables:
    fake = Variables()
    monkeypatch.setattr("airflow_provider_octopods.send_record.store.variables", lambda: fake)
    monkeypatch.setattr("airflow_provider_octopods.notifications.dedup.SETTLE_SECONDS", 0.05)
    return fake
