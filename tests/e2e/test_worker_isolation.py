"""The Celery worker runs Airflow's tasks without any access to the metadata DB (Airflow 3's
production layout): it reaches Airflow only through the API server's execution API. Checked after
every other test of the ``postgres-celery`` tier ran (conftest orders this module near the end)."""

from __future__ import annotations

import os
import re
import subprocess

import pytest

from tests.e2e.conftest import POSTGRES_CELERY
from tests.e2e.deployment import CELERY_WORKER, NO_METADATA_DB, Deployment
from tests.e2e.servers import Servers

pytestmark = pytest.mark.e2e_tiers(POSTGRES_CELERY)
ISO_TIME = re.compile(r"\d{4}-\d\d-\d\dT")


def test_the_celery_worker_ran_tasks_with_no_way_into_the_metadata_db(deployment: Deployment, servers: Servers) -> None:
    assert deployment.environment(CELERY_WORKER)["AIRFLOW__DATABASE__SQL_ALCHEMY_CONN"] == NO_METADATA_DB

    logs = (deployment.home / "logs" / f"{CELERY_WORKER}.out").read_text(errors="replace")
    assert "Executing workload in Celery" in logs  # the tasks did run there
    # The one thing in it that tries the metadata DB is Airflow's own CLI wrapper, which records
    # each ``airflow`` command (here ``airflow celery worker``, once a start) in the DB's audit
    # log and only warns when it cannot: no task, callback or Celery code did.
    tries = [line for line in logs.splitlines() if "port 9 failed" in line or "celery-worker-has-no" in line]
    starts = logs.count("Starting log server on")
    assert tries, "the worker never reached for its (unusable) metadata DB: is this check still looking?"
    assert all(ISO_TIME.match(line) and "Failed to log action" in line for line in tries), tries
    assert len(tries) == starts, (tries, starts)

    # the role the worker has (Celery's results) cannot even connect to Airflow's database
    celery_role = next(role for role in servers.postgres.roles if role.name == "celery")
    metadata_db = next(role for role in servers.postgres.roles if role.name == "airflow").database
    attempt = subprocess.run(
        [*servers.postgres.psql_args(celery_role.name, metadata_db), "-c", "SELECT 1"],
        env=dict(os.environ, PGPASSWORD=celery_role.password),
        capture_output=True,
        text=True,
        check=False,
        timeout=30,
    )
    assert attempt.returncode != 0
    assert "permission denied for database" in attempt.stderr, attempt.stderr
