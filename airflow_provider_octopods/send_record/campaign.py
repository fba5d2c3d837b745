"""Campaigns: one SMS per recipient across every run that names the same campaign.

A task instance's own record (:mod:`.guard`) keeps its tries from sending twice, and is deleted
when the task instance succeeds. A campaign outlives runs: under one name, a recipient whose SMS
was accepted once is never sent another, whatever the text and whatever the run (a re-triggered
run, a backfill, a cleared task, a second DAG naming the same campaign).

In the store, a campaign is a *head* (its name, when it expires, and its writers) and one log
per writer, one opening of the campaign by a try of a task instance, in the format of
:mod:`.log`: an intent before each send, the result after it, keyed by a keyed hash of the
recipient's number. The hash's key derives from the campaign's name, which the head holds: as
with the task's own record, someone who can read the store can test a guessed number, but nothing
stored narrows the guess.

A writer registers in the head before it reads the other writers' logs, so it sees everything
recorded by the runs before it. After each write of intents it reads the head again: it registers
again if its registration was lost (two writers registering at once) or the head is gone, and it
stops, sending nothing more, if another run of the same task (the same DAG, task and map index)
has registered since (a run triggered again while this one still ran). Two *different* tasks
sending one campaign at the same moment are not kept apart: give them different recipients, as
mapped chunks of one list have.

A campaign expires ``ttl`` seconds after its last write: the next run finds it expired and starts
afresh, and the provider's listener deletes expired campaigns from the Variable table at the end
of every DAG run (:func:`sweep_expired`). A part of the record that cannot be read makes every
recipient it might have held unknown: not sent, unless ``resend_unknown``.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from collections.abc import Callable, Iterable
from typing import TYPE_CHECKING, Any

from airflow_provider_octopods.api.errors import OctopodsConfigurationError
from airflow_provider_octopods.send_record.log import ACCEPTED, INTENT, TryLog, entry_fields, make_entry
from airflow_provider_octopods.send_record.store import UNREADABLE, RecordStore

if TYPE_CHECKING:
    from airflow_provider_octopods.api.models import SendResult
    from airflow_provider_octopods.send_record.guard import Prior, TaskKey

CAMPAIGN_PREFIX = "octopods_campaign_"
DEFAULT_TTL_SECONDS = 30 * 24 * 3600.0
REGISTER_WAIT_SECONDS = 0.5  # a concurrent registration lands within this; then the head is read back
_REGISTER_TRIES = 5
_HASH_CHARS = 32
_TASK_CHARS = 16
_RECIPIENT_CHARS = 24

log = logging.getLogger(__name__)


def campaign_key(name: str) -> str:
    """The store key of campaign ``name``'s head (its writers' logs take suffixes of it)."""
    return CAMPAIGN_PREFIX + hashlib.sha256(b"octopods-campaign\0" + name.encode()).hexdigest()[:_HASH_CHARS]


class Campaign:
    """One try's view of a campaign: what earlier writers recorded, and this try's own log.

    :param name: the campaign, as the user named it (``"renewals-2026-12-07"``).
    :param task: the task instance sending under it.
    :param try_number: the try of ``task`` now running.
    :param store: where the campaign lives (the send record's store).
    :param ttl: seconds the campaign is kept after its last write.
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
        same_task = "\0".join((task.dag_id, task.task_id, str(task.map_index))).encode()
        # The task (DAG, task, map index) first: another run of the same task shares this prefix.
        self.writer = (
            f"{hashlib.sha256(same_task).hexdigest()[:_TASK_CHARS]}{hashlib.sha256(task._ident).hexdigest()[:8]}"
            f"t{try_number}"
        )
        secret = hashlib.sha256(b"octopods-campaign-recipient\0" + name.encode()).digest()
        self._keyed = hmac.new(secret, digestmod="sha256")
        self._own = self._log(
            self.writer,
            header={"campaign": name, "dag_id": task.dag_id, "run_id": task.run_id, "task_id": task.task_id}
            | {"map_index": task.map_index, "try": try_number},
        )
        self._earlier: dict[str, tuple[list[Any], dict[str, Any]]] = {}
        self._writers: list[str] = []
        self._known: set[str] = set()  # the writers this one has accepted as others' (not superseding it)
        self._unreadable = False
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

    # -- the head --------------------------------------------------------------------------------

    def open(self) -> None:
        """On first use: start afresh if the campaign expired, register this writer, then read
        every other writer's log."""
        if self._opened:
            return
        head = self._load_head()
        if head is not None and _expired(head, self._clock()):
            log.info("Campaign %r expired: its record is deleted and it starts afresh", self.name)
            self._delete(head)
            head = None
        head = self._register(head)
        self._writers = _writers(head)
        self._known = set(self._writers)
        self._read_earlier(own=True)
        self._opened = True

    def _load_head(self) -> dict[str, Any] | None:
        head = self.store.load(self.key)
        if head is not None and head.get(UNREADABLE):
            raise OctopodsConfigurationError(
                f"the record of campaign {self.name!r} cannot be read (Variable {self.key}), so nothing is sent "
                "under it: delete the Variables whose key starts with it to start the campaign afresh, or name "
                "another campaign"
            )
        return head

    def _register(self, head: dict[str, Any] | None) -> dict[str, Any]:
        """Add this writer to the head (and push its expiry back); read back until it is there."""
        for _ in range(_REGISTER_TRIES):
            writers = _writers(head)
            if self.writer not in writers:
                writers.append(self.writer)
            self.store.save(
                self.key,
                {"campaign": self.name, "expires": int(self._clock() + self.ttl), "ttl": self.ttl, "writers": writers},
                description=f"airflow-provider-octopods: campaign {self.name!r}; deleted when it expires",
            )
            self._sleep(REGISTER_WAIT_SECONDS)
            head = self._load_head()
            if head is not None and self.writer in _writers(head):
                return head
        raise OctopodsConfigurationError(f"could not register in campaign {self.name!r}: its record keeps changing")

    def superseded(self) -> str | None:
        """After a write of intents: why this writer must send nothing more, if it must (another
        run of the same task registered since it opened). Registers again if its registration was
        lost or the campaign was deleted, and keeps the campaign from expiring while it is used."""
        head = self._load_head()
        now = self._clock()
        if head is None or self.writer not in _writers(head) or _expires(head) < now + self.ttl / 2:
            if head is None or _expired(head, now):
                self._own.stored = False  # its log may be gone with the campaign: written whole again
            head = self._register(None if head is None or _expired(head, now) else head)
            self._own.save()
        task = self.writer[:_TASK_CHARS]
        for writer in _writers(head):
            if writer not in self._known and writer != self.writer and writer.startswith(task):
                return f"another run of this task started sending campaign {self.name!r}"
        self._known.update(_writers(head))
        return None

    def refresh(self) -> None:
        """Read the other writers' logs again (one may have recorded results since)."""
        if self._opened:
            self._writers = _writers(self._load_head()) or self._writers
            self._read_earlier()

    def _read_earlier(self, *, own: bool = False) -> None:
        """Read what the other writers recorded; with ``own``, when opening, this writer's too,
        from an earlier opening (a batch resumed after waiting for a window, or a run id used
        again, as ``airflow dags test`` of one date does, after its own record was deleted)."""
        self._earlier, self._unreadable = {}, False
        for writer in self._writers:
            if writer == self.writer and not own:
                continue
            other = self._own if writer == self.writer else self._log(writer)
            if not other.read():
                continue
            if other.unreadable:
                log.warning("Part of campaign %r's record cannot be read: what it held counts as unknown", self.name)
                self._unreadable = True
            header = self.store.load(other.key) or {}
            for recipient, entry in other.items():
                fields = entry_fields(entry)
                if fields is None:
                    continue
                kept = self._earlier.get(recipient)
                if kept is None or (fields[0] == ACCEPTED and kept[0][0] != ACCEPTED):
                    self._earlier[recipient] = (fields, header)

    def _delete(self, head: dict[str, Any]) -> None:
        for writer in _writers(head):
            other = self._log(writer)
            other.read()
            other.delete()
        self.store.delete(self.key)

    # -- deciding --------------------------------------------------------------------------------

    def prior(self, recipient: str) -> Prior | None:
        """What an earlier writer recorded for ``recipient``: an accepted send if any, else an
        intent; unreadable when a part of the record could not be read and it is not found."""
        from airflow_provider_octopods.send_record.guard import Prior, prior_of

        self.open()
        found = self._earlier.get(recipient)
        if found is None:
            return Prior(state=UNREADABLE, try_number=None, by=f"campaign {self.name!r}") if self._unreadable else None
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
        """Write what changed in this writer's log since the last write (nothing if nothing did)."""
        self._own.save()

    def undo(self, before: dict[str, Any]) -> None:
        self._own.undo(before)


def _writers(head: dict[str, Any] | None) -> list[str]:
    return [w for w in (head or {}).get("writers", []) if isinstance(w, str)]


def _expires(head: dict[str, Any]) -> float:
    expires = head.get("expires")
    return float(expires) if isinstance(expires, (int, float)) else float("inf")


def _expired(head: dict[str, Any], now: float) -> bool:
    return _expires(head) < now


def sweep_expired(session: Any = None, now: float | None = None) -> int:
    """Delete every campaign in the Variable table whose time is up; how many. Never raises.

    The listener calls this at the end of each DAG run, with the scheduler's session (the deletes
    join its transaction; one query on the key index finds the campaigns' heads); a session of its
    own only when the caller has none.
    """
    try:
        if session is not None:
            with session.begin_nested():  # a failure here must not undo the caller's transaction
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
