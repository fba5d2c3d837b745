"""The asynchronous client (httpx), for triggers and batch sends. Same rules as the sync client.

httpx rather than aiohttp: it is already a dependency of Airflow itself on 2.11 and 3.x, so the
provider adds nothing to install, and its throughput at bounded concurrency (hundreds of
requests per second here) is far above what the API's rate limits allow.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from airflow_provider_octopods.api import protocol
from airflow_provider_octopods.api.errors import OctopodsError
from airflow_provider_octopods.api.models import MessageId, MessageStatus, SendRequest, SendResult
from airflow_provider_octopods.api.retry import RetryingCall, RetryPolicy, Wait
from airflow_provider_octopods.api.settings import ClientSettings
from airflow_provider_octopods.api.transport import failure_from_exception
from airflow_provider_octopods.clients.sync import log_retry

T = TypeVar("T")


class AsyncOctopodsClient:
    """Async twin of :class:`~airflow_provider_octopods.clients.sync.OctopodsClient`.

    :param settings: base URL, key and timeouts.
    :param retry_policy: retries of what is safe to retry (see ``api.retry``).
    :param max_connections: the most requests in flight at once over the shared connection pool.
    :param sleep: the waiting coroutine (tests pass a recorder).
    :param transport: an ``httpx.AsyncBaseTransport`` to use instead of the network (tests).
    """

    def __init__(
        self,
        settings: ClientSettings,
        *,
        retry_policy: RetryPolicy | None = None,
        max_connections: int = 10,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        transport: Any = None,
    ) -> None:
        import ssl

        import httpx

        self.settings = settings
        self.retry_policy = retry_policy or RetryPolicy()
        self._sleep = sleep
        self._headers = protocol.request_headers(settings.api_key)
        self.http = httpx.AsyncClient(
            verify=ssl.create_default_context(cafile=settings.ca_bundle) if settings.ca_bundle else True,
            timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout, pool=None),
            limits=httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections),
            follow_redirects=False,
            transport=transport,
        )

    async def __aenter__(self) -> AsyncOctopodsClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self.http.aclose()

    async def send(self, request: SendRequest) -> SendResult:
        """Send one SMS. See :mod:`airflow_provider_octopods.api.decision` for what is retried."""
        return await self.run(protocol.send_call(self.settings.base_url, request))

    async def get_status(self, message_id: MessageId) -> MessageStatus:
        """Read a message's delivery status."""
        return await self.run(protocol.status_call(self.settings.base_url, message_id))

    async def run(self, call: protocol.ApiCall[T]) -> T:
        """Make ``call`` under the retry policy."""
        retrying = RetryingCall(self.retry_policy, call)
        while True:
            try:
                response, failure = await self._once(call), None
            except OctopodsError as err:
                response, failure = None, err
            outcome = retrying.settle(response, failure)
            if not isinstance(outcome, Wait):
                return outcome
            log_retry(call.what, retrying.attempt, self.retry_policy.max_attempts, outcome.error, outcome.delay)
            await self._sleep(outcome.delay)

    async def _once(self, call: protocol.ApiCall[Any]) -> protocol.RawResponse:
        import httpx

        try:
            response = await self.http.request(call.method, call.url, content=call.body, headers=self._headers)
        except (httpx.HTTPError, httpx.InvalidURL, OSError) as exc:
            raise failure_from_exception(
                call.operation,
                exc,
                host=httpx.URL(call.url).netloc.decode("ascii", "replace"),
                connecting=_while_connecting(exc),
                hint=self.settings.scheme_hint,
            ) from None
        return protocol.RawResponse(response.status_code, response.content, dict(response.headers))


def _while_connecting(exc: BaseException) -> bool:
    """Whether httpx failed before the request left this machine."""
    import httpx

    return isinstance(
        exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout, httpx.UnsupportedProtocol, httpx.InvalidURL)
    )
