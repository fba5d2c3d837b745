"""The synchronous client: ``requests`` underneath, the API layer's rules on top."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

from airflow_provider_octopods.api import protocol
from airflow_provider_octopods.api.errors import OctopodsError
from airflow_provider_octopods.api.models import MessageId, MessageStatus, SendRequest, SendResult
from airflow_provider_octopods.api.retry import RetryingCall, RetryPolicy, Wait
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.api.transport import failure_from_exception

if TYPE_CHECKING:
    import requests

log = logging.getLogger(__name__)
T = TypeVar("T")


class OctopodsClient:
    """Sends SMS and reads statuses over one reused ``requests.Session``.

    The API key travels in each request's headers, never on the session, so a session passed
    in and shared with other code never carries it to another host.

    :param settings: base URL, key, timeouts and CA bundle (see ``api.settings.settings_from_connection``).
    :param retry_policy: how often and how long to retry what is safe to retry.
    :param session: a session to use instead of a new one (tests, custom adapters).
    :param sleep: the waiting function (tests pass a recorder).
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry_policy: RetryPolicy | None = None,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        import requests

        self.settings = settings
        self.retry_policy = retry_policy or RetryPolicy()
        self._sleep = sleep
        self.session = session or requests.Session()
        self._headers = protocol.request_headers(settings.api_key)
        self._verify: str | bool = settings.ca_bundle or True

    def send(self, request: SendRequest) -> SendResult:
        """Send one SMS. See :mod:`airflow_provider_octopods.api.decision` for what is retried."""
        return self.run(protocol.send_call(self.settings.base_url, request))

    def get_status(self, message_id: MessageId) -> MessageStatus:
        """Read a message's delivery status."""
        return self.run(protocol.status_call(self.settings.base_url, message_id))

    def close(self) -> None:
        self.session.close()

    def run(self, call: protocol.ApiCall[T]) -> T:
        """Make ``call`` under the retry policy."""
        retrying = RetryingCall(self.retry_policy, call)
        while True:
            try:
                response, failure = self._once(call), None
            except OctopodsError as err:
                response, failure = None, err
            outcome = retrying.settle(response, failure)
            if not isinstance(outcome, Wait):
                return outcome
            log_retry(call.what, retrying.attempt, self.retry_policy.max_attempts, outcome.error, outcome.delay)
            self._sleep(outcome.delay)

    def _once(self, call: protocol.ApiCall[Any]) -> protocol.RawResponse:
        import http.client

        import requests

        try:
            response = self.session.request(
                call.method,
                call.url,
                data=call.body,
                headers=self._headers,
                timeout=(self.settings.connect_timeout, self.settings.read_timeout),
                allow_redirects=False,
                verify=self._verify,
            )
        except (requests.RequestException, OSError, http.client.HTTPException) as exc:
            raise failure_from_exception(
                call.operation,
                exc,
                host=urlsplit(call.url).netloc,
                connecting=_while_connecting(exc),
                hint=self.settings.scheme_hint,
            ) from None
        return protocol.RawResponse(response.status_code, response.content, dict(response.headers))


def log_retry(what: str, attempt: int, max_attempts: int, error: object, delay: float) -> None:
    log.warning("Octopods %s failed on try %d/%d (%s); retrying in %.2fs", what, attempt, max_attempts, error, delay)


def _while_connecting(exc: BaseException) -> bool:
    """Whether ``requests`` failed before the request left this machine."""
    import requests
    from urllib3.exceptions import ConnectTimeoutError, NameResolutionError, NewConnectionError

    if isinstance(
        exc,
        (
            requests.ConnectTimeout,
            requests.exceptions.InvalidURL,
            requests.exceptions.InvalidSchema,
            requests.exceptions.MissingSchema,
            requests.exceptions.InvalidHeader,
        ),
    ):
        return True
    reason = getattr(exc.args[0], "reason", None) if exc.args else None
    return isinstance(reason, (NewConnectionError, ConnectTimeoutError, NameResolutionError))
