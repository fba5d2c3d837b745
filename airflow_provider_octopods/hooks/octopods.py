"""``OctopodsHook``: turns an ``octopods`` Airflow connection into a ready API client."""

from __future__ import annotations

import importlib
from functools import cached_property
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_octopods.api import build_send_request
from airflow_provider_octopods.api.decision import Operation
from airflow_provider_octopods.api.errors import (
    OctopodsAuthError,
    OctopodsConfigurationError,
    OctopodsError,
    OctopodsNotFoundError,
)
from airflow_provider_octopods.api.masking import mask_phone
from airflow_provider_octopods.api.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CONNECT_TIMEOUT,
    DEFAULT_READ_TIMEOUT,
    settings_from_connection,
)
from airflow_provider_octopods.api.validation import validate_message_id, validate_region
from airflow_provider_octopods.runtime import outside_task_supervisor, task_sdk_present
from airflow_provider_octopods.task_outcomes import final, task_error

if TYPE_CHECKING:
    from airflow_provider_octopods.api.models import MessageStatus, SendRequest, SendResult
    from airflow_provider_octopods.api.retry import RetryPolicy
    from airflow_provider_octopods.api.settings import ClientSettings
    from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
    from airflow_provider_octopods.clients.sync import OctopodsClient
    from airflow_provider_octopods.send_record import RecordStore, SendGuard

EXTRA_FIELDS = ("connect_timeout", "read_timeout", "default_region", "ca_bundle")


class OctopodsHook(BaseHook):
    """Talk to the Octopods SMS API with the key stored in an Airflow connection.

    The connection (type ``octopods``) holds the channel API key in its password field and,
    optionally, the API base URL in its host field (default ``https://app.octopods.io``).
    Extras: ``connect_timeout`` and ``read_timeout`` in seconds, ``default_region`` for phone
    numbers written without a country code, ``ca_bundle`` (path to a PEM file) to trust a private
    CA. TLS verification cannot be switched off.

    Inside a running task, every send goes through the task instance's send record
    (:mod:`airflow_provider_octopods.send_record`): when Airflow runs the task again (retry,
    timeout, a cleared failed task), a send accepted by an earlier try is not repeated (its result
    is returned) and a send whose outcome is unknown fails instead of being repeated. Errors carry
    the provider's retry decision: those after which Airflow must not run the task again (bad
    input, bad key, a send that may have gone out) are ``AirflowFailException`` subclasses.

    :param octopods_conn_id: the Airflow connection to use.
    :param default_region: region (e.g. ``"GB"``) for national-format numbers; overrides the
        connection's ``default_region`` extra.
    :param retry_policy: retries of transient failures inside one call (see ``api.retry``).
    :param send_record: use the task instance's send record (default); ``False`` sends every
        call unconditionally, for code that repeats sends across tries on purpose.
    :param resend_unknown: when an earlier try's send has an unknown outcome, send it again
        (the recipient may get it twice) instead of failing.
    :param record_store: where send records live (a :class:`~airflow_provider_octopods.send_record.RecordStore`);
        an Airflow Variable per task instance by default.
    """

    conn_name_attr = "octopods_conn_id"
    default_conn_name = "octopods_default"
    conn_type = "octopods"
    hook_name = "Octopods SMS"

    def __init__(
        self,
        octopods_conn_id: str = default_conn_name,
        *,
        default_region: str | None = None,
        retry_policy: RetryPolicy | None = None,
        send_record: bool = True,
        resend_unknown: bool = False,
        record_store: RecordStore | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.octopods_conn_id = octopods_conn_id
        self.default_region = validate_region(default_region) if default_region else None
        self.retry_policy = retry_policy
        self.use_send_record = send_record
        self.resend_unknown = resend_unknown
        self.record_store = record_store

    @cached_property
    def settings(self) -> ClientSettings:
        """The connection's settings, validated.

        Raises :class:`~airflow_provider_octopods.api.errors.OctopodsConfigurationError`.
        """
        conn = self._connection()
        if conn.password:
            _mask_secret(conn.password)
        try:
            return self._settings_from(conn, conn.extra_dejson if conn.extra else {})
        except OctopodsError as err:
            raise final(err) from None

    async def aget_settings(self) -> ClientSettings:
        """:attr:`settings`, read without blocking the event loop (for triggers).

        Uses Airflow's async connection access on 3.x and a worker thread on 2.11; never the
        synchronous path inside the loop (apache/airflow #53447).
        """
        from airflow.providers.common.compat.connection import get_async_connection
        from airflow.providers.common.compat.sdk import AirflowNotFoundException
        from asgiref.sync import sync_to_async

        try:
            conn = await get_async_connection(self.octopods_conn_id, hook=type(self))
        except AirflowNotFoundException:
            # Some runtimes answer "not found" on the async path for connections kept in the
            # metadata DB (apache/airflow #57145; dag.test's in-process triggers on 3.3). Ask once
            # more through the synchronous lookup, in a worker thread so the loop never blocks.
            conn = await sync_to_async(self._connection)()
        return self._settings_from(conn, await _async_extra(conn) if conn.extra else {})

    def _connection(self) -> Any:
        """The Airflow connection, wherever this code runs.

        On Airflow 3 a task, a DAG processor or a triggerer reads connections through the API
        server. Code running outside them (a DAG-level callback under ``dag.test()`` or
        ``airflow dags test``) only sees environment variables through the Task SDK; there the
        lookup goes on through Airflow's own chain: secrets backend, then the metadata DB.
        """
        from airflow.providers.common.compat.sdk import AirflowNotFoundException

        try:
            return self.get_connection(self.octopods_conn_id)
        except AirflowNotFoundException:
            if not outside_task_supervisor():
                raise final(self._not_defined(through_api_server=task_sdk_present())) from None
        try:
            from airflow.models.connection import Connection as CoreConnection
        except ImportError:  # a Task-SDK-only installation has no metadata DB access
            raise final(self._not_defined(through_api_server=False, metadata_db=False)) from None
        try:
            return CoreConnection.get_connection_from_secrets(self.octopods_conn_id)
        except AirflowNotFoundException:
            raise final(self._not_defined(through_api_server=False)) from None
        except Exception as err:  # e.g. a metadata DB that cannot be read from here (its text may name the DB)
            raise final(self._not_defined(through_api_server=False, unreadable=type(err).__name__)) from None

    def _not_defined(
        self, *, through_api_server: bool, metadata_db: bool = True, unreadable: str | None = None
    ) -> OctopodsConfigurationError:
        looked = [f"the environment variable AIRFLOW_CONN_{self.octopods_conn_id.upper()}"]
        if through_api_server:
            looked.append("the secrets backend and the metadata DB, through the Airflow API server")
        elif metadata_db:
            looked.append("the configured secrets backend and the metadata DB of this Airflow home")
        text = f"connection {self.octopods_conn_id!r} was not found in {' nor in '.join(looked)}"
        if unreadable:
            text += f" (the metadata DB could not be read: {unreadable})"
        return OctopodsConfigurationError(
            f"{text}: create it (type 'octopods', API key in the password) where this Airflow reads connections"
        )

    def _settings_from(self, conn: Any, extra: dict[str, Any]) -> ClientSettings:
        if conn.password and conn.password.strip() == "***":
            raise OctopodsConfigurationError(
                f"connection {self.octopods_conn_id!r} holds the masked placeholder '***' instead of an API key"
            )
        return settings_from_connection(
            self.octopods_conn_id,
            host=conn.host,
            password=conn.password,
            schema=conn.schema,
            port=conn.port,
            extra={name.removeprefix("extra__octopods__"): _extra(extra, name) for name in extra}
            | {name: _extra(extra, name) for name in EXTRA_FIELDS},
        )

    def get_conn(self) -> OctopodsClient:
        """The API client for this connection, created once per hook."""
        return self.client

    @cached_property
    def client(self) -> OctopodsClient:
        from airflow_provider_octopods.clients.sync import OctopodsClient
        from airflow_provider_octopods.metrics import api_event

        return OctopodsClient(self.settings, retry_policy=self.retry_policy, observer=api_event)

    def get_async_client(self, **kwargs: Any) -> AsyncOctopodsClient:
        """A new async API client for this connection, for a task that runs its own event loop.

        The connection is read synchronously (:attr:`settings`), so call it before the loop
        starts or where blocking is fine; inside a trigger or ``async_notify``, use
        :meth:`aget_async_client`. Each call makes a client the caller owns and closes: use it as
        ``async with hook.get_async_client() as client:``. Its session opens on first use, in the
        running loop.

        :param kwargs: passed to :class:`~airflow_provider_octopods.clients.aio.AsyncOctopodsClient`
            (``max_connections``, ``rate_limiter``, ``stop``, ``sleep``; ``retry_policy`` is the
            hook's unless given).
        :raises OctopodsConfigurationError: the connection is missing or unusable.
        """
        return self._async_client(self.settings, kwargs)

    async def aget_async_client(self, **kwargs: Any) -> AsyncOctopodsClient:
        """:meth:`get_async_client` for code running in an event loop (triggers, ``async_notify``):
        the connection is read with :meth:`aget_settings`, without blocking the loop.

        :param kwargs: as for :meth:`get_async_client`.
        :raises OctopodsConfigurationError: the connection is missing or unusable.
        """
        return self._async_client(await self.aget_settings(), kwargs)

    def _async_client(self, settings: ClientSettings, kwargs: dict[str, Any]) -> AsyncOctopodsClient:
        from airflow_provider_octopods.clients.aio import AsyncOctopodsClient
        from airflow_provider_octopods.metrics import api_event

        kwargs.setdefault("retry_policy", self.retry_policy)
        kwargs.setdefault("observer", api_event)
        return AsyncOctopodsClient(settings, **kwargs)

    @property
    def region(self) -> str | None:
        """The region applied to national-format numbers (hook argument, else connection extra)."""
        return self.default_region or self.settings.default_region

    def build_send_request(
        self,
        phone: object,
        body: object,
        *,
        destination_user_name: object = None,
        open_intercom_conversation: object = None,
        intercom_teammate_id: object = None,
    ) -> SendRequest:
        """Validate a send (reads the connection, makes no request). Raises on bad input."""
        try:
            return build_send_request(
                phone,
                body,
                default_region=self.region,
                destination_user_name=destination_user_name,
                open_intercom_conversation=open_intercom_conversation,
                intercom_teammate_id=intercom_teammate_id,
            )
        except OctopodsError as err:
            raise final(err) from None

    def send(self, request: SendRequest, *, slot: str | None = None) -> SendResult:
        """Send a request built by :meth:`build_send_request`, at most once per task instance.

        :param slot: the send's name in the task instance's record; by default recipient and text
            plus how often this try already sent that pair (see ``send_record``).
        """
        guard = self.send_guard()
        if guard is None:
            return self._send_now(request)
        return guard.send_once(request, self._send_now, self.log, slot=slot, resend_unknown=self.resend_unknown)

    def send_guard(self) -> SendGuard | None:
        """The running task instance's send guard, or None (outside a task, or ``send_record=False``)."""
        if not self.use_send_record:
            return None
        from airflow_provider_octopods.send_record import current_guard

        return current_guard(self.record_store)

    def _send_now(self, request: SendRequest) -> SendResult:
        info = request.segment_info
        self.log.info(
            "Sending SMS to %s: %d characters, %d segment(s), %s",
            mask_phone(request.phone),
            len(request.body),
            info.segments,
            info.encoding.value,
        )
        from airflow_provider_octopods import metrics

        try:
            result = self.client.send(request)
        except Exception as err:
            metrics.sent({metrics.send_outcome(err): 1})
            raise task_error(err, Operation.SEND) from None
        metrics.sent({"accepted": 1})
        if result.trackable:
            self.log.info("Octopods accepted message %s (request_id %s)", result.message_id, result.request_id)
        else:
            self.log.warning(
                "Octopods accepted the SMS (request_id %s) but returned no message_id, as HubSpot "
                "workspaces do: its delivery cannot be tracked",
                result.request_id,
            )
        return result

    def send_sms(
        self,
        phone: str,
        body: str,
        *,
        destination_user_name: str | None = None,
        open_intercom_conversation: bool | str | None = None,
        intercom_teammate_id: str | None = None,
    ) -> SendResult:
        """Validate and send one SMS; inside a task, at most once per task instance (see the class).

        :param phone: recipient, E.164 (``+15551234567``) or national with a default region.
        :param body: the text, 1 to 1,600 characters.
        :param destination_user_name: contact name, used if a conversation opens for a new contact.
        :param open_intercom_conversation: also open an Intercom/HubSpot conversation.
        :param intercom_teammate_id: the Intercom teammate shown as sender.
        :return: request id, message id (None on HubSpot workspaces), segments and encoding.
        """
        request = self.build_send_request(
            phone,
            body,
            destination_user_name=destination_user_name,
            open_intercom_conversation=open_intercom_conversation,
            intercom_teammate_id=intercom_teammate_id,
        )
        return self.send(request)

    def get_status(self, message_id: int | str) -> MessageStatus:
        """Read the delivery status of a message sent with this connection's key."""
        try:
            return self.client.get_status(validate_message_id(message_id))
        except OctopodsError as err:
            raise task_error(err, Operation.STATUS) from None

    def test_connection(self) -> tuple[bool, str]:
        """Check the key without sending anything: read the status of a message id that cannot exist.

        Only the API's own documented error answer (JSON with an ``error_code``, e.g. 1 "not
        found") proves that the host is the Octopods API and the key was accepted; a refused key
        fails, and so does anything else (an HTML page, a bare 404, a redirect). One try with
        short timeouts, so the UI's Test button answers within a few seconds.
        """
        from dataclasses import replace

        from airflow_provider_octopods.api.retry import RetryPolicy
        from airflow_provider_octopods.clients.sync import OctopodsClient

        try:
            settings = self.settings
        except OctopodsError as err:
            return False, f"The connection is not usable: {err}"
        quick = replace(
            settings,
            connect_timeout=min(settings.connect_timeout, 3.0),
            read_timeout=min(settings.read_timeout, 5.0),
        )
        client = OctopodsClient(quick, retry_policy=RetryPolicy(max_attempts=1))
        try:
            client.get_status(0)
        except OctopodsAuthError as err:
            text = str(err)  # "the API key was refused by <host> ...; check ... of connection '<id>'"
            return False, text[:1].upper() + text[1:]
        except OctopodsNotFoundError as err:
            if err.error_code is not None:
                return True, "Connection to Octopods works: the API key was accepted (no SMS was sent)."
            return False, self._not_the_api(settings, err)
        except OctopodsError as err:
            if err.error_code is not None and err.http_status is not None and err.http_status < 500:
                return True, "Connection to Octopods works: the API key was accepted (no SMS was sent)."
            if err.http_status is not None:
                return False, self._not_the_api(settings, err)
            return False, f"Could not reach the Octopods API at {settings.base_url}: {err}"
        finally:
            client.close()
        return False, self._not_the_api(settings, "a message id that cannot exist was found")

    @staticmethod
    def _not_the_api(settings: ClientSettings, seen: object) -> str:
        return (
            f"This does not look like the Octopods API at {settings.base_url}: it did not give the "
            f"API's documented error answer ({seen}). Check the connection's host"
        )

    @classmethod
    def get_ui_field_behaviour(cls) -> dict[str, Any]:
        """Airflow 2.x connection form: hide unused fields, name the ones users fill in."""
        return {
            "hidden_fields": ["login", "schema", "port"],
            "relabeling": {"host": "API base URL", "password": "API key"},
            "placeholders": {
                "host": DEFAULT_BASE_URL,
                "password": "channel API key from the Octopods dashboard",
                "connect_timeout": str(DEFAULT_CONNECT_TIMEOUT),
                "read_timeout": str(DEFAULT_READ_TIMEOUT),
                "default_region": "US",
                "ca_bundle": "/etc/ssl/certs/my-private-ca.pem (optional)",
            },
        }

    @classmethod
    def get_connection_form_widgets(cls) -> dict[str, Any]:
        """Airflow 2.x connection form extras (Airflow 3 reads ``conn-fields`` from provider info)."""
        from flask_appbuilder.fieldwidgets import BS3TextFieldWidget
        from flask_babel import lazy_gettext
        from wtforms import StringField

        return {
            "connect_timeout": StringField(lazy_gettext("Connect timeout (s)"), widget=BS3TextFieldWidget()),
            "read_timeout": StringField(lazy_gettext("Read timeout (s)"), widget=BS3TextFieldWidget()),
            "default_region": StringField(
                lazy_gettext("Default region for national numbers"), widget=BS3TextFieldWidget()
            ),
            "ca_bundle": StringField(lazy_gettext("CA bundle (path)"), widget=BS3TextFieldWidget()),
        }


def _mask_secret(value: str) -> None:
    """Register ``value`` with Airflow's log masker (compat 1.21+ exports it; older ones do not)."""
    for module in ("airflow.providers.common.compat.sdk", "airflow.sdk.log", "airflow.utils.log.secrets_masker"):
        try:
            mask = importlib.import_module(module).mask_secret
        except (ImportError, AttributeError):
            continue
        mask(value)
        return


async def _async_extra(conn: Any) -> dict[str, Any]:
    """The connection's extras without blocking the loop (compat 1.22+ helper, else a thread)."""
    try:
        from airflow.providers.common.compat.connection import get_async_extra_dejson
    except ImportError:
        from asgiref.sync import sync_to_async

        extra: dict[str, Any] = await sync_to_async(lambda: conn.extra_dejson)()
        return extra
    return await get_async_extra_dejson(conn)


def _extra(extra: dict[str, Any], name: str) -> Any:
    """Read an extra saved either plainly or with the form's ``extra__octopods__`` prefix."""
    value = extra.get(name)
    return extra.get(f"extra__octopods__{name}") if value in (None, "") else value
