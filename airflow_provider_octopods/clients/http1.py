"""HTTP/1.1 over asyncio for the async client's direct connections: kept-alive connections to one
origin, one request at a time on each, and nothing the API's two calls do not need.

Why not aiohttp's client here: measured against the sandbox on a 2-core machine, bare aiohttp
spends 86-168 µs of CPU per request at 64 in flight, while the whole batch operator over this
module spends 111-158 µs a message, validation and send record included (``benchmarks/batch.py``
(d) and (c)); a batch's sends and a trigger's status reads are that many requests. (aiohttp
still carries the calls made through a proxy: see ``clients/aio.py``.)

What it does, and what it refuses:

* Answers framed by ``Content-Length``, ``Transfer-Encoding: chunked`` or the end of the
  connection; ``1xx`` interim answers are skipped; none for ``HEAD``, 204 and 304. ``gzip`` and
  ``deflate`` (zlib or raw) bodies are decompressed, never past the cap the caller sets (a gzip
  bomb costs no more memory than it).
* An answer's head over 64 KiB, a status line or header that is not HTTP/1.x, conflicting or
  overlong lengths, a transfer coding other than chunked or a content coding other than
  gzip/deflate, or a compressed body cut short is a :class:`BadAnswer`: the request went out.
* :class:`ConnectFailed` means nothing was sent (refused, DNS, a bad host name, TLS, connect
  timeout). Any other error comes after the request was written, or may have.
* A connection is reused only after a complete answer with nothing past it, that did not say
  ``Connection: close`` (or was HTTP/1.0 without keep-alive), and only within ``IDLE_SECONDS``
  or a second less than the idle time the server announces (``Keep-Alive: timeout=``).
  One closed by the server while idle, left mid-answer or cancelled is closed.
* A repeated header keeps its first value; names keep the case the server wrote.
"""

from __future__ import annotations

import asyncio
import re
import ssl
import zlib
from collections.abc import Awaitable, Mapping
from typing import TypeVar
from urllib.parse import urlsplit

T = TypeVar("T")
MAX_HEAD_BYTES = 64 * 1024
# A kept-alive connection idle longer is closed rather than reused: servers and load balancers
# drop idle ones after 60 s or so, and one dropped just as a send is written makes its outcome
# unknown. aiohttp keeps them 15 s.
IDLE_SECONDS = 15.0
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_KEEP_ALIVE_TIMEOUT = re.compile(r"(?:^|[,;\s])timeout\s*=\s*(\d{1,6})", re.IGNORECASE)
_FRAMING = frozenset({"connection", "content-length", "transfer-encoding", "content-encoding", "keep-alive"})
_MAX_CHUNK_LINE = 1024


class ConnectFailed(OSError):
    """The connection (TLS included) could not be made: the request never left this machine."""


class ConnectTimeout(ConnectFailed):
    """Connecting (TLS included) took longer than ``connect_timeout``."""


class BadAnswer(ValueError):
    """The server's answer is not HTTP/1.1 as this client reads it."""


class ReadTimeout(TimeoutError):
    """No byte of the answer for ``read_timeout`` seconds."""


class DeadlinePassed(TimeoutError):
    """The request's ``try_timeout`` passed before its answer was complete; it went out."""


Answer = tuple[int, dict[str, str], bytes, bool]  # status, headers, body (capped), complete


class Http1Pool:
    """Connections to the origin of ``base_url``; at most ``limit`` of them are kept idle.

    :param ssl_context: for an ``https`` origin (certificates checked as it says); else ignored.
    :param connect_timeout: seconds to connect, TLS handshake included.
    :param read_timeout: seconds the answer may stay silent once the request is written.
    :param try_timeout: seconds one request may take in all, connecting included.
    :param max_body: the most body bytes kept (after decompression); past it reading stops.
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str],
        *,
        ssl_context: ssl.SSLContext | None,
        connect_timeout: float,
        read_timeout: float,
        try_timeout: float,
        max_body: int,
        limit: int,
    ) -> None:
        parts = urlsplit(base_url)
        self.https = parts.scheme == "https"
        self.host = parts.hostname or ""
        self.port = parts.port or (443 if self.https else 80)
        self._ssl = (ssl_context or ssl.create_default_context()) if self.https else None
        self.connect_timeout, self.read_timeout, self.try_timeout = connect_timeout, read_timeout, try_timeout
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self.max_body, self.limit = max_body, limit
        fields = {"Host": _host_header(self.host, parts.port), **headers, "Accept-Encoding": "gzip, deflate"}
        self._fields = b"".join(_field(name, value) for name, value in fields.items())
        self._idle: list[_Connection] = []

    async def request(self, method: str, url: str, body: bytes | None) -> Answer:
        """Make one request to ``url`` (of this pool's origin) and read its answer.

        :raises ConnectFailed: nothing was sent. :raises ReadTimeout, DeadlinePassed, BadAnswer,
            OSError: the request went out, or may have.
        """
        deadline = asyncio.get_running_loop().time() + self.try_timeout
        target = url[len(self._origin) :] if url.startswith(self._origin) else self._target(url)
        if target[:1] not in ("/", "?", ""):
            raise ValueError("the URL is not on this pool's origin")
        head = f"{method} {target or '/'} HTTP/1.1\r\n".encode() + self._fields
        if body is not None or method in ("POST", "PUT", "PATCH"):
            head += b"Content-Length: %d\r\n" % len(body or b"")
        connection = await self._connection()
        try:
            answer = await connection.exchange(head + b"\r\n" + (body or b""), method == "HEAD", deadline)
        except BaseException:  # cancelled even after a complete answer: the connection goes
            connection.close()
            raise
        if connection.reusable and len(self._idle) < self.limit:
            connection.idle_since = connection.loop.time()
            self._idle.append(connection)
        else:
            connection.close()
        return answer

    def _target(self, url: str) -> str:
        """The path and query of ``url``, written otherwise than the base URL (``HTTPS://``...)."""
        parts = urlsplit(url)
        https = parts.scheme == "https"
        if (https, parts.hostname or "", parts.port or (443 if https else 80)) != (self.https, self.host, self.port):
            raise ValueError("the URL is not on this pool's origin")
        return (parts.path or "/") + (f"?{parts.query}" if parts.query else "")

    def close(self) -> None:
        for connection in self._idle:
            connection.close()
        self._idle.clear()

    async def _connection(self) -> _Connection:
        loop = asyncio.get_running_loop()
        while self._idle:
            connection = self._idle.pop()  # the one used last: the least likely to be closed by now
            if connection.open and loop.time() - connection.idle_since < connection.idle_limit:
                return connection
            connection.close()
        try:
            _, connection = await within(
                self.connect_timeout,
                loop.create_connection(
                    lambda: _Connection(loop, self.read_timeout, self.max_body),
                    self.host,
                    self.port,
                    ssl=self._ssl,
                    server_hostname=self.host if self._ssl is not None else None,
                ),
            )
        except (TimeoutError, asyncio.TimeoutError):
            raise ConnectTimeout(f"connect timeout ({self.connect_timeout:g} s)") from None
        except (OSError, ValueError) as exc:  # ssl's errors are OSErrors; a bad host name a UnicodeError
            raise ConnectFailed(f"could not connect: {type(exc).__name__}") from exc
        return connection


async def within(seconds: float, awaitable: Awaitable[T]) -> T:
    """What ``awaitable`` gives, or :class:`TimeoutError` (``asyncio.TimeoutError`` on Python 3.10)
    once ``seconds`` have passed. ``asyncio.timeout`` where there is one: Python 3.10 has only
    ``wait_for``, which runs the awaitable as a task of its own."""
    timeout = getattr(asyncio, "timeout", None)
    if timeout is None:
        return await asyncio.wait_for(awaitable, seconds)
    async with timeout(seconds):
        return await awaitable


def _host_header(host: str, port: int | None) -> str:
    """``Host`` as the server expects it: an international name in its ASCII (IDNA) form."""
    try:
        name = host.encode("idna").decode("ascii") if not host.isascii() else host
    except UnicodeError:
        raise ValueError("the host name of the base URL is not a valid international name") from None
    name = f"[{name}]" if ":" in name else name
    return f"{name}:{port}" if port else name


def _field(name: str, value: str) -> bytes:
    """One header line. Refused without showing the value (it may be the key): a name that is not
    an HTTP token, control characters (tab aside), or characters HTTP/1.1 cannot carry."""
    if not _TOKEN.fullmatch(name):
        raise ValueError(f"header name {name[:40]!r} is not an HTTP token; it cannot be sent")
    if _CONTROL.search(value):
        raise ValueError(f"header {name!r} holds a line break or another control character; it cannot be sent")
    try:
        return f"{name}: {value}\r\n".encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"header {name!r} holds characters HTTP/1.1 cannot carry") from None


class _Connection(asyncio.Protocol):
    """One connection: writes a request, parses its answer as the bytes arrive."""

    def __init__(self, loop: asyncio.AbstractEventLoop, read_timeout: float, max_body: int) -> None:
        self.loop, self.read_timeout, self.max_body = loop, read_timeout, max_body
        self.transport: asyncio.Transport | None = None
        self.open = False
        self.reusable = False
        self.idle_since = 0.0
        self.idle_limit = IDLE_SECONDS
        self._waiting: asyncio.Future[Answer] | None = None
        # One timer an exchange, for both limits: each read only notes its time.
        self._timer: asyncio.TimerHandle | None = None
        self._deadline = self._last_read = 0.0
        self._buffer = bytearray()
        # The answer being read:
        self._head_only = False
        self._status = 0
        self._headers: dict[str, str] = {}
        self._framing = ""  # "length", "chunked" or "close" once the head is read
        self._remaining = 0
        self._decoder: zlib._Decompress | _Deflate | None = None
        self._kept = bytearray()
        self._over = False
        self._keep_alive = True

    # -- asyncio.Protocol ---------------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport, self.open = transport, True

    def data_received(self, data: bytes) -> None:
        if self._waiting is None or self._waiting.done():
            self.close()  # bytes nobody asked for: the connection cannot be trusted any more
            return
        self._buffer += data
        self._last_read = self.loop.time()
        try:
            self._parse()
        except BadAnswer as exc:
            self._fail(exc)
        except Exception as exc:  # a parser bug must not escape into the event loop
            self._fail(BadAnswer(f"the answer could not be read: {type(exc).__name__}"))

    def eof_received(self) -> bool:
        self.open = False  # not to be taken from the idle list before connection_lost comes
        return False  # close; connection_lost says what that means

    def connection_lost(self, exc: Exception | None) -> None:
        self.open = False
        self._cancel_timer()
        if self._waiting is None or self._waiting.done():
            return
        if self._framing == "close" and exc is None:
            try:
                self._body_bytes(b"", final=True)
            except BadAnswer as bad:
                self._waiting.set_exception(bad)
                return
            self._finish(complete=not self._over, reusable=False)
        elif exc is not None:
            self._waiting.set_exception(exc)
        else:
            self._waiting.set_exception(ConnectionResetError("the server closed the connection before answering"))

    # -- one exchange -------------------------------------------------------------------------------

    async def exchange(self, request: bytes, head_only: bool, deadline: float) -> Answer:
        assert self.transport is not None
        self._waiting = self.loop.create_future()
        self._head_only = head_only
        self._status, self._headers, self._framing = 0, {}, ""
        self._remaining, self._decoder, self._kept = 0, None, bytearray()
        self._over, self._keep_alive = False, True
        self.reusable = False
        self.transport.write(request)
        self._deadline, self._last_read = deadline, self.loop.time()
        self._timer = self.loop.call_at(min(deadline, self._last_read + self.read_timeout), self._check_time)
        try:
            return await self._waiting
        finally:
            self._cancel_timer()
            if not self._waiting.done() or not self.reusable:  # cancelled, failed or left mid-answer
                self.close()

    def close(self) -> None:
        self.open = self.reusable = False
        if self.transport is not None:
            self.transport.close()

    def _cancel_timer(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None

    def _check_time(self) -> None:
        now = self.loop.time()
        if now >= self._deadline:
            self._fail(DeadlinePassed("the answer was not complete by the try's deadline"))
        elif now >= self._last_read + self.read_timeout:
            self._fail(ReadTimeout(f"no answer for {self.read_timeout:g} s"))
        else:  # bytes came since the timer was set
            self._timer = self.loop.call_at(min(self._deadline, self._last_read + self.read_timeout), self._check_time)

    def _fail(self, exc: BaseException) -> None:
        if self._waiting is not None and not self._waiting.done():
            self._waiting.set_exception(exc)
        self.close()

    def _finish(self, *, complete: bool, reusable: bool) -> None:
        self.reusable = reusable and complete and self._keep_alive and not self._buffer and self.open
        assert self._waiting is not None
        self._waiting.set_result((self._status, self._headers, bytes(self._kept), complete))

    # -- parsing ------------------------------------------------------------------------------------

    def _parse(self) -> None:
        while not self._framing:
            end = self._buffer.find(b"\r\n\r\n")
            if end > MAX_HEAD_BYTES or (end < 0 and len(self._buffer) > MAX_HEAD_BYTES):
                raise BadAnswer(f"the answer's head is over {MAX_HEAD_BYTES // 1024} KiB")
            if end < 0:
                return
            head = bytes(self._buffer[:end]).decode("latin-1")
            del self._buffer[: end + 4]
            self._read_head(head)
        if self._framing == "length":
            take = bytes(self._buffer[: self._remaining])
            del self._buffer[: len(take)]
            self._remaining -= len(take)
            self._body_bytes(take, final=self._remaining == 0)
            if self._remaining == 0 or self._over:
                self._finish(complete=not self._over, reusable=True)
        elif self._framing == "chunked":
            self._parse_chunks()
        else:  # until the connection closes
            take = bytes(self._buffer)
            self._buffer.clear()
            self._body_bytes(take, final=False)
            if self._over:
                self._finish(complete=False, reusable=False)

    def _read_head(self, head: str) -> None:
        status_line, *lines = head.split("\r\n")
        version, _, rest = status_line.partition(" ")
        code = rest[:3]
        well_formed = code.isascii() and code.isdigit() and rest[3:4] in ("", " ")
        if version not in ("HTTP/1.1", "HTTP/1.0") or not well_formed:
            raise BadAnswer(f"not an HTTP/1.x status line: {status_line[:60]!r}")
        headers: dict[str, str] = {}
        framing: dict[str, str] = {}  # the fields that say how the body comes, by lower-case name
        for line in lines:
            name, colon, value = line.partition(":")
            if not colon or not name or name != name.strip() or line[:1] in (" ", "\t"):
                raise BadAnswer(f"not a header line: {line[:60]!r}")
            value = value.strip()
            headers.setdefault(name, value)  # a repeated field keeps its first value, as aiohttp's get did
            key = name.lower()
            if key in _FRAMING:
                framing[key] = f"{framing[key]}, {value}" if key in framing else value
        status = int(code)
        if 100 <= status < 200:
            return  # an interim answer: the real one follows
        announced = _KEEP_ALIVE_TIMEOUT.search(framing.get("keep-alive", ""))
        if announced:  # the server says when it drops an idle connection: drop it a second before
            self.idle_limit = min(IDLE_SECONDS, max(int(announced.group(1)) - 1.0, 0.0))
        connection = framing.get("connection", "").lower()
        if "close" in connection or (version == "HTTP/1.0" and "keep-alive" not in connection):
            self._keep_alive = False
        self._status, self._headers = status, headers
        self._decoder = _decoder(framing.get("content-encoding", ""))
        lengths = {v.strip() for v in framing["content-length"].split(",")} if "content-length" in framing else set()
        if self._head_only or status in (204, 304):
            self._framing, self._remaining = "length", 0
        elif "transfer-encoding" in framing:
            codings = [c.strip() for c in framing["transfer-encoding"].lower().split(",")]
            if codings != ["chunked"]:
                raise BadAnswer(f"the answer's Transfer-Encoding {framing['transfer-encoding'][:30]!r} is not chunked")
            self._framing, self._remaining = "chunked", -1
            if "content-length" in framing:  # both framings at once: read by the chunks, then hang up
                self._keep_alive = False
        elif lengths:
            if len(lengths) > 1 or not all(v.isascii() and v.isdigit() and len(v) <= 18 for v in lengths):
                raise BadAnswer("the answer's Content-Length is not one number")
            self._framing, self._remaining = "length", int(lengths.pop())
        else:
            self._framing, self._keep_alive = "close", False

    def _parse_chunks(self) -> None:
        """``_remaining`` is the data left of the current chunk; 0 once it is read (its CRLF is
        next), -1 before a chunk-size line, -2 among the trailers after the last chunk."""
        while True:
            if self._remaining > 0:
                if not self._buffer:
                    return
                take = bytes(self._buffer[: self._remaining])
                del self._buffer[: len(take)]
                self._remaining -= len(take)
                self._body_bytes(take, final=False)
                if self._over:
                    self._finish(complete=False, reusable=False)
                    return
                continue
            if self._remaining == 0:
                if len(self._buffer) < 2:
                    return
                if self._buffer[:2] != b"\r\n":
                    raise BadAnswer("a chunk does not end where its size says")
                del self._buffer[:2]
                self._remaining = -1
                continue
            end = self._buffer.find(b"\r\n")
            if end < 0:
                if len(self._buffer) > _MAX_CHUNK_LINE:
                    raise BadAnswer("a chunk-size or trailer line is too long")
                return
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 2]
            if self._remaining == -2:
                if not line:  # the end of the trailers, and of the answer
                    self._body_bytes(b"", final=True)
                    self._finish(complete=True, reusable=True)
                    return
                continue
            size = line.split(b";")[0].strip()
            if not size or len(size) > 16 or any(c not in b"0123456789abcdefABCDEF" for c in size):
                raise BadAnswer(f"not a chunk size: {size[:20]!r}")
            self._remaining = int(size, 16) or -2

    def _body_bytes(self, data: bytes, *, final: bool) -> None:
        """Keep (decoded) body bytes up to ``max_body``; past it, note the answer as over the cap."""
        if self._over:
            return
        room = self.max_body + 1 - len(self._kept)
        if self._decoder is not None:
            try:
                data = self._decoder.decompress(data, room)
                if final and len(data) < room:
                    data += self._decoder.flush()
            except zlib.error as exc:
                raise BadAnswer(f"the answer's body does not decompress: {exc}") from None
            if final and len(data) < room and not self._decoder.eof:
                raise BadAnswer("the answer's compressed body is cut short")
        if len(data) >= room:
            data, self._over = data[: room - 1], True
        self._kept += data


def _decoder(coding: str) -> zlib._Decompress | _Deflate | None:
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding in ("gzip", "x-gzip"):
        return zlib.decompressobj(16 + zlib.MAX_WBITS)
    if coding == "deflate":
        return _Deflate()
    raise BadAnswer(f"the answer's Content-Encoding {coding[:30]!r} is not gzip or deflate")


class _Deflate:
    """``deflate`` as servers send it: zlib-wrapped as HTTP says, or raw, as some do. Which one
    is told by the first two bytes (a zlib header), whatever pieces they come in."""

    def __init__(self) -> None:
        self._inner: zlib._Decompress | None = None
        self._start = b""

    @property
    def eof(self) -> bool:
        return self._inner is not None and self._inner.eof

    def decompress(self, data: bytes, max_length: int) -> bytes:
        if self._inner is None:
            self._start += data
            if len(self._start) < 2:
                return b""
            first, second = self._start[0], self._start[1]
            wrapped = first & 0x0F == 8 and (first * 256 + second) % 31 == 0
            self._inner = zlib.decompressobj() if wrapped else zlib.decompressobj(-zlib.MAX_WBITS)
            data, self._start = self._start, b""
        return self._inner.decompress(data, max_length)

    def flush(self) -> bytes:
        if self._inner is None:  # fewer than two bytes in all: not a deflate stream
            raise zlib.error("the deflate stream is cut short")
        return self._inner.flush()
