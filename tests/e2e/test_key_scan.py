"""The API key appears nowhere Airflow keeps things (issue 12, part 3), checked after every other
e2e test ran (conftest orders this module last): every example DAG on its success and failure
paths, deferrals, a triggerer restart, a killed worker, alerts, and a send the API refuses.

On the ``postgres-celery`` tier the scan covers the PostgreSQL metadata DB, Celery's result
database, Redis (the broker's queues and Celery's keys) and the servers' own logs too."""

from __future__ import annotations

from tests.e2e.conftest import AIRFLOW_MASK, E2E_KEY, key_hits_in_db, key_hits_in_files, key_hits_in_redis
from tests.e2e.deployment import Deployment, query
from tests.e2e.servers import Servers


def test_the_api_key_is_in_no_file_log_or_table_but_the_connection(
    deployment: Deployment, servers: Servers | None
) -> None:
    run_id = deployment.trigger("octopods_e2e_refused")
    assert deployment.wait_run("octopods_e2e_refused", run_id) == "failed"
    task_logs = [p for p in (deployment.home / "logs").rglob("*") if p.is_file() and "dag_id=" in str(p)]
    refused_log = "".join(p.read_text(errors="replace") for p in task_logs if "octopods_e2e_refused" in str(p))
    assert "API key" in refused_log  # the refusal and its exception are in the log being scanned

    assert key_hits_in_files(deployment.home, E2E_KEY) == []  # task, scheduler, triggerer, server logs
    database = deployment.database_url
    assert key_hits_in_db(database, E2E_KEY, tables=lambda name: name != "connection") == []
    # the scan does find the key where it belongs: the connection added to the metadata DB
    assert key_hits_in_db(database, E2E_KEY, tables=lambda name: name == "connection")
    if servers is not None:
        assert deployment.query("SELECT count(*) FROM task_instance")[0][0] > 0  # the scan read Airflow's rows
        results = servers.result_backend.removeprefix("db+")
        assert query(results, "SELECT count(*) FROM celery_taskmeta")[0][0] > 0  # and Celery's
        assert key_hits_in_db(results, E2E_KEY) == []
        assert key_hits_in_redis(servers.broker_url, E2E_KEY) == []
        assert [log.name for log in servers.logs() if E2E_KEY.encode() in log.read_bytes()] == []

    # Airflow's log masker never had to hide anything in a task's log (its "***"; masked phones
    # are runs of stars between digits)
    assert AIRFLOW_MASK.search("key=***")
    assert not AIRFLOW_MASK.search("to +1*******100")
    masked = [
        line
        for path in task_logs
        for line in path.read_text(errors="replace").splitlines()
        if AIRFLOW_MASK.search(line)
    ]
    assert masked == []
