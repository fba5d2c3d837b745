"""``OctopodsNotifier``: tell the on-call person by SMS what broke, in one text."""

from __future__ import annotations

import ast
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseNotifier

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.alerts import Failure, failure_alert, one_line_cause
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsValidationError
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.validation import normalize_phone, positive_number, validate_region
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.templating import check_literal, known_at_parse, refused_at_parse

if TYPE_CHECKING:
    from airflow_provider_octopods.api.models import SendRequest


class OctopodsNotifier(BaseNotifier):
    """Send an SMS alert from any Airflow callback (task or DAG level, failure, retry, success, SLA).

    The default text, when ``body`` is not given, names the DAG, the task, the run, the try and a
    one-line cause taken from the exception (or the callback's ``reason``), never a stack trace,
    and fits one GSM-7 SMS (160 characters) whenever the ids allow it: the cause is shortened
    first, then the run id, then the ids (see ``airflow_provider_octopods.api.alerts``). It works
    with whatever the context holds, down to Airflow 3.0's minimal DAG-level context
    (``dag``, ``run_id``, ``reason``).

    A notifier never turns one failure into two: if an alert cannot be sent (bad key, invalid
    number, network), the reason is logged as an error and nothing is raised. Invalid numbers are
    reported one by one and the valid ones still get the alert.

    :param phones: one number or a list (E.164, or national with ``default_region``). Templated.
    :param body: the text; rendered with Jinja against the callback's context. Templated.
    :param octopods_conn_id: the ``octopods`` connection to send with.
    :param default_region: region (e.g. ``"US"``) for numbers without a country code.
    :param dedup_window: seconds. When set, failures of several tasks of the same DAG run within
        this window send one alert per phone ("3 tasks failed in <dag> run <run>: a, b, c")
        instead of one each: the first failure's callback waits ``min(5 s, window / 4)`` for
        simultaneous failures and alerts once for all of them; later failures in the window are
        recorded and named in the next alert (or the DAG-level one). The shared state lives in an
        Airflow Variable, so it works across workers. Off (``None``) by default: every callback
        alerts at once.
    """

    template_fields: Sequence[str] = ("phones", "body")

    def __init__(
        self,
        *,
        phones: Any,
        body: Any = None,
        octopods_conn_id: str = OctopodsHook.default_conn_name,
        default_region: str | None = None,
        dedup_window: float | None = None,
    ) -> None:
        super().__init__()
        with refused_at_parse(type(self).__name__):
            self.default_region = validate_region(default_region) if default_region else None
            check_literal(phones, self._check_phones)
            check_literal(body, lambda v: _optional_str(v, "body"))
            self.dedup_window = positive_number(dedup_window, field="dedup_window") if dedup_window else None
        self.phones = phones
        self.body = body
        self.octopods_conn_id = octopods_conn_id

    def _check_phones(self, phones: object) -> None:
        """A literal ``phones``: a number, "a, b" or a list; each literal number must be possible."""
        if not isinstance(phones, (str, list, tuple)) or not phones:
            raise OctopodsValidationError("phones", f"must be a number or a non-empty list, got {phones!r}")
        for phone in recipients(phones):
            if known_at_parse(phone):
                normalize_phone(phone, default_region=self.default_region, field="phones")

    def __call__(self, *args: Any) -> None:
        # Rendering errors must not escape into Airflow's callback machinery either.
        try:
            super().__call__(*args)
        except Exception as err:
            self.log.error("Octopods alert was not sent: %s", err)

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        # DAG-level callbacks on Airflow 3 get a serialized DAG that cannot build a Jinja
        # environment (apache/airflow #64649): render with a plain one then.
        dag = context.get("dag") if hasattr(context, "get") else None
        if jinja_env is None and dag is not None and not hasattr(dag, "get_template_env"):
            jinja_env = self.get_template_env()
        super().render_template_fields(context, jinja_env)

    def _render(self, template: Any, context: Any, dag: Any = None) -> Any:
        dag = dag or (context.get("dag") if hasattr(context, "get") else None)
        usable = dag if hasattr(dag, "get_template_env") else None
        # Skip BaseNotifier._render, which would fetch the unusable DAG from the context again.
        return super(BaseNotifier, self)._render(template, context, usable)

    def notify(self, context: Any) -> None:
        try:
            failure: Failure | None = failure_from_context(context)
            if self.dedup_window and failure is not None:
                failure = self._deduplicated(failure)
            if failure is not None:
                self._send_all(self._text(failure))
        except Exception as err:
            self.log.error("Octopods alert was not sent: %s", err)

    def _deduplicated(self, failure: Failure) -> Failure | None:
        """The failure to alert for under deduplication, or None when another callback alerts."""
        from airflow_provider_octopods.notifications.dedup import RunLedger

        assert self.dedup_window is not None
        ledger = RunLedger(
            failure.dag_id or "", failure.run_id or "", self.dedup_window, gather=min(5.0, self.dedup_window / 4)
        )
        try:
            if failure.run_failed:  # DAG-level callback: alert, naming tasks not alerted yet
                return replace(failure, task_ids=tuple(ledger.take_unreported(wait=False)))
            if not ledger.claim(failure.task_ids[0]):
                self.log.info("Octopods alert for run %s already sent; failure recorded", failure.run_id)
                return None
            return replace(failure, task_ids=tuple(ledger.take_unreported()) or failure.task_ids)
        except Exception as err:  # the ledger is an optimisation; an alert must not be lost
            self.log.warning("Alert deduplication unavailable (%s); alerting without it", err)
            return failure

    async def async_notify(self, context: Any) -> None:
        """The same alert from the triggerer (Airflow 3 deadline alerts). Never raises.

        Deduplication is not applied here: its ledger uses synchronous Variable access, which must
        not run inside the triggerer's event loop.
        """
        try:
            from airflow_provider_octopods.clients.aio import AsyncOctopodsClient

            text = self._text(failure_from_context(context))
            hook = OctopodsHook(self.octopods_conn_id, default_region=self.default_region)
            settings = await hook.aget_settings()
            hook.default_region = self.default_region or settings.default_region
            async with AsyncOctopodsClient(settings) as client:
                for request in self._requests(text, hook.default_region):
                    try:
                        await client.send(request)
                        self.log.info("Octopods alert sent to %s", mask_phone(request.phone))
                    except OctopodsError as err:
                        self.log.error(
                            "Octopods alert to %s failed (%s): %s", mask_phone(request.phone), _fate(err), err
                        )
        except Exception as err:
            self.log.error("Octopods alert was not sent: %s", err)

    def _text(self, failure: Failure) -> str:
        if self.body and self.body.strip():
            return self.body
        return failure_alert(failure)

    def _requests(self, text: str, region: str | None) -> list[SendRequest]:
        """One validated send per recipient; invalid numbers are logged one by one and skipped."""
        requests = []
        for phone in recipients(self.phones):
            try:
                requests.append(build_send_request(phone, text, default_region=region))
            except OctopodsValidationError as err:
                self.log.error("Octopods alert not sent to %s: %s %s", mask_phone(phone), err.field, err.problem)
        return requests

    def _send_all(self, text: str) -> None:
        # Alerts are not part of the task's own sends: no send record.
        hook = OctopodsHook(self.octopods_conn_id, default_region=self.default_region, send_record=False)
        for request in self._requests(text, hook.region):
            try:
                hook.send(request)
            except OctopodsError as err:
                self.log.error("Octopods alert to %s failed (%s): %s", mask_phone(request.phone), _fate(err), err)


send_octopods_notification = OctopodsNotifier


def recipients(phones: object) -> list[str]:
    """Rendered ``phones`` as a list: a list, a "[...]" rendering of one, or "a, b; c" text."""
    if isinstance(phones, str):
        text = phones.strip()
        if text.startswith("["):
            try:
                phones = ast.literal_eval(text)
            except (ValueError, SyntaxError):
                return [text]
        else:
            return [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if isinstance(phones, (list, tuple)):
        return [str(p).strip() for p in phones if str(p).strip()]
    return [str(phones)]


def failure_from_context(context: Any) -> Failure:
    """What failed, from a task- or DAG-level callback context of Airflow 2.11 or 3.x.

    Reads only ids, the try number and a one-line cause; degrades to whatever keys are present.
    """
    get = context.get if hasattr(context, "get") else (lambda _key, _default=None: None)
    ti = get("task_instance") or get("ti")
    dag = get("dag")
    dag_run = get("dag_run")
    reason = get("reason")
    dag_id = _attr(ti, "dag_id") or _attr(dag, "dag_id") or get("dag_id")
    run_id = get("run_id") or _attr(dag_run, "run_id") or _attr(ti, "run_id")
    task_id = _attr(ti, "task_id")
    cause = one_line_cause(get("exception"), reason=reason)
    if cause:
        cause = _redact(cause)
    if reason and not get("exception"):
        # A DAG-level callback: the run failed; on 2.x its context also carries the last task.
        return Failure(dag_id=dag_id, run_id=run_id, cause=cause, run_failed=True)
    try_number = _attr(ti, "try_number")
    return Failure(
        dag_id=dag_id,
        run_id=run_id,
        task_ids=(task_id,) if task_id else (),
        try_number=try_number if isinstance(try_number, int) else None,
        cause=cause,
    )


def _fate(err: BaseException) -> str:
    return "it may have been sent" if decide(Operation.SEND, err).maybe_sent else "not sent"


def _optional_str(value: object, field: str) -> None:
    if value is not None and not isinstance(value, str):
        raise OctopodsValidationError(field, f"must be a string, got {type(value).__name__}")


def _attr(obj: object, name: str) -> Any:
    try:
        return getattr(obj, name, None)
    except Exception:
        return None


def _redact(text: str) -> str:
    """Mask anything Airflow knows to be secret (connection passwords, sensitive variables)."""
    try:
        from airflow.providers.common.compat.sdk import redact

        return str(redact(text))
    except Exception:
        return text
