"""One alert per DAG run and window: a small ledger kept in an Airflow Variable.

Why a Variable: failure callbacks of one run execute in different processes, often on different
machines (Celery, Kubernetes) and, on Airflow 3, without direct database access; Airflow
Variables are the one shared store every one of them can read and write on 2.11 and 3.x. The
ledger uses the send record's store (:class:`~airflow_provider_octopods.send_record.VariableStore`),
which also reaches the metadata DB from DAG-level callbacks outside the Task SDK (``dag.test()``).
Variables offer no atomic compare-and-set, so a new window's leader is elected by "write, wait a
moment, read back": if two failures claim the run at the same instant, the later write wins and
both read the same winner. Whatever goes wrong with the ledger, the caller alerts on its own
rather than stay silent.

How a run's failures become alerts:

* The first failure opens a window. Its callback waits ``gather`` seconds for failures that come
  at the same time (a burst), then alerts once for all of them ("3 tasks failed ...: a, b, c").
* Failures later in the window are recorded and not alerted when something is sure to name them:
  the leader still gathering, or a DAG-level alert of the same recipients still to come. Otherwise
  (no DAG-level notifier, or the run has already ended) the late failure alerts at once, naming
  every failure not alerted yet: one more SMS rather than a name nobody reads.
* The first failure after the window opens a new one, and its alert also lists the failures
  recorded but not yet alerted. A DAG-level callback lists them too, and deletes the ledger: the
  run is over.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_octopods.send_record import RecordStore

SETTLE_SECONDS = 0.5
RECORD_ATTEMPTS = 6
LEDGER_PREFIX = "octopods_alert_ledger_"
# A once-per-try mark written after its run ended (the failure callbacks of a worker that died run
# late, in the dag-processor) outlives the run's own clean-up: any later run's end deletes it.
STALE_MARK_SECONDS = 3600.0


@dataclass
class RunLedger:
    """The alert state of one DAG run.

    :param dag_id: the run's DAG.
    :param run_id: the run.
    :param window: seconds after an alert during which further failures are only recorded.
    :param gather: seconds the window's first failure waits for simultaneous ones.
    :param audience: who is alerted (e.g. a hash of the phones): notifiers with other recipients
        keep their own ledger, so one team's failures are never folded into another team's alert.
    """

    dag_id: str
    run_id: str
    window: float
    gather: float
    audience: str = ""
    clock: Callable[[], float] = time.time
    sleep: Callable[[float], None] = time.sleep
    token: str = field(default_factory=lambda: uuid.uuid4().hex)
    store: RecordStore = field(default_factory=lambda: _variable_store())

    @property
    def key(self) -> str:
        return f"{run_prefix(self.dag_id, self.run_id)}{hashlib.sha256(self.audience.encode()).hexdigest()[:8]}"

    def claim(self, failed_task: str) -> bool:
        """Record ``failed_task``; True if this caller opened a new window and must alert."""
        state = self._read()
        now = self.clock()
        if state.get("since") is not None and now < state["since"] + self.window:
            self._record(failed_task)
            return False
        self._write(state | {"leader": self.token, "since": now, "failed": _added(state["failed"], failed_task)})
        self.sleep(SETTLE_SECONDS)
        state = self._read()
        if state.get("leader") == self.token:
            return True
        self._record(failed_task)
        return False

    def take_unreported(self, *, wait: bool = True) -> list[str]:
        """After the gather time (if ``wait``: the window's leader), the failures not alerted yet,
        now marked alerted."""
        if wait:
            self.sleep(max(0.0, self.gather - SETTLE_SECONDS))
        state = self._read()
        unreported = [t for t in state["failed"] if t not in state["reported"]]
        if unreported or wait:
            gathered = {"gathered": self.token} if wait else {}
            self._write(state | {"reported": state["reported"] + unreported} | gathered)
        return unreported

    def leader_gathering(self) -> bool:
        """Whether this window's leader has not yet taken the failures to name (so it names ours)."""
        state = self._read()
        return state["leader"] is not None and state["gathered"] != state["leader"]

    def _record(self, task: str) -> None:
        """Add ``task`` to the run's failures, checking it stuck: a concurrent write may undo ours."""
        if not task:
            return
        for _ in range(RECORD_ATTEMPTS):
            state = self._read()
            if task in state["failed"]:
                return
            self._write(state | {"failed": [*state["failed"], task]})
            self.sleep(random.uniform(0.02, 0.1))

    def settled(self) -> bool:
        """Whether every failure recorded in this run was named in an alert (or nothing is recorded)."""
        state = self._read()
        return set(state["failed"]) <= set(state["reported"])

    def close(self) -> None:
        """Delete the ledger: the run has ended (a DAG-level callback took what was left)."""
        self.store.delete(self.key)

    def _read(self) -> dict[str, Any]:
        value = self.store.load(self.key) or {}
        clean = {k: v for k, v in value.items() if k in ("since", "leader", "gathered", "failed", "reported")}
        return {"since": None, "leader": None, "gathered": None, "failed": [], "reported": []} | clean

    def _write(self, state: dict[str, Any]) -> None:
        self.store.save(
            self.key,
            state,
            description=f"airflow-provider-octopods alert ledger of {self.dag_id} run {self.run_id}; "
            "deleted when the run ends and every failure in it was named in an alert",
        )


def first_call(
    dag_id: str,
    run_id: str,
    name: str,
    *,
    audience: str = "",
    store: RecordStore | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> bool:
    """Whether this is the first caller to claim ``name`` (a task instance's try) in the run for
    ``audience``: "look, write, wait a moment, read back", so that of two calls seconds apart (how
    Airflow repeats a failure callback) only the first wins. Kept under the run's ledger prefix,
    so the listener deletes it when the run ends."""
    store = store or _variable_store()
    digest = hashlib.sha256("\0".join((audience, name)).encode()).hexdigest()[:16]
    key = f"{run_prefix(dag_id, run_id)}once_{digest}"
    if store.load(key) is not None:
        return False
    token = uuid.uuid4().hex
    store.save(
        key,
        {"once": token, "at": time.time()},
        description=f"airflow-provider-octopods: {dag_id} run {run_id} alerted a failure; deleted when the run ends",
    )
    sleep(SETTLE_SECONDS)
    return (store.load(key) or {}).get("once") == token


def run_prefix(dag_id: str, run_id: str) -> str:
    """The start of the Variable keys of one run's ledgers (one per audience)."""
    digest = hashlib.sha256("\0".join((dag_id, run_id)).encode()).hexdigest()[:20]
    return f"{LEDGER_PREFIX}{digest}_"


def run_ended(dag_id: str, run_id: str, session: Any = None, *, succeeded: bool = False) -> None:
    """At the end of a run: delete its ledgers in which nothing waits to be named. Never raises.

    A run that succeeded gets no DAG-level failure alert (a downstream ``all_done`` task can make a
    run succeed after failures), so its ledgers are deleted whatever they hold, and the names no
    alert carried are logged as an error by the scheduler.

    Runs in the scheduler (and in ``dag.test()``), which has the metadata DB: one indexed query on
    the Variable table. ``session`` is the caller's: the deletes join its transaction and are
    committed with the run's new state. The scheduler forbids any other commit while it holds its
    locks, and closing its thread's session would detach the objects it is working on, so a
    session of our own is used only when the caller has none.
    """
    try:
        if session is not None:
            _delete_settled(session, run_prefix(dag_id, run_id), succeeded)
            return
        from airflow.utils.session import create_session

        with create_session() as own:
            _delete_settled(own, run_prefix(dag_id, run_id), succeeded)
    except Exception:
        logging.getLogger(__name__).exception("Could not tidy the Octopods alert ledgers of run %s", run_id)


def _delete_settled(session: Any, prefix: str, succeeded: bool) -> None:
    from airflow.models.variable import Variable

    stale = time.time() - STALE_MARK_SECONDS
    for row in session.query(Variable).filter(Variable.key.like(f"{LEDGER_PREFIX}%once%")).all():
        try:
            at = json.loads(row.val or "{}").get("at")
        except (ValueError, AttributeError):
            at = None
        if "_once_" in row.key and not row.key.startswith(prefix) and isinstance(at, (int, float)) and at < stale:
            session.delete(row)

    for row in session.query(Variable).filter(Variable.key.like(f"{prefix}%")).all():
        try:
            state = json.loads(row.val or "{}")
        except ValueError:
            state = None
        if not isinstance(state, dict):
            if succeeded:
                session.delete(row)
            continue
        unnamed = [t for t in state.get("failed", []) if t not in set(state.get("reported", []))]
        if unnamed and succeeded:
            logging.getLogger(__name__).error(
                "Failed tasks named in no Octopods alert (the run succeeded, so no DAG-level failure alert came): %s",
                ", ".join(map(str, unnamed)),
            )
        if not unnamed or succeeded:
            session.delete(row)


def _variable_store() -> RecordStore:
    from airflow_provider_octopods.send_record import VariableStore

    return VariableStore()


def _added(items: list[str], item: str) -> list[str]:
    return items if not item or item in items else [*items, item]
