"""HTTP for lean calls: the wrapped boto3 client's own urllib3 pools, botocore's error classes.

Connections come from botocore's ``PoolManager`` (so the pool size is ``max_pool_connections``,
with the same connect and read timeouts, TLS verification, client certificate and socket
options, and the keep-alive connections the client's other calls use). urllib3 checks a pooled
connection is still open before handing it out, connects it (raising its usual errors), and
takes it back.

The exchange itself is written here rather than through ``urlopen``: urllib3 and http.client
spend ~150 µs of CPU per request on header validation, an email-package parse of the response
headers and response-object bookkeeping, about five times the socket work (measured in
tests/bench/s3_client_cpu.py). The request is one ``sendall``; the response is read as
http.client reads it: 1xx answers skipped, headers split as its email parser splits them,
the body delimited by Content-Length, chunked encoding or the end of the connection, and the
connection kept only when HTTP/1.1 keep-alive allows.

Failures become what botocore's ``URLLib3Session.send`` raises for the same failure through
urllib3: EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError, ConnectionClosedError
(a connection dropped, reset or answering nonsense), SSLError, HTTPClientError otherwise.

The session's pool manager is private botocore API: ``http_session_of`` returns None when the
client does not have what this module needs, and the lean client then forwards every call.
"""

from __future__ import annotations

import errno
import socket
from typing import Any, NamedTuple
from urllib.parse import urlsplit

from botocore.exceptions import (
    ConnectionClosedError,
    ConnectTimeoutError,
    EndpointConnectionError,
    HTTPClientError,
    ReadTimeoutError,
    SSLError,
)
from botocore.httpsession import URLLib3Session
from urllib3 import HTTPConnectionPool, PoolManager, Timeout
from urllib3.exceptions import ClosedPoolError, NewConnectionError
from urllib3.exceptions import ConnectTimeoutError as URLLib3ConnectTimeoutError
from urllib3.exceptions import SSLError as URLLib3SSLError

try:
    from ssl import SSLError as _TLSError
except ImportError:  # pragma: no cover - Python without ssl
    _TLSError = OSError  # type: ignore[misc,assignment]

_MAX_LINE = 65536
_MAX_HEADERS = 100


class RawResponse(NamedTuple):
    status: int
    headers: dict[str, str]
    """Header names as first sent, a repeated header's values joined by ", " (as urllib3 does)."""
    body: bytes


class ExchangeError(Exception):
    """The connection failed mid-exchange (dropped, reset, malformed answer)."""


class ReadTimeout(Exception):
    """No answer within the read timeout."""


def http_session_of(client: Any) -> Any:
    """The client's urllib3 session, if it is botocore's own with the attributes used here."""
    session = getattr(getattr(client, "_endpoint", None), "http_session", None)
    if not isinstance(session, URLLib3Session):
        return None
    for name in ("_manager", "_proxy_config", "_verify", "_setup_ssl_cert"):
        if not hasattr(session, name):
            return None
    return session


class Transport:
    """Sends one request and reads the whole response, on the session's pools."""

    def __init__(self, session: Any) -> None:
        """``session`` is botocore's URLLib3Session (private attributes are read: see http_session_of)."""
        self._session = session
        self._manager: PoolManager = session._manager
        self._pools: dict[str, HTTPConnectionPool] = {}

    def proxied(self, url: str) -> bool:
        """Whether botocore would send requests for ``url`` through a proxy (lean calls do not)."""
        return self._session._proxy_config.proxy_url_for(url) is not None

    def send(self, method: str, url: str, origin: str, head: bytes, body: bytes | None) -> RawResponse:
        """``url`` the request's (for error messages, as botocore's), ``origin`` its
        ``scheme://host[:port]``; ``head`` the request line and headers, CRLF-ended."""
        try:
            try:
                return _exchange(self._pool(origin), method, head, body)
            except ClosedPoolError:
                # botocore's manager closed the pool we held (it keeps a bounded number of
                # pools); take the current one. Nothing was sent.
                self._pools.pop(origin, None)
                return _exchange(self._pool(origin), method, head, body)
        except Exception as exc:
            raise botocore_error(url, exc) from exc

    def checkout(self, origin: str) -> tuple[HTTPConnectionPool, Any]:
        """A pooled connection to ``origin`` (not connected yet if its ``sock`` is None), for a
        caller that makes the exchange itself (``multiplex``); give it back with ``checkin``."""
        try:
            pool = self._pool(origin)
            return pool, pool._get_conn()
        except ClosedPoolError:
            self._pools.pop(origin, None)
            pool = self._pool(origin)
            return pool, pool._get_conn()

    def _pool(self, origin: str) -> HTTPConnectionPool:
        pool = self._pools.get(origin)
        if pool is None:
            pool = self._manager.connection_from_url(origin)
            self._session._setup_ssl_cert(pool, origin, self._session._verify)
            self._pools[origin] = pool
        return pool


def botocore_error(url: str, exc: Exception) -> Exception:
    """What botocore's ``URLLib3Session.send`` raises for the failure ``exc`` of an exchange."""
    if isinstance(exc, URLLib3SSLError):
        return SSLError(endpoint_url=url, error=exc)
    if isinstance(exc, NewConnectionError | socket.gaierror):
        return EndpointConnectionError(endpoint_url=url, error=exc)
    if isinstance(exc, URLLib3ConnectTimeoutError):
        return ConnectTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, ReadTimeout):
        return ReadTimeoutError(endpoint_url=url, error=exc)
    if isinstance(exc, ExchangeError):
        return ConnectionClosedError(error=exc, request=None, endpoint_url=url)
    return HTTPClientError(error=exc)


def timeout_of(pool: HTTPConnectionPool) -> Timeout:
    return pool.timeout if isinstance(pool.timeout, Timeout) else Timeout(pool.timeout)


def connect(pool: HTTPConnectionPool, conn: Any) -> None:
    """Open a pooled connection that has no socket (TCP, and TLS for https), blocking."""
    conn.timeout = Timeout.resolve_default_timeout(timeout_of(pool).connect_timeout)
    try:
        conn.connect()
    except _TLSError as exc:
        raise URLLib3SSLError(exc) from exc


def checkin(pool: HTTPConnectionPool, conn: Any, reusable: bool) -> None:
    """Give back a connection ``Transport.checkout`` gave (closed first unless ``reusable``)."""
    if reusable:
        pool._put_conn(conn)
    else:
        conn.close()
        pool._put_conn(None)


def _exchange(pool: HTTPConnectionPool, method: str, head: bytes, body: bytes | None) -> RawResponse:
    # A pooled connection urllib3 found dropped is closed (reconnected below); an exhausted pool
    # gives a new connection (botocore's pools do not block), as urlopen would.
    conn: Any = pool._get_conn()
    clean = False
    try:
        timeout = timeout_of(pool)
        if conn.sock is None:
            connect(pool, conn)
        sock = conn.sock
        sock.settimeout(timeout.read_timeout)
        try:
            sock.sendall(head + body if body else head)
        except OSError as exc:
            # As urllib3: a server may close early and still have answered; read what it said.
            if not send_failure_is_answerable(exc):
                raise ExchangeError(f"Connection aborted: {exc!r}") from exc
        fp = sock.makefile("rb")
        try:
            response, reusable = read_response(fp, method)
        finally:
            fp.close()
        if not reusable:
            conn.close()
        clean = True
        return response
    finally:
        if clean:
            pool._put_conn(conn)
        else:
            conn.close()
            pool._put_conn(None)


def send_failure_is_answerable(exc: OSError) -> bool:
    """A send that failed so, as urllib3 has it, may still have an answer to read."""
    return isinstance(exc, BrokenPipeError) or exc.errno in (errno.EPROTOTYPE, errno.ECONNRESET)


def read_response(fp: Any, method: str) -> tuple[RawResponse, bool]:
    """The response on ``fp`` (a buffered reader on the socket), and whether the connection may
    carry another request."""
    status, headers, lower, close = _read_head(fp)
    body, to_the_end = _read_body(fp, method, status, lower)
    return RawResponse(status, headers, body), not (close or to_the_end)


def _readline(fp: Any) -> bytes:
    try:
        line: bytes = fp.readline(_MAX_LINE + 1)
    except TimeoutError as exc:
        raise ReadTimeout(f"Read timed out: {exc}") from exc
    except OSError as exc:
        raise ExchangeError(f"Connection broken: {exc!r}") from exc
    if len(line) > _MAX_LINE:
        raise ExchangeError("got more than 65536 bytes when reading a line")
    return line


def _read_head(fp: Any) -> tuple[int, dict[str, str], dict[str, str], bool]:
    while True:
        line = _readline(fp)
        if not line:
            raise ExchangeError("Remote end closed connection without response")
        version, _, rest = line.decode("iso-8859-1").rstrip("\r\n").partition(" ")
        code, _, _reason = rest.strip().partition(" ")
        if not version.startswith("HTTP/") or len(code) != 3 or not code.isdigit():
            raise ExchangeError(f"Bad status line: {line!r}")
        status = int(code)
        headers: dict[str, str] = {}
        lower: dict[str, str] = {}
        names: dict[str, str] = {}
        for _ in range(_MAX_HEADERS + 1):
            line = _readline(fp)
            if line in (b"\r\n", b"\n", b""):
                break
            text = line.decode("iso-8859-1")
            if text[0] in " \t" and names:
                # an obsolete folded continuation: email's parser appends it to the last header
                last = next(reversed(names))
                headers[names[last]] += text.rstrip("\r\n")
                lower[last] = headers[names[last]]
                continue
            name, colon, value = text.partition(":")
            if not colon:
                continue  # email's parser drops a line that is not a header
            value = value.lstrip(" \t").rstrip("\r\n")
            key = name.lower()
            if key in names:
                headers[names[key]] += ", " + value
                lower[key] = headers[names[key]]
            else:
                names[key] = name
                headers[name] = lower[key] = value
        else:
            raise ExchangeError("got more than 100 headers")
        if 100 <= status < 200 and status != 101:
            continue  # 100 Continue and friends: the answer follows
        close = _will_close(version, lower)
        return status, headers, lower, close


def _will_close(version: str, lower: dict[str, str]) -> bool:
    connection = lower.get("connection", "").lower()
    if version == "HTTP/1.1":
        return "close" in connection
    return "keep-alive" not in connection


def _read_body(fp: Any, method: str, status: int, lower: dict[str, str]) -> tuple[bytes, bool]:
    """The body, and whether it ran to the end of the connection (which then cannot be reused)."""
    if method == "HEAD" or status in (204, 304) or 100 <= status < 200:
        return b"", False
    try:
        if "chunked" in lower.get("transfer-encoding", "").lower():
            return _read_chunked(fp), False
        length = lower.get("content-length")
        if length is None:
            return fp.read() or b"", True
        try:
            expected = int(length)
        except ValueError as exc:
            raise ExchangeError(f"Invalid Content-Length {length!r}") from exc
        data: bytes = fp.read(expected) if expected > 0 else b""
    except TimeoutError as exc:
        raise ReadTimeout(f"Read timed out: {exc}") from exc
    except OSError as exc:
        raise ExchangeError(f"Connection broken: {exc!r}") from exc
    if len(data) != expected:
        raise ExchangeError(f"IncompleteRead({len(data)} bytes read, {expected - len(data)} more expected)")
    return data, False


def _read_chunked(fp: Any) -> bytes:
    parts: list[bytes] = []
    while True:
        line = _readline(fp)
        size_text = line.split(b";", 1)[0].strip()
        try:
            size = int(size_text, 16)
        except ValueError as exc:
            raise ExchangeError(f"Invalid chunk size {line!r}") from exc
        if size == 0:
            while _readline(fp) not in (b"\r\n", b"\n", b""):
                pass  # trailers
            return b"".join(parts)
        chunk = fp.read(size)
        if len(chunk) != size:
            raise ExchangeError("IncompleteRead in a chunk")
        parts.append(chunk)
        _readline(fp)  # the CRLF after the chunk


def split_url(url: str) -> tuple[str, str, str, str]:
    """(origin, path, query, request target) of a request URL, the target as botocore sends it."""
    parts = urlsplit(url)
    origin = f"{parts.scheme}://{parts.netloc}"
    path = parts.path or "/"
    target = f"{path}?{parts.query}" if parts.query else path
    return origin, parts.path, parts.query, target
