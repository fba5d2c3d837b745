"""The send record: what a task instance has sent, kept outside XCom so it survives every try.

Airflow may run a task's ``execute`` again after an SMS went out: a retry after any later error,
a deferral that timed out, ``execution_timeout``, a killed worker, a failed task cleared by hand,
or a try given up while it still runs. XComs cannot remember the send (Airflow clears a try's
XComs before the next one), so each send is recorded in a store every worker can reach: an
intent before the request, the result after it.

* :mod:`.store`: where records live (:class:`VariableStore`, Airflow Variables, by default;
  :class:`MemoryStore`, a test double).
* :mod:`.log`: the record's format, one log per try.
* :mod:`.guard`: :class:`SendGuard`, the one place that decides from the record whether a send
  may go out, and writes its intent and result.
* :mod:`.lifecycle`: the guard of the running task instance, and the record's deletion when it
  succeeds.

Sends are named inside a task instance by a *slot*: the send operator uses one fixed slot; the
hook, for loops in user code, uses the recipient and text plus how many times the same pair was
sent before in this try; the batch, the recipient and text plus the row's occurrence. Recipients
and texts are never stored: a slot carries a keyed hash of both, and nothing stored beside it
narrows a guess of the number.
"""

from airflow_provider_octopods.send_record.guard import (
    OPERATOR_SLOT,
    VARIABLE_PREFIX,
    Action,
    Prior,
    SendGuard,
    TaskKey,
    Verdict,
)
from airflow_provider_octopods.send_record.lifecycle import current_guard, guard_for, task_succeeded
from airflow_provider_octopods.send_record.log import ACCEPTED, INTENT
from airflow_provider_octopods.send_record.store import UNREADABLE, MemoryStore, RecordStore, VariableStore

__all__ = [
    "ACCEPTED",
    "INTENT",
    "OPERATOR_SLOT",
    "UNREADABLE",
    "VARIABLE_PREFIX",
    "Action",
    "MemoryStore",
    "Prior",
    "RecordStore",
    "SendGuard",
    "TaskKey",
    "VariableStore",
    "Verdict",
    "current_guard",
    "guard_for",
    "task_succeeded",
]
