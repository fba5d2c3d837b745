"""The guard: the one place that decides from the send record whether a send may go out.

For each send it answers from what every try of the task instance recorded:

* accepted by an earlier try -> not sent again; the earlier result (message id) is given back;
* an intent without a result -> the outcome is unknown (the worker died, or the answer was lost):
  refused, unless the user opted in with ``resend_unknown=True``;
* nothing -> sent.

It writes the intent before the send and the result after it (or drops the intent of a send
that provably did not go out). The hook (single sends and users' own loops) and the batch both
go through it; nothing else reads or writes the record.

Overlapping tries. Airflow can give a try up (lost heartbeats) while it still runs, and start
the next. Each try writes only its own log (:mod:`.log`), so no write of one try hides another's,
and two steps in a fixed order keep any interleaving from sending twice:

1. A try writes its own log's head *before* it reads the logs of the earlier tries.
2. A try writes each intent *before* it looks for a later try's head, and sends nothing more once
   it finds one (the intents just written are withdrawn).

If try N sends a row after try N+1 read the record, try N wrote its intent after that read, so
after N+1's head was written: step 2 finds that head and stops the send. Otherwise N+1's read saw
the intent, and N+1 reports the row as unknown instead of sending it. This needs a store whose
writes are visible to every read that starts after them (see :class:`.store.RecordStore`).
"""

from __future__ import annotations

import hashlib
import hmac
import math
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import Enum
from typing import Any

from airflow_provider_octopods.api.decision import MAY_HAVE_BEEN_SENT, Operation, decide
from airflow_provider_octopods.api.errors import OctopodsSupersededError, OctopodsUnknownOutcomeError
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.models import MessageId, SendRequest, SendResult
from airflow_provider_octopods.send_record.campaign import Campaign
from airflow_provider_octopods.send_record.log import ACCEPTED, INTENT, TryLog, entry_fields, make_entry
from airflow_provider_octopods.send_record.store import UNREADABLE, RecordStore, VariableStore

VARIABLE_PREFIX = "octopods_send_record_"
OPERATOR_SLOT = "operator"
# A result recorded this soon after the log was seen in the store needs no look of its own: the
# record of a try cannot be deleted under it faster than Airflow gives that try up.
SEEN_SECONDS = 5.0
LATER_TRIES = 2  # later tries looked for: the next one, and one after a try that never ran
_CONTENT_CHARS = 24


@dataclass(frozen=True)
class TaskKey:
    """The task instance a record belongs to (every try of it shares the record)."""

    dag_id: str
    run_id: str
    task_id: str
    map_index: int = -1

    @property
    def _ident(self) -> bytes:
        return "\0".join((self.dag_id, self.run_id, self.task_id, str(self.map_index))).encode()

    @property
    def store_key(self) -> str:
        """The prefix of every key of this task instance's record."""
        return VARIABLE_PREFIX + hashlib.sha256(self._ident).hexdigest()[:32]

    def log_key(self, try_number: int) -> str:
        """The key of the head of try ``try_number``'s log."""
        return f"{self.store_key}_t{try_number}"

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
    """What a try recorded for a slot."""

    state: str
    try_number: int | None
    message_id: MessageId | None = None
    request_id: str | None = None
    channel_message_id: str | None = None
    content: str | None = None  # keyed hash of recipient and text, for slots not named by it
    by: str | None = None  # for a send recorded under a campaign by another task instance: which

    @property
    def accepted(self) -> bool:
        return self.state == ACCEPTED

    def result(self, request: SendRequest) -> SendResult:
        """The recorded send's result, for ``request`` (the same recipient and text)."""
        info = request.segment_info
        return SendResult(
            request_id=self.request_id,
            message_id=self.message_id,
            phone=request.phone,
            segments=info.segments,
            encoding=info.encoding,
            channel_message_id=self.channel_message_id,
        )


class Action(str, Enum):
    """What the guard allows for one send."""

    SEND = "send"
    ACCEPTED_EARLIER = "accepted_earlier"  # give back ``prior.result``
    UNKNOWN = "unknown"  # an earlier send may have gone out: refused


@dataclass(frozen=True)
class Verdict:
    """The guard's answer for one send.

    :param prior: what a try recorded for the slot (for ``SEND``, an unknown outcome being sent
        again under ``resend_unknown``, or None).
    :param changed: the slot held a different recipient or text: this is a new send.
    """

    slot: str
    action: Action
    prior: Prior | None = None
    changed: bool = False


class SendGuard:
    """The sends of one try of a task instance, checked against every try's record.

    Safe to share between the threads of one try; hold :attr:`lock` to make several calls one step.

    :param key: the task instance.
    :param try_number: the try now running (its log is the only one this guard writes).
    :param store: where the record lives; Airflow Variables by default.
    :param last_try: the highest try number the task instance may reach (its ``max_tries + 1``):
        a later try is looked for up to it, and at least two past this one.
    """

    def __init__(
        self,
        key: TaskKey,
        *,
        try_number: int | None = None,
        store: RecordStore | None = None,
        last_try: int | None = None,
    ) -> None:
        self.key = key
        self.try_number = try_number if isinstance(try_number, int) and try_number > 0 else 1
        self.last_try = last_try if isinstance(last_try, int) else self.try_number
        self.store: RecordStore = store or VariableStore()
        self._own = self._log(self.try_number)
        self._earlier: dict[str, list[tuple[list[Any], int]]] = {}  # each earlier try's entry, in try order
        self._deleted = False  # the record was deleted under this try: it writes nothing more
        self._seen_at = -math.inf  # when this try's log was last seen in the store
        self._earlier_unreadable = False
        self._ready = False
        self._occurrences: dict[str, int] = {}
        self._keyed = hmac.new(hashlib.sha256(b"octopods-send-record\0" + key._ident).digest(), digestmod="sha256")
        self._lock = threading.RLock()
        self.writes = 0
        self.campaign: Campaign | None = None
        self._recipients: dict[str, str] = {}  # slot -> its recipient in the campaign, while in flight

    def join_campaign(self, name: str, *, ttl: float) -> Campaign:
        """Decide and record this try's sends under campaign ``name`` too (see :mod:`.campaign`):
        a recipient whose SMS any run of the campaign had accepted is not sent another."""
        with self._lock:
            if self.campaign is None or self.campaign.name != name:
                self.campaign = Campaign(name, self.key, self.try_number, store=self.store, ttl=ttl)
            return self.campaign

    @property
    def lock(self) -> threading.RLock:
        """Held by every method."""
        return self._lock

    def _log(self, try_number: int) -> TryLog:
        key = self.key
        return TryLog(
            key.log_key(try_number),
            self.store,
            header={"dag_id": key.dag_id, "run_id": key.run_id, "task_id": key.task_id, "map_index": key.map_index}
            | {"try": try_number},
            description=(
                f"airflow-provider-octopods: SMS sent by {key.dag_id}.{key.task_id} in run {key.run_id}, "
                f"try {try_number}; deleted when that task instance succeeds"
            ),
        )

    def _prepare(self) -> None:
        """On first use: this try's log in the store first, then every earlier try's log read."""
        if self._ready:
            return
        if not self._own.read():
            self._own.save()
            self.writes += 1
        self._read_earlier()
        self._ready = True

    def _read_earlier(self) -> None:
        self._earlier, self._earlier_unreadable = {}, False
        for number in range(1, self.try_number):
            log = self._log(number)
            if not log.read():
                continue
            self._earlier_unreadable = self._earlier_unreadable or log.unreadable
            for slot, entry in log.items():
                fields = entry_fields(entry)
                if fields is not None:
                    self._earlier.setdefault(slot, []).append((fields, number))

    def refresh(self) -> None:
        """Read the earlier tries' logs again: a try Airflow gave up may have recorded results, or
        withdrawn intents, since this one started."""
        with self._lock:
            if self._ready:
                self._read_earlier()
            if self.campaign is not None:
                self.campaign.refresh()

    # -- deciding --------------------------------------------------------------------------------

    def content(self, request: SendRequest) -> str:
        """The keyed hash naming ``request``'s recipient and text (the same in every try)."""
        digest = self._keyed.copy()
        digest.update(f"{request.phone}\0{request.body}".encode())
        return digest.hexdigest()[:_CONTENT_CHARS]

    def slot(self, request: SendRequest, occurrence: int, *, content: str | None = None) -> str:
        """The slot of the ``occurrence``-th send (from 1) of ``request`` in the task instance
        (``content``: :meth:`content` of ``request``, if the caller has it already)."""
        return f"{content or self.content(request)}#{occurrence}"

    def prior(self, slot: str, *, content: str | None = None) -> Prior | None:
        """What the tries recorded for ``slot``: a send accepted by any try, else the latest entry.

        :param content: for a slot the user named (not by its content), the content of the send
            at hand: only entries of that content count, and when none has it, the latest entry
            (of a changed recipient or text) is returned.
        """
        with self._lock:
            self._prepare()
            entries = list(self._earlier.get(slot, ()))
            own = entry_fields(self._own.get(slot))
            if own is not None:
                entries.append((own, self.try_number))
            if not entries:
                return (
                    Prior(state=UNREADABLE, try_number=None)
                    if self._earlier_unreadable or self._own.unreadable
                    else None
                )
            if content is None and entries[-1][0][5] is not None:  # a slot the user named: its latest send
                return prior_of(*entries[-1])
            if content is not None:
                same = [entry for entry in entries if entry[0][5] == content]
                if not same:
                    return prior_of(*entries[-1])
                entries = same
            accepted = [entry for entry in entries if entry[0][0] == ACCEPTED]
            return prior_of(*(accepted or entries)[-1])

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
                current = self.prior(f"{base}#{count}")
                if current is None or not current.accepted:
                    return f"{base}#{count}"
            self._occurrences[base] = count + 1
            return f"{base}#{count + 1}"

    def decide(
        self, slot: str, request: SendRequest, *, resend_unknown: bool = False, content: str | None = None
    ) -> Verdict:
        """Whether the send of ``request`` in ``slot`` may go out (see the module docstring).

        :param resend_unknown: send again what an earlier try may have sent (its recipient may get
            it twice) instead of refusing it.
        :param content: :meth:`content` of ``request``, if the caller has it already.
        """
        content = content or self.content(request)
        named = slot.startswith(f"{content}#")
        prior = self.prior(slot, content=None if named else content)
        if prior is None:
            return self._in_campaign(Verdict(slot, Action.SEND), request, resend_unknown=resend_unknown)
        if not named and prior.content and prior.content != content:
            return self._in_campaign(
                Verdict(slot, Action.SEND, changed=True, prior=prior), request, resend_unknown=resend_unknown
            )
        if prior.accepted:
            return Verdict(slot, Action.ACCEPTED_EARLIER, prior)
        if not resend_unknown:
            return Verdict(slot, Action.UNKNOWN, prior)
        return self._in_campaign(Verdict(slot, Action.SEND, prior), request, resend_unknown=resend_unknown)

    def _in_campaign(self, verdict: Verdict, request: SendRequest, *, resend_unknown: bool) -> Verdict:
        """A send this task instance may make, checked against the campaign's other runs, if any."""
        if self.campaign is None:
            return verdict
        earlier = self.campaign.prior(self.campaign.recipient(request.phone))
        if earlier is None:
            return verdict
        if earlier.accepted:
            return Verdict(verdict.slot, Action.ACCEPTED_EARLIER, earlier)
        return Verdict(verdict.slot, Action.SEND if resend_unknown else Action.UNKNOWN, earlier)

    # -- recording -------------------------------------------------------------------------------

    def begin(
        self,
        intents: Iterable[tuple[str, SendRequest]],
        accepted: Iterable[tuple[str, SendResult]] = (),
        not_sent: Iterable[str] = (),
        *,
        named_by_content: bool = False,
    ) -> None:
        """Record the intent to send each ``(slot, request)``, with what :meth:`settle` records of
        ``accepted`` and ``not_sent``, in one write; then make sure no later try has started.

        If the write fails, the slots keep what they held before. If a later try has started, the
        intents are withdrawn and :class:`OctopodsSupersededError` is raised: none may go out.

        :param named_by_content: every slot is ``self.slot(request, n)`` (the batch's), so no copy
            of the content is needed in its entry.
        """
        with self._lock:
            self._prepare()
            accepted, not_sent = list(accepted), list(not_sent)
            self._apply(accepted, not_sent)
            self._settle_in_campaign(accepted, not_sent)
            before: dict[str, Any] = {}
            intent = make_entry(INTENT)  # one tuple shared by every slot named by its content
            campaign = self.campaign
            for slot, request in intents:
                before[slot] = self._own.get(slot)
                content = None if named_by_content else self.content(request)
                if content is None or slot.startswith(f"{content}#"):
                    self._own.put(slot, intent)
                else:
                    self._own.put(slot, make_entry(INTENT, None, None, None, content))
                if campaign is not None:
                    self._recipients[slot] = campaign.recipient(request.phone)
            self._write(before)
            in_campaign: dict[str, Any] = {}
            if campaign is not None:
                in_campaign = campaign.intend(self._recipients[slot] for slot in before)
                try:
                    campaign.save()
                except BaseException:  # these sends will not start
                    campaign.undo(in_campaign)
                    self._own.undo(before)
                    self._write(before)
                    raise
            reason = self._superseded()
            if reason is not None:
                reason = f"{reason} while try {self.try_number} still ran (Airflow gave this try up)"
            elif campaign is not None:
                reason = campaign.superseded()
            if reason is not None:
                self._own.undo(before)
                if campaign is not None:
                    campaign.undo(in_campaign)
                    campaign.save()
                if self._deleted:
                    self._own.delete()  # what this try wrote after its record was deleted
                else:
                    self._write(before)
                raise OctopodsSupersededError(f"{reason}: this try sends nothing more, so that no SMS goes out twice")

    def settle(self, accepted: Iterable[tuple[str, SendResult]], not_sent: Iterable[str]) -> None:
        """Record the accepted sends, and drop the intents of those that did not go out; one write.

        Nothing is written once the record was deleted under this try (another try succeeded).
        """
        with self._lock:
            self._prepare()
            accepted, not_sent = list(accepted), list(not_sent)
            self._apply(accepted, not_sent)
            recently = time.monotonic() - self._seen_at < SEEN_SECONDS  # this try's log was there just now
            if not self._deleted and not recently and self.store.load(self._own.key) is None:
                self._deleted = True
                self._own.delete()  # parts written since the record was deleted
            self._write({})
            campaign = self.campaign
            if campaign is not None:
                self._settle_in_campaign(accepted, not_sent)
                campaign.save()  # also what an earlier write that failed left unsaved

    def _settle_in_campaign(self, accepted: list[tuple[str, SendResult]], not_sent: list[str]) -> None:
        """Put the results of sends made under the campaign into its log (not written yet)."""
        campaign, recipients = self.campaign, self._recipients
        if campaign is None or not recipients:
            return
        done = [(recipients.pop(slot), result) for slot, result in accepted if slot in recipients]
        dropped = [recipients.pop(slot) for slot in not_sent if slot in recipients]
        campaign.settle(done, dropped)

    def _apply(self, accepted: Iterable[tuple[str, SendResult]], not_sent: Iterable[str]) -> None:
        for slot, result in accepted:
            earlier = entry_fields(self._own.get(slot))
            self._own.put(
                slot,
                make_entry(
                    ACCEPTED,
                    result.message_id,
                    result.request_id or None,
                    result.channel_message_id or None,
                    earlier[5] if earlier is not None else None,
                ),
            )
        for slot in not_sent:
            self._own.drop(slot)

    def _write(self, before: dict[str, Any]) -> None:
        if self._deleted:
            return
        try:
            self._own.save()
        except BaseException:  # these sends will not start: what the log held for them stands
            self._own.undo(before)
            raise
        self.writes += 1

    def _superseded(self) -> str | None:
        """Why this try must send nothing more, if it must: a later try's log exists, or this try's
        own log is gone (the task instance succeeded in another try, whose listener deleted the
        logs from the first try up)."""
        if self.store.load(self._own.key) is None:
            self._deleted = True
            return "the task instance's send record was deleted (another try succeeded)"
        self._seen_at = time.monotonic()
        for number in range(self.try_number + 1, max(self.try_number + LATER_TRIES, self.last_try) + 1):
            if self.store.load(self.key.log_key(number)) is not None:
                return f"try {number} of this task instance has started"
        return None

    def send_once(
        self,
        request: SendRequest,
        send: Callable[[SendRequest], SendResult],
        log: Any,
        *,
        slot: str | None = None,
        resend_unknown: bool = False,
    ) -> SendResult:
        """Send ``request`` with ``send`` unless the record says it must not go out.

        :param slot: the send's name in the record; by default recipient and text plus how often
            this try already sent that pair (:meth:`next_slot`).
        :param resend_unknown: as for :meth:`decide`.
        :raises: ``send``'s errors; an unknown earlier outcome or a later try as task errors.
        """
        from airflow_provider_octopods.task_outcomes import task_error

        with self._lock:  # the slot, its check and its intent as one step: threads of a task share it
            verdict = self.decide(slot or self.next_slot(request), request, resend_unknown=resend_unknown)
            slot, prior = verdict.slot, verdict.prior
            if verdict.action is Action.ACCEPTED_EARLIER and prior is not None:
                log.info(
                    "Not sending to %s again: try %s already sent it (message %s)",
                    mask_phone(request.phone),
                    prior.try_number,
                    prior.message_id,
                )
                return prior.result(request)
            if verdict.action is Action.UNKNOWN and prior is not None:
                who = (
                    "this try already sent (or is sending, in another thread) this SMS"
                    if prior.try_number == self.try_number
                    else f"an earlier try (try {prior.try_number}) of this task sent an SMS"
                )
                raise task_error(
                    OctopodsUnknownOutcomeError(
                        f"{who} to {mask_phone(request.phone)} and its outcome is unknown; {MAY_HAVE_BEEN_SENT}. "
                        "To send it again anyway, set resend_unknown=True"
                    ),
                    Operation.SEND,
                )
            if verdict.changed and prior is not None:
                log.warning(
                    "Try %s sent a different SMS in this place (message %s; the recipient or text has changed "
                    "since), so this one is sent as a new message",
                    prior.try_number,
                    prior.message_id,
                )
            elif prior is not None:
                log.warning(
                    "Sending to %s again although try %s may have sent it (resend_unknown=True)",
                    mask_phone(request.phone),
                    prior.try_number,
                )
            try:
                self.begin([(slot, request)])
            except OctopodsSupersededError as err:
                raise task_error(err, Operation.SEND) from None
        try:
            result = send(request)
        except Exception as err:
            if not decide(Operation.SEND, err).maybe_sent:
                try:
                    self.settle((), [slot])
                except Exception as settle_err:  # the send's own error matters more
                    log.warning("Could not record that the SMS was not sent: %s", settle_err)
            raise
        try:
            self.settle([(slot, result)], ())
        except Exception as err:  # the SMS is out: report it; a later try will see an unknown outcome
            log.warning("Could not record that message %s was sent: %s", result.message_id, err)
        return result

    # -- the whole record ------------------------------------------------------------------------

    def states(self) -> dict[str, str]:
        """The state of every recorded slot (``intent`` or ``accepted``), as a later try would read it."""
        with self._lock:
            self._prepare()
            slots = set(self._earlier) | {slot for slot, _ in self._own.items()}
            merged = {slot: self.prior(slot) for slot in slots}
            return {slot: prior.state for slot, prior in merged.items() if prior is not None}

    def clear(self) -> None:
        """Delete the logs of this try and every earlier one, from the first: the task instance
        succeeded, nothing in them matters any more. (A try still running unseen finds its own log
        gone, or a later one's present, at its next write of intents, and stops.)"""
        with self._lock:
            for number in range(1, self.try_number + 1):
                log = self._own if number == self.try_number else self._log(number)
                if number == self.try_number or log.read():
                    log.delete()
            self._earlier, self._earlier_unreadable, self._ready = {}, False, False


def prior_of(fields: list[Any], try_number: int | None, *, by: str | None = None) -> Prior:
    """The :class:`Prior` of an entry's fields (see :func:`.log.entry_fields`)."""
    state, _, message_id, request_id, channel_message_id, content = fields
    return Prior(
        by=by,
        state=str(state),
        try_number=try_number,
        message_id=message_id if isinstance(message_id, (int, str)) else None,
        request_id=request_id,
        channel_message_id=channel_message_id,
        content=content,
    )
