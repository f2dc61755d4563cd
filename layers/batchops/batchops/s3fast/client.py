"""``LeanS3Client``: the boto3 S3 client's hot calls at a fraction of the CPU, same semantics.

copy_object, head_object, delete_object, delete_objects and restore_object take the same
arguments, return the same dicts and raise the same exceptions as the wrapped boto3 client;
everything else (attributes, the other operations) is the wrapped client's own.

Where the CPU of a boto3 call goes, and what a lean call does instead:

- botocore emits some twenty events per call and resolves the endpoint through its rules engine
  every time; a lean call calls the few S3 handlers that shape its request directly
  (``PARAMETER_HANDLERS``, a test holds the list to what botocore registers) and resolves the
  endpoint once per bucket;
- botocore validates and serialises through a generic walk of the model; the lean serializer
  (``serialize``) lays out plain parameters directly, identically, and leaves the rest to boto3;
- the request is checksummed by botocore's checksum functions, signed by a plain-dict SigV4
  signer (``sigv4``) and exchanged on the client's own urllib3 connections (``transport``),
  under botocore's standard retry policy (``retry``);
- successful responses are parsed by a parser compiled from the output shape (``responses``);
  errors by botocore's parser.

A call the lean path cannot make exactly as boto3 would is made by the wrapped client: unusual
parameters (anything botocore's handlers or serializer do not take as given, non-ASCII
headers), buckets that are ARNs or S3 Express directory buckets, clients with a proxy, other
retry modes or signature versions, and buckets S3 redirects to another region (boto3 follows
the redirect and remembers the region; later calls for that bucket go to boto3 too).

Lean calls do not emit botocore's request/response events: hooks on ``before-send`` (tests'
fault injection, botocore's Stubber) and X-Ray's botocore patching do not see them.
"""

from __future__ import annotations

import datetime
import hashlib
import platform
import re
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, Any, NamedTuple, cast
from urllib.parse import urlsplit

import botocore
from botocore.awsrequest import HeadersDict, prepare_request_dict
from botocore.handlers import (
    add_recursion_detection_header,
    copy_source_sse_md5,
    handle_copy_source_param,
    sse_md5,
    validate_ascii_metadata,
)
from botocore.httpchecksum import apply_request_checksum, resolve_checksum_context
from botocore.model import OperationModel
from lxml import etree

from batchops.s3fast.responses import ErrorParser, OutputParser, UnsupportedShapeError, parse_xml
from batchops.s3fast.retry import HttpStatus, StandardRetries, max_attempts_of
from batchops.s3fast.serialize import FastSerializer
from batchops.s3fast.sigv4 import EMPTY_SHA256, UNSIGNED_PAYLOAD, Credentials, SigV4Signer, host_of
from batchops.s3fast.steps import Blocking, Send, Sleep, Steps, blocking_call, run_blocking
from batchops.s3fast.transport import RawResponse, Transport, http_session_of, split_url

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

LEAN_OPERATIONS = {
    "copy_object": "CopyObject",
    "delete_object": "DeleteObject",
    "delete_objects": "DeleteObjects",
    "head_object": "HeadObject",
    "restore_object": "RestoreObject",
}
# The before-parameter-build handlers botocore registers for each operation that change or check
# its parameters (besides the bucket name check below and the bucket-less URL path the serializer
# applies); tests/unit/s3fast/test_handlers.py holds this to what botocore registers.
PARAMETER_HANDLERS: dict[str, tuple[Callable[..., None], ...]] = {
    "CopyObject": (handle_copy_source_param, validate_ascii_metadata, sse_md5, copy_source_sse_md5),
    "HeadObject": (sse_md5,),
    "DeleteObject": (),
    "DeleteObjects": (),
    "RestoreObject": (),
}
# botocore's own bucket check (handlers.VALID_BUCKET); ARNs are left to boto3.
_PLAIN_BUCKET = re.compile(r"^[a-zA-Z0-9.\-_]{1,255}$")
_MAX_ENDPOINTS = 4096


def call_steps(s3: Any, method: str, kwargs: dict[str, Any]) -> Steps[Any]:
    """``s3.<method>(**kwargs)`` as steps: a lean client's own, any other client's as one blocking call."""
    if isinstance(s3, LeanS3Client) and method in LEAN_OPERATIONS:
        return s3.steps(method, kwargs)
    return blocking_call(partial(getattr(s3, method), **kwargs))


def multiplexable(s3: Any) -> bool:
    """Whether ``s3``'s lean calls are worth multiplexing (it makes them itself, not boto3)."""
    return isinstance(s3, LeanS3Client) and s3.is_lean


def lean_s3_client(client: S3Client) -> S3Client:
    """``client`` with its hot calls made lean (typed as the client it stands in for)."""
    if isinstance(client, LeanS3Client):
        return cast("S3Client", client)
    return cast("S3Client", LeanS3Client(client))


class LeanS3Client:
    def __init__(self, client: S3Client, *, clock: Callable[[], str] | None = None) -> None:
        """``clock`` gives the signing time as ``YYYYMMDDTHHMMSSZ`` (tests pin it)."""
        self.wrapped = client
        self._lean = _Lean.of(client, clock or utc_timestamp)

    @property
    def is_lean(self) -> bool:
        """False when the client's configuration made every call go to boto3 (see ``_Lean.of``)."""
        return self._lean is not None

    def __getattr__(self, name: str) -> Any:
        if name == "wrapped":  # not set yet (a copy being made): no recursion
            raise AttributeError(name)
        return getattr(self.wrapped, name)

    def __repr__(self) -> str:
        return f"LeanS3Client({self.wrapped!r})"

    def copy_object(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("copy_object", args, kwargs)

    def head_object(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("head_object", args, kwargs)

    def delete_object(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete_object", args, kwargs)

    def delete_objects(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("delete_objects", args, kwargs)

    def restore_object(self, *args: Any, **kwargs: Any) -> Any:
        return self._call("restore_object", args, kwargs)

    def steps(self, method: str, kwargs: dict[str, Any]) -> Steps[Any]:
        """``method`` (one of ``LEAN_OPERATIONS``) called with ``kwargs``, as steps (``steps``):
        what the method itself does, to be run blocking or multiplexed."""
        boto3_call: Callable[..., Any] = getattr(self.wrapped, method)
        if self._lean is None:
            return blocking_call(partial(boto3_call, **kwargs))
        return self._lean.steps(LEAN_OPERATIONS[method], kwargs, boto3_call)

    def _call(self, method: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        boto3_call: Callable[..., Any] = getattr(self.wrapped, method)
        if self._lean is None or args:
            return boto3_call(*args, **kwargs)
        return self._lean.call(LEAN_OPERATIONS[method], kwargs, boto3_call)


class _Endpoint(NamedTuple):
    url: str
    region: str
    host: str
    """The ``host`` header value botocore signs for this endpoint."""


class _Forward(Exception):
    """This call is boto3's to make."""


@dataclass
class _Operation:
    model: OperationModel
    serializer: FastSerializer
    output: OutputParser
    errors: ErrorParser
    handlers: tuple[Callable[..., None], ...]
    checksums: bool


class _Lean:
    """The lean path of one wrapped client."""

    @classmethod
    def of(cls, client: Any, clock: Callable[[], str]) -> _Lean | None:
        """The lean path, or None if the client is configured in a way it cannot honour."""
        meta = client.meta
        config = meta.config
        session = http_session_of(client)
        if (
            meta.service_model.service_name != "s3"
            or (config.retries or {}).get("mode") != "standard"
            or config.signature_version not in (None, "s3v4", "v4")
            or config.auth_scheme_preference
            or getattr(client, "_ruleset_resolver", None) is None
            or session is None
            or client._get_credentials() is None
        ):
            return None
        return cls(client, Transport(session), clock)

    def __init__(self, client: Any, transport: Transport, clock: Callable[[], str]) -> None:
        self._client = client
        self._clock = clock
        self._transport = transport
        self._config = client.meta.config
        self._retries = StandardRetries(max_attempts_of(client))
        self._sign_payload = (self._config.s3 or {}).get("payload_signing_enabled")
        # boto3's own agent string, marked, so S3 access logs tell lean calls apart
        user_agent = (
            self._config.user_agent or f"Botocore/{botocore.__version__} Python/{platform.python_version()}"
        )
        user_agent += " batchops-s3fast"
        if self._config.user_agent_extra:
            user_agent += f" {self._config.user_agent_extra}"
        self._user_agent = user_agent
        self._signers: dict[str, SigV4Signer] = {}
        self._endpoints: dict[tuple[str, str], _Endpoint | None] = {}
        self._redirected: set[str] = set()
        self._operations: dict[str, _Operation | None] = {}
        service_model = client.meta.service_model
        for name in LEAN_OPERATIONS.values():
            model = service_model.operation_model(name)
            try:
                output = OutputParser(model)
            except UnsupportedShapeError:
                self._operations[name] = None
                continue
            self._operations[name] = _Operation(
                model,
                FastSerializer(model),
                output,
                ErrorParser(model),
                PARAMETER_HANDLERS[name],
                bool(model.http_checksum or model.http_checksum_required),
            )

    # --- a call ------------------------------------------------------------------------------------

    def call(self, name: str, params: dict[str, Any], boto3_call: Callable[..., Any]) -> Any:
        return run_blocking(self.steps(name, params, boto3_call))

    def steps(self, name: str, params: dict[str, Any], boto3_call: Callable[..., Any]) -> Steps[Any]:
        """The call as steps (``steps``): made by this client, or handed to ``boto3_call``."""
        operation = self._operations[name]
        bucket = params.get("Bucket")
        if (
            operation is None
            or not isinstance(bucket, str)
            or bucket in self._redirected
            or not _PLAIN_BUCKET.match(bucket)
        ):
            return (yield Blocking(partial(boto3_call, **params)))
        try:
            request = self.prepare(operation, dict(params), bucket)
            return (yield from self._sends(operation, request, bucket))
        except _Forward:
            return (yield Blocking(partial(boto3_call, **params)))

    def prepare(self, operation: _Operation, params: dict[str, Any], bucket: str) -> _Request:
        """The request for a call, unsigned; raises _Forward when it is boto3's to make."""
        model = operation.model
        context = {"client_region": self._client.meta.region_name, "client_config": self._config}
        for handler in operation.handlers:
            # botocore's S3 parameter handlers, which boto3 runs at this point: they may raise
            # the ParamValidationError boto3 would raise.
            handler(params=params, model=model, context=context)
        request_dict = operation.serializer.serialize(params)
        if request_dict is None:
            raise _Forward
        endpoint = self._endpoint(model, bucket)
        prepare_request_dict(request_dict, endpoint_url=endpoint.url, context=context, user_agent=None)
        if operation.checksums:
            resolve_checksum_context(request_dict, model, params)
            algorithm = context.get("checksum", {}).get("request_algorithm")
            if isinstance(algorithm, dict) and algorithm.get("in") != "header":
                raise _Forward  # a streamed (trailer) checksum is botocore's
            apply_request_checksum(request_dict)
        # botocore's before-call handler: the Lambda trace id (unsigned), when running in Lambda
        add_recursion_detection_header(request_dict)
        headers: dict[str, str] = request_dict["headers"]
        for value in headers.values():
            if not (isinstance(value, str) and value.isascii() and value.isprintable()):
                raise _Forward  # what http.client would refuse or mangle: boto3 fails its own way
        headers["User-Agent"] = self._user_agent
        method: str = request_dict["method"]
        body: bytes = request_dict["body"]
        origin, path, query, target = split_url(request_dict["url"])
        if self._sign_payload is False:
            payload_hash = UNSIGNED_PAYLOAD
        else:
            payload_hash = hashlib.sha256(body).hexdigest() if body else EMPTY_SHA256
        url: str = request_dict["url"]
        return _Request(
            method, url, origin, path, query, target, headers, body or None, payload_hash, endpoint
        )

    def _endpoint(self, model: OperationModel, bucket: str) -> _Endpoint:
        key = (model.name, bucket)
        if key not in self._endpoints:
            if len(self._endpoints) >= _MAX_ENDPOINTS:
                self._endpoints.clear()
            self._endpoints[key] = self._resolve(model, bucket)
        endpoint = self._endpoints[key]
        if endpoint is None:
            raise _Forward
        return endpoint

    def _resolve(self, model: OperationModel, bucket: str) -> _Endpoint | None:
        """The bucket's endpoint from botocore's rules, if it is plain SigV4 S3 on no proxy."""
        context: dict[str, Any] = {}
        resolver = self._client._ruleset_resolver
        try:
            info = resolver.construct_endpoint(
                operation_model=model, call_args={"Bucket": bucket}, request_context=context
            )
            schemes = info.properties.get("authSchemes")
            if info.headers or set(info.properties) - {"authSchemes"} or not schemes:
                return None
            auth_type, signing = resolver.auth_schemes_to_signing_ctx(schemes)
        except Exception:
            return None  # boto3 raises whatever it raises for this bucket
        if auth_type not in ("v4", "s3v4") or signing.get("signing_name", "s3") != "s3":
            return None
        if self._transport.proxied(info.url):
            return None
        parts = urlsplit(info.url)
        if parts.hostname is None:
            return None
        region = signing.get("region") or self._client.meta.region_name
        return _Endpoint(info.url, region, host_of(parts.scheme, parts.hostname, parts.port))

    def _sends(self, operation: _Operation, request: _Request, bucket: str) -> Steps[dict[str, Any]]:
        """botocore's ``_send_request`` loop: attempts, retry decisions, the final answer."""
        model = operation.model
        request_context: dict[str, Any] = {}
        invocation = str(uuid.uuid4())
        attempt = 1
        ttl: str | None = None
        while True:
            raw, failure = yield Send(
                self._transport,
                request.method,
                request.url,
                request.origin,
                self._head(request, attempt, invocation, ttl),
                request.body,
            )
            status, parsed, exception = self._answer(operation, raw, failure)
            if status is not None and status.status_code < 300:
                assert parsed is not None
                if attempt >= self._retries.max_attempts:
                    # botocore's retry checker notes this even on a success
                    parsed["ResponseMetadata"]["MaxAttemptsReached"] = True
                parsed["ResponseMetadata"]["RetryAttempts"] = attempt - 1
                self._retries.succeeded(request_context, status)
                return parsed
            if status is not None and parsed is not None and _redirected(model.name, status, parsed):
                if status.status_code in (301, 302, 307) or parsed["Error"].get("Code") != str(
                    status.status_code
                ):
                    self._redirected.add(bucket)
                raise _Forward
            delay = self._retries.delay(
                attempt=attempt,
                operation=model,
                request_context=request_context,
                status=status,
                parsed=parsed,
                exception=exception,
            )
            if delay is None:
                break
            if status is not None:
                ttl = _ttl(status.headers.get("Date"), self._config.read_timeout) or ttl
            yield Sleep(delay)
            attempt += 1
        if exception is not None:
            raise exception
        assert parsed is not None and status is not None
        parsed["ResponseMetadata"]["RetryAttempts"] = attempt - 1
        self._retries.succeeded(request_context, status)
        error_code = parsed.get("Error", {}).get("Code")
        raise self._client.exceptions.from_code(error_code)(parsed, model.name)

    def _head(self, request: _Request, attempt: int, invocation: str, ttl: str | None) -> bytes:
        """One attempt's request line and headers, signed."""
        headers = self.signed_headers(request, attempt, invocation, ttl)
        return "".join(
            [
                f"{request.method} {request.target} HTTP/1.1\r\nHost: {request.endpoint.host}\r\n",
                "Accept-Encoding: identity\r\n",
                *(f"{name}: {value}\r\n" for name, value in headers.items()),
                "\r\n",
            ]
        ).encode()

    def _answer(
        self, operation: _Operation, raw: RawResponse | None, failure: Exception | None
    ) -> tuple[HttpStatus | None, dict[str, Any] | None, Exception | None]:
        """One attempt's answer: (status as botocore sees it, parsed response, or the exception)."""
        if raw is None:
            return None, None, failure
        code, root = raw.status, None
        if code == 200 and raw.body:
            try:
                root = parse_xml(raw.body)
                if root.tag == "Error":
                    code = 500  # botocore: S3's 200 with an error inside is a 500
            except (etree.XMLSyntaxError, ValueError):
                code = 500  # ...and so is one cut short
        if code < 300:
            return (
                HttpStatus(code, raw.headers),
                operation.output.parse(code, raw.headers, raw.body, root),
                None,
            )
        parsed = operation.errors.parse(code, raw.headers, raw.body, raw.status)
        return HttpStatus(code, HeadersDict(raw.headers)), parsed, None

    def signed_headers(
        self, request: _Request, attempt: int, invocation: str, ttl: str | None = None
    ) -> dict[str, str]:
        """The headers of one attempt, signed (Host and Accept-Encoding are added on the wire)."""
        headers = dict(request.headers)
        # Refreshable credentials (assumed roles, instance roles) renew themselves here.
        frozen = self._client._get_credentials().get_frozen_credentials()
        self._signer(request.endpoint.region).sign(
            request.method,
            request.endpoint.host,
            request.path,
            request.query,
            headers,
            payload_hash=request.payload_hash,
            credentials=Credentials(frozen.access_key, frozen.secret_key, frozen.token),
            timestamp=self._clock(),
        )
        # Added after signing, as botocore's request preparation and retry handler add them.
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            headers["Content-Length"] = str(len(request.body or b""))
        headers["amz-sdk-invocation-id"] = invocation
        retry = f"attempt={attempt}; max={self._retries.max_attempts}"
        headers["amz-sdk-request"] = f"ttl={ttl}; {retry}" if ttl else retry
        return headers

    def _signer(self, region: str) -> SigV4Signer:
        signer = self._signers.get(region)
        if signer is None:
            signer = self._signers[region] = SigV4Signer(region)
        return signer


class _Request(NamedTuple):
    method: str
    url: str
    origin: str
    path: str
    query: str
    target: str
    headers: dict[str, str]
    body: bytes | None
    payload_hash: str
    endpoint: _Endpoint


def _redirected(operation: str, status: HttpStatus, parsed: dict[str, Any]) -> bool:
    """botocore's S3 region redirector would act on this response (``redirect_from_error``)."""
    error = parsed.get("Error", {})
    code = error.get("Code")
    return (
        status.status_code in (301, 302, 307)
        or code == "PermanentRedirect"
        or (code == "AuthorizationHeaderMalformed" and "Region" in error)
        or code == "IllegalLocationConstraintException"
        or (operation == "HeadObject" and code in ("301", "400"))
    )


def _ttl(date: str | None, read_timeout: float) -> str | None:
    """botocore's retry ``ttl``: when, by the server's clock, the next attempt's read times out."""
    if not date:
        return None
    try:
        server = datetime.datetime.strptime(date, "%a, %d %b %Y %H:%M:%S %Z")
    except ValueError:
        return None
    received = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    local = datetime.datetime.now(datetime.UTC).replace(tzinfo=None)
    return (local + datetime.timedelta(seconds=read_timeout) + (server - received)).strftime("%Y%m%dT%H%M%SZ")


_clock: tuple[int, str] = (0, "")


def utc_timestamp() -> str:
    """``YYYYMMDDTHHMMSSZ`` now, formatted once per second."""
    global _clock  # noqa: PLW0603 - one tuple swapped atomically; a race only formats twice
    now = int(time.time())
    if _clock[0] != now:
        _clock = (now, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(now)))
    return _clock[1]
