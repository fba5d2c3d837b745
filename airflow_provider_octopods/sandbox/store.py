"""What the sandbox remembers: every accepted message and every API request, thread-safe."""

from __future__ import annotations

import hashlib
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta, timezone
from typing import Any

from airflow_provider_octopods.api.models import DeliveryStatus
from airflow_provider_octopods.sandbox.scenarios import Scenario


def key_fingerprint(api_key: str) -> str:
    """A short, one-way tag of a key: enough to tell keys apart, useless to an attacker."""
    return hashlib.sha256(api_key.encode("utf-8")).hexdigest()[:12]


@dataclass(frozen=True)
class AcceptedMessage:
    """One message the sandbox accepted (what a real API would have sent)."""

    message_id: int
    request_id: str
    phone: str
    body: str
    key_fingerprint: str
    accepted_at: datetime
    scenario: Scenario = field(repr=False)
    options: dict[str, Any] = field(default_factory=dict)
    accepted_monotonic: float = field(default=0.0, repr=False)
    sent_after: float = 0.0
    final_after: float = 0.0
    unknown_for: float = 0.0

    @property
    def final_at(self) -> datetime:
        """When the message reaches its final status (for "sent forever" numbers: when it would)."""
        return self.accepted_at + timedelta(seconds=self.final_after)

    def to_dict(self) -> dict[str, Any]:
        """The message as the inspection API lists it, with its status at the time of the call."""
        return {
            "message_id": self.message_id,
            "request_id": self.request_id,
            "phone": self.phone,
            "body": self.body,
            "key_fingerprint": self.key_fingerprint,
            "accepted_at": self.accepted_at.isoformat(),
            "final_at": self.final_at.isoformat(),
            "status": progress(self).status.value,
            "options": dict(self.options),
        }


@dataclass(frozen=True)
class RequestRecord:
    """One HTTP request to the API endpoints, as the sandbox answered it."""

    method: str
    path: str
    status: int
    error_code: int | None = None
    fault: str | None = None


@dataclass(frozen=True)
class Progress:
    """Where a message is in its life at one moment."""

    status: DeliveryStatus
    sent_at: datetime | None
    final_at: datetime | None
    updated_at: datetime


class MessageStore:
    """Accepted messages by id, plus a log of requests. Safe to read from any thread."""

    def __init__(
        self, first_message_id: int, *, timing: Callable[[], tuple[float, float, float]] = lambda: (0.0, 0.0, 0.0)
    ) -> None:
        self._lock = threading.Lock()
        self._timing = timing
        self._first_id = first_message_id
        self._next_id = first_message_id
        self._messages: dict[int, AcceptedMessage] = {}
        self._requests: list[RequestRecord] = []

    def accept(
        self,
        *,
        request_id: str,
        phone: str,
        body: str,
        api_key: str,
        scenario: Scenario,
        options: dict[str, Any],
    ) -> AcceptedMessage:
        with self._lock:
            unknown_for, sent_after, final_after = self._timing()
            message = AcceptedMessage(
                message_id=self._next_id,
                request_id=request_id,
                phone=phone,
                body=body,
                key_fingerprint=key_fingerprint(api_key),
                accepted_at=datetime.now(timezone.utc),
                scenario=scenario,
                options=options,
                accepted_monotonic=time.monotonic(),
                sent_after=sent_after,
                final_after=final_after,
                unknown_for=unknown_for,
            )
            self._messages[message.message_id] = message
            self._next_id += 1
        return message

    def get(self, message_id: int) -> AcceptedMessage | None:
        with self._lock:
            return self._messages.get(message_id)

    def record_request(self, record: RequestRecord) -> None:
        with self._lock:
            self._requests.append(record)

    def mark_last_fault(self, method: str, path: str, fault: str) -> None:
        """Tag the latest record of ``method path`` with the fault that followed its answer."""
        with self._lock:
            for index in range(len(self._requests) - 1, -1, -1):
                record = self._requests[index]
                if record.method == method and record.path == path:
                    self._requests[index] = replace(record, fault=fault)
                    return

    def messages(self) -> list[AcceptedMessage]:
        with self._lock:
            return list(self._messages.values())

    def requests(self) -> list[RequestRecord]:
        with self._lock:
            return list(self._requests)

    def duplicates(self) -> int:
        """How many accepted messages repeat an earlier (phone, body) pair."""
        counts = Counter((m.phone, m.body) for m in self.messages())
        return sum(n - 1 for n in counts.values())

    def stats(self) -> dict[str, Any]:
        """Counts for tests and benchmarks: messages, duplicates, requests by kind and by answer."""
        requests = self.requests()
        answers = Counter(str(r.error_code if r.error_code is not None else r.status) for r in requests)
        faults = Counter(r.fault for r in requests if r.fault)
        return {
            "messages": len(self.messages()),
            "duplicates": self.duplicates(),
            "requests": len(requests),
            "sends": sum(r.method == "POST" for r in requests),
            "status_reads": sum(r.method == "GET" for r in requests),
            "answers": dict(answers),
            "faults": dict(faults),
        }

    def reset(self) -> None:
        with self._lock:
            self._messages.clear()
            self._requests.clear()
            self._next_id = self._first_id


def progress(message: AcceptedMessage, *, now: float | None = None) -> Progress:
    """The status of ``message`` at monotonic time ``now``: queued, then sent, then final."""
    elapsed = (time.monotonic() if now is None else now) - message.accepted_monotonic
    sent_at = message.accepted_at + timedelta(seconds=message.sent_after)
    if elapsed < message.unknown_for:
        return Progress(DeliveryStatus.UNKNOWN, None, None, message.accepted_at)
    if elapsed < message.sent_after:
        return Progress(DeliveryStatus.QUEUED, None, None, message.accepted_at)
    final = message.scenario.final_status
    if elapsed < message.final_after or final is None:
        return Progress(DeliveryStatus.SENT, sent_at, None, sent_at)
    return Progress(final, sent_at, message.final_at, message.final_at)
