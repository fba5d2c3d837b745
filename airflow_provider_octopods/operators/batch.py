"""Scheduled reminder batches: thousands of personalised SMS, paced, never twice, with a report."""

from __future__ import annotations

import asyncio
import gc
import json
import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_octopods.api.batch import BatchPlan, BatchReport, RowOutcome, opt_out_list, plan_batch
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.validation import (
    positive_number,
    rendered_list,
    shown,
    validate_conn_id,
    validate_region,
)
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.templating import check_literal, known_at_parse, refused_at_parse

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_octopods.clients.batch import BatchSender, Sent
    from airflow_provider_octopods.send_record import RecordStore, SendRecord

PROGRESS_SECONDS = 10.0
STOP_GRACE_SECONDS = 30.0
ROWS_IN_XCOM = 1000
SAMPLES = 3


class OctopodsSendBatchOperator(BaseOperator):
    """Send one personalised SMS to each recipient row, at the provider's pace, never twice.

    Every row is checked before the first send: the phone is normalised, ``body`` is rendered for
    the row and checked (1 to 1,600 characters), segments are counted. Invalid rows are reported
    with their row number, field and reason; the others go on. A row with the same phone and text
    as an earlier row is sent once; numbers on the opt-out list are skipped and counted.

    Sends are recorded in the task instance's send record (intents and results, in chunks), so a
    retried, cleared-after-failure or killed task sends only to rows with no accepted send. A send
    whose outcome is unknown (the answer was lost after the request went out, or the worker died)
    is not sent again unless ``resend_unknown``: it is listed in the report for a human.

    :param recipients: the rows: a list of dicts, an ``XComArg`` (an upstream task's return value),
        a Jinja string rendering to either, or the path of a CSV file (local or ``ObjectStoragePath``)
        with a header row. Templated. In the rendered-fields table (the UI's "Rendered Template")
        it shows as a count and its source, never the rows.
    :param body: Jinja template of the text, rendered per row with the task context plus
        ``recipient`` (the row): ``"Hi {{ recipient.name }}, see you at {{ recipient.time }}"``.
        A row whose template fails is reported on its own; the batch goes on.
    :param phone_field: the row field holding the phone number.
    :param region_field: a row field holding the region (``"GB"``) of a number written without
        country code; ``default_region`` otherwise.
    :param default_region: region for numbers without country code. Templated.
    :param opt_out: numbers not to text (replied STOP, UNSUBSCRIBE...): a list, a callable taking
        the E.164 number and returning True to skip it, or the name of an Airflow Variable holding
        a JSON list or a comma- or line-separated list. Templated.
    :param allow_duplicates: send rows with the same phone and text more than once.
    :param dry_run: check and render everything, send nothing; the report holds the segment
        total (the cost estimate) and a few rendered samples. Templated.
    :param rate_limit: the most requests per second, as the API counts them in any one-second
        window (the batch paces at 99 % of it, one request every 1/99th of the limit's second, no burst); None for
        no limit. A 429 from the API pauses the whole batch for its ``Retry-After`` and lowers the
        rate.
    :param max_in_flight: the most requests waiting for an answer at once.
    :param max_failure_ratio: the share of rows sent that may fail (or end unknown) before the
        task fails (default 0.05). The task fails only after everything was sent and reported.
    :param fail_on_invalid: fail the task (after sending the valid rows) when any row is invalid.
    :param resend_unknown: send again rows whose earlier send has an unknown outcome; their
        recipients may get the SMS twice.
    :param report_path: where to write the per-row CSV report (row, masked phone, outcome,
        message id, error): a local path or an ``ObjectStoragePath``. Templated, e.g.
        ``"/reports/{{ ds }}/reminders.csv"``. Without it, the rows are in the XCom report only
        for batches of up to 1,000 rows.
    :param max_xcom_ids: the most message ids returned in XCom (beyond that, they are only in the
        report file), so that a 100,000-row batch never puts megabytes into XCom.
    :param chunk_size: sends recorded with one write of the send record.
    :param record_store: where the send record lives (default: Airflow Variables).

    The message ids are also pushed under the XCom key ``message_ids``, so that
    ``batch.output["message_ids"]`` feeds the delivery sensor. Returns (XCom ``return_value``, also
    pushed as ``report`` when the task fails): counts
    (``accepted``, ``invalid``, ``duplicate``, ``opted_out``, ``failed`` and ``failed_by_code``,
    ``unknown``, ``segments``), ``message_ids``, the rows to look at (``unknown_rows``,
    ``failed_rows``) and, for small batches or dry runs, ``rows`` and ``samples``.
    """

    # ``dry_run`` is kept as ``dry_run_only``: BaseOperator.dry_run() is a method Airflow calls.
    template_fields: Sequence[str] = ("recipients", "default_region", "opt_out", "dry_run_only", "report_path")
    ui_color = "#e4d4ff"

    def __init__(
        self,
        *,
        recipients: Any,
        body: str,
        phone_field: str = "phone",
        region_field: str | None = None,
        default_region: Any = None,
        opt_out: Any = None,
        allow_duplicates: bool = False,
        dry_run: Any = False,
        rate_limit: float | None = None,
        max_in_flight: int = 16,
        max_failure_ratio: float = 0.05,
        fail_on_invalid: bool = False,
        resend_unknown: bool = False,
        report_path: Any = None,
        max_xcom_ids: int = 10_000,
        chunk_size: int = 200,
        octopods_conn_id: str = OctopodsHook.default_conn_name,
        record_store: RecordStore | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        with refused_at_parse(f"{type(self).__name__} (task {self.task_id!r})"):
            self.body_template = _template_text(body)
            for name, text in (("phone_field", phone_field), ("region_field", region_field)):
                if text is not None and (not isinstance(text, str) or not text):
                    raise OctopodsValidationError(name, f"must be a field name, got {shown(text)}")
            for name, flag in (
                ("allow_duplicates", allow_duplicates),
                ("fail_on_invalid", fail_on_invalid),
                ("resend_unknown", resend_unknown),
            ):
                if not isinstance(flag, bool):
                    raise OctopodsValidationError(name, f"must be True or False, got {shown(flag)}")
            validate_conn_id(octopods_conn_id)
            check_literal(default_region, lambda v: v is None or validate_region(v))
            check_literal(dry_run, lambda v: _flag(v, "dry_run"))
            check_literal(recipients, _check_recipients)
            self.rate_limit = None if rate_limit is None else positive_number(rate_limit, field="rate_limit")
            self.max_in_flight = _whole(max_in_flight, "max_in_flight")
            self.max_xcom_ids = _whole(max_xcom_ids, "max_xcom_ids", minimum=0)
            self.chunk_size = _whole(chunk_size, "chunk_size")
            if isinstance(max_failure_ratio, bool) or not isinstance(max_failure_ratio, (int, float)):
                raise OctopodsValidationError("max_failure_ratio", f"must be a number, got {shown(max_failure_ratio)}")
            if not 0 <= max_failure_ratio <= 1:
                raise OctopodsValidationError(
                    "max_failure_ratio", f"must be between 0 and 1, got {shown(max_failure_ratio)}"
                )
        self.recipients = recipients
        self.body = body
        self.phone_field = phone_field
        self.region_field = region_field
        self.default_region = default_region
        self.opt_out = opt_out
        self.allow_duplicates = allow_duplicates
        self.dry_run_only = dry_run
        self.max_failure_ratio = float(max_failure_ratio)
        self.fail_on_invalid = fail_on_invalid
        self.resend_unknown = resend_unknown
        self.report_path = report_path
        self.octopods_conn_id = octopods_conn_id
        self.record_store = record_store
        self._rows: list[Any] | None = None
        self._opt_out_numbers: list[Any] | None = None
        self._stop: threading.Event | None = None

    # -- rendering: the rows never reach the rendered-fields table ---------------------------------

    def _do_render_template_fields(
        self, parent: Any, template_fields: Iterable[str], context: Any, jinja_env: Any, seen_oids: set[int]
    ) -> None:
        # Both the plain and the mapped (partial/expand) rendering paths come through here.
        shown = self.recipients if self._rows is not None else None
        super()._do_render_template_fields(parent, template_fields, context, jinja_env, seen_oids)
        if parent is not self:
            return
        if shown is None or self.recipients != shown:  # not rendered before (the rows are loaded once)
            source = self.recipients
            self._rows = load_rows(source)
            self.recipients = f"{len(self._rows)} recipients ({_describe_source(source)})"
        if isinstance(self.opt_out, (list, tuple, set)):
            self._opt_out_numbers = list(self.opt_out)
            self.opt_out = f"{len(self._opt_out_numbers)} numbers (list)"

    # -- execute ------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        with _LongLivedObjectsFrozen() as frozen:
            return self._execute(context, frozen)

    def _execute(self, context: Context, frozen: _LongLivedObjectsFrozen) -> dict[str, Any]:
        rows = self._rows if self._rows is not None else load_rows(self.recipients)
        dry_run = _flag(self.dry_run_only, "dry_run")
        region = validate_region(self.default_region) if self.default_region else None
        render, samples = self._renderer(context)
        plan = plan_batch(
            rows,
            render=render,
            phone_field=self.phone_field,
            region_field=self.region_field,
            default_region=region,
            opted_out=self._opt_out(region),
            allow_duplicates=self.allow_duplicates,
        )
        self.log.info(
            "Batch of %d rows: %d to send (%d segments), %d invalid, %d duplicate, %d opted out",
            plan.total,
            len(plan.sends),
            plan.segments,
            plan.count(RowOutcome.INVALID),
            plan.count(RowOutcome.DUPLICATE),
            plan.count(RowOutcome.OPTED_OUT),
        )
        for problem in [r for r in plan.set_aside if r.outcome is RowOutcome.INVALID][:20]:
            self.log.warning("Row %d (%s) is invalid: %s", problem.row, problem.phone or "no phone", problem.error)
        report = BatchReport(plan)
        if dry_run:
            for send in plan.sends:
                report.record(send, RowOutcome.PLANNED)
            summary = self._summary(report) | {"dry_run": True, "samples": samples[:SAMPLES]}
            self.log.info("Dry run, nothing sent: %s", _counts_line(summary))
            return summary
        record = self._record(context)
        todo = self._resume(plan, report, record)
        frozen.freeze()  # the plan lives until the end
        retry_helps = False

        def settle(outcome: Sent) -> None:
            nonlocal retry_helps
            if outcome.result is not None:
                report.record(outcome.send, RowOutcome.ACCEPTED, outcome.result)
                return
            error = outcome.error
            report.record(outcome.send, RowOutcome.UNKNOWN if outcome.maybe_sent else RowOutcome.FAILED, error=error)
            retry_helps = retry_helps or (error is not None and decide(Operation.SEND, error).retry_task)

        started = self._send(todo, record, len(plan.sends), settle)
        stopped = self._stop is not None and self._stop.is_set()
        if stopped:  # on_kill: the rows never started are not lost, the next try sends them
            for _, send in todo[started:]:
                report.record(send, RowOutcome.FAILED, error=_Stopped())
        summary = self._summary(report) | {"dry_run": False}
        self._write_report(report, summary)
        self.log.info("Batch %s: %s", "stopped" if stopped else "done", _counts_line(summary))
        if stopped:
            context["ti"].xcom_push(key="report", value=summary)
            from airflow.providers.common.compat.sdk import AirflowException

            raise AirflowException(
                f"Batch stopped by Airflow before its end; a retry sends the rest. {_counts_line(summary)}"
            )
        if summary["message_ids"] is not None:
            context["ti"].xcom_push(key="message_ids", value=summary["message_ids"])
        self._apply_policy(report, summary, retry_helps, context)
        return summary

    def _renderer(self, context: Context) -> tuple[Callable[[Mapping[str, Any]], str], list[dict[str, str]]]:
        env = self.get_template_env()
        template = env.from_string(self.body_template)
        # One set of variables for every row, only ``recipient`` changing: Template.render would copy
        # the globals and the whole task context into a new dict for each row.
        variables = {**template.globals, **context}
        samples: list[dict[str, str]] = []

        def render(row: Mapping[str, Any]) -> str:
            variables["recipient"] = row
            text: str = env.concat(template.root_render_func(template.new_context(variables, shared=True)))
            if len(samples) < SAMPLES:
                samples.append({"phone": mask_phone(row.get(self.phone_field)), "body": text})
            return text

        return render, samples

    def _opt_out(self, region: str | None) -> Callable[[str], bool] | None:
        value: Any = self._opt_out_numbers if self._opt_out_numbers is not None else self.opt_out
        if value is None:
            return None
        if callable(value):
            check = value
            return lambda phone: bool(check(phone))
        if isinstance(value, str):
            value = _variable_list(value)
        if not isinstance(value, Iterable):
            raise OctopodsValidationError(
                "opt_out", f"must be a list, a callable or a Variable name, got {shown(value)}"
            )
        return opt_out_list(value, default_region=region)

    def _record(self, context: Context) -> SendRecord:
        from airflow_provider_octopods.send_record import current_record

        record = current_record(self.record_store)
        if record is None:
            from airflow_provider_octopods.send_record import SendRecord, TaskKey

            ti = context["ti"]
            record = SendRecord(TaskKey.of(ti), try_number=getattr(ti, "try_number", None), store=self.record_store)
        return record

    def _resume(self, plan: BatchPlan, report: BatchReport, record: SendRecord) -> list[tuple[str, Any]]:
        """The sends still to make; those an earlier try made are reported from the record."""
        todo = []
        earlier = unknown = 0
        for send in plan.sends:
            slot = f"{record.content(send.request)}#{send.occurrence}"
            prior = record.prior(slot)
            if prior is None or (not prior.accepted and self.resend_unknown):
                todo.append((slot, send))
            elif prior.accepted:
                report.record(send, RowOutcome.ACCEPTED_EARLIER, prior.result(send.request))
                earlier += 1
            else:
                report.record(send, RowOutcome.UNKNOWN, error=_EarlierUnknown(prior.try_number))
                unknown += 1
        if earlier or unknown:
            self.log.info(
                "Resuming: %d sent by an earlier try, %d with an unknown outcome (not sent again%s), %d to send",
                earlier,
                unknown,
                "" if not unknown else "; resend_unknown=True would",
                len(todo),
            )
        return todo

    def _send(self, todo: list[tuple[str, Any]], record: SendRecord, total: int, settle: Callable[[Sent], None]) -> int:
        """Run the sends on an event loop in a helper thread, passing each outcome to ``settle``
        there; this thread logs progress and, if Airflow interrupts the task (timeout, SIGTERM),
        stops the batch cleanly before giving up. Returns how many of ``todo`` were started."""
        from airflow_provider_octopods.api.pacing import api_pacer
        from airflow_provider_octopods.api.retry import RetryPolicy
        from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
        from airflow_provider_octopods.clients.batch import BatchSender

        if not todo:
            return 0
        settings = OctopodsHook(self.octopods_conn_id).settings
        limiter = api_pacer(self.rate_limit) if self.rate_limit else None
        outcome: dict[str, Any] = {}
        # Waiting on an Event, not Thread.join: a join interrupted by a signal handler's exception
        # (execution_timeout, SIGTERM on 2.11) marks the thread finished while it still runs (CPython 3.11).
        finished = threading.Event()
        stop = self._stop = threading.Event()
        counter: dict[str, BatchSender] = {}

        async def run() -> int:
            async with AsyncOctopodsClient(
                settings,
                retry_policy=RetryPolicy(max_attempts=4, max_rate_limited=50),
                max_connections=self.max_in_flight,
                rate_limiter=limiter,
                stop=stop.is_set,
            ) as client:
                sender = BatchSender(
                    client,
                    record,
                    max_in_flight=self.max_in_flight,
                    chunk_size=self.chunk_size,
                    stop=stop,
                    on_sent=settle,
                    named_by_content=True,  # the slots _resume made
                )
                counter["sender"] = sender
                await sender.run(todo)
                return sender.started

        def work() -> None:
            try:
                outcome["sent"] = asyncio.run(run())
            except BaseException as err:
                outcome["error"] = err
            finally:
                finished.set()

        worker = threading.Thread(target=work, name="octopods-batch", daemon=True)
        started = time.monotonic()
        worker.start()
        progress = _Progress(self.log, total, len(todo), started)
        try:
            while not finished.wait(0.2):
                if "sender" in counter:
                    progress.maybe_log(counter["sender"].done)
        except BaseException:
            self.log.warning("Batch interrupted: no new sends; recording what was sent")
            stop.set()
            finished.wait(STOP_GRACE_SECONDS)
            raise
        if "error" in outcome:
            raise outcome["error"]
        progress.log(counter["sender"].done if "sender" in counter else 0)
        return int(outcome["sent"])

    def on_kill(self) -> None:
        """Airflow 3 calls this on SIGTERM (task cleared, marked failed, heartbeat lost) and kills the
        process a few seconds later: stop starting requests so that the sends in flight get recorded."""
        stop = getattr(self, "_stop", None)
        if stop is not None:
            self.log.warning("Batch killed: no new sends; recording what was sent")
            stop.set()

    def _summary(self, report: BatchReport) -> dict[str, Any]:
        summary = report.summary(max_ids=self.max_xcom_ids, max_rows=ROWS_IN_XCOM)
        if report.plan.total <= ROWS_IN_XCOM:
            summary["rows"] = [
                {
                    k: v
                    for k, v in (
                        ("row", r.row),
                        ("phone", r.phone),
                        ("outcome", r.outcome.value),
                        ("message_id", r.message_id),
                        ("error", r.error),
                    )
                    if v is not None
                }
                for r in report.rows()
            ]
        return summary

    def _write_report(self, report: BatchReport, summary: dict[str, Any]) -> None:
        if not self.report_path:
            if report.plan.total > ROWS_IN_XCOM:
                self.log.warning(
                    "No report_path: the per-row report of this %d-row batch is not kept", report.plan.total
                )
            return
        path = self.report_path
        if isinstance(path, str) and "://" in path:
            path = _object_storage_path(path)
        opener = getattr(path, "open", None)
        if callable(opener) and not isinstance(path, str):
            with opener("w") as out:
                report.write_csv(out)
        else:
            from pathlib import Path

            target = Path(str(path))
            target.parent.mkdir(parents=True, exist_ok=True)
            with target.open("w", newline="", encoding="utf-8") as out:
                report.write_csv(out)
        summary["report_path"] = str(path)
        self.log.info("Per-row report written to %s", path)

    def _apply_policy(self, report: BatchReport, summary: dict[str, Any], retry_helps: bool, context: Context) -> None:
        problems = []
        if self.fail_on_invalid and summary["invalid"]:
            problems.append(f"{summary['invalid']} invalid rows (fail_on_invalid=True)")
        ratio = report.failure_ratio()
        if ratio > self.max_failure_ratio:
            problems.append(
                f"{summary['failed']} failed and {summary['unknown']} unknown of the rows sent "
                f"({ratio:.1%} > max_failure_ratio={self.max_failure_ratio:.1%})"
            )
        if not problems:
            return
        context["ti"].xcom_push(key="report", value=summary)
        from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException

        message = "Batch failed its policy: " + "; ".join(problems) + f". {_counts_line(summary)}"
        if retry_helps and ratio > self.max_failure_ratio:
            raise AirflowException(message + " A retry sends only the rows not accepted yet.")
        raise AirflowFailException(message)


class _LongLivedObjectsFrozen:
    """Keeps Python's full garbage collections short while a batch runs.

    With Airflow loaded, a full collection walks some 200,000 objects: about 100 ms, during which
    the event loop stands still (paced requests miss their slots) and which a batch of 100,000
    rows triggers again and again. The objects alive when the batch starts (and again once it is
    planned) are put out of the collector's reach with ``gc.freeze()``, as Airflow's own executors
    do, and given back at the end; unless something else froze objects before, in which case
    nothing is touched.
    """

    def __enter__(self) -> _LongLivedObjectsFrozen:
        self._ours = gc.get_freeze_count() == 0
        self.freeze()
        return self

    def freeze(self) -> None:
        if self._ours:
            gc.freeze()

    def __exit__(self, *exc: object) -> None:
        if self._ours:
            gc.unfreeze()


class _Stopped(Exception):
    def __init__(self) -> None:
        super().__init__("not sent: the task was stopped before this row's turn")


class _EarlierUnknown(Exception):
    def __init__(self, try_number: int | None) -> None:
        super().__init__(
            f"an earlier try{'' if try_number is None else f' ({try_number})'} may have sent it; "
            "not sent again (resend_unknown=True would)"
        )


class _Progress:
    def __init__(self, log: logging.Logger | Any, total: int, todo: int, started: float) -> None:
        self.log_ = log
        self.total = total
        self.todo = todo
        self.started = started
        self.last = started

    def maybe_log(self, done: int) -> None:
        if time.monotonic() - self.last >= PROGRESS_SECONDS:
            self.log(done)

    def log(self, done: int) -> None:
        now = time.monotonic()
        self.last = now
        rate = done / (now - self.started) if now > self.started else 0.0
        left = self.todo - done
        eta = f"{left / rate:.0f}s" if rate and left else "0s"
        self.log_.info(
            "Batch progress: %d/%d sent in this try (%d in the batch), %.1f msg/s, ETA %s",
            done,
            self.todo,
            self.total,
            rate,
            eta,
        )


def load_rows(source: Any) -> list[Any]:
    """The recipient rows of ``recipients``: a list, a JSON list, or a CSV file's path."""
    if isinstance(source, (list, tuple)):
        return list(source)
    opener = getattr(source, "open", None)
    listed = rendered_list(source) if isinstance(source, str) else None
    if listed is not None:
        return listed
    if isinstance(source, str) or (callable(opener) and hasattr(source, "suffix")):
        return _csv_rows(source)
    if isinstance(source, Iterable) and not isinstance(source, (str, bytes, Mapping)):
        return list(source)
    raise OctopodsValidationError("recipients", f"must be a list of rows or a CSV path, got {type(source).__name__}")


def _csv_rows(source: Any) -> list[dict[str, str]]:
    import csv

    try:
        if isinstance(source, str):
            with open(source, newline="", encoding="utf-8-sig") as handle:
                return list(csv.DictReader(handle))
        with source.open("r") as handle:
            return list(csv.DictReader(handle))
    except OSError as err:
        raise OctopodsValidationError("recipients", f"cannot read the CSV file {source}: {err.strerror}") from None
    except (ValueError, UnicodeError) as err:  # a NUL or a lone surrogate in the path, a file not in UTF-8
        raise OctopodsValidationError("recipients", f"cannot read the CSV file {shown(source)}: {err}") from None


def _describe_source(source: Any) -> str:
    if isinstance(source, str) and not source.lstrip().startswith("["):
        return f"CSV {source}"
    if hasattr(source, "suffix") and hasattr(source, "open"):
        return f"CSV {source}"
    return "list"


def _object_storage_path(url: str) -> Any:
    """``s3://...``, ``gs://...``: Airflow's ObjectStoragePath (3.x: airflow.sdk; 2.11: airflow.io)."""
    import importlib

    try:
        return importlib.import_module("airflow.sdk").ObjectStoragePath(url)
    except (ImportError, AttributeError):
        return importlib.import_module("airflow.io.path").ObjectStoragePath(url)


def _check_recipients(value: object) -> None:
    if isinstance(value, (list, tuple)) and not value:
        raise OctopodsValidationError("recipients", "is an empty list")
    if not isinstance(value, (list, tuple, str)) and not (hasattr(value, "open") and hasattr(value, "suffix")):
        raise OctopodsValidationError("recipients", f"must be a list of rows or a CSV path, got {type(value).__name__}")


def _template_text(body: object) -> str:
    if not isinstance(body, str) or not body.strip():
        raise OctopodsValidationError("body", f"must be a non-empty text template, got {shown(body)}")
    from jinja2 import Environment, TemplateSyntaxError

    try:
        Environment(autoescape=False).parse(body)  # noqa: S701  # SMS text, not HTML; only parsed
    except TemplateSyntaxError as err:
        raise OctopodsValidationError(
            "body", f"is not a valid Jinja template: {err.message} (line {err.lineno})"
        ) from None
    if known_at_parse(body):
        from airflow_provider_octopods.api.validation import validate_body

        validate_body(body)
    return body


def _variable_list(name: str) -> list[str]:
    from airflow_provider_octopods.runtime import variables

    raw = variables().get(name, None)
    if raw is None:
        raise OctopodsValidationError("opt_out", f"names the Variable {shown(name)}, which does not exist")
    try:
        value = json.loads(raw)
    except ValueError:
        value = [part for line in str(raw).splitlines() for part in line.split(",")]
    if not isinstance(value, list):
        raise OctopodsValidationError("opt_out", f"Variable {shown(name)} must hold a list of numbers")
    return [str(v).strip() for v in value if str(v).strip()]


def _flag(value: object, name: str) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise OctopodsValidationError(name, f"must be True or False, got {shown(value)}")


def _whole(value: object, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise OctopodsValidationError(name, f"must be a whole number of at least {minimum}, got {shown(value)}")
    return value


def _counts_line(summary: Mapping[str, Any]) -> str:
    return (
        f"{summary['accepted']} accepted ({summary['accepted_earlier']} by an earlier try), "
        f"{summary['failed']} failed {summary['failed_by_code'] or ''}, {summary['unknown']} unknown, "
        f"{summary['invalid']} invalid, {summary['duplicate']} duplicate, {summary['opted_out']} opted out, "
        f"{summary['segments']} segments"
    ).replace(" {}", "")
