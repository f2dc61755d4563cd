"""A stateless stub S3 endpoint for benchmarks: canned, well-formed answers at a few tens of µs each.

moto is far too slow to benchmark a client against (1-2 ms of server CPU per request, one core,
``Connection: close``; see shared/reference/performance.md): every client looks the same behind
it. This stub keeps the server cheap so the client is what is measured:

- 127.0.0.1 only, HTTP/1.1 keep-alive, one asyncio event loop: thousands of idle connections
  cost nothing, and an optional per-request delay (``--delay-ms``, a timer, no CPU) stands in
  for network and storage latency.
- Every call the executor and the peers make gets a well-formed answer: CopyObject, PutObject,
  HeadObject, GetObject (Range, If-Match), DeleteObject, DeleteObjects (a Deleted entry per key,
  Quiet honoured), RestoreObject (202), ListObjectsV2 and v1 (``marker``) over a synthetic
  listing, CreateBucket, the multipart calls, GetObjectTagging and GetObjectAcl. Path-style and
  virtual-host-style (``<bucket>.<domain>``) addressing; absolute-form request targets (an HTTP
  proxy's) too. Signatures are not checked.
- Nothing is stored, except that GETs serve real files from ``--objects DIR`` (as
  ``DIR/<bucket>/<key>``, ETag the quoted MD5 hex) so a manifest can be read, and with
  ``--keep-puts`` uploaded objects are kept in memory (until ``/__reset``) so a completion report
  can be read back and checked. Any other key is a synthetic object of ``--object-size`` bytes.
- The synthetic listing of every bucket is ``<list_prefix><i:08d>`` for ``i < list_count``, the
  same keys the benchmark's peers use.

Control endpoints: ``GET /__stats`` (JSON: requests per operation, connections opened and
requests per connection since the last reset, bytes, the stub's own CPU seconds), ``POST
/__reset`` (zero the counters, drop kept objects) and ``POST /__config?delay_ms=&list_prefix=
&list_count=&keep_puts=`` (change settings in place, so one stub serves every scenario).

Run: ``python -m tests.bench.stub_s3 --port 0 --delay-ms 20 --objects DIR``; the first line on
stdout is the port. Stop it with SIGTERM (by PID).
"""

from __future__ import annotations

import argparse
import asyncio
import bisect
import hashlib
import json
import os
import resource
import signal
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from email.utils import formatdate
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, quote, unquote
from xml.etree import ElementTree
from xml.sax.saxutils import escape

S3_NS = "http://s3.amazonaws.com/doc/2006-03-01/"
XML_HEAD = b'<?xml version="1.0" encoding="UTF-8"?>\n'
MAX_HEADER_BYTES = 64 * 1024
MAX_KEYS = 1000
OWNER_ID = "75aa57f09aa0c8caeab4f8c24e99d10f8e7faeebf76c078efc7c6caea54ba06a"
_REASONS = {
    100: "Continue",
    200: "OK",
    202: "Accepted",
    204: "No Content",
    206: "Partial Content",
    400: "Bad Request",
    404: "Not Found",
    412: "Precondition Failed",
    416: "Requested Range Not Satisfiable",
    431: "Request Header Fields Too Large",
    501: "Not Implemented",
}
# Subresources that make a bucket-level GET something other than a listing.
_BUCKET_SUBRESOURCES = frozenset(
    {"location", "versioning", "versions", "uploads", "acl", "policy", "tagging", "lifecycle", "cors"}
)


@dataclass
class Config:
    objects_dir: Path | None
    delay: float = 0.0
    object_size: int = 1024
    list_prefix: str = "obj-"
    list_count: int = 0
    keep_puts: bool = False
    domain: str = "localhost"


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: bytes
    bucket: str
    key: str


@dataclass
class Response:
    status: int
    body: bytes = b""
    headers: list[tuple[str, str]] = field(default_factory=list)
    content_length: int | None = None
    """For HEAD: the length of the body a GET would send."""


class Stats:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.operations: dict[str, int] = {}
        self.opened = 0
        self.closed_requests: list[int] = []
        self.bytes_in = 0
        self.bytes_out = 0
        self.deleted_keys = 0
        self.max_open = 0

    def count(self, operation: str) -> None:
        self.operations[operation] = self.operations.get(operation, 0) + 1


_FILES_KEPT = 4
"""Files the stub keeps read (the bench's inventories, the manifest of the run at hand)."""


class Stub:
    """State shared by every connection: settings, counters, kept objects, the listing."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stats = Stats()
        self.connections: set[S3Protocol] = set()
        self.kept: dict[tuple[str, str], bytes] = {}
        self.uploads: dict[str, dict[int, bytes]] = {}
        self.started = time.time()
        self.last_modified_iso = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime(self.started))
        self.last_modified_http = formatdate(self.started, usegmt=True)
        self.objects_root = str(config.objects_dir) if config.objects_dir else ""
        self.synthetic = b"x" * config.object_size
        self.synthetic_etag = f'"{hashlib.md5(self.synthetic).hexdigest()}"'
        self._files: dict[tuple[str, int, int], tuple[bytes, str]] = {}
        self._listing: tuple[tuple[str, int], list[str]] = (("", 0), [])
        self._request_ids = 0
        self.generation = 0
        self._date = (0, "")

    # --- shared helpers -------------------------------------------------------------------------

    def request_id(self) -> str:
        self._request_ids += 1
        return f"{self._request_ids:016X}"

    def date(self) -> str:
        now = int(time.time())
        if self._date[0] != now:
            self._date = (now, formatdate(now, usegmt=True))
        return self._date[1]

    def listing(self) -> list[str]:
        wanted = (self.config.list_prefix, self.config.list_count)
        if self._listing[0] != wanted:
            prefix, count = wanted
            self._listing = (wanted, [f"{prefix}{i:08d}" for i in range(count)])
        return self._listing[1]

    def object(self, bucket: str, key: str) -> tuple[bytes, str]:
        """(body, quoted ETag) of an object: kept, a real file, or the synthetic one."""
        kept = self.kept.get((bucket, key))
        if kept is not None:
            return kept, f'"{hashlib.md5(kept).hexdigest()}"'
        path = self.file_path(bucket, key)
        if path is not None:
            stat = path.stat()
            cache_key = (str(path), stat.st_mtime_ns, stat.st_size)
            cached = self._files.get(cache_key)
            if cached is None:
                # Read once while unchanged: a stub that reads a 33 MB inventory from disk on
                # every GET spends the CPU the client being measured shares the machine with.
                body = path.read_bytes()
                if len(self._files) >= _FILES_KEPT:
                    self._files.clear()
                cached = self._files[cache_key] = (body, f'"{hashlib.md5(body).hexdigest()}"')
            return cached
        return self.synthetic, self.synthetic_etag

    def file_path(self, bucket: str, key: str) -> Path | None:
        root = self.config.objects_dir
        if root is None or not key or not bucket or bucket.startswith(".") or ".." in key.split("/"):
            return None
        # Plain strings and one stat: pathlib would cost more than the rest of a copy's answer.
        path = os.path.join(self.objects_root, bucket, key.lstrip("/"))
        return Path(path) if os.path.isfile(path) else None

    # --- control endpoints ------------------------------------------------------------------------

    def stats_json(self) -> dict[str, Any]:
        stats = self.stats
        per_connection = list(stats.closed_requests) + [c.requests for c in self.connections if c.requests]
        usage = resource.getrusage(resource.RUSAGE_SELF)
        return {
            "requests": sum(stats.operations.values()),
            "operations": dict(sorted(stats.operations.items())),
            "deleted_keys": stats.deleted_keys,
            "connections": {
                "opened": stats.opened,
                "open": len(self.connections),
                "max_open": stats.max_open,
                "requests_per_connection": per_connection,
            },
            "bytes_in": stats.bytes_in,
            "bytes_out": stats.bytes_out,
            "cpu_seconds": usage.ru_utime + usage.ru_stime,
            "config": self.config_json(),
        }

    def config_json(self) -> dict[str, Any]:
        c = self.config
        return {
            "delay_ms": c.delay * 1000,
            "object_size": c.object_size,
            "list_prefix": c.list_prefix,
            "list_count": c.list_count,
            "keep_puts": c.keep_puts,
            "domain": c.domain,
            "objects_dir": str(c.objects_dir) if c.objects_dir else None,
        }

    def reset(self) -> None:
        self.generation += 1
        self.stats.reset()
        self.stats.max_open = len(self.connections)
        for connection in self.connections:
            connection.requests = 0
        self.kept.clear()
        self.uploads.clear()

    def configure(self, query: dict[str, str]) -> None:
        c = self.config
        if "delay_ms" in query:
            c.delay = float(query["delay_ms"]) / 1000
        if "list_prefix" in query:
            c.list_prefix = query["list_prefix"]
        if "list_count" in query:
            c.list_count = int(query["list_count"])
        if "keep_puts" in query:
            c.keep_puts = query["keep_puts"].lower() in ("1", "true", "yes")


class S3Protocol(asyncio.Protocol):
    """One client connection: requests are answered one at a time, in order (keep-alive)."""

    def __init__(self, stub: Stub) -> None:
        self.stub = stub
        self.buffer = bytearray()
        self.requests = 0
        """S3 requests (control ones are not counted) since the connection opened or the last reset."""
        self.generation = -1
        self.busy = False
        self.closing = False
        self.continued = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        stub = self.stub
        stub.connections.add(self)
        self.generation = stub.generation
        stub.stats.max_open = max(stub.stats.max_open, len(stub.connections))

    def connection_lost(self, exc: Exception | None) -> None:
        self.stub.connections.discard(self)
        if self.requests:
            self.stub.stats.closed_requests.append(self.requests)
        self.transport = None

    def data_received(self, data: bytes) -> None:
        self.stub.stats.bytes_in += len(data)
        self.buffer += data
        if not self.busy:
            self.process()

    def process(self) -> None:
        """Parse and answer the next complete request, if the buffer holds one."""
        while not self.busy and not self.closing and self.transport is not None:
            parsed = self.parse()
            if parsed is None:
                return
            request, keep_alive = parsed
            if not is_control(request):
                self.counted()
            response = handle(self.stub, request)
            if not keep_alive:
                self.closing = True
            delay = self.stub.config.delay
            if delay > 0 and not is_control(request):
                self.busy = True
                asyncio.get_running_loop().call_later(delay, self.send_later, request.method, response)
            else:
                self.send(request.method, response)

    def counted(self) -> None:
        # A connection counts as opened at its first S3 request, and only if it opened after the
        # last reset: the control requests around a measured run must not add to its figures.
        if self.requests == 0 and self.generation == self.stub.generation:
            self.stub.stats.opened += 1
        self.requests += 1

    def send_later(self, method: str, response: Response) -> None:
        self.busy = False
        self.send(method, response)
        self.process()

    def parse(self) -> tuple[Request, bool] | None:
        buffer = self.buffer
        end = buffer.find(b"\r\n\r\n")
        if end < 0:
            if len(buffer) > MAX_HEADER_BYTES:
                self.fail(431)
            return None
        lines = bytes(buffer[:end]).decode("latin-1").split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            self.fail(400)
            return None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            name, _, value = line.partition(":")
            name = name.strip().lower()
            value = value.strip()
            headers[name] = f"{headers[name]},{value}" if name in headers else value
        start = end + 4
        if "chunked" in headers.get("transfer-encoding", "").lower():
            found = _dechunk(buffer, start)
            if found is None:
                self.maybe_continue(headers)
                return None
            body, consumed = found
        else:
            length = int(headers.get("content-length") or 0)
            if len(buffer) - start < length:
                self.maybe_continue(headers)
                return None
            body, consumed = bytes(buffer[start : start + length]), start + length
        del buffer[:consumed]
        self.continued = False
        connection = headers.get("connection", "").lower()
        keep_alive = "close" not in connection and (version == "HTTP/1.1" or "keep-alive" in connection)
        return _request(self.stub, method, target, headers, body), keep_alive

    def maybe_continue(self, headers: dict[str, str]) -> None:
        # botocore asks before sending a PutObject/UploadPart body and waits a second for this.
        if not self.continued and headers.get("expect", "").lower() == "100-continue":
            self.continued = True
            self.write(b"HTTP/1.1 100 Continue\r\n\r\n")

    def send(self, method: str, response: Response) -> None:
        stub = self.stub
        length = len(response.body) if response.content_length is None else response.content_length
        head = [
            f"HTTP/1.1 {response.status} {_REASONS.get(response.status, 'OK')}",
            f"Date: {stub.date()}",
            "Server: stub-s3",
            f"x-amz-request-id: {stub.request_id()}",
            f"Content-Length: {length}",
        ]
        head.extend(f"{name}: {value}" for name, value in response.headers)
        if self.closing:
            head.append("Connection: close")
        self.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        if method != "HEAD" and response.body:
            self.write(response.body)  # not joined to the head: a large body is not copied
        if self.closing and self.transport is not None:
            self.transport.close()

    def write(self, data: bytes) -> None:
        if self.transport is not None:
            self.stub.stats.bytes_out += len(data)
            self.transport.write(data)

    def fail(self, status: int) -> None:
        self.closing = True
        self.send("GET", _error(status, "BadRequest", "malformed request"))


def _dechunk(buffer: bytearray, start: int) -> tuple[bytes, int] | None:
    """(body, end) of a complete chunked body at ``start``; None while it is incomplete."""
    body = bytearray()
    position = start
    while True:
        line_end = buffer.find(b"\r\n", position)
        if line_end < 0:
            return None
        size = int(bytes(buffer[position:line_end]).split(b";")[0].strip() or b"0", 16)
        position = line_end + 2
        if size == 0:
            trailer_end = buffer.find(b"\r\n\r\n", line_end)
            if trailer_end < 0:
                return None
            return bytes(body), trailer_end + 4
        if len(buffer) < position + size + 2:
            return None
        body += buffer[position : position + size]
        position += size + 2


def _aws_chunked(body: bytes) -> bytes:
    """The payload of an ``aws-chunked`` body (chunk framing with signature extensions)."""
    found = _dechunk(bytearray(body) + (b"" if body.endswith(b"\r\n\r\n") else b"\r\n"), 0)
    return found[0] if found is not None else body


def _request(stub: Stub, method: str, target: str, headers: dict[str, str], body: bytes) -> Request:
    if target.startswith(("http://", "https://")):  # absolute form, as sent to a proxy
        _, _, rest = target.partition("://")
        authority, slash, remainder = rest.partition("/")
        headers["host"] = authority
        target = slash + remainder
    raw_path, _, raw_query = target.partition("?")
    path = unquote(raw_path)
    query = dict(parse_qsl(raw_query, keep_blank_values=True))
    host = headers.get("host", "").rsplit(":", 1)[0] if "]" not in headers.get("host", "") else ""
    suffix = "." + stub.config.domain
    if stub.config.domain and host.endswith(suffix) and len(host) > len(suffix):
        bucket, key = host[: -len(suffix)], path[1:]
    else:
        bucket, _, key = path[1:].partition("/")
    return Request(method, path, query, headers, body, bucket, key)


# --- operations -------------------------------------------------------------------------------------


def is_control(request: Request) -> bool:
    return request.path.startswith("/__") and not request.key


def handle(stub: Stub, request: Request) -> Response:
    if is_control(request):
        return _control(stub, request)
    operation, answer = _route(request)
    stub.stats.count(operation)
    return answer(stub, request)


def _control(stub: Stub, request: Request) -> Response:
    name = request.path[3:]
    if name == "stats" and request.method == "GET":
        return _json(stub.stats_json())
    if name == "reset" and request.method == "POST":
        stub.reset()
        return _json({"reset": True})
    if name == "config" and request.method == "POST":
        stub.configure(request.query)
        return _json(stub.config_json())
    return _error(400, "InvalidRequest", f"unknown control endpoint {request.path}")


Answer = Callable[["Stub", Request], Response]


def _route(request: Request) -> tuple[str, Answer]:  # noqa: PLR0911, PLR0912 - one branch per S3 call: the routing table
    method, query, bucket, key = request.method, request.query, request.bucket, request.key
    if not bucket:
        return ("ListBuckets", _list_buckets) if method == "GET" else ("Unknown", _not_implemented)
    if not key:
        if method == "PUT" and not query:
            return "CreateBucket", _create_bucket
        if method == "HEAD":
            return "HeadBucket", _empty(200)
        if method == "DELETE" and not query:
            return "DeleteBucket", _empty(204)
        if method == "POST" and "delete" in query:
            return "DeleteObjects", _delete_objects
        if method == "GET" and "location" in query:
            return "GetBucketLocation", _bucket_location
        if method == "GET" and not _BUCKET_SUBRESOURCES.intersection(query):
            if query.get("list-type") == "2":
                return "ListObjectsV2", _list_objects
            return "ListObjects", _list_objects
        return "Unknown", _not_implemented
    if method == "PUT":
        copy_source = "x-amz-copy-source" in request.headers
        if "uploadId" in query and "partNumber" in query:
            return ("UploadPartCopy", _upload_part_copy) if copy_source else ("UploadPart", _upload_part)
        if "tagging" in query:
            return "PutObjectTagging", _empty(200)
        if "acl" in query:
            return "PutObjectAcl", _empty(200)
        return ("CopyObject", _copy_object) if copy_source else ("PutObject", _put_object)
    if method == "GET":
        if "tagging" in query:
            return "GetObjectTagging", _get_tagging
        if "acl" in query:
            return "GetObjectAcl", _get_acl
        return "GetObject", _get_object
    if method == "HEAD":
        return "HeadObject", _get_object
    if method == "DELETE":
        return ("AbortMultipartUpload", _abort) if "uploadId" in query else ("DeleteObject", _empty(204))
    if method == "POST":
        if "uploads" in query:
            return "CreateMultipartUpload", _create_upload
        if "uploadId" in query:
            return "CompleteMultipartUpload", _complete_upload
        if "restore" in query:
            return "RestoreObject", _empty(202)
    return "Unknown", _not_implemented


def _xml(root: str, inner: str, status: int = 200) -> Response:
    body = XML_HEAD + f'<{root} xmlns="{S3_NS}">{inner}</{root}>'.encode()
    return Response(status, body, [("Content-Type", "application/xml")])


def _json(data: dict[str, Any]) -> Response:
    return Response(200, json.dumps(data).encode(), [("Content-Type", "application/json")])


def _error(status: int, code: str, message: str, resource_name: str = "") -> Response:
    inner = (
        f"<Code>{code}</Code><Message>{escape(message)}</Message><Resource>{escape(resource_name)}</Resource>"
    )
    body = XML_HEAD + f"<Error>{inner}<RequestId>stub</RequestId></Error>".encode()
    return Response(status, body, [("Content-Type", "application/xml")])


def _empty(status: int) -> Answer:
    def answer(stub: Stub, request: Request) -> Response:
        return Response(status)

    return answer


def _not_implemented(stub: Stub, request: Request) -> Response:
    return _error(501, "NotImplemented", f"the stub does not implement {request.method} {request.path}")


def _list_buckets(stub: Stub, request: Request) -> Response:
    buckets = ""
    if stub.config.objects_dir is not None:
        for path in sorted(stub.config.objects_dir.iterdir()):
            if path.is_dir():
                buckets += f"<Bucket><Name>{escape(path.name)}</Name><CreationDate>{stub.last_modified_iso}</CreationDate></Bucket>"
    owner = f"<Owner><ID>{OWNER_ID}</ID><DisplayName>stub</DisplayName></Owner>"
    return _xml("ListAllMyBucketsResult", f"{owner}<Buckets>{buckets}</Buckets>")


def _create_bucket(stub: Stub, request: Request) -> Response:
    return Response(200, headers=[("Location", f"/{request.bucket}")])


def _bucket_location(stub: Stub, request: Request) -> Response:
    return _xml("LocationConstraint", "")


def _list_objects(stub: Stub, request: Request) -> Response:
    query = request.query
    v2 = query.get("list-type") == "2"
    prefix = query.get("prefix", "")
    delimiter = query.get("delimiter", "")
    url_encoded = query.get("encoding-type") == "url"
    max_keys = min(int(query.get("max-keys") or MAX_KEYS), MAX_KEYS)
    after = (
        (query.get("continuation-token") or query.get("start-after", "")) if v2 else query.get("marker", "")
    )
    keys = stub.listing()
    position = max(bisect.bisect_left(keys, prefix), bisect.bisect_right(keys, after) if after else 0)

    def encode(text: str) -> str:
        return escape(quote(text, safe="/~") if url_encoded else text)

    contents: list[str] = []
    prefixes: list[str] = []
    last = ""
    truncated = False
    while position < len(keys) and keys[position].startswith(prefix):
        if len(contents) + len(prefixes) >= max_keys:
            truncated = True
            break
        key = keys[position]
        rest = key[len(prefix) :]
        cut = rest.find(delimiter) if delimiter else -1
        if cut >= 0:
            common = prefix + rest[: cut + len(delimiter)]
            prefixes.append(f"<CommonPrefixes><Prefix>{encode(common)}</Prefix></CommonPrefixes>")
            last = common
            position = bisect.bisect_left(keys, common + "\U0010ffff")
            continue
        contents.append(
            f"<Contents><Key>{encode(key)}</Key><LastModified>{stub.last_modified_iso}</LastModified>"
            f"<ETag>{escape(stub.synthetic_etag)}</ETag><Size>{stub.config.object_size}</Size>"
            "<StorageClass>STANDARD</StorageClass></Contents>"
        )
        last = key
        position += 1
    parts = [
        f"<Name>{escape(request.bucket)}</Name><Prefix>{encode(prefix)}</Prefix><MaxKeys>{max_keys}</MaxKeys>",
        f"<IsTruncated>{'true' if truncated else 'false'}</IsTruncated>",
    ]
    if delimiter:
        parts.append(f"<Delimiter>{encode(delimiter)}</Delimiter>")
    if url_encoded:
        parts.append("<EncodingType>url</EncodingType>")
    if v2:
        parts.append(f"<KeyCount>{len(contents) + len(prefixes)}</KeyCount>")
        if "continuation-token" in query:
            parts.append(f"<ContinuationToken>{escape(query['continuation-token'])}</ContinuationToken>")
        if "start-after" in query:
            parts.append(f"<StartAfter>{encode(query['start-after'])}</StartAfter>")
        if truncated:
            parts.append(f"<NextContinuationToken>{escape(last)}</NextContinuationToken>")
    else:
        parts.append(f"<Marker>{encode(query.get('marker', ''))}</Marker>")
        if truncated:
            parts.append(f"<NextMarker>{encode(last)}</NextMarker>")
    return _xml("ListBucketResult", "".join(parts) + "".join(contents) + "".join(prefixes))


def _copy_object(stub: Stub, request: Request) -> Response:
    _, etag = stub.object(*_copy_source(request))
    inner = f"<LastModified>{stub.last_modified_iso}</LastModified><ETag>{escape(etag)}</ETag>"
    return _xml("CopyObjectResult", inner)


def _copy_source(request: Request) -> tuple[str, str]:
    source = unquote(request.headers["x-amz-copy-source"].partition("?")[0]).lstrip("/")
    bucket, _, key = source.partition("/")
    return bucket, key


def _put_object(stub: Stub, request: Request) -> Response:
    body = request.body
    if "aws-chunked" in request.headers.get("content-encoding", ""):
        body = _aws_chunked(body)
    if stub.config.keep_puts:
        stub.kept[(request.bucket, request.key)] = body
    return Response(200, headers=[("ETag", f'"{hashlib.md5(body).hexdigest()}"')])


def _get_object(stub: Stub, request: Request) -> Response:
    body, etag = stub.object(request.bucket, request.key)
    if_match = request.headers.get("if-match")
    if if_match is not None and if_match.strip() not in ("*", etag, etag.strip('"')):
        return _error(
            412, "PreconditionFailed", "At least one of the preconditions you specified did not hold"
        )
    headers = [
        ("ETag", etag),
        ("Last-Modified", stub.last_modified_http),
        ("Content-Type", "binary/octet-stream"),
        ("Accept-Ranges", "bytes"),
    ]
    size = len(body)
    wanted = request.headers.get("range", "")
    status = 200
    if wanted.startswith("bytes=") and request.method == "GET":
        found = _byte_range(wanted[6:], size)
        if found is None:
            return _error(416, "InvalidRange", "The requested range is not satisfiable")
        first, last = found
        body = body[first : last + 1]
        headers.append(("Content-Range", f"bytes {first}-{last}/{size}"))
        status = 206
    if request.method == "HEAD":
        return Response(200, b"", headers, content_length=size)
    return Response(status, body, headers)


def _byte_range(spec: str, size: int) -> tuple[int, int] | None:
    start_text, _, end_text = spec.split(",", maxsplit=1)[0].strip().partition("-")
    if not start_text:
        suffix = int(end_text)
        return (max(0, size - suffix), size - 1) if suffix > 0 and size > 0 else None
    start = int(start_text)
    end = min(int(end_text), size - 1) if end_text else size - 1
    return (start, end) if start <= end else None


def _delete_objects(stub: Stub, request: Request) -> Response:
    try:
        root = ElementTree.fromstring(request.body)
    except ElementTree.ParseError as exc:
        return _error(400, "MalformedXML", f"the DeleteObjects body is not XML: {exc}")
    quiet = False
    entries: list[str] = []
    for element in root:
        tag = element.tag.rpartition("}")[2]
        if tag == "Quiet":
            quiet = (element.text or "").strip().lower() == "true"
        elif tag == "Object":
            key = version = None
            for child in element:
                child_tag = child.tag.rpartition("}")[2]
                if child_tag == "Key":
                    key = child.text or ""
                elif child_tag == "VersionId":
                    version = child.text
            if key is None:
                return _error(400, "MalformedXML", "an Object without a Key")
            version_part = f"<VersionId>{escape(version)}</VersionId>" if version else ""
            entries.append(f"<Deleted><Key>{escape(key)}</Key>{version_part}</Deleted>")
    if len(entries) > MAX_KEYS:
        return _error(400, "MalformedXML", f"more than {MAX_KEYS} keys")
    stub.stats.deleted_keys += len(entries)
    return _xml("DeleteResult", "" if quiet else "".join(entries))


def _get_tagging(stub: Stub, request: Request) -> Response:
    return _xml("Tagging", "<TagSet><Tag><Key>stub</Key><Value>canned</Value></Tag></TagSet>")


def _get_acl(stub: Stub, request: Request) -> Response:
    owner = f"<Owner><ID>{OWNER_ID}</ID><DisplayName>stub</DisplayName></Owner>"
    grant = (
        '<Grant><Grantee xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xsi:type="CanonicalUser">'
        f"<ID>{OWNER_ID}</ID><DisplayName>stub</DisplayName></Grantee><Permission>FULL_CONTROL</Permission></Grant>"
    )
    return _xml("AccessControlPolicy", f"{owner}<AccessControlList>{grant}</AccessControlList>")


def _create_upload(stub: Stub, request: Request) -> Response:
    upload_id = uuid.uuid4().hex
    if stub.config.keep_puts:
        stub.uploads[upload_id] = {}
    inner = f"<Bucket>{escape(request.bucket)}</Bucket><Key>{escape(request.key)}</Key><UploadId>{upload_id}</UploadId>"
    return _xml("InitiateMultipartUploadResult", inner)


def _upload_part(stub: Stub, request: Request) -> Response:
    body = request.body
    if "aws-chunked" in request.headers.get("content-encoding", ""):
        body = _aws_chunked(body)
    parts = stub.uploads.get(request.query["uploadId"])
    if parts is not None:
        parts[int(request.query["partNumber"])] = body
    return Response(200, headers=[("ETag", f'"{hashlib.md5(body).hexdigest()}"')])


def _upload_part_copy(stub: Stub, request: Request) -> Response:
    body, _ = stub.object(*_copy_source(request))
    wanted = request.headers.get("x-amz-copy-source-range", "")
    if wanted.startswith("bytes="):
        found = _byte_range(wanted[6:], len(body))
        if found is None:
            return _error(416, "InvalidRange", "The requested range is not satisfiable")
        body = body[found[0] : found[1] + 1]
    parts = stub.uploads.get(request.query["uploadId"])
    if parts is not None:
        parts[int(request.query["partNumber"])] = body
    etag = f'"{hashlib.md5(body).hexdigest()}"'
    inner = f"<LastModified>{stub.last_modified_iso}</LastModified><ETag>{escape(etag)}</ETag>"
    return _xml("CopyPartResult", inner)


def _complete_upload(stub: Stub, request: Request) -> Response:
    upload_id = request.query["uploadId"]
    parts = stub.uploads.pop(upload_id, None)
    numbers: list[int] = []
    try:
        root = ElementTree.fromstring(request.body)
        for element in root.iter():
            if element.tag.rpartition("}")[2] == "PartNumber":
                numbers.append(int(element.text or "0"))
    except (ElementTree.ParseError, ValueError) as exc:
        return _error(400, "MalformedXML", f"the CompleteMultipartUpload body is not valid: {exc}")
    if parts is not None:
        stub.kept[(request.bucket, request.key)] = b"".join(parts.get(n, b"") for n in numbers)
    etag = f'"{hashlib.md5(upload_id.encode()).hexdigest()}-{len(numbers)}"'
    inner = (
        f"<Location>/{escape(request.bucket)}/{escape(request.key)}</Location><Bucket>{escape(request.bucket)}</Bucket>"
        f"<Key>{escape(request.key)}</Key><ETag>{escape(etag)}</ETag>"
    )
    return _xml("CompleteMultipartUploadResult", inner)


def _abort(stub: Stub, request: Request) -> Response:
    stub.uploads.pop(request.query["uploadId"], None)
    return Response(204)


# --- entry point ----------------------------------------------------------------------------------


async def serve(config: Config, port: int) -> None:
    stub = Stub(config)
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: S3Protocol(stub), "127.0.0.1", port, backlog=1024)
    bound = server.sockets[0].getsockname()[1]
    print(bound, flush=True)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    async with server:
        await stop.wait()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--port", type=int, default=0, help="port on 127.0.0.1 (0: any free one)")
    parser.add_argument("--delay-ms", type=float, default=0.0, help="hold every S3 answer this long")
    parser.add_argument("--objects", type=Path, help="serve DIR/<bucket>/<key> files to GET and HEAD")
    parser.add_argument("--object-size", type=int, default=1024, help="bytes of every other object")
    parser.add_argument("--list-prefix", default="obj-", help="synthetic listing: <prefix><i:08d>")
    parser.add_argument("--list-count", type=int, default=0, help="synthetic listing: how many keys")
    parser.add_argument("--keep-puts", action="store_true", help="keep uploaded objects in memory")
    parser.add_argument("--domain", default="localhost", help="virtual-host style: Host <bucket>.<domain>")
    args = parser.parse_args(argv)
    config = Config(
        objects_dir=args.objects.resolve() if args.objects else None,
        delay=args.delay_ms / 1000,
        object_size=args.object_size,
        list_prefix=args.list_prefix,
        list_count=args.list_count,
        keep_puts=args.keep_puts,
        domain=args.domain,
    )
    asyncio.run(serve(config, args.port))
    return 0


if __name__ == "__main__":
    sys.exit(main())
