"""The send record: what a task instance has sent, kept outside XCom so it survives every try.

Airflow may run a task's ``execute`` again after an SMS went out: a retry after any later error,
a deferral that timed out, ``execution_timeout``, a killed worker, a failed task cleared by hand.
XComs cannot remember the send (Airflow clears a try's XComs before the next one), so each send
is recorded in a small store every worker can reach: an intent before the request, the result
after it. A later try of the same task instance then knows, for each send:

* accepted earlier -> not sent again; the earlier result (message id) is used;
* intent without result -> the outcome is unknown (the worker died, or the answer was lost):
  not sent again unless the user opted in (``resend_unknown=True``);
* nothing -> sent.

Sends are identified inside a task instance by a *slot*: the operator uses one fixed slot; the
hook, for loops in user code, uses the recipient and text plus how many times the same pair was
sent before in this try (so a retried loop lines up with the earlier try, and sending the same
text to the same number twice on purpose still sends twice).

The record of a task instance is deleted when the task instance succeeds, so a successful task
cleared by hand is a deliberate re-run and sends again. A task that failed keeps its record, so
clearing it later does not send twice; the record goes when a later try succeeds.

The store is pluggable (:class:`RecordStore`); the default is an Airflow Variable per task
instance (:class:`VariableStore`), the one store every worker can write on Airflow 2.11 and 3.x.
``begin``/``accept``/``forget`` take many slots at once, so a batch records a chunk of sends
with one write. An entry is a short JSON list (``[state, try, masked phone, time, message id,
request id, channel message id, content]``, trailing empty fields left out), which costs less than
half of an object per key to encode and store; entries written as objects by earlier versions are
still read.

How it is stored: a *base* of up to ``SHARD_SIZE`` entries per Variable (shards; the first one,
the head, also holds the salt, the shard count and the base's generation, a random token), and a
*journal*: each write stores one small Variable, the next part, holding only what changed since
the write before (``null`` for a dropped intent) and the generation it belongs to, so a write
costs one Variable of its own changes, never a rewrite of whole shards. A reader replays, in
order, the parts of the base's generation over the base, and stops at the first part missing or
of another generation (a part that cannot be read counts as one, and makes the record
unreadable); then it reads the head again, and reads the whole record again if another process
(a try Airflow believes dead, still running) folded the journal meanwhile. Once the journal has
``JOURNAL_CHUNKS`` parts it is folded in: the changed shards are rewritten, then the head with a
new generation, which retires the old journal; the new journal writes over its parts. Nothing is
deleted before the provider's listener sees the task instance succeed. Two processes writing one
record at once (a try Airflow believes dead and its retry) can still write over each other's
parts: Variables have no compare-and-set. A record found damaged (a part that cannot be read, or
an entry of no known shape) stays marked so through later folds: what it held counts as unknown
until the record is deleted. Entries are stored under ``slots``, with a marker under ``entries``
that versions before the journal read as damaged: such a version, reading this record, sends
nothing new rather than miss the journal.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import secrets
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.models import MessageId, SendRequest, SendResult
from airflow_provider_octopods.runtime import variables

log = logging.getLogger(__name__)

VARIABLE_PREFIX = "octopods_send_record_"
INTENT = "intent"
ACCEPTED = "accepted"
OPERATOR_SLOT = "operator"
UNREADABLE = "unreadable"
SHARD_SIZE = 500
# Entries are stored under this field; "entries" holds a marker that versions before the journal
# read as damaged, so that such a version, reading a record this one wrote, sends nothing new.
SLOTS = "slots"
_OLD_READERS = "written by airflow-provider-octopods >= 0.2: see slots"
JOURNAL_CHUNKS = 32
_READS = 3  # reads of a record that another process keeps folding, before it counts as unreadable
_MOST_CHUNKS = 8 * JOURNAL_CHUNKS  # more parts than any writer makes: the store is broken
_CONTENT_CHARS = 24


class RecordStore(Protocol):
    """Where records live: one JSON-safe mapping per key."""

    def load(self, key: str) -> dict[str, Any] | None: ...

    def save(self, key: str, value: dict[str, Any], *, description: str) -> None: ...

    def delete(self, key: str) -> None: ...


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
    """Records in this process only (tests; code running outside Airflow)."""

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


@dataclass(frozen=True)
class TaskKey:
    """The task instance a record belongs to (every try of it shares the record)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @property
    def store_key(self) -> str:
        ident = "\0".join((self.dag_id, self.run_id, self.task_id, str(self.map_index)))
        return VARIABLE_PREFIX + hashlib.sha256(ident.encode()).hexdigest()[:32]

    @classmethod
    def of(cls, task_instance: Any) -> TaskKey:
        """The key of an Airflow task instance (2.11 ``TaskInstance`` or 3.x ``RuntimeTaskInstance``)."""
        map_index = getattr(task_instance, "map_index", -1)
        return cls(
            dag_id=str(task_instance.dag_id),
            run_id=str(task_instance.run_id),
            task_id=str(task_instance.task_id),
            map_index=map_index if isinstance(map_index, int) else -1,
        )


@dataclass(frozen=True)
class Prior:
    """What an earlier try recorded for a slot."""

    state: str
    try_number: int | None
    message_id: MessageId | None = None
    request_id: str | None = None
    channel_message_id: str | None = None
    content: str | None = None  # keyed hash of recipient and text, to tell a changed send apart

    @property
    def accepted(self) -> bool:
        return self.state == ACCEPTED

    def result(self, request: SendRequest) -> SendResult:
        """The earlier send's result, for ``request`` (the same recipient and text)."""
        info = request.segment_info
        return SendResult(
            request_id=self.request_id,
            message_id=self.message_id,
            phone=request.phone,
            segments=info.segments,
            encoding=info.encoding,
            channel_message_id=self.channel_message_id,
        )


class SendRecord:
    """The sends of one task instance across its tries.

    Recipients and texts are never stored: a send is named by a keyed hash of both (the key is a
    random salt kept in the record), next to the masked phone number. Safe to share between the
    threads of one try.

    :param key: the task instance.
    :param try_number: the try now running (written into each entry, for the log and for people).
    :param store: where the record lives; an Airflow Variable by default.
    """

    def __init__(self, key: TaskKey, *, try_number: int | None = None, store: RecordStore | None = None) -> None:
        self.key = key
        self.try_number = try_number
        self.store: RecordStore = store or VariableStore()
        self._loaded_once = False
        self._shard_of: dict[str, int] = {}
        self._shards: list[dict[str, Any]] = [{}]
        self._dirty: set[int] = set()  # shards changed since the base was last written
        self._delta: dict[str, Any] = {}  # entries changed since the last write (None: dropped)
        self._stored = False  # the head is in the store
        self._generation: str | None = None  # the base's; its journal's parts carry it
        self._chunks = 0  # journal parts of this generation in the store
        self._parts = 0  # journal parts of earlier generations that may still be in the store
        self._salt = ""
        self._keyed: Any = None
        self._unreadable = False
        self._occurrences: dict[str, int] = {}
        self._masked: dict[str, str] = {}
        self._lock = threading.RLock()
        self.writes = 0

    @property
    def lock(self) -> threading.RLock:
        """Held by every method; hold it to make several calls one step (``next_slot``, ``prior``
        and ``begin`` of one send, when threads of a task send at once)."""
        return self._lock

    def _loaded(self) -> dict[str, int]:
        """The shard of every recorded slot (the record is read from the store on first use)."""
        if not self._loaded_once:  # set only once every part is read: a failed read is made again
            for _ in range(_READS):
                generation = self._read()
                head = self.store.load(self.key.store_key) or {}
                if head.get("generation") == generation:
                    break
                # Another process (a try Airflow believes dead, still running) folded the journal
                # while this one read it: the parts read may be of two generations. Read again.
            else:
                self._unreadable = True
            self._loaded_once = True
        return self._shard_of

    def _read(self) -> Any:
        """Read the record: the head, the shards, then the journal replayed over them. Returns the
        generation read in the head."""
        self._shard_of.clear()
        self._dirty, self._delta = set(), {}
        self._unreadable = False
        value = self.store.load(self.key.store_key) or {}
        self._stored = bool(value)
        salt = value.get("salt")
        self._salt = salt if isinstance(salt, str) and salt else secrets.token_hex(16)
        self._keyed = hmac.new(self._salt.encode(), digestmod=hashlib.sha256)
        generation = value.get("generation")
        self._generation = generation if isinstance(generation, str) and generation else None
        parts = value.get("parts", 0)
        self._parts = parts if isinstance(parts, int) and 0 <= parts <= _MOST_CHUNKS else _MOST_CHUNKS
        shards = value.get("shards", 1)
        self._shards = []
        for index in range(shards if isinstance(shards, int) and shards > 0 else 1):
            part = value if index == 0 else (self.store.load(self._shard_key(index)) or {SLOTS: {}})
            self._shards.append({})
            for slot, entry in self._readable_entries(part, required=index == 0).items():
                self._shard_of[slot] = index
                self._shards[index][slot] = entry
        self._chunks = 0
        while self._generation is not None:
            change = self.store.load(self._journal_key(self._chunks + 1))
            if change is None or (change.get("generation") != self._generation and not change.get(UNREADABLE)):
                break  # the end, or a part of an older journal not written over yet
            self._chunks += 1
            if self._chunks > _MOST_CHUNKS:
                self._unreadable = True
                break
            for slot, entry in self._readable_entries(change, required=True, dropped=True).items():
                if entry is None:
                    self._drop(slot)
                else:
                    self._put(slot, entry)
        self._delta = {}  # what the journal holds is stored; the base still lacks it (_dirty)
        return value.get("generation")

    def _readable_entries(self, part: dict[str, Any], *, required: bool, dropped: bool = False) -> dict[str, Any]:
        """The well-formed entries of a stored part (None for a dropped slot in a journal part).

        Anything damaged (the part, or one entry) marks the record unreadable: what it held counts
        as unknown. So does a part marked unreadable, which a fold writes when the record it
        folded was (the mark stays until the record is deleted).
        """
        if part.get(UNREADABLE):
            self._unreadable = True
        entries = part.get(SLOTS, part.get("entries", None if required else {}))  # "entries": before 0.2
        if not isinstance(entries, Mapping):
            self._unreadable = self._unreadable or bool(part)
            return {}
        good = {}
        for slot, entry in entries.items():
            if (entry is None and dropped) or (isinstance(entry, (list, Mapping)) and entry and isinstance(slot, str)):
                good[slot] = entry
            else:
                self._unreadable = True
        return good

    def _shard_key(self, index: int) -> str:
        return self.key.store_key if index == 0 else f"{self.key.store_key}_{index}"

    def _journal_key(self, number: int) -> str:
        return f"{self.key.store_key}_j{number}"

    def _entry(self, slot: str) -> Any:
        index = self._loaded().get(slot)
        return None if index is None else self._shards[index].get(slot)

    def _put(self, slot: str, entry: Any) -> None:
        """Set ``slot``'s entry (the record is loaded), in its shard or, for a new slot, in the last
        shard with room."""
        shard_of = self._shard_of
        index = shard_of.get(slot)
        if index is None:
            if len(self._shards[-1]) >= SHARD_SIZE:
                self._shards.append({})
                self._dirty.add(0)  # the first shard counts the shards
            index = len(self._shards) - 1
            shard_of[slot] = index
        self._shards[index][slot] = entry
        self._dirty.add(index)
        self._delta[slot] = entry

    def _drop(self, slot: str) -> None:
        index = self._shard_of.pop(slot, None)
        if index is not None:
            self._shards[index].pop(slot, None)
            self._dirty.add(index)
            self._delta[slot] = None

    def content(self, request: SendRequest) -> str:
        """The keyed hash naming ``request``'s recipient and text in this record."""
        with self._lock:
            self._loaded()
            digest = self._keyed.copy()  # the same as a new HMAC with the salt, without re-keying it
        digest.update(f"{request.phone}\0{request.body}".encode())
        return str(digest.hexdigest()[:_CONTENT_CHARS])

    def next_slot(self, request: SendRequest) -> str:
        """The slot of the next send of ``request`` in this try, counting deliberate repeats.

        The count moves on only past a send this try made or found accepted: after a send that
        provably did not go out the same slot is used again (a user's own retry sends once), and
        while an earlier send of the same pair in this try has an unknown outcome the same slot
        is returned, so that the repeat is refused rather than guessed.
        """
        base = self.content(request)
        with self._lock:
            count = self._occurrences.get(base, 0)
            if count:
                current = _fields(self._entry(f"{base}#{count}"))
                if current is None or current[0] != ACCEPTED:
                    return f"{base}#{count}"
            self._occurrences[base] = count + 1
            return f"{base}#{count + 1}"

    def prior(self, slot: str) -> Prior | None:
        """What an earlier try (or this one) recorded for ``slot``, if anything."""
        with self._lock:
            fields = _fields(self._entry(slot))
            if fields is None:
                return Prior(state=UNREADABLE, try_number=None) if self._unreadable else None
        state, try_number, _, _, message_id, request_id, channel_message_id, content = fields
        return Prior(
            state=str(state),
            try_number=try_number if isinstance(try_number, int) else None,
            message_id=message_id if isinstance(message_id, (int, str)) else None,
            request_id=request_id,
            channel_message_id=channel_message_id,
            content=content or (slot.split("#")[0] if "#" in slot else None),
        )

    def begin(
        self,
        slots: Iterable[tuple[str, SendRequest]],
        accepted: Iterable[tuple[str, SendResult]] = (),
        not_sent: Iterable[str] = (),
        *,
        named_by_content: bool = False,
    ) -> None:
        """Record the intent to send each ``(slot, request)``, and what :meth:`settle` would record
        of ``accepted`` and ``not_sent``; one write for all of them. If the write fails, the slots
        keep what they held before (a later write must not store intents of sends never started).

        :param named_by_content: the caller made every slot as ``f"{content(request)}#{n}"`` (a
            batch does), so the record need not hash each request again to tell.
        """
        with self._lock:
            self._settle(accepted, not_sent)  # loads the record
            now = int(time.time())
            before: dict[str, Any] = {}
            for slot, request in slots:
                before[slot] = self._entry(slot)
                masked = mask_phone(request.phone)
                masked = self._masked.setdefault(masked, masked)  # few distinct ones: shared, not one a row
                content = None if named_by_content else self.content(request)
                if content is None or slot.startswith(f"{content}#"):  # such a slot needs no copy of it
                    self._put(slot, (INTENT, self.try_number, masked, now))
                else:
                    self._put(slot, (INTENT, self.try_number, masked, now, None, None, None, content))
            try:
                self._save()
            except BaseException:  # these sends will not start: what the record held for them stands
                for slot, entry in before.items():
                    if entry is None:
                        self._drop(slot)
                    else:
                        self._put(slot, entry)
                raise

    def accept(self, results: Iterable[tuple[str, SendResult]]) -> None:
        """Record each ``(slot, result)`` the API accepted; one write for all of them."""
        self.settle(results, ())

    def forget(self, slots: Iterable[str]) -> None:
        """Drop the intents of sends that provably did not go out; one write."""
        self.settle((), slots)

    def settle(self, accepted: Iterable[tuple[str, SendResult]], not_sent: Iterable[str]) -> None:
        """Record the accepted sends and drop the intents of those that did not go out; one write."""
        with self._lock:
            self._settle(accepted, not_sent)
            self._save()

    def _settle(self, accepted: Iterable[tuple[str, SendResult]], not_sent: Iterable[str]) -> None:
        with self._lock:
            self._loaded()
            now = int(time.time())
            for slot, result in accepted:
                earlier = _fields(self._entry(slot))
                entry: list[Any] = [
                    ACCEPTED,
                    self.try_number,
                    earlier[2] if earlier is not None and earlier[2] else mask_phone(result.phone),
                    now,
                    result.message_id,
                    result.request_id or None,
                    result.channel_message_id or None,
                    earlier[7] if earlier is not None else None,
                ]
                while entry[-1] is None:
                    entry.pop()
                self._put(slot, tuple(entry))
            for slot in not_sent:
                self._drop(slot)

    def clear(self) -> None:
        """Delete the whole record: the task instance succeeded, nothing in it matters any more."""
        with self._lock:
            self._loaded()
            if self._stored:
                self._delete_all()
            self._shard_of = {}
            self._shards = [{}]
            self._dirty, self._delta = set(), {}
            self._unreadable = self._stored = False
            self._generation, self._parts, self._chunks = None, 0, 0

    def states(self) -> dict[str, str]:
        """The state of every recorded slot (``intent`` or ``accepted``), as a later try would read it."""
        with self._lock:
            self._loaded()
            return {slot: str((_fields(entry) or [None])[0]) for shard in self._shards for slot, entry in shard.items()}

    def _save(self) -> None:
        """Make what changed since the last write durable: one journal part, or a fold."""
        self._loaded()
        self.writes += 1
        if not self._stored or self._generation is None or self._chunks >= JOURNAL_CHUNKS:
            self._compact()
            return
        if not self._delta:
            return
        self.store.save(
            self._journal_key(self._chunks + 1),
            {"generation": self._generation, SLOTS: self._delta},
            description=self._description(),
        )
        self._chunks += 1
        self._delta = {}

    def _compact(self) -> None:
        """Fold the journal into the base: the changed shards, then the head, which names a new
        generation and so retires the old journal, whose parts the new one then writes over.

        A crash before the head is written leaves the old head, its whole journal, and maybe some
        shards already rewritten: replaying the old journal over those gives each slot it touched
        the state it recorded last, and each other slot the state it had (a rewritten shard only
        adds the journal's changes and this write's own, which nothing relies on yet).
        """
        for index in sorted(self._dirty - {0}):
            shard = {"entries": _OLD_READERS, SLOTS: self._shards[index]}
            self.store.save(self._shard_key(index), shard, description=self._description())
        generation = secrets.token_hex(8)  # never one an older part of any life of this record has
        parts = max(self._parts, self._chunks)
        head: dict[str, Any] = {
            "dag_id": self.key.dag_id,
            "run_id": self.key.run_id,
            "task_id": self.key.task_id,
            "map_index": self.key.map_index,
            "updated": time.time(),
            "salt": self._salt,
            "shards": len(self._shards),
            "generation": generation,
            "parts": parts,
            "entries": _OLD_READERS,
            SLOTS: self._shards[0],
        }
        if self._unreadable:
            head[UNREADABLE] = True
        self.store.save(self._shard_key(0), head, description=self._description())
        self._stored, self._generation, self._chunks, self._parts = True, generation, 0, parts
        self._dirty, self._delta = set(), {}

    def _delete_all(self) -> None:
        """Delete every part: the journal parts (of any generation, and any written past the
        known ones by a write that failed after all), then the shards (also any past the known ones)
        from the last, the head last."""
        number = max(self._parts, self._chunks) + 1
        while number <= _MOST_CHUNKS and self.store.load(self._journal_key(number)) is not None:
            number += 1
        for part in range(number - 1, 0, -1):
            self.store.delete(self._journal_key(part))
        shards = len(self._shards)
        while shards < len(self._shards) + _MOST_CHUNKS and self.store.load(self._shard_key(shards)) is not None:
            shards += 1  # written by a fold whose head was never written
        for index in range(shards - 1, -1, -1):
            self.store.delete(self._shard_key(index))

    def _description(self) -> str:
        return (
            f"airflow-provider-octopods: SMS sent by {self.key.dag_id}.{self.key.task_id} in run "
            f"{self.key.run_id}; deleted when that task instance succeeds"
        )


def _fields(entry: Any) -> list[Any] | None:
    """An entry as its eight fields (see the module docstring), whichever way it was written."""
    if isinstance(entry, (list, tuple)) and entry:
        return [*entry, *[None] * (8 - len(entry))]
    if isinstance(entry, Mapping):  # written as an object by an earlier version
        return [
            entry.get("state"),
            entry.get("try"),
            entry.get("phone"),
            entry.get("at"),
            entry.get("message_id"),
            entry.get("request_id"),
            entry.get("channel_message_id"),
            entry.get("content"),
        ]
    return None


# The records used in this process, so that every hook of one try shares one record (and its
# count of repeated sends), and so that they can be deleted when the task instance succeeds.
_ACTIVE: dict[TaskKey, SendRecord] = {}
_ACTIVE_LOCK = threading.Lock()


def current_record(store: RecordStore | None = None) -> SendRecord | None:
    """The record of the task instance running in this process, or None outside a running task."""
    ti = _running_task_instance()
    if ti is None:
        return None
    key = TaskKey.of(ti)
    try_number = getattr(ti, "try_number", None)
    with _ACTIVE_LOCK:  # threads of one task share one record
        record = _ACTIVE.get(key)
        if record is None or record.try_number != try_number or (store is not None and record.store is not store):
            record = SendRecord(key, try_number=try_number if isinstance(try_number, int) else None, store=store)
            _ACTIVE[key] = record
        return record


def task_succeeded(task_instance: Any) -> None:
    """Delete the record of ``task_instance`` if this process used one (the listener calls this).

    Never raises: the task has succeeded; a record left behind only costs a Variable.
    """
    if not _ACTIVE:
        return
    try:
        record = _ACTIVE.pop(TaskKey.of(task_instance), None)
        if record is not None and _success_stands(task_instance):
            record.clear()
    except Exception:
        log.exception("Could not delete the Octopods send record of a succeeded task; it stays as a Variable")


def _success_stands(task_instance: Any) -> bool:
    """Whether the metadata DB holds ``task_instance`` as succeeded.

    Airflow 3 tells the listener of a success even when the API server refused it (409: the task
    instance had already been given up, after lost heartbeats, and its retry may be running): the
    retry then needs the record. Airflow 2.11's task instance has no such question to ask; it
    writes its state itself before the listener runs.
    """
    count = getattr(task_instance, "get_ti_count", None)
    if count is None:
        return True
    succeeded = count(
        dag_id=task_instance.dag_id,
        map_index=task_instance.map_index,
        task_ids=[task_instance.task_id],
        run_ids=[task_instance.run_id],
        states=["success"],
    )
    if succeeded:
        return True
    log.warning(
        "Airflow did not record this task instance's success (it may have been given up and retried): "
        "its Octopods send record is kept, so that no try sends its SMS again"
    )
    return False


def _running_task_instance() -> Any:
    try:
        from airflow.providers.common.compat.sdk import get_current_context

        context = get_current_context()
    except Exception:  # no task is running in this process
        return None
    ti = context.get("ti") or context.get("task_instance")
    return ti if ti is not None and getattr(ti, "run_id", None) else None
