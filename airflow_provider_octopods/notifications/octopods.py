"""``OctopodsNotifier``: tell the on-call person by SMS what broke, in one text."""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseNotifier

from airflow_provider_octopods import metrics
from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.alerts import AlertEvent, EventKind, alert_text, task_list
from airflow_provider_octopods.api.decision import Operation, decide
from airflow_provider_octopods.api.errors import OctopodsError, OctopodsValidationError
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.segments import count_segments
from airflow_provider_octopods.api.validation import (
    check_characters,
    is_blank,
    normalize_phone,
    optional_string,
    positive_number,
    rendered_list,
    shown,
    validate_body,
    validate_conn_id,
    validate_region,
    whole_number,
)
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.notifications.events import event_from_context, log_url
from airflow_provider_octopods.templating import check_literal, known_at_parse, refused_at_parse

if TYPE_CHECKING:
    from airflow_provider_octopods.api.models import SendRequest

DEFAULT_MAX_RECIPIENTS = 20
DEDUPLICATED = (EventKind.FAILED, EventKind.RUN_FAILED)


class OctopodsNotifier(BaseNotifier):
    """Send an SMS alert from any Airflow callback: task or DAG level failure, retry and success
    callbacks, ``sla_miss_callback`` (2.11), and Airflow 3.1+ deadline alerts
    (``DeadlineAlert(..., callback=AsyncCallback(OctopodsNotifier, kwargs={...}))``).

    The default text, when ``body`` is not given, says what happened (failed with a one-line
    cause, failed and will retry with the try count and next try time, succeeded, the run failed or
    succeeded, the run missed its deadline), names the DAG, the task, the run and the try, never
    a stack trace, and fits one GSM-7 SMS (160 characters) whenever the ids allow it (see
    ``airflow_provider_octopods.api.alerts``). A DAG run's failure names its failed tasks (as many as
    fit, then a count) and the run in short: ``Airflow: DAG nut_b failed: tasks extract, load +3
    more (run manual 2026-12-06 23:49:37)``. A ``body`` template gets ``{{ event }}``: one of
    ``failed``, ``retry``, ``succeeded``, ``run_failed``, ``run_succeeded``, ``deadline_missed``;
    and ``{{ log_url }}``: Airflow's link to the task's log (for a run failure, the first failed
    task's), empty when there is none. A link makes the text longer: a second segment, usually.

    A notifier never turns one failure into two: if an alert cannot be sent (bad key, invalid
    number, network), the reason is logged as an error and nothing is raised. Invalid numbers are
    reported one by one and the valid ones still get the alert. Literal configuration that can
    never work (a number that cannot exist, an empty list, too many recipients, an unknown
    region, a literal ``body`` longer than ``max_segments``) is refused when the DAG file is
    parsed, naming the parameter.

    :param phones: one number, ``"a, b"``, or a list (E.164, or national with ``default_region``). Templated.
    :param body: the text; rendered with Jinja against the callback's context. Templated.
    :param octopods_conn_id: the ``octopods`` connection to send with.
    :param default_region: region (e.g. ``"US"``) for numbers without a country code.
    :param dedup_window: seconds. When set, failures of several tasks of the same DAG run within
        this window send one alert per phone ("3 tasks failed in <dag> run <run>: a, b, c")
        instead of one each (see ``notifications/dedup.py``). Off (``None``) by default.
    :param max_recipients: the most phones one alert goes to (default 20); more is refused at
        parse time for literals; a rendered list that is longer alerts the first ones and logs
        the rest as not alerted.
    :param max_segments: with a ``body``: the most SMS segments it may take; a literal body over it
        is refused at parse time, a rendered one is shortened to fit (and logged).
    :param include_cause: put the exception's first line in the default text (default True).
        Airflow's masker hides known secrets there, but not other personal data such as e-mail
        addresses; set False to leave the cause out.
    :param context: set by Airflow 3.1+ when the notifier runs as a deadline alert's
        ``AsyncCallback``; do not pass it yourself.
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
        max_recipients: int = DEFAULT_MAX_RECIPIENTS,
        max_segments: int | None = None,
        include_cause: bool = True,
        context: Any = None,
    ) -> None:
        # ``context``: Airflow 3.1+ passes it when the notifier is an AsyncCallback of a deadline.
        try:
            super().__init__(**({} if context is None else {"context": context}))
        except TypeError:  # Airflow 2.11's BaseNotifier takes no context (and none is ever passed)
            super().__init__()
            self.context = context
        with refused_at_parse(type(self).__name__):
            self.default_region = validate_region(default_region) if default_region else None
            validate_conn_id(octopods_conn_id)
            self.max_recipients = whole_number(max_recipients, field="max_recipients")
            self.max_segments = None if max_segments is None else whole_number(max_segments, field="max_segments")
            if not isinstance(include_cause, bool):
                raise OctopodsValidationError("include_cause", f"must be True or False, got {shown(include_cause)}")
            check_literal(phones, self._check_phones)
            if isinstance(phones, (list, tuple)) and not known_at_parse(phones):
                self._check_literal_items(phones)
            check_literal(body, self._check_body)
            self.dedup_window = positive_number(dedup_window, field="dedup_window") if dedup_window else None
        self.phones = phones
        self._phones_as_written = phones
        self.body = body
        self.octopods_conn_id = octopods_conn_id
        self.include_cause = include_cause

    def _check_phones(self, phones: object) -> None:
        """A literal ``phones``: a number, "a, b" or a list; each literal number must be possible."""
        if not isinstance(phones, (str, list, tuple)) or not recipients(phones):
            raise OctopodsValidationError("phones", f"must be a number or a non-empty list, got {shown(phones)}")
        if len(recipients(phones)) > self.max_recipients:
            raise OctopodsValidationError(
                "phones", f"has {len(recipients(phones))} numbers; at most max_recipients={self.max_recipients}"
            )
        for phone in recipients(phones):
            if known_at_parse(phone):
                normalize_phone(phone, default_region=self.default_region, field="phones")

    def _check_literal_items(self, phones: list[Any] | tuple[Any, ...]) -> None:
        """A list mixing templates and literals: the cap and the literal numbers are known already."""
        if len(phones) > self.max_recipients:
            raise OctopodsValidationError(
                "phones", f"has {len(phones)} entries; at most max_recipients={self.max_recipients}"
            )
        for phone in phones:
            if isinstance(phone, str) and known_at_parse(phone):
                normalize_phone(phone, default_region=self.default_region, field="phones")

    def _check_body(self, body: object) -> None:
        optional_string(body, field="body")
        if isinstance(body, str) and not is_blank(body):
            validate_body(body)
            segments = count_segments(body).segments
            if self.max_segments is not None and segments > self.max_segments:
                raise OctopodsValidationError(
                    "body", f"takes {segments} SMS segments; at most max_segments={self.max_segments}"
                )

    def __call__(self, *args: Any) -> None:
        # Rendering errors must not escape into Airflow's callback machinery either.
        try:
            if args and hasattr(args[0], "get"):
                self._add_template_values(args[0])
            super().__call__(*args)
        except Exception as err:
            self.log.error("Octopods alert was not sent: %s", err)

    def __await__(self) -> Any:
        self._add_template_values(self.context)
        try:
            return super().__await__()
        except Exception as err:  # e.g. a template the deadline context cannot render
            self.log.error("Octopods alert was not sent: %s", err)
            return _nothing().__await__()

    def _add_template_values(self, context: Any) -> None:
        """Give ``body`` templates ``{{ event }}`` and ``{{ log_url }}``, and note which callback slot
        this is, if Airflow's task shows it unambiguously (the task instance's state does not, when
        the DAG processor runs a retry callback after a heartbeat timeout)."""
        try:
            context["log_url"] = ""  # templates may use it whatever happens below
            slot = _callback_slot(self, context.get("task"))
            if slot is not None:
                context["octopods_event"] = slot.value
            event = event_from_context(context, include_cause=False)
            context["event"] = event.kind.value
            context["log_url"] = log_url(context, event)
        except Exception as err:
            self.log.warning("Could not tell which event this callback is for: %s", err)

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
            event: AlertEvent | None = event_from_context(context, include_cause=self.include_cause)
            if event is not None and not self._first_call(event, context):
                self.log.info("Airflow called this failure callback again for the same try: alerted already")
                metrics.incr("alert.suppressed")
                return
            if self.dedup_window and event is not None and event.kind in DEDUPLICATED:
                event = self._deduplicated(event, context)
                if event is None:
                    metrics.incr("alert.suppressed")
            if event is not None:
                self._send_all(self._text(event, also=self._also_failed(event)))
        except Exception as err:
            self.log.error("Octopods alert was not sent: %s", err)

    def _first_call(self, event: AlertEvent, context: Any) -> bool:
        """Whether this is the first call of this notifier for the event's task instance and try.

        Airflow may run a task's failure callback twice for one try (once for a missed heartbeat,
        once when the executor reports the failure); the second one alerts nobody. When it cannot
        be told (no try number, the store unusable), the alert goes out.
        """
        if event.kind not in (EventKind.FAILED, EventKind.RETRY) or event.try_number is None or not event.task_ids:
            return True
        from airflow_provider_octopods.notifications.dedup import first_call

        ti = context.get("ti") or context.get("task_instance")
        map_index = getattr(ti, "map_index", -1)
        name = "\0".join((event.task_ids[0], str(map_index), str(event.try_number)))
        try:
            return first_call(event.dag_id or "", event.run_id or "", name, audience=self._audience())
        except Exception as err:  # the check is an optimisation; an alert must not be lost
            self.log.warning("Could not tell whether this failure was alerted already (%s); alerting", err)
            return True

    def _audience(self) -> str:
        return ",".join(sorted(recipients(self.phones)))

    def _deduplicated(self, event: AlertEvent, context: Any) -> AlertEvent | None:
        """The event to alert for under deduplication, or None when another callback alerts."""
        from airflow_provider_octopods.notifications.dedup import RunLedger
        from airflow_provider_octopods.runtime import dag_run_ended

        assert self.dedup_window is not None
        audience = self._audience()
        ledger = RunLedger(
            event.dag_id or "",
            event.run_id or "",
            self.dedup_window,
            gather=min(5.0, self.dedup_window / 4),
            audience=audience,
        )
        try:
            if event.kind is EventKind.RUN_FAILED:  # DAG-level: alert, naming tasks not alerted yet first
                unreported = ledger.take_unreported(wait=False)
                ledger.close()
                return replace(event, task_ids=task_list([*unreported, *event.task_ids]))
            if ledger.claim(event.task_ids[0]):
                names = ledger.take_unreported()
            elif ledger.leader_gathering():
                self.log.info("Octopods alert for run %s is being sent; failure recorded", event.run_id)
                return None
            elif self._dag_level_alert_follows(context) and dag_run_ended(context) is False:
                self.log.info("Failure recorded; the DAG-level Octopods alert of run %s names it", event.run_id)
                return None
            else:
                names = ledger.take_unreported(wait=False)
                if not names:
                    return None
                self.log.info("No later Octopods alert is sure to name %s: alerting now", ", ".join(names))
            if dag_run_ended(context) is True and ledger.settled():
                ledger.close()
            return replace(event, task_ids=tuple(names) or event.task_ids)
        except Exception as err:  # the ledger is an optimisation; an alert must not be lost
            self.log.warning("Alert deduplication unavailable (%s); alerting without it", err)
            return event

    def _dag_level_alert_follows(self, context: Any) -> bool:
        """Whether the DAG's ``on_failure_callback`` holds a deduplicating notifier for the same
        phones, which will name the failures recorded in this run's ledger when the run fails."""
        dag = context.get("dag") if hasattr(context, "get") else None
        callbacks = getattr(dag, "on_failure_callback", None)
        listed = callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]
        return any(
            isinstance(other, OctopodsNotifier)
            and other.dedup_window is not None
            and other._phones_as_written == self._phones_as_written
            for other in listed
        )

    async def async_notify(self, context: Any) -> None:
        """The same alert from the triggerer (Airflow 3 deadline alerts). Never raises.

        Deduplication is not applied here: its ledger uses synchronous Variable access, which must
        not run inside the triggerer's event loop.
        """
        try:
            text = self._text(event_from_context(context, include_cause=self.include_cause))
            hook = OctopodsHook(self.octopods_conn_id, default_region=self.default_region)
            async with await hook.aget_async_client() as client:
                region = self.default_region or client.settings.default_region
                for request in self._requests(text, region):
                    try:
                        await client.send(request)
                        self.log.info("Octopods alert sent to %s", mask_phone(request.phone))
                        metrics.incr("alert.sent")
                    except OctopodsError as err:
                        self.log.error(
                            "Octopods alert to %s failed (%s): %s", mask_phone(request.phone), _fate(err), err
                        )
        except Exception as err:
            self.log.error("Octopods alert was not sent: %s", err)

    def preview(self, context: Any = None, *, dag_id: str = "my_dag", task_id: str = "my_task") -> str:
        """The exact text of each kind of alert, with segments and encoding; sends nothing.

        :param context: a callback context to preview (one alert); by default one alert of each
            kind is shown for ``dag_id``/``task_id`` with a sample run, try and cause.
        """
        if context is not None:
            events = [event_from_context(context, include_cause=self.include_cause)]
        else:
            events = sample_events(dag_id, task_id, include_cause=self.include_cause)
        lines = []
        for event in events:
            text = self._text(event, rendered=self._preview_body(event, dag_id, task_id))
            info = count_segments(text)
            lines.append(f"{event.kind.value}: {text}")
            lines.append(f"    {len(text)} characters, {info.segments} segment(s), {info.encoding.value}")
        recipients_line = ", ".join(mask_phone(p) for p in recipients(self.phones)) if self.phones else "nobody"
        lines.append(f"to: {recipients_line} (nothing was sent)")
        return "\n".join(lines)

    def _preview_body(self, event: AlertEvent, dag_id: str, task_id: str) -> str | None:
        if not isinstance(self.body, str) or not self.body.strip():
            return None
        from types import SimpleNamespace

        # A made-up log link as long as Airflow's usually are, so that the segments counted are right.
        link = f"http://localhost:8080/dags/{event.dag_id}/runs/{event.run_id}/tasks/{task_id}?try_number=1"
        context: Any = {
            "event": event.kind.value,
            "dag": SimpleNamespace(dag_id=event.dag_id or dag_id),
            "ti": SimpleNamespace(
                task_id=task_id, dag_id=event.dag_id, try_number=event.try_number, run_id=event.run_id
            ),
            "run_id": event.run_id,
            "exception": event.cause,
            "reason": event.cause,
            "log_url": link if event.task_ids else "",
        }
        return str(self.render_template(self.body, context, self.get_template_env()))

    def _also_failed(self, event: AlertEvent) -> str:
        """With a custom ``body`` under dedup: the other tasks this alert must name."""
        if not self.dedup_window or event.kind not in DEDUPLICATED:
            return ""
        others = event.task_ids if event.kind is EventKind.RUN_FAILED else event.task_ids[1:]
        return f" (also failed: {', '.join(others)})" if others else ""

    def _text(self, event: AlertEvent, rendered: str | None = None, also: str = "") -> str:
        body = rendered if rendered is not None else self.body
        if not isinstance(body, str) or is_blank(body):
            return alert_text(event)
        check_characters(body, field="body")  # before counting segments, which cannot encode surrogates
        body = body.rstrip() + also
        if self.max_segments is not None and count_segments(body).segments > self.max_segments:
            shortened = fit_segments(body, self.max_segments)
            self.log.error(
                "Octopods alert body takes %d segments, more than max_segments=%d: sent shortened to %d characters",
                count_segments(body).segments,
                self.max_segments,
                len(shortened),
            )
            return shortened
        return body

    def _requests(self, text: str, region: str | None) -> list[SendRequest]:
        """One validated send per recipient; invalid numbers are logged one by one and skipped."""
        requests = []
        phones = recipients(self.phones)
        if not phones:
            self.log.error("Octopods alert not sent: phones rendered to no number at all (%r)", self.phones)
        if len(phones) > self.max_recipients:
            self.log.error(
                "Octopods alert: phones has %d numbers, more than max_recipients=%d; not alerted: %s",
                len(phones),
                self.max_recipients,
                ", ".join(mask_phone(p) for p in phones[self.max_recipients :][:10]),
            )
            phones = phones[: self.max_recipients]
        for phone in phones:
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
            else:
                metrics.incr("alert.sent")


send_octopods_notification = OctopodsNotifier


def octopods_deadline_callback(**kwargs: Any) -> Any:
    """An Airflow 3.1+ ``AsyncCallback`` for ``DeadlineAlert(callback=...)`` that sends this alert.

    Takes the notifier's parameters and checks them now, when the DAG file is parsed, as the
    notifier does; ``AsyncCallback(OctopodsNotifier, kwargs=...)`` would only build the notifier
    in the triggerer, when the deadline is missed.
    """
    OctopodsNotifier(**kwargs)
    try:
        async_callback = importlib.import_module("airflow.sdk").AsyncCallback
    except (ImportError, AttributeError):
        raise OctopodsValidationError(
            "octopods_deadline_callback", "needs Airflow 3.1+ deadline alerts; use sla_miss_callback on Airflow 2"
        ) from None
    return async_callback(OctopodsNotifier, kwargs=kwargs)


def recipients(phones: object) -> list[str]:
    """Rendered ``phones`` as a list: a list, a "[...]" rendering of one, or "a, b; c" text."""
    if isinstance(phones, str):
        text = phones.strip()
        if text.startswith("["):
            listed = rendered_list(text)
            if listed is None:
                return [text]
            phones = listed
        else:
            return [p.strip() for p in text.replace(";", ",").split(",") if p.strip()]
    if isinstance(phones, (list, tuple)):
        texts = [p.strip() if isinstance(p, str) else shown(p) for p in phones]
        return [text for text in texts if text]
    return [shown(phones)]


def _callback_slot(notifier: object, task: Any) -> EventKind | None:
    """The kind of the one task callback slot holding ``notifier``, or None if several or none do."""
    slots = {
        EventKind.FAILED: "on_failure_callback",
        EventKind.RETRY: "on_retry_callback",
        EventKind.SUCCEEDED: "on_success_callback",
    }
    found = []
    for kind, name in slots.items():
        callbacks = getattr(task, name, None) if task is not None else None
        listed = callbacks if isinstance(callbacks, (list, tuple)) else [callbacks]
        if any(callback is notifier for callback in listed):
            found.append(kind)
    return found[0] if len(found) == 1 else None


async def _nothing() -> None:
    return None


def _fate(err: BaseException) -> str:
    return "it may have been sent" if decide(Operation.SEND, err).maybe_sent else "not sent"


def sample_events(dag_id: str, task_id: str, *, include_cause: bool = True) -> list[AlertEvent]:
    """One made-up event of each kind, for :meth:`OctopodsNotifier.preview`."""
    run = "scheduled__2026-11-25T06:00:00+00:00"
    cause = "KeyError: 'customer_id'" if include_cause else None
    task = (task_id,)
    return [
        AlertEvent(dag_id, run, task, 3, cause, EventKind.FAILED, max_tries=3),
        AlertEvent(dag_id, run, task, 1, cause, EventKind.RETRY, max_tries=3, next_try="06:05 UTC"),
        AlertEvent(dag_id, run, task, 2, None, EventKind.SUCCEEDED, max_tries=3),
        AlertEvent(dag_id, run, task, None, "task_failure" if include_cause else None, EventKind.RUN_FAILED),
        AlertEvent(dag_id, run, (), None, None, EventKind.RUN_SUCCEEDED),
        AlertEvent(
            dag_id, run, kind=EventKind.DEADLINE_MISSED, deadline=None, due="2026-11-25 07:00 UTC", late_by="12m"
        ),
    ]


def fit_segments(text: str, segments: int) -> str:
    """``text`` cut (with "...") to at most ``segments`` SMS segments."""
    if count_segments(text).segments <= segments:
        return text
    low, high = 0, len(text)
    while low < high:
        middle = (low + high + 1) // 2
        if count_segments(text[:middle].rstrip() + "...").segments <= segments:
            low = middle
        else:
            high = middle - 1
    return text[:low].rstrip() + "..."
