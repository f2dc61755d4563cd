"""A loopback HTTP proxy in front of the moto server that can answer S3 requests itself.

The lean S3 client sends its requests without botocore's event hooks, so the before-send
injection of ``tests.faults`` cannot reach them; this proxy can, for any client: every request
is classified into its S3 operation (path-style URLs), shown to the injectors registered for that
operation, and either answered with the injector's response or forwarded to moto.
"""

from __future__ import annotations

import http.client
import socket
import threading
from collections.abc import Callable
from typing import Any
from urllib.parse import parse_qs, urlsplit

from botocore.awsrequest import AWSResponse, HeadersDict

_HOP_BY_HOP = frozenset({"connection", "keep-alive", "transfer-encoding", "content-length"})


class ProxiedRequest:
    """What an injector sees: the shape of botocore's AWSPreparedRequest that tests read."""

    def __init__(self, method: str, url: str, headers: HeadersDict, body: bytes) -> None:
        self.method = method
        self.url = url
        self.headers = headers
        """Values are bytes, as on botocore's prepared requests."""
        self.body = body


Decide = Callable[[Any], AWSResponse | None]
"""Called with a ProxiedRequest (tests.faults.Injector takes it as it takes botocore's request)."""


# (method, query marker or header that names the operation, operation), first match wins
_BY_MARKER = [
    ("PUT", "x-amz-copy-source+partNumber", "UploadPartCopy"),
    ("PUT", "x-amz-copy-source", "CopyObject"),
    ("PUT", "partNumber", "UploadPart"),
    ("POST", "delete", "DeleteObjects"),
    ("POST", "restore", "RestoreObject"),
    ("POST", "uploads", "CreateMultipartUpload"),
    ("POST", "uploadId", "CompleteMultipartUpload"),
    ("DELETE", "uploadId", "AbortMultipartUpload"),
    ("GET", "tagging", "GetObjectTagging"),
    ("GET", "acl", "GetObjectAcl"),
    ("GET", "uploads", "ListMultipartUploads"),
]
# (method, operation on a key, operation on a bucket)
_BY_PATH = {
    "PUT": ("PutObject", "CreateBucket"),
    "DELETE": ("DeleteObject", "DeleteBucket"),
    "HEAD": ("HeadObject", "HeadBucket"),
    "GET": ("GetObject", "ListObjects"),
}


def operation_of(method: str, target: str, headers: dict[str, str]) -> str:
    """The S3 operation of a path-style request (those the tests inject on, and their neighbours)."""
    parts = urlsplit(target)
    present = set(parse_qs(parts.query, keep_blank_values=True)) | set(headers)
    for wanted_method, markers, name in _BY_MARKER:
        if method == wanted_method and set(markers.split("+")) <= present:
            return name
    on_key, on_bucket = _BY_PATH.get(method, ("Unknown", "Unknown"))
    return on_key if parts.path.strip("/").count("/") >= 1 else on_bucket


class FaultProxy:
    def __init__(self, upstream: str) -> None:
        parts = urlsplit(upstream)
        assert parts.hostname is not None and parts.port is not None
        self._upstream = (parts.hostname, parts.port)
        self._injectors: list[tuple[str, Decide]] = []
        self._lock = threading.Lock()
        self.seen: list[tuple[str, ProxiedRequest]] = []
        """(operation, request) of every request, in arrival order."""
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(64)
        self.url = f"http://127.0.0.1:{self._listener.getsockname()[1]}"
        threading.Thread(target=self._accept, daemon=True).start()

    def inject(self, operation: str, decide: Decide) -> None:
        """``decide`` sees every request of ``operation`` (``*``: all) and may answer it."""
        with self._lock:
            self._injectors.append((operation, decide))

    def stop(self) -> None:
        self._listener.close()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        reader = conn.makefile("rb")
        with conn, reader:
            while True:
                request = _read_request(reader, conn)
                if request is None:
                    return
                method, target, headers, body = request
                operation = operation_of(method, target, {k.lower(): v for k, v in headers})
                proxied = ProxiedRequest(
                    method,
                    f"{self.url}{target}",
                    HeadersDict({name: value.encode("latin-1") for name, value in headers}),
                    body,
                )
                with self._lock:
                    self.seen.append((operation, proxied))
                    injectors = list(self._injectors)
                answer = None
                for wanted, decide in injectors:
                    if wanted in ("*", operation):
                        # every injector sees the request; the first answer wins (as botocore's)
                        result = decide(proxied)
                        answer = answer if answer is not None else result
                try:
                    conn.sendall(
                        _injected(answer)
                        if answer is not None
                        else self._forward(method, target, headers, body)
                    )
                except OSError:
                    return

    def _forward(self, method: str, target: str, headers: list[tuple[str, str]], body: bytes) -> bytes:
        upstream = http.client.HTTPConnection(*self._upstream, timeout=30)
        try:
            upstream.putrequest(method, target, skip_host=True, skip_accept_encoding=True)
            for name, value in headers:
                upstream.putheader(name, value)
            upstream.endheaders(body or None)
            answer = upstream.getresponse()
            data = answer.read()
            kept = [(n, v) for n, v in answer.getheaders() if n.lower() not in _HOP_BY_HOP]
            # moto closes every connection; the client's stays open (it is what the clients reuse)
            length = answer.getheader("Content-Length", "0") if method == "HEAD" else str(len(data))
            return _raw(answer.status, [*kept, ("Content-Length", length)], b"" if method == "HEAD" else data)
        finally:
            upstream.close()


def _injected(answer: AWSResponse) -> bytes:
    body = answer.content or b""
    headers = [(name, value) for name, value in answer.headers.items() if name.lower() not in _HOP_BY_HOP]
    return _raw(answer.status_code, [*headers, ("Content-Length", str(len(body)))], body)


def _raw(status: int, headers: list[tuple[str, Any]], body: bytes) -> bytes:
    head = f"HTTP/1.1 {status} {http.client.responses.get(status, 'Unknown')}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers)
    return (head + "\r\n").encode("latin-1") + body


def _read_request(reader: Any, conn: socket.socket) -> tuple[str, str, list[tuple[str, str]], bytes] | None:
    line = reader.readline(65537)
    if not line:
        return None
    method, target, _ = line.decode("latin-1").split(" ", 2)
    headers: list[tuple[str, str]] = []
    while True:
        line = reader.readline(65537)
        if line in (b"\r\n", b"\n", b""):
            break
        name, _, value = line.decode("latin-1").partition(":")
        headers.append((name.strip(), value.strip()))
    length = next((int(v) for n, v in headers if n.lower() == "content-length"), 0)
    if any(n.lower() == "expect" and v.lower() == "100-continue" for n, v in headers):
        conn.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")  # botocore waits a second for it otherwise
    headers = [(n, v) for n, v in headers if n.lower() != "expect"]
    return method, target, headers, reader.read(length) if length else b""
