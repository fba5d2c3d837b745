"""Quiet hours and send times, inside real Airflow (dag.test, through a real deferral) against
the sandbox as a real server: rows outside their window or before their send time are held, the
task waits in the triggerer, and each held row goes out once, not before its time."""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from airflow_provider_octopods.sandbox import SandboxServer
from tests.dagrun import RunOutcome

Run = Callable[..., RunOutcome]
Sandbox = Callable[..., SandboxServer]


def test_rows_in_three_time_zones_and_one_due_soon_go_out_each_once_at_their_time(
    sandbox: Sandbox, run: Run, monkeypatch: pytest.MonkeyPatch
) -> None:
    from airflow_provider_octopods.operators.octopods import OctopodsSendBatchOperator

    waits: list[tuple[list[str], datetime]] = []
    defer = OctopodsSendBatchOperator.defer

    def deferring(self: Any, *, trigger: Any, method_name: str, **kwargs: Any) -> None:
        waits.append(([kind.__name__ for kind in type(trigger).__mro__], trigger.moment))
        defer(self, trigger=trigger, method_name=method_name, **kwargs)

    monkeypatch.setattr(OctopodsSendBatchOperator, "defer", deferring)
    server = sandbox()
    now = datetime.now(timezone.utc)
    # A window opening at a minute boundary 40 to 100 s away (UTC); a row due in 20 s, before it.
    opens = (now + timedelta(seconds=100)).replace(second=0, microsecond=0)
    window = f"{opens:%H:%M}-{opens + timedelta(hours=2):%H:%M}"
    due = now + timedelta(seconds=20)
    rows = [
        {"phone": "+447700900001", "name": "Lagos", "tz": "Africa/Lagos"},  # UTC+1: inside the window now
        {"phone": "+447700900002", "name": "London", "tz": "Etc/UTC"},  # UTC: held until the next minute
        {"phone": "+447700900003", "name": "Bogota", "tz": "America/Bogota"},  # UTC-5: after the deadline
        {"phone": "+447700900004", "name": "Soon", "tz": "Africa/Lagos", "send_at": due.isoformat()},
    ]
    outcome = run("octopods_batch_send_windows", {"rows": rows, "window": window})
    assert outcome.task_states["remind"] == "success"
    sent = {m.body.split(",")[0].removeprefix("Hi "): m.accepted_at for m in server.messages()}
    assert sorted(sent) == ["Lagos", "London", "Soon"]  # each once; Bogota's window opens after the deadline
    assert server.duplicates() == 0
    assert sent["Lagos"] < sent["Soon"] < sent["London"]
    assert sent["Soon"] >= due  # not before its send time
    assert sent["London"] >= opens  # not before its window opened
    report = outcome.xcom("remind")
    assert (report["accepted"], report["held"]) == (3, 1)
    assert report["rows"][2]["outcome"] == "held"  # Bogota
    # It waited in the triggerer (a date-time trigger each time), not in the worker: for Soon's
    # send time, then for London's window.
    assert len(waits) == 2
    assert all("DateTimeTrigger" in kinds for kinds, _ in waits)
    assert abs((waits[0][1] - due).total_seconds()) < 1
    assert abs((waits[1][1] - opens).total_seconds()) < 1


@pytest.mark.parametrize("dag_id", ["example_octopods_channel_pool", "example_octopods_channel_shared"])
def test_the_two_recipes_for_batches_sharing_a_channel_send_every_row_once(
    sandbox: Sandbox, run: Run, dag_id: str
) -> None:
    from airflow.models.pool import Pool

    Pool.create_or_update_pool(
        name="octopods_main_channel", slots=1, description="one batch at a time", include_deferred=False
    )
    server = sandbox(rate_limit=50)
    outcome = run(dag_id)
    assert outcome.state == "success"
    stats = server.stats()
    assert (stats["messages"], stats["duplicates"]) == (80, 0)
    assert stats["answers"] == {"201": 80}  # each batch within its share: no 429
