"""The record's format: the log of one try of a task instance.

Each try writes only its own log, so no write of one try can hide a write of another. A log is a
*head* (the shard count and the base's generation, a random token: small, so that checking the
log is still there costs little), a *base* of up to ``SHARD_SIZE`` entries per stored value
(shards), and a *journal*: each write stores one
small value, the next part, holding only what changed since the write before (``null`` for a
dropped intent) and the generation it belongs to. A reader replays, in order, the parts of the
base's generation over the base and stops at the first part missing or of another generation.
Once the journal has ``JOURNAL_CHUNKS`` parts it is folded in: the changed shards are rewritten,
then the head with a new generation, which retires the old journal; the new journal writes over
its parts. A reader that finds the head's generation changed while it read (the owner folded
meanwhile) reads again.

An entry is a short list: ``[state, time, message id, request id, channel message id, content]``,
trailing empty fields left out. ``content`` is kept only for slots not named by their content. No
entry holds a phone number, masked or not, nor any text.

A part that cannot be read, or an entry of no known shape, marks the log *unreadable*: what it
held counts as unknown until the record is deleted.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Iterator, Mapping
from typing import Any

from airflow_provider_octopods.send_record.store import UNREADABLE, RecordStore

INTENT = "intent"
ACCEPTED = "accepted"
SLOTS = "slots"
SHARD_SIZE = 500
JOURNAL_CHUNKS = 32
_MOST_PARTS = 8 * JOURNAL_CHUNKS  # more parts than any writer makes: the store is broken
_READS = 3  # reads of a log whose owner keeps folding it, before it counts as unreadable

Entry = tuple[Any, ...]


def entry_fields(entry: Any) -> list[Any] | None:
    """An entry as its six fields (see the module docstring), or None if it has no known shape."""
    if isinstance(entry, (list, tuple)) and entry and entry[0] in (INTENT, ACCEPTED):
        return [*entry, *[None] * (6 - len(entry))][:6]
    return None


def make_entry(state: str, *fields: Any) -> Entry:
    """An entry of ``state`` with the fields after the time, trailing empty ones left out."""
    entry = [state, int(time.time()), *fields]
    while entry[-1] is None:
        entry.pop()
    return tuple(entry)


class TryLog:
    """The entries one try recorded, as the store holds them.

    :param key: the store key of the log's head; shards and journal parts take suffixes of it.
    :param store: where the log lives.
    :param header: fields written into the head for people reading the store (task, try).
    """

    def __init__(self, key: str, store: RecordStore, *, header: Mapping[str, Any], description: str) -> None:
        self.key = key
        self.store = store
        self.header = dict(header)
        self.description = description
        self.unreadable = False
        self.stored = False  # the head is in the store
        self._shard_of: dict[str, int] = {}
        self._shards: list[dict[str, Any]] = [{}]
        self._dirty: set[int] = set()  # shards changed since the base was last written
        self._delta: dict[str, Any] = {}  # entries changed since the last write (None: dropped)
        self._generation: str | None = None
        self._chunks = 0  # journal parts of this generation in the store
        self._parts = 0  # journal parts of earlier generations that may still be in the store

    # -- reading -------------------------------------------------------------------------------

    def read(self) -> bool:
        """Read the log from the store (again); whether it exists there."""
        for _ in range(_READS):
            generation = self._read_once()
            if not self.stored:
                return False
            head = self.store.load(self.key) or {}
            if head.get("generation") == generation:
                return True
        self.unreadable = True
        return True

    def _read_once(self) -> Any:
        self._shard_of, self._shards = {}, [{}]
        self._dirty, self._delta = set(), {}
        self.unreadable = False
        self._generation, self._chunks, self._parts = None, 0, 0
        head = self.store.load(self.key)
        self.stored = head is not None
        if head is None:
            return None
        generation = head.get("generation")
        self._generation = generation if isinstance(generation, str) and generation else None
        parts = head.get("parts", 0)
        self._parts = parts if isinstance(parts, int) and 0 <= parts <= _MOST_PARTS else _MOST_PARTS
        shards = head.get("shards", 1)
        self._shards = []
        if head.get(UNREADABLE):
            self.unreadable = True
        for index in range(shards if isinstance(shards, int) and 0 < shards <= _MOST_PARTS else 1):
            part = self.store.load(self._shard_key(index)) or {SLOTS: {}}
            self._shards.append({})
            for slot, entry in self._entries_of(part).items():
                self._shard_of[slot] = index
                self._shards[index][slot] = entry
        if self._generation is None:
            self.unreadable = True
        while self._generation is not None:
            change = self.store.load(self._journal_key(self._chunks + 1))
            if change is None or (change.get("generation") != self._generation and not change.get(UNREADABLE)):
                break  # the end, or a part of an older journal not written over yet
            self._chunks += 1
            if self._chunks > _MOST_PARTS:
                self.unreadable = True
                break
            for slot, entry in self._entries_of(change, dropped=True).items():
                if entry is None:
                    self.drop(slot)
                else:
                    self.put(slot, entry)
        self._delta = {}  # what the journal holds is stored; the base still lacks it (_dirty)
        return head.get("generation")

    def _entries_of(self, part: Mapping[str, Any], *, dropped: bool = False) -> dict[str, Any]:
        """The well-formed entries of a stored part; anything damaged marks the log unreadable."""
        if part.get(UNREADABLE):
            self.unreadable = True
        entries = part.get(SLOTS)
        if not isinstance(entries, Mapping):
            self.unreadable = True
            return {}
        good = {}
        for slot, entry in entries.items():
            if (entry is None and dropped) or (isinstance(slot, str) and entry_fields(entry) is not None):
                good[slot] = entry
            else:
                self.unreadable = True
        return good

    def get(self, slot: str) -> Any:
        """The entry of ``slot``, or None."""
        index = self._shard_of.get(slot)
        return None if index is None else self._shards[index].get(slot)

    def items(self) -> Iterator[tuple[str, Any]]:
        for shard in self._shards:
            yield from shard.items()

    # -- writing (the owner only) ----------------------------------------------------------------

    def put(self, slot: str, entry: Any) -> None:
        index = self._shard_of.get(slot)
        if index is None:
            if len(self._shards[-1]) >= SHARD_SIZE:
                self._shards.append({})
            index = len(self._shards) - 1
            self._shard_of[slot] = index
        self._shards[index][slot] = entry
        self._dirty.add(index)
        self._delta[slot] = entry

    def drop(self, slot: str) -> None:
        index = self._shard_of.pop(slot, None)
        if index is not None:
            self._shards[index].pop(slot, None)
            self._dirty.add(index)
            self._delta[slot] = None

    def save(self) -> None:
        """Make what changed since the last write durable: one journal part, or a fold."""
        if not self.stored or self._generation is None or self._chunks >= JOURNAL_CHUNKS:
            self._fold()
        elif self._delta:
            self.store.save(
                self._journal_key(self._chunks + 1),
                {"generation": self._generation, SLOTS: self._delta},
                description=self.description,
            )
            self._chunks += 1
            self._delta = {}

    def _fold(self) -> None:
        """Write the changed shards, then the head naming a new generation (which retires the journal).

        A crash before the head is written leaves the old head and its journal: replaying it over
        shards already rewritten gives each slot the state it recorded last.
        """
        for index in sorted(self._dirty):
            self.store.save(self._shard_key(index), {SLOTS: self._shards[index]}, description=self.description)
        generation = secrets.token_hex(8)
        parts = max(self._parts, self._chunks)
        head: dict[str, Any] = {
            **self.header,
            "updated": int(time.time()),
            "shards": len(self._shards),
            "generation": generation,
            "parts": parts,
        }
        if self.unreadable:
            head[UNREADABLE] = True
        self.store.save(self.key, head, description=self.description)
        self.stored, self._generation, self._chunks, self._parts = True, generation, 0, parts
        self._dirty, self._delta = set(), {}

    def undo(self, before: Mapping[str, Any]) -> None:
        """Give the slots of ``before`` their earlier entries again (after a write that failed)."""
        for slot, entry in before.items():
            if entry is None:
                self.drop(slot)
            else:
                self.put(slot, entry)

    def delete(self) -> None:
        """Delete every part: the journal (any generation, and parts past the known ones), the
        shards from the last (also any past the known ones), the head last."""
        number = max(self._parts, self._chunks) + 1
        while number <= _MOST_PARTS and self.store.load(self._journal_key(number)) is not None:
            number += 1
        for part in range(number - 1, 0, -1):
            self.store.delete(self._journal_key(part))
        shards = len(self._shards)
        while shards < len(self._shards) + _MOST_PARTS and self.store.load(self._shard_key(shards)) is not None:
            shards += 1  # written by a fold whose head was never written
        for index in range(shards - 1, -1, -1):
            self.store.delete(self._shard_key(index))
        self.store.delete(self.key)
        self._shard_of, self._shards = {}, [{}]
        self._dirty, self._delta = set(), {}
        self.stored, self.unreadable = False, False
        self._generation, self._chunks, self._parts = None, 0, 0

    def _shard_key(self, index: int) -> str:
        return f"{self.key}_{index}"

    def _journal_key(self, number: int) -> str:
        return f"{self.key}_j{number}"
