"""One round of a batch: plan every row, refuse a broken plan, send what is due, then finish or wait.

A batch runs in rounds: the first from ``execute``, one more from ``execute_complete`` after each
wait for held rows. Every round plans the whole batch again and asks the send record what earlier
rounds and tries sent, so a round needs nothing from the one before but the batch's first start.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable, Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from airflow_provider_octopods import metrics
from airflow_provider_octopods.api.batch import BatchPlan, BatchReport, PlannedSend, RowOutcome, plan_batch
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.errors import OctopodsSupersededError, OctopodsWindowClosedError
from airflow_provider_octopods.api.validation import campaign_name, flag, validate_region
from airflow_provider_octopods.batch.report import (
    Stopped,
    counts_line,
    interrupted_line,
    plan_refusal,
    policy_failure,
    policy_problems,
    summary,
    unknown_line,
    write_report,
)
from airflow_provider_octopods.batch.rows import body_renderer
from airflow_provider_octopods.batch.runner import BatchRunner, LongLivedObjectsFrozen, sends_to_make
from airflow_provider_octopods.batch.timing import Timing, wait_trigger
from airflow_provider_octopods.hooks.octopods import OctopodsHook

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_octopods.batch.operator import OctopodsSendBatchOperator
    from airflow_provider_octopods.batch.sender import Sent
    from airflow_provider_octopods.send_record import SendGuard


class BatchRound:
    """One round of ``operator``'s batch in the task ``context``.

    :param operator: the batch operator: its settings, its log, and ``defer`` for the wait.
    :param context: the task's context.
    :param rows: the batch's rows, as loaded from the rendered ``recipients``.
    :param opted_out: for a default region, whether an (E.164) number opted out; None without an ``opt_out``.
    :param started: when the batch first started (UNIX time), as the deferral handed it on; None
        in the first round.
    """

    def __init__(
        self,
        operator: OctopodsSendBatchOperator,
        context: Context,
        *,
        rows: list[Any],
        opted_out: Callable[[str | None], Callable[[str], bool] | None],
        started: float | None,
    ) -> None:
        self.op = operator
        self.rows = rows
        self.opted_out = opted_out
        self.runner: BatchRunner | None = None
        self._stop_asked = False
        self.context = context
        self.log = operator.log
        now = datetime.now(timezone.utc)
        self.timing = Timing(
            send_window=operator.send_window,
            tz_field=operator.tz_field,
            send_at_field=operator.send_at_field,
            deadline=operator.deadline,
            started=_first_start(context, started, now),
            now=now,
        )
        self.sends: Counter[str] = Counter()  # this round's sends by outcome, for the metrics
        self.retry_helps = False
        self.closed: list[PlannedSend] = []  # sends whose window closed before their turn

    def stop(self) -> None:
        """Start no more requests; those in flight are recorded (see :meth:`BatchRunner.stop`).
        Asked before the sends begin (while planning), the round starts none."""
        self._stop_asked = True
        if self.runner is not None:
            self.runner.stop()

    def run(self, frozen: LongLivedObjectsFrozen) -> dict[str, Any]:
        """Plan, then send and finish (returning the batch's summary), or wait (deferring)."""
        op = self.op
        rows = self.rows
        dry_run = flag(op.dry_run_only, field="dry_run")
        region = validate_region(op.default_region) if op.default_region else None
        campaign = campaign_name(op.campaign)
        render, samples = body_renderer(op.get_template_env(), op.body_template, self.context, op.phone_field)
        plan = plan_batch(
            rows,
            render=render,
            phone_field=op.phone_field,
            region_field=op.region_field,
            default_region=region,
            opted_out=self.opted_out(region),
            allow_duplicates=op.allow_duplicates,
            one_per_recipient=campaign is not None,
            schedule=self.timing.schedule if self.timing.active else None,
        )
        self._log_plan(plan)
        report = BatchReport(plan)
        refusal = plan_refusal(
            plan,
            max_invalid_ratio=op.max_invalid_ratio,
            fail_on_invalid=op.fail_on_invalid,
            allow_empty=op.allow_empty,
            phone_field=op.phone_field,
            first_row_fields=[str(k) for k in rows[0]] if rows and isinstance(rows[0], Mapping) else None,
        )
        if dry_run:
            result = self._dry_run(plan, report, samples)
            if refusal is None:
                return result
            result["refused"] = refusal
        elif refusal is not None:
            result = self._summary(report) | {"refused": refusal}
        if refusal is not None:
            from airflow.providers.common.compat.sdk import AirflowFailException

            write_report(report, op.report_path, result, self.log)
            self.context["ti"].xcom_push(key="report", value=result)
            raise AirflowFailException(("Dry run: " if dry_run else "") + refusal)
        guard = self._guard()
        if campaign is not None:
            guard.join_campaign(campaign, ttl=op.campaign_ttl)
        return self._send(plan, report, guard, frozen)

    def _log_plan(self, plan: BatchPlan) -> None:
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

    def _dry_run(self, plan: BatchPlan, report: BatchReport, samples: list[dict[str, Any]]) -> dict[str, Any]:
        for send in plan.sends:
            report.record(send, RowOutcome.PLANNED)
        result = summary(report, max_ids=self.op.max_xcom_ids) | {"dry_run": True, "samples": samples}
        self.log.info("Dry run, nothing sent: %s", counts_line(result))
        if self.timing.active:
            result["sends_by_time"] = self.timing.by_time(plan.sends)
            self.log.info("Sends by time (UTC): %s", result["sends_by_time"])
        for sample in samples:  # quoted: a row's line break cannot make a log line of its own
            self.log.info("Sample for %s: %s", sample["phone"], json.dumps(sample["body"], ensure_ascii=False))
        return result

    def _send(
        self, plan: BatchPlan, report: BatchReport, guard: SendGuard, frozen: LongLivedObjectsFrozen
    ) -> dict[str, Any]:
        """Send what is due now, then wait for held rows, or finish."""
        op, timing = self.op, self.timing
        todo, held = sends_to_make(plan.sends, report, guard, resend_unknown=op.resend_unknown, log=self.log)
        todo, waiting, late = timing.split(todo)
        for send in late:
            report.record(send, RowOutcome.HELD)
        frozen.freeze()  # the plan and the list of sends live until the end
        runner = self.runner = BatchRunner(
            OctopodsHook(op.octopods_conn_id),
            rate_limit=op.rate_limit,
            max_in_flight=op.max_in_flight,
            chunk_size=op.chunk_size,
            log=self.log,
        )
        if self._stop_asked:
            runner.stop()
        settle = self._settler(report)
        try:
            started = runner.run(todo, guard, len(plan.sends), settle, held=len(waiting), next_at=_next(waiting))
            if held and not runner.stopped:
                # An earlier try may have recorded since (a try Airflow gave up, still running):
                # its accepted sends are reported as such, and rows it withdrew are sent now.
                guard.refresh()
                todo, held = sends_to_make(held, report, guard, resend_unknown=op.resend_unknown, log=self.log)
                todo, waiting_too, late_too = timing.split(todo)
                waiting += waiting_too
                for send in late_too:
                    report.record(send, RowOutcome.HELD)
                started = runner.run(todo, guard, len(plan.sends), settle, held=len(waiting), next_at=_next(waiting))
        except OctopodsSupersededError as err:  # another try took over: what this one did is reported
            from airflow_provider_octopods.task_outcomes import final

            metrics.sent(self.sends)
            result = self._summary(report)
            self.log.error("Batch stopped: %s. %s", err, counts_line(result))
            self.context["ti"].xcom_push(key="report", value=result)
            raise final(err) from None
        except BaseException as err:  # Airflow's timeout or SIGTERM: the runner stopped the sends
            metrics.sent(self.sends)
            self.log.warning("%s", interrupted_line(report, type(err).__name__))
            raise
        if runner.stopped:  # on_kill: the rows never started are not lost, the next try sends them
            self.log.warning("%s", interrupted_line(report, "stopped by Airflow"))
            for _, send in todo[started:]:
                report.record(send, RowOutcome.FAILED, error=Stopped())
        elif waiting or self.closed:
            metrics.sent(self.sends)  # this round's; the next round counts its own
            self._wait(report, waiting)
        return self._finish(report, stopped=runner.stopped)

    def _settler(self, report: BatchReport) -> Callable[[Sent], None]:
        """What to do with each send's outcome as it comes (on the runner's event loop)."""

        def settle(outcome: Sent) -> None:
            if isinstance(outcome.error, OctopodsWindowClosedError):  # not sent: waits for the next opening
                self.closed.append(outcome.send)
                return
            if outcome.result is not None:
                report.record(outcome.send, RowOutcome.ACCEPTED, outcome.result)
                self.sends["accepted"] += 1
                return
            error = outcome.error
            report.record(outcome.send, RowOutcome.UNKNOWN if outcome.maybe_sent else RowOutcome.FAILED, error=error)
            self.retry_helps = self.retry_helps or (error is not None and decide(Operation.SEND, error).retry_task)
            if error is not None:
                self.sends[metrics.send_outcome(error)] += 1

        return settle

    def _finish(self, report: BatchReport, *, stopped: bool) -> dict[str, Any]:
        """Report the batch's end, and fail the task if Airflow stopped it or too many sends failed."""
        op, ti = self.op, self.context["ti"]
        result = self._summary(report)
        metrics.sent(self.sends)
        metrics.batch_rows(result)
        write_report(report, op.report_path, result, self.log)
        self.log.info("Batch %s: %s", "stopped" if stopped else "done", counts_line(result))
        unknown = unknown_line(report)
        if unknown is not None:
            self.log.warning("%s", unknown)
        if stopped:
            ti.xcom_push(key="report", value=result)
            from airflow.providers.common.compat.sdk import AirflowException

            raise AirflowException(
                f"Batch stopped by Airflow before its end; a retry sends the rest. {counts_line(result)}"
            )
        if result["message_ids"] is not None:
            ti.xcom_push(key="message_ids", value=result["message_ids"])
        problems = policy_problems(report, result, max_failure_ratio=op.max_failure_ratio)
        if problems:
            ti.xcom_push(key="report", value=result)
            raise policy_failure(
                problems, result, retry_helps=self.retry_helps and report.failure_ratio() > op.max_failure_ratio
            )
        return result

    def _wait(self, report: BatchReport, waiting: list[tuple[str, PlannedSend]]) -> None:
        """Wait in the triggerer until the next held row may go out, then resume (``execute_complete``).

        Rows whose window closed before their turn are planned again after a minute, which finds
        their window's next opening."""
        timing = self.timing
        due = _next(waiting)
        replan = datetime.now(timezone.utc) + timedelta(minutes=1) if self.closed else None
        next_at = min(t for t in (due, replan) if t is not None)
        self.log.info(
            "Batch waiting: %d rows held for their send time or window, the next at %s%s (deadline %s). So far: %s",
            len(waiting),
            f"{due:%Y-%m-%d %H:%M:%S} UTC" if due is not None else "-",
            ""
            if replan is None
            else f"; {len(self.closed)} rows whose window closed before their turn are planned again at "
            f"{replan:%H:%M:%S} UTC for their next window",
            f"{timing.deadline_at:%Y-%m-%d %H:%M} UTC",
            counts_line(self._summary(report)),
        )
        self.op.defer(
            trigger=wait_trigger(next_at),
            method_name="execute_complete",
            kwargs={"started": timing.started},
            timeout=self._wait_timeout(),
        )

    def _wait_timeout(self) -> timedelta | None:
        """What is left of ``execution_timeout``, counted from the batch's first start: it bounds the
        waits too, on Airflow 3 as Airflow 2 does by itself (at least a second, for Airflow to fail
        the task with its own timeout error)."""
        if self.op.execution_timeout is None:
            return None
        first = datetime.fromtimestamp(self.timing.started, timezone.utc)
        return max(first + self.op.execution_timeout - datetime.now(timezone.utc), timedelta(seconds=1))

    def _summary(self, report: BatchReport) -> dict[str, Any]:
        return summary(report, max_ids=self.op.max_xcom_ids) | {"dry_run": False}

    def _guard(self) -> SendGuard:
        from airflow_provider_octopods.send_record import guard_for

        return guard_for(self.context["ti"], self.op.record_store)


def _next(waiting: list[tuple[str, PlannedSend]]) -> datetime | None:
    """When the first of the ``waiting`` sends is due."""
    return min((send.not_before for _, send in waiting if send.not_before is not None), default=None)


def _first_start(context: Any, resumed: float | None, now: datetime) -> float:
    """When the batch first started (UNIX time): as the deferral handed it on, else the task
    instance's start (kept across deferrals), else now."""
    if resumed is not None:
        return resumed
    start = getattr(context.get("ti"), "start_date", None)
    return start.timestamp() if isinstance(start, datetime) else now.timestamp()
