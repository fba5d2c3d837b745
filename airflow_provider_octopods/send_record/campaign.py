"""Campaigns: one SMS per recipient across every run that names the same campaign.

A task instance's own record (:mod:`.guard`) keeps its tries from sending twice, and is deleted
when the task instance succeeds. A campaign outlives runs: under one name, a recipient whose SMS
was accepted once is never sent another, whatever the text and whatever the run (a re-triggered
run, a backfill, a cleared task, a second DAG naming the same campaign).

In the store, a campaign is a *head* (its name, when it expires, and its writers) and one log
per writer, a try of a task instance, in the format of :mod:`.log`: an intent before each send,
the result after it, keyed by a keyed hash of the recipient's number (nothing stored beside the
hash narrows a guess of the number). A writer registers in the head before it reads the other
writers' logs, so a run sees everything recorded by the runs before it. Two task instances of one
campaign running at the same time are not kept from texting the same recipient: give them
different recipients (as mapped chunks of one list have).

A campaign expires ``ttl`` seconds after the last run that used it: the next run finds it
expired and starts afresh, and the provider's listener deletes expired campaigns at the end of
every DAG run (:func:`sweep_expired`).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from airflow_provider_octopods.send_record.log import ACCEPTED, INTENT, TryLog, entry_fields, make_entry
from airflow_provider_octopods.send_record.store import RecordStore

if TYPE_CHECKING:
    from airflow_provider_octopods.api.models import SendResult
    from airflow_provider_octopods.send_record.guard import Prior, TaskKey

CAMPAIGN_PREFIX = "octopods_campaign_"
DEFAULT_TTL_SECONDS = 30 * 24 * 3600.0
REGISTER_WAIT_SECONDS = 0.5  # a concurrent registration lands within this; then the head is read back
_REGISTER_TRIES = 5
_HASH_CHARS = 32
_RECIPIENT_CHARS = 24

log = logging.getLogger(__name__)


def campaign_key(name: str) -> str:
    """The store key of campaign ``name``'s head (its writers' logs take suffixes of it)."""
    return CAMPAIGN_PREFIX + hashlib.sha256(b"octopods-campaign\0" + name.encode()).hexdigest()[:_HASH_CHARS]


class Campaign:
    """One try's view of a campaign: what earlier writers recorded, and this try's own log.

    :param name: the campaign, as the user named it (``"renewals-2026-12-07"``).
    :param task: the task instance sending under it; with ``try_number``, the writer.
    :param store: where the campaign lives (the send record's store).
    :param ttl: seconds the campaign is kept after the last run that used it.
    """

    def __init__(
        self,
        name: str,
        task: TaskKey,
        try_number: int,
        *,
        store: RecordStore,
        ttl: float = DEFAULT_TTL_SECONDS,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Any] = time.sleep,
    ) -> None:
        self.name = name
        self.key = campaign_key(name)
        self.store = store
        self.ttl = float(ttl)
        self._clock = clock
        self._sleep = sleep
        self.writer = f"{hashlib.sha256(task._ident).hexdigest()[:16]}t{try_number}"
        secret = hashlib.sha256(b"octopods-campaign-recipient\0" + name.encode()).digest()
        self._keyed = hmac.new(secret, digestmod="sha256")
        self._own = self._log(
            self.writer,
            header={"campaign": name, "dag_id": task.dag_id, "run_id": task.run_id, "task_id": task.task_id}
            | {"map_index": task.map_index, "try": try_number},
        )
        self._earlier: dict[str, tuple[list[Any], dict[str, Any]]] = {}
        self._writers: list[str] = []
        self._opened = False

    def _log(self, writer: str, header: dict[str, Any] | None = None) -> TryLog:
        return TryLog(
            f"{self.key}_w{writer}",
            self.store,
            header=header or {},
            description=f"airflow-provider-octopods: SMS sent in campaign {self.name!r}; deleted when it expires",
        )

    def recipient(self, phone: str) -> str:
        """The keyed hash naming ``phone`` in this campaign."""
        digest = self._keyed.copy()
        digest.update(phone.encode())
        return digest.hexdigest()[:_RECIPIENT_CHARS]

    # -- opening ---------------------------------------------------------------------------------

    def open(self) -> None:
        """On first use: start afresh if the campaign expired, register this writer, then read
        every other writer's log."""
        if self._opened:
            return
        head = self._head()
        if head is not None and _expired(head, self._clock()):
            log.info("Campaign %r expired: its record is deleted and it starts afresh", self.name)
            self._delete(head)
            head = None
        for _ in range(_REGISTER_TRIES):
            writers = [w for w in (head or {}).get("writers", []) if isinstance(w, str)]
            if self.writer not in writers:
                writers.append(self.writer)
            self.store.save(
                self.key,
                {"campaign": self.name, "expires": int(self._clock() + self.ttl), "ttl": self.ttl, "writers": writers},
                description=f"airflow-provider-octopods: campaign {self.name!r}; deleted when it expires",
            )
            self._sleep(REGISTER_WAIT_SECONDS)
            head = self._head()
            if head is not None and self.writer in head.get("writers", []):
                break
        else:
            raise RuntimeError(f"could not register in campaign {self.name!r}: its head keeps changing")
        self._writers = [w for w in head.get("writers", []) if isinstance(w, str)]
        self._own.read()  # what this try wrote before, if it did, stands
        self._read_earlier()
        self._opened = True

    def refresh(self) -> None:
        """Read the other writers' logs again (one may have recorded results since)."""
        if self._opened:
            head = self._head() or {}
            self._writers = [w for w in head.get("writers", []) if isinstance(w, str)] or self._writers
            self._read_earlier()

    def _head(self) -> dict[str, Any] | None:
        head = self.store.load(self.key)
        return head if isinstance(head, dict) else None

    def _read_earlier(self) -> None:
        self._earlier = {}
        for writer in self._writers:
            if writer == self.writer:
                continue
            other = self._log(writer)
            if not other.read():
                continue
            if other.unreadable:
                log.warning("Part of campaign %r's record cannot be read: what it held is not known", self.name)
            header = self.store.load(other.key) or {}
            for recipient, entry in other.items():
                fields = entry_fields(entry)
                if fields is None:
                    continue
                kept = self._earlier.get(recipient)
                if kept is None or (fields[0] == ACCEPTED and kept[0][0] != ACCEPTED):
                    self._earlier[recipient] = (fields, header)

    def _delete(self, head: dict[str, Any]) -> None:
        for writer in head.get("writers", []):
            if isinstance(writer, str):
                other = self._log(writer)
                other.read()
                other.delete()
        self.store.delete(self.key)

    # -- deciding --------------------------------------------------------------------------------

    def prior(self, recipient: str) -> Prior | None:
        """What an earlier writer recorded for ``recipient``: an accepted send if any, else an intent."""
        from airflow_provider_octopods.send_record.guard import prior_of

        self.open()
        found = self._earlier.get(recipient)
        if found is None:
            return None
        fields, header = found
        by = f"DAG {header.get('dag_id')}, run {header.get('run_id')}, task {header.get('task_id')}"
        return prior_of(fields, header.get("try") if isinstance(header.get("try"), int) else None, by=by)

    # -- recording (inside the guard's writes) ---------------------------------------------------

    def intend(self, recipients: Iterable[str]) -> dict[str, Any]:
        """Put an intent for each recipient; returns what the entries held before (for :meth:`undo`)."""
        self.open()
        before: dict[str, Any] = {}
        intent = make_entry(INTENT)
        for recipient in recipients:
            before.setdefault(recipient, self._own.get(recipient))
            self._own.put(recipient, intent)
        return before

    def settle(self, accepted: Iterable[tuple[str, SendResult]], not_sent: Iterable[str]) -> None:
        """Put the accepted sends' results and drop the intents of sends that did not go out."""
        self.open()
        for recipient, result in accepted:
            self._own.put(
                recipient,
                make_entry(ACCEPTED, result.message_id, result.request_id or None, result.channel_message_id or None),
            )
        for recipient in not_sent:
            self._own.drop(recipient)

    def save(self) -> None:
        self._own.save()

    def undo(self, before: dict[str, Any]) -> None:
        self._own.undo(before)


def _expired(head: dict[str, Any], now: float) -> bool:
    expires = head.get("expires")
    return isinstance(expires, (int, float)) and expires < now


def sweep_expired(session: Any = None, now: float | None = None) -> int:
    """Delete every campaign in the Variable table whose time is up; how many. Never raises.

    The listener calls this at the end of each DAG run, with the scheduler's session (the deletes
    join its transaction; one query on the key index finds the campaigns' heads); a session of its
    own only when the caller has none.
    """
    try:
        if session is not None:
            return _sweep(session, time.time() if now is None else now)
        from airflow.utils.session import create_session

        with create_session() as own:
            return _sweep(own, time.time() if now is None else now)
    except Exception:
        log.exception("Could not delete expired Octopods campaigns; they are deleted at a later run's end")
        return 0


def _sweep(session: Any, now: float) -> int:
    from airflow.models.variable import Variable

    heads = [
        key
        for (key,) in session.query(Variable.key).filter(Variable.key.like(f"{CAMPAIGN_PREFIX}%")).all()
        if len(key) == len(CAMPAIGN_PREFIX) + _HASH_CHARS
    ]
    swept = 0
    for key in heads:
        row = session.query(Variable).filter(Variable.key == key).one_or_none()
        try:
            head = json.loads(row.val) if row is not None and row.val else None
        except ValueError:
            head = None
        if isinstance(head, dict) and _expired(head, now):
            for part in session.query(Variable).filter(Variable.key.like(f"{key}%")).all():
                if part.key.startswith(key):
                    session.delete(part)
            swept += 1
    return swept
