"""`batchops serve`: the jobs API over real HTTP on the local machine, same routes as Lambda."""

from __future__ import annotations

import contextlib
import logging
import re
import socket
import threading
import time
from dataclasses import replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from batchops.api.errors import ApiError, ErrorCode
from batchops.api.routes import ApiRequest, ApiResponse, JobsApi
from batchops.api.xml_safe import MAX_BODY_BYTES

log = logging.getLogger(__name__)
DRAIN_LIMIT = 4 * 1024 * 1024
DRAIN_SECONDS = 1.0
MAX_CONNECTIONS = 64
BODY_DEADLINE_SECONDS = 60.0
_DIGITS = re.compile(r"[0-9]{1,19}")
_CONTROL_CHARACTERS = {c: f"\\x{c:02x}" for c in (*range(0x20), *range(0x7F, 0xA0))}


class JobsHttpServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        api: JobsApi,
        max_connections: int = MAX_CONNECTIONS,
        body_deadline: float = BODY_DEADLINE_SECONDS,
    ) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self.body_deadline = body_deadline
        # Connections beyond this get 503 SlowDown at once instead of another thread.
        self._max_connections = max_connections
        self._busy = 0
        self._busy_lock = threading.Lock()

    def busy_slots(self) -> int:
        """Connections being served now."""
        with self._busy_lock:
            return self._busy

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._busy_lock:
            admitted = self._busy < self._max_connections
            if admitted:
                self._busy += 1
        if not admitted:
            self._answer_busy(request)
            self.shutdown_request(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._release_slot()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._release_slot()

    def _release_slot(self) -> None:
        with self._busy_lock:
            self._busy -= 1

    def _answer_busy(self, connection: socket.socket) -> None:
        error = ApiError(ErrorCode.SLOW_DOWN, "Too many connections; please retry.")
        response = self.api.refuse(ApiRequest(method="", path="/"), error)
        head = "".join(f"{name}: {value}\r\n" for name, value in response.headers.items())
        raw = (
            f"HTTP/1.1 {response.status} Slow Down\r\n{head}Content-Length: {len(response.body)}\r\n"
            "Connection: close\r\n\r\n"
        ).encode() + response.body
        with contextlib.suppress(OSError):
            connection.settimeout(1.0)
            connection.sendall(raw)

    @property
    def url(self) -> str:
        host, port = self.server_address[:2]
        return f"http://{host!s}:{port}"


class _Handler(BaseHTTPRequestHandler):
    server: JobsHttpServer
    protocol_version = "HTTP/1.1"
    server_version = "batchops"
    timeout = 30  # seconds a connection may sit idle or dribble a request
    sys_version = ""

    def do_GET(self) -> None:
        self._serve()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _serve(self) -> None:
        split = urlsplit(self.path)
        request = ApiRequest(
            method=self.command,
            path=unquote(split.path),
            query=parse_qs(split.query, keep_blank_values=True),
            headers={name.lower(): value for name, value in self.headers.items()},
        )
        refusal = self._body_refusal()
        if refusal is not None:
            # The body is never parsed. The answer goes first, so that a client whose
            # Content-Length is larger than what it sends is not kept waiting; then a modest body
            # is drained so that a client still writing it reads our answer instead of a reset.
            self.close_connection = True
            self._send(self.server.api.refuse(request, refusal), close=True)
            self._drain()
            return
        try:
            body = self._read_body(int(self.headers.get("Content-Length") or 0))
        except ApiError as error:
            self.close_connection = True
            self._send(self.server.api.refuse(request, error), close=True)
            return
        self._send(self.server.api.handle(replace(request, body=body)))

    def _read_body(self, length: int) -> bytes:
        """Read the body within the server's deadline, however slowly the client sends it."""
        deadline = time.monotonic() + self.server.body_deadline
        parts: list[bytes] = []
        remaining = length
        while remaining > 0:
            left = deadline - time.monotonic()
            if left <= 0:
                raise ApiError(ErrorCode.REQUEST_TIMEOUT, "The request body was not received in time.")
            self.connection.settimeout(min(left, self.timeout))
            try:
                chunk = self.rfile.read1(min(remaining, 65536))
            except TimeoutError:
                continue
            if not chunk:
                raise ApiError(ErrorCode.INCOMPLETE_BODY, "The body is shorter than its Content-Length.")
            parts.append(chunk)
            remaining -= len(chunk)
        return b"".join(parts)

    def _drain(self) -> None:
        raw = self.headers.get("Content-Length") or ""
        remaining = min(int(raw), DRAIN_LIMIT) if _DIGITS.fullmatch(raw.strip()) else 0
        deadline = time.monotonic() + DRAIN_SECONDS
        with contextlib.suppress(OSError):  # a timeout included: the connection closes anyway
            self.connection.settimeout(DRAIN_SECONDS)
            while remaining > 0 and time.monotonic() < deadline:
                chunk = self.rfile.read1(min(remaining, 65536))
                if not chunk:
                    break
                remaining -= len(chunk)

    def _body_refusal(self) -> ApiError | None:
        if self.headers.get("Transfer-Encoding"):
            return ApiError(ErrorCode.MISSING_CONTENT_LENGTH, "Send the body with a Content-Length header.")
        raw = self.headers.get("Content-Length")
        if raw is None:
            return None
        if not _DIGITS.fullmatch(raw.strip()):
            return ApiError(ErrorCode.INVALID_REQUEST, f"Content-Length {raw!r} is not a number.")
        if int(raw) > MAX_BODY_BYTES:
            return ApiError(
                ErrorCode.ENTITY_TOO_LARGE,
                f"The request body is larger than the {MAX_BODY_BYTES} bytes allowed.",
            )
        return None

    def _send(self, response: ApiResponse, close: bool = False) -> None:
        self.send_response(response.status)
        for name, value in response.headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(response.body)))
        if close:
            self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(response.body)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        # http.server answers malformed requests with an HTML page; answer in COS XML instead,
        # with a status line even when the request line was too broken to say its version.
        self.close_connection = True
        self.request_version = self.protocol_version
        error = ApiError(
            ErrorCode.INVALID_REQUEST, f"The HTTP request could not be parsed ({code} {message or ''})."
        )
        request = ApiRequest(method=getattr(self, "command", "") or "", path="/")
        with contextlib.suppress(OSError):  # the client may already be gone
            self._send(self.server.api.refuse(request, error), close=True)

    def log_message(self, format: str, *args: object) -> None:
        # The request line is the client's: escape control characters as http.server's own
        # log_message does (gh-100001), which this override would otherwise lose.
        log.info("%s %s", self.address_string(), (format % args).translate(_CONTROL_CHARACTERS))


def make_server(
    api: JobsApi, host: str = "127.0.0.1", port: int = 8080, max_connections: int = MAX_CONNECTIONS
) -> JobsHttpServer:
    return JobsHttpServer((host, port), api, max_connections=max_connections)


def serve_in_thread(server: JobsHttpServer) -> threading.Thread:
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), name="batchops-serve", daemon=True)
    thread.start()
    return thread
