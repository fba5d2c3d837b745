"""``OctopodsSendBatchOperator``: scheduled reminder batches, paced, never twice, with a report."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseOperator

from airflow_provider_octopods.api.errors import OctopodsValidationError
from airflow_provider_octopods.api.validation import (
    campaign_name,
    flag,
    positive_number,
    ratio,
    shown,
    validate_conn_id,
    validate_region,
    whole_number,
)
from airflow_provider_octopods.api.windows import SendWindow
from airflow_provider_octopods.batch.rounds import BatchRound
from airflow_provider_octopods.batch.rows import check_recipients, describe_source, load_rows, opt_out_check
from airflow_provider_octopods.batch.runner import LongLivedObjectsFrozen
from airflow_provider_octopods.batch.timing import check_deadline
from airflow_provider_octopods.hooks.octopods import OctopodsHook
from airflow_provider_octopods.send_record.campaign import DEFAULT_TTL_SECONDS
from airflow_provider_octopods.templating import body_template, check_literal, produces_data, refused_at_parse

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import Context

    from airflow_provider_octopods.send_record import RecordStore


class OctopodsSendBatchOperator(BaseOperator):
    """Send one personalised SMS to each recipient row, at the provider's pace, never twice.

    Every row is checked before the first send: the phone is normalised, ``body`` is rendered for
    the row and checked (1 to 1,600 characters), segments are counted. Invalid rows are reported
    with their row number, field and reason, and the others go on, unless more than
    ``max_invalid_ratio`` of the rows are invalid: then nothing is sent and the task fails, naming
    the most common reasons. A batch with nothing to send fails too, unless ``allow_empty``. A row
    with the same phone and text as an earlier row is sent once; numbers on the opt-out list are
    skipped and counted.

    Sends are recorded in the task instance's send record (intents and results, in chunks), so a
    retried, cleared-after-failure or killed task sends only to rows with no accepted send. A send
    whose outcome is unknown (the answer was lost after the request went out, or the worker died)
    is not sent again unless ``resend_unknown``: it is listed in the report for a human. Name a
    ``campaign`` to extend this across runs: under it, a recipient is sent one SMS, whichever run
    or DAG sends it.

    :param recipients: the rows: a list of dicts, an ``XComArg`` (an upstream task's return value),
        a Jinja string rendering to either, or the path of a CSV file (local or ``ObjectStoragePath``)
        with a header row. Templated: a Jinja string or a path is rendered once; the rows themselves
        are data, never rendered (a name written ``{{ ... }}`` is sent as written). In the
        rendered-fields table (the UI's "Rendered Template") it shows as a count and its source,
        never the rows.
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
    :param max_invalid_ratio: the share of rows that may be invalid (default 0.05); above it the
        task fails before sending anything. 1.0 sends the valid rows whatever the share.
    :param fail_on_invalid: fail the task before sending anything when any row is invalid.
    :param allow_empty: let a batch with no row to send (no rows, or all invalid, duplicate or
        opted out) succeed; by default it fails, so that an empty upstream extract is noticed.
    :param campaign: a name for the sends of this batch across runs (``"renewals-{{ ds }}"``):
        a recipient whose SMS was accepted under it, in any run of any DAG, is not sent another,
        whatever the text; such rows are reported as ``accepted_earlier`` with their earlier
        message ids. Rows with the same phone are duplicates whatever their text. Templated.
        Without it, only the tries of this task instance are kept from sending twice.
    :param campaign_ttl: how long a campaign's record is kept after the last run that used it
        (a ``timedelta`` or seconds; default 30 days); the provider deletes it after that.
    :param send_window: the local hours in which a recipient may be texted, ``("08:00", "21:00")``
        (or ``"08:00-21:00"``), in the row's time zone (``tz_field``) or else in every time zone of
        the number. Rows outside it are held: the batch sends the others, then waits in the
        triggerer (no worker slot held) until the next window opens, and sends them then. Templated.
    :param tz_field: a row field holding the recipient's IANA time zone (``"America/Chicago"``).
    :param send_at_field: a row field holding the row's earliest send time: an ISO date-time with
        an offset, or without one in the row's time zone. Rows due later wait as above.
    :param deadline: how long the batch waits for held rows: a ``timedelta`` from its first start
        (default 24 hours) or a date-time; rows still held then are reported as ``held``. Templated.
        An ``execution_timeout`` counts the waits too, from the first start: set it above the
        deadline, or the task fails with Airflow's timeout error while rows are held.
    :param resend_unknown: send again rows whose earlier send has an unknown outcome; their
        recipients may get the SMS twice.
    :param report_path: where to write the per-row CSV report (row, masked phone, outcome,
        message id, error): a local path or an ``ObjectStoragePath``. Templated, e.g.
        ``"/reports/{{ ds }}/reminders.csv"``. Without it, the rows are in the XCom report only
        for batches of up to 1,000 rows.
    :param max_xcom_ids: the most message ids returned in XCom: with more, ``message_ids`` is None
        (``message_ids_omitted`` counts them) and they are in the report file only, so that a
        100,000-row batch never puts megabytes into XCom.
    :param chunk_size: sends recorded with one write of the send record.
    :param octopods_conn_id: the ``octopods`` connection holding the channel API key.
    :param record_store: where the send record lives (default: Airflow Variables).

    The message ids are also pushed under the XCom key ``message_ids``, so that
    ``batch.output["message_ids"]`` feeds the delivery sensor. Returns (XCom ``return_value``, also
    pushed as ``report`` when the task fails): counts
    (``accepted``, ``invalid``, ``duplicate``, ``opted_out``, ``failed`` and ``failed_by_code``,
    ``unknown``, ``segments``), ``message_ids``, the rows to look at (``unknown_rows``,
    ``failed_rows``) and, for small batches or dry runs, ``rows`` and ``samples``.
    """

    # ``dry_run`` is kept as ``dry_run_only``: BaseOperator.dry_run() is a method Airflow calls.
    template_fields: Sequence[str] = (
        "recipients",
        "default_region",
        "opt_out",
        "dry_run_only",
        "report_path",
        "campaign",
        "send_window",
        "deadline",
    )
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
        max_invalid_ratio: float = 0.05,
        fail_on_invalid: bool = False,
        allow_empty: bool = False,
        campaign: Any = None,
        campaign_ttl: timedelta | float = timedelta(seconds=DEFAULT_TTL_SECONDS),
        send_window: Any = None,
        tz_field: str | None = None,
        send_at_field: str | None = None,
        deadline: Any = None,
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
            self.body_template = body_template(body)
            for name, text in (
                ("phone_field", phone_field),
                ("region_field", region_field),
                ("tz_field", tz_field),
                ("send_at_field", send_at_field),
            ):
                if text is not None and (not isinstance(text, str) or not text):
                    raise OctopodsValidationError(name, f"must be a field name, got {shown(text)}")
            for name, switch in (
                ("allow_duplicates", allow_duplicates),
                ("fail_on_invalid", fail_on_invalid),
                ("allow_empty", allow_empty),
                ("resend_unknown", resend_unknown),
            ):
                if not isinstance(switch, bool):
                    raise OctopodsValidationError(name, f"must be True or False, got {shown(switch)}")
            validate_conn_id(octopods_conn_id)
            check_literal(default_region, lambda v: v is None or validate_region(v))
            check_literal(dry_run, lambda v: flag(v, field="dry_run"))
            check_literal(recipients, lambda v: check_recipients(v, allow_empty=allow_empty))
            check_literal(campaign, campaign_name)
            check_literal(send_window, lambda v: v is None or SendWindow.parse(v))
            check_literal(deadline, check_deadline)
            if campaign is not None and allow_duplicates:
                raise OctopodsValidationError(
                    "allow_duplicates", "cannot be True with a campaign, which sends one SMS per recipient"
                )
            self.rate_limit = None if rate_limit is None else positive_number(rate_limit, field="rate_limit")
            self.max_in_flight = whole_number(max_in_flight, field="max_in_flight")
            self.max_xcom_ids = whole_number(max_xcom_ids, field="max_xcom_ids", minimum=0)
            self.chunk_size = whole_number(chunk_size, field="chunk_size")
            self.max_failure_ratio = ratio(max_failure_ratio, field="max_failure_ratio")
            self.max_invalid_ratio = ratio(max_invalid_ratio, field="max_invalid_ratio")
            ttl = campaign_ttl.total_seconds() if isinstance(campaign_ttl, timedelta) else campaign_ttl
            self.campaign_ttl = positive_number(ttl, field="campaign_ttl")
        self.recipients = recipients
        self.body = body
        self.phone_field = phone_field
        self.region_field = region_field
        self.default_region = default_region
        self.opt_out = opt_out
        self.allow_duplicates = allow_duplicates
        self.dry_run_only = dry_run
        self.fail_on_invalid = fail_on_invalid
        self.allow_empty = allow_empty
        self.campaign = campaign
        self.send_window = send_window
        self.tz_field = tz_field
        self.send_at_field = send_at_field
        self.deadline = deadline
        self.resend_unknown = resend_unknown
        self.report_path = report_path
        self.octopods_conn_id = octopods_conn_id
        self.record_store = record_store
        self._rows: list[Any] | None = None
        self._recipients_shown: str | None = None
        self._opt_out_numbers: list[Any] | None = None
        self._round: BatchRound | None = None

    # -- rendering: the rows are data, never templates, and never reach the rendered-fields table ---

    def _do_render_template_fields(
        self, parent: Any, template_fields: Iterable[str], context: Any, jinja_env: Any, seen_oids: set[int]
    ) -> None:
        """Render as Airflow does, except the fields that hold data: ``recipients`` and ``opt_out``.

        A Jinja string, a path or an ``XComArg`` in ``recipients`` is rendered (resolved) once by
        Airflow's ``render_template``; a list of rows (written in the DAG, loaded from a file at parse
        time, given to ``expand``) is taken as it is. No value inside a row is ever rendered, so a row
        holding ``{{`` or ``{{ conn.x.password }}`` is sent as that text and no rendering error can
        print the rows. The rows are loaded once and ``recipients`` becomes their count and source.
        An ``opt_out`` list is data too: its numbers are kept as they are, and the field shows their
        count. Both the plain and the mapped (partial/expand) rendering paths come through here.
        """
        fields = list(template_fields)
        if parent is self and "recipients" in fields:
            fields.remove("recipients")
            self._render_recipients(context, jinja_env, seen_oids)
        if parent is self and "opt_out" in fields and not produces_data(self.opt_out):
            fields.remove("opt_out")
            if isinstance(self.opt_out, (list, tuple, set, frozenset)):
                self._opt_out_numbers = list(self.opt_out)
                self.opt_out = f"{len(self._opt_out_numbers)} numbers (list)"
        super()._do_render_template_fields(parent, fields, context, jinja_env, seen_oids)
        if parent is self and isinstance(self.opt_out, (list, tuple, set)):  # what a template or XComArg gave
            self._opt_out_numbers = list(self.opt_out)
            self.opt_out = f"{len(self._opt_out_numbers)} numbers (list)"

    def _render_recipients(self, context: Any, jinja_env: Any, seen_oids: set[int]) -> None:
        if self._rows is not None and self.recipients == self._recipients_shown:
            return  # rendered before: the rows are loaded once
        source = self.recipients
        if produces_data(source):  # once; a mapped value from XCom is in seen_oids, and Airflow leaves it as is
            source = self.render_template(source, context, jinja_env, seen_oids)
        self._rows = load_rows(source)
        self.recipients = self._recipients_shown = f"{len(self._rows)} recipients ({describe_source(source)})"

    # -- execute ------------------------------------------------------------------------------------

    def execute(self, context: Context) -> dict[str, Any]:
        return self._run_round(context, started=None)

    def execute_complete(
        self, context: Context, event: dict[str, Any] | None = None, started: float | None = None
    ) -> dict[str, Any]:
        """Resume after waiting for held rows: plan again, send what is due (the send record keeps
        what went out before), and wait again if rows are still held."""
        return self._run_round(context, started=started)

    def _run_round(self, context: Context, *, started: float | None) -> dict[str, Any]:
        rows = self._rows if self._rows is not None else load_rows(self.recipients)
        self._round = BatchRound(self, context, rows=rows, opted_out=self._opt_out, started=started)
        with LongLivedObjectsFrozen() as frozen:
            return self._round.run(frozen)

    def _opt_out(self, region: str | None) -> Callable[[str], bool] | None:
        """Whether an (E.164) number opted out, from the rendered ``opt_out``; None without one."""
        value: Any = self._opt_out_numbers if self._opt_out_numbers is not None else self.opt_out
        return opt_out_check(value, default_region=region)

    def on_kill(self) -> None:
        """Airflow 3 calls this on SIGTERM (task cleared, marked failed, heartbeat lost) and kills the
        process a few seconds later: stop starting requests so that the sends in flight get recorded."""
        if self._round is not None:  # the batch logs what it sent and what the next try does
            self._round.stop()
