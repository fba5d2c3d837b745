"""Where send records live: a key-value store every try of a task instance can reach."""

from __future__ import annotations

import json
import logging
from typing import Any, Protocol

from airflow_provider_octopods.runtime import variables

log = logging.getLogger(__name__)

UNREADABLE = "unreadable"


class RecordStore(Protocol):
    """One JSON-safe mapping per key.

    What the never-twice guarantee needs of a store: a ``save`` is durable and visible to every
    later ``load`` of any process once it returns (reads and writes are linearizable, as they are
    for Airflow Variables kept in one metadata DB). No compare-and-set is needed: every key has
    one writer, the try that owns it.
    """

    def load(self, key: str) -> dict[str, Any] | None:
        """The mapping saved under ``key``, or None. A value that cannot be read is ``{"unreadable": True}``."""
        ...

    def save(self, key: str, value: dict[str, Any], *, description: str) -> None:
        """Store ``value`` under ``key``, replacing what was there."""
        ...

    def delete(self, key: str) -> None:
        """Remove ``key`` (no error when it is absent)."""
        ...


class VariableStore:
    """Records as Airflow Variables, reachable from every worker and callback on 2.11 and 3.x."""

    def load(self, key: str) -> dict[str, Any] | None:
        raw = variables().get(key, None)
        if not raw:
            return None
        try:
            value = json.loads(raw)
        except ValueError:
            value = None
        if not isinstance(value, dict):
            log.warning("Octopods state %s is unreadable; whatever it held counts as unknown", key)
            return {UNREADABLE: True}
        return value

    def save(self, key: str, value: dict[str, Any], *, description: str) -> None:
        variables().set(key, json.dumps(value, separators=(",", ":")), description=description)

    def delete(self, key: str) -> None:
        variables().delete(key)


class MemoryStore:
    """A public test double: records kept in this process only.

    For unit tests of code that sends through the hook or the batch operator, and for code that
    runs outside Airflow. Values are copied through JSON on the way in and out, as a real store
    would. Not shared between processes, so it protects nothing across Airflow's tries.
    """

    def __init__(self) -> None:
        self.values: dict[str, dict[str, Any]] = {}
        self.writes = 0

    def load(self, key: str) -> dict[str, Any] | None:
        value = self.values.get(key)
        return json.loads(json.dumps(value)) if value is not None else None

    def save(self, key: str, value: dict[str, Any], *, description: str) -> None:
        self.writes += 1
        self.values[key] = json.loads(json.dumps(value))

    def delete(self, key: str) -> None:
        self.values.pop(key, None)
