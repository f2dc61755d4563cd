"""A loopback HTTP/1.1 server that answers from a script, for client-behaviour tests.

Each request gets the next scripted answer: raw response bytes, or an action (close the
connection without answering, reset it, answer late, answer with a cut-short body). When the
script runs out, the default answer is given. Requests are recorded (with the connection they
came on), connections are kept alive unless an answer closes them.
"""

from __future__ import annotations

import contextlib
import socket
import struct
import threading
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.client import responses


@dataclass(frozen=True)
class Recorded:
    method: str
    target: str
    headers: dict[str, str]
    """Lower-cased names."""
    body: bytes
    connection: int


@dataclass(frozen=True)
class Answer:
    raw: bytes = b""
    delay: float = 0.0
    close_after: bool = False
    reset: bool = False
    """Close with a TCP RST instead of answering."""
    hang_up: bool = False
    """Close without answering."""


def response(
    status: int, body: bytes = b"", headers: dict[str, str] | list[tuple[str, str]] | None = None
) -> bytes:
    pairs = list(headers.items()) if isinstance(headers, dict) else list(headers or [])
    pairs = [("x-amz-request-id", "REQ123"), ("x-amz-id-2", "HOST456"), *pairs]
    if not any(name.lower() in ("content-length", "transfer-encoding") for name, _ in pairs):
        pairs.append(("Content-Length", str(len(body))))
    head = f"HTTP/1.1 {status} {responses.get(status, 'Unknown')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in pairs)
    return (head + "\r\n").encode("latin-1") + body


def xml(status: int, body: str, headers: dict[str, str] | None = None) -> bytes:
    return response(status, body.encode(), {"Content-Type": "application/xml", **(headers or {})})


def s3_error(status: int, code: str, message: str = "injected", **extra: str) -> bytes:
    fields = "".join(f"<{name}>{value}</{name}>" for name, value in extra.items())
    return xml(
        status,
        f"<Error><Code>{code}</Code><Message>{message}</Message>{fields}<RequestId>R</RequestId><HostId>H</HostId></Error>",
    )


@dataclass
class ScriptedServer:
    default: Answer = field(default_factory=lambda: Answer(response(200)))
    requests: list[Recorded] = field(default_factory=list)
    connections: int = 0

    def __post_init__(self) -> None:
        self._script: deque[Answer] = deque()
        self._lock = threading.Lock()
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.port = self._listener.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self._open: list[socket.socket] = []
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def script(self, *answers: Answer | bytes) -> None:
        with self._lock:
            self._script.clear()
            self._script.extend(a if isinstance(a, Answer) else Answer(a) for a in answers)
            self.requests.clear()

    def stop(self) -> None:
        self._listener.close()
        for conn in self._open:
            with contextlib.suppress(OSError):
                conn.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
                number = self.connections
                self._open.append(conn)
            threading.Thread(target=self._serve, args=(conn, number), daemon=True).start()

    def _serve(self, conn: socket.socket, number: int) -> None:
        buffer = b""
        with conn:
            while True:
                try:
                    request, buffer = _read_request(conn, buffer, number)
                except OSError:
                    return
                if request is None:
                    return
                with self._lock:
                    self.requests.append(request)
                    answer = self._script.popleft() if self._script else self.default
                if answer.delay:
                    time.sleep(answer.delay)
                try:
                    if answer.reset:
                        conn.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                        return
                    if answer.hang_up:
                        return
                    conn.sendall(answer.raw)
                except OSError:
                    return
                if answer.close_after:
                    return


def _read_request(conn: socket.socket, buffer: bytes, number: int) -> tuple[Recorded | None, bytes]:
    while b"\r\n\r\n" not in buffer:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buffer += data
    head, _, buffer = buffer.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    method, target, _ = lines[0].split(" ", 2)
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip().lower()] = value.strip()
    length = int(headers.get("content-length", "0"))
    while len(buffer) < length:
        data = conn.recv(65536)
        if not data:
            return None, b""
        buffer += data
    return Recorded(method, target, headers, buffer[:length], number), buffer[length:]


def serving() -> Iterator[ScriptedServer]:
    server = ScriptedServer()
    try:
        yield server
    finally:
        server.stop()
