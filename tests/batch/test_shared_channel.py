"""Two batches on one channel at the same time, with no pool to serialise them: the API's 429s
slow both down, and every row is still sent once."""

from __future__ import annotations

import threading
from typing import Any

import pytest

from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator
from airflow_provider_octopods.send_record import MemoryStore
from tests.batch.test_operator import context
from tests.conftest import TEST_KEY

LIMIT = 20  # the channel's requests per second, as the sandbox enforces it
MOST_429_SHARE = 0.25  # measured: 14.9 % (21 of 141 requests) in each of six runs on the 2-core machine


def test_two_batches_at_once_without_a_pool_send_each_row_once_and_429s_stay_few(
    octopods_sandbox_factory: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = octopods_sandbox_factory(rate_limit=LIMIT)
    monkeypatch.setenv("AIRFLOW_CONN_OCTOPODS_DEFAULT", server.connection_json(TEST_KEY))
    results: dict[str, Any] = {}

    def batch(name: str, first: int) -> None:
        rows = [{"phone": f"+447700905{first + n:03d}", "name": name} for n in range(60)]
        op = OctopodsSendBatchOperator(
            task_id=name,
            recipients=rows,
            body="Hi {{ recipient.name }}",
            rate_limit=LIMIT,  # each batch believes it has the channel to itself
            record_store=MemoryStore(),
        )
        try:
            # As a worker would, without Airflow's guard against calls from outside a task runner,
            # whose record of callers Airflow 2.11 keeps for the main thread only.
            execute = getattr(type(op).execute, "__wrapped__", type(op).execute)
            results[name] = execute(op, context(run_id=name))
        except BaseException as err:
            results[name] = err

    threads = [threading.Thread(target=batch, args=(name, first)) for name, first in (("a", 0), ("b", 100))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(120)
    assert not [thread for thread in threads if thread.is_alive()]
    assert not [r for r in results.values() if isinstance(r, BaseException)], results
    assert (results["a"]["accepted"], results["b"]["accepted"]) == (60, 60)
    stats = server.stats()
    assert (stats["messages"], stats["duplicates"]) == (120, 0)
    share = stats["answers"].get("429", 0) / stats["requests"]
    assert 0 < share < MOST_429_SHARE, stats  # the limit was met, and the batches backed off
