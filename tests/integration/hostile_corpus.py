"""The hostile-input corpus: requests an attacker or a broken client may send the jobs API, each
with the COS error it must get. Data for tests/integration/test_hostile_inputs.py (and the
latency bench, tests/bench/hostile_latency.py).

Bodies that name a file or a URL take :class:`Traps`: a FIFO standing in for a secret file (any
open of it is recorded) and a loopback listener (any connection is recorded). Expected codes
follow the COS error catalogue (README "Errors"): structure and subtrees (Manifest, Operation,
Report) are MalformedXML, top-level fields InvalidArgument (Priority: InvalidRequest, as the seed
says), transport limits EntityTooLarge, InvalidRequest or MissingContentLength.
"""

from __future__ import annotations

import functools
import gzip
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tests.conftest import SEED_XML

SEED = SEED_XML.read_bytes()
SEED_TEXT = SEED.decode()
APPID = "1250000000"
MISSING_JOB = "53dc6228-c50b-46f7-8ad7-65e7159f1aae"

MALFORMED = "MalformedXML"
INVALID_ARGUMENT = "InvalidArgument"
INVALID_REQUEST = "InvalidRequest"
TOO_LARGE = "EntityTooLarge"
NO_SUCH_JOB = "NoSuchJob"
NO_SUCH_RESOURCE = "NoSuchResource"


@dataclass(frozen=True)
class Traps:
    canary: Path
    """A FIFO: anything that opens it to read is recorded."""
    port: int
    """A loopback listener: anything that connects is recorded."""

    @property
    def uri(self) -> str:
        return self.canary.as_uri()

    def url(self, path: str = "x") -> str:
        return f"http://127.0.0.1:{self.port}/{path}"


Body = bytes | Callable[[Traps], bytes]


@dataclass(frozen=True)
class Case:
    name: str
    status: int
    code: str
    body: Body | None = None
    method: str = "POST"
    path: str = "/jobs"
    """As sent on the wire (percent-encoded); API Gateway hands the handler the decoded path."""
    headers: dict[str, str] = field(default_factory=dict)
    raw: Callable[[Traps], bytes] | None = None
    """The whole HTTP request as bytes, for what no HTTP client would send: `batchops serve` only."""
    serve: bool = True
    gateway: bool = True
    """API Gateway could deliver it to the jobs API function."""

    def body_for(self, traps: Traps) -> bytes | None:
        return self.body(traps) if callable(self.body) else self.body


def seed(old: bytes, new: bytes) -> bytes:
    assert old in SEED, old
    return SEED.replace(old, new)


def description(text: bytes) -> bytes:
    return seed(b"<Description>example-job</Description>", b"<Description>" + text + b"</Description>")


def copy_extra(xml: bytes) -> bytes:
    """The seed's COSPutObjectCopy with more children after TargetResource."""
    return seed(b"</TargetResource>", b"</TargetResource>" + xml)


def doctype(subset: str) -> Callable[[Traps], bytes]:
    """The seed behind a DOCTYPE; ``subset`` is formatted with the traps' uri, path and url."""

    def build(traps: Traps) -> bytes:
        declared = subset.format(uri=traps.uri, path=traps.canary, url=traps.url())
        return f"<!DOCTYPE CreateJobRequest {declared}>".encode() + description(b"&x;")

    return build


def encoded(encoding: str, declaration: str | None, bom: bytes = b"") -> Callable[[Traps], bytes]:
    """An XXE document in another encoding (a byte search for DOCTYPE would miss it)."""

    def build(traps: Traps) -> bytes:
        head = f'<?xml version="1.0" encoding="{declaration}"?>' if declaration else ""
        text = f'{head}<!DOCTYPE CreateJobRequest [<!ENTITY x SYSTEM "{traps.uri}">]>' + SEED_TEXT.replace(
            "<Description>example-job", "<Description>&x;"
        )
        return bom + text.encode(encoding)

    return build


def raw(request: str | bytes) -> Callable[[Traps], bytes]:
    data = request.encode("latin-1") if isinstance(request, str) else request
    return lambda traps: data


@functools.cache
def gzip_bomb() -> bytes:
    """50 MB of zeros in about 50 KB: refused from its Content-Encoding, never inflated."""
    return gzip.compress(b"\0" * 50_000_000, compresslevel=9)


LAUGHS = (
    b'<!DOCTYPE CreateJobRequest [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]>"
    + description(b"&lol9;")
)
QUADRATIC = (
    b'<!DOCTYPE CreateJobRequest [<!ENTITY a "' + b"a" * 20_000 + b'">]>' + description(b"&a;" * 10_000)
)
POST_HEAD = f"POST /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nx-cos-appid: {APPID}\r\n"
GET_MISSING = f"GET /jobs/{MISSING_JOB}%00 HTTP/1.1\r\nHost: 127.0.0.1\r\nx-cos-appid: {APPID}\r\n"

XXE = [
    Case("xxe-file-uri", 400, MALFORMED, doctype('[<!ENTITY x SYSTEM "{uri}">]')),
    Case("xxe-bare-path", 400, MALFORMED, doctype('[<!ENTITY x SYSTEM "{path}">]')),
    Case("xxe-network", 400, MALFORMED, doctype('[<!ENTITY x SYSTEM "{url}">]')),
    Case("external-dtd-file", 400, MALFORMED, doctype('SYSTEM "{uri}"')),
    Case("external-dtd-network", 400, MALFORMED, doctype('SYSTEM "{url}"')),
    Case("external-dtd-public-id", 400, MALFORMED, doctype('PUBLIC "-//batchops//x//EN" "{url}"')),
    Case("parameter-entity-file", 400, MALFORMED, doctype('[<!ENTITY % p SYSTEM "{uri}"> %p;]')),
    Case("parameter-entity-network", 400, MALFORMED, doctype('[<!ENTITY % p SYSTEM "{url}"> %p;]')),
    Case(
        "parameter-entity-out-of-band",
        400,
        MALFORMED,
        doctype('[<!ENTITY % file SYSTEM "{uri}"><!ENTITY % dtd SYSTEM "{url}"> %dtd;]'),
    ),
    Case(
        "xinclude-in-a-field",
        400,
        INVALID_ARGUMENT,
        lambda t: description(
            f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{t.uri}"/>'.encode()
        ),
    ),
    Case(
        "xinclude-at-top-level",
        400,
        MALFORMED,
        lambda t: seed(
            b"<Priority>",
            f'<xi:include xmlns:xi="http://www.w3.org/2001/XInclude" href="{t.url()}" parse="text"/><Priority>'.encode(),
        ),
    ),
]

# The minimal documents of the first hostile-XML test, kept as they were written.
MINIMAL = [
    Case(
        "xxe-network-minimal",
        400,
        MALFORMED,
        lambda t: f'<!DOCTYPE r [<!ENTITY x SYSTEM "{t.url()}">]><r>&x;</r>'.encode(),
    ),
    Case(
        "external-dtd-network-minimal",
        400,
        MALFORMED,
        lambda t: f'<!DOCTYPE CreateJobRequest SYSTEM "{t.url("x.dtd")}"><CreateJobRequest/>'.encode(),
    ),
    Case(
        "billion-laughs-minimal",
        400,
        MALFORMED,
        b'<!DOCTYPE r [<!ENTITY a "aaaaaaaaaa">'
        + b"".join(b'<!ENTITY %s "%s">' % (b"a" * (i + 1), (b"&%s;" % (b"a" * i)) * 10) for i in range(1, 9))
        + b"]><r>&aaaaaaaaa;</r>",
    ),
    Case(
        "utf16-doctype-minimal",
        400,
        MALFORMED,
        lambda t: (
            f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x SYSTEM "{t.uri}">]><r>&x;</r>'
        ).encode("utf-16"),
    ),
]

BOMBS = [
    Case("billion-laughs", 400, MALFORMED, LAUGHS),
    Case("quadratic-blowup", 400, MALFORMED, QUADRATIC),
    Case(
        "deep-nesting-5000",
        400,
        MALFORMED,
        b"<CreateJobRequest>" + b"<a>" * 5000 + b"</a>" * 5000 + b"</CreateJobRequest>",
    ),
    Case(
        "deep-nesting-200", 400, MALFORMED, seed(b"<Priority>", b"<a>" * 200 + b"</a>" * 200 + b"<Priority>")
    ),
    Case("element-name-60k", 400, MALFORMED, seed(b"<Priority>", b"<" + b"n" * 60_000 + b"/><Priority>")),
    Case(
        "repeated-member-3000", 400, MALFORMED, seed(b"<member>Key</member>", b"<member>Key</member>" * 3000)
    ),
]

OVERSIZE = [
    Case("body-64KiB-plus-one", 400, TOO_LARGE, SEED + b" " * (64 * 1024 + 1 - len(SEED))),
    Case("body-1MiB", 400, TOO_LARGE, description(b"x" * (1 << 20))),
    Case(
        "content-length-beyond-any-body",
        400,
        TOO_LARGE,
        raw=raw(POST_HEAD + "Content-Length: 999999999999999\r\n\r\n<CreateJobRequest/>"),
        gateway=False,
    ),
    Case(
        "content-length-negative",
        400,
        INVALID_REQUEST,
        raw=raw(POST_HEAD + "Content-Length: -1\r\n\r\n"),
        gateway=False,
    ),
    Case(
        "chunked-body",
        411,
        "MissingContentLength",
        raw=raw(POST_HEAD + "Transfer-Encoding: chunked\r\n\r\n5\r\n<Crea\r\n0\r\n\r\n"),
        gateway=False,
    ),
    Case("description-257-bytes", 400, INVALID_ARGUMENT, description(b"d" * 257)),
    Case("description-86-chars-258-bytes", 400, INVALID_ARGUMENT, description("日".encode() * 86)),
    Case("token-65-bytes", 400, INVALID_ARGUMENT, seed(b"184ce261-18af-5e3d-3e30-253723cfd937", b"t" * 65)),
    Case("role-arn-2049-bytes", 400, INVALID_ARGUMENT, seed(b"COS_Batch_QcsRole", b"r" * 2049)),
    Case("etag-1025-bytes", 400, MALFORMED, seed(b'"15150651828fa9cdcb8356b6d1c7638b"', b"e" * 1025)),
    Case("object-arn-1025-bytes", 400, MALFORMED, seed(b"batch-copy-manifest.csv", b"k" * 1025)),
    Case("report-prefix-257-bytes", 400, MALFORMED, seed(b"<Prefix>job-result", b"<Prefix>" + b"p" * 257)),
    Case(
        "target-key-prefix-1025-bytes",
        400,
        MALFORMED,
        copy_extra(b"<TargetKeyPrefix>" + b"p" * 1025 + b"</TargetKeyPrefix>"),
    ),
    Case("priority-33-digits", 400, INVALID_REQUEST, seed(b"<Priority>10", b"<Priority>" + b"9" * 33)),
    Case(
        "metadata-value-2049-bytes",
        400,
        MALFORMED,
        copy_extra(
            b"<MetadataDirective>Replaced</MetadataDirective><NewObjectMetadata><UserMetadata><member>"
            b"<Key>k</Key><Value>" + b"v" * 2049 + b"</Value></member></UserMetadata></NewObjectMetadata>"
        ),
    ),
    Case(
        "tag-key-129-bytes",
        400,
        MALFORMED,
        copy_extra(
            b"<TaggingDirective>Replaced</TaggingDirective><NewObjectTagging><COSTag><Key>"
            + b"k" * 129
            + b"</Key><Value>v</Value></COSTag></NewObjectTagging>"
        ),
    ),
]

STRUCTURE = [
    Case(
        "duplicate-priority", 400, MALFORMED, seed(b"<Priority>10</Priority>", b"<Priority>10</Priority>" * 2)
    ),
    Case(
        "duplicate-token",
        400,
        MALFORMED,
        seed(b"<ConfirmationRequired>", b"<ClientRequestToken>b</ClientRequestToken><ConfirmationRequired>"),
    ),
    Case(
        "duplicate-manifest",
        400,
        MALFORMED,
        seed(b"<Operation>", SEED[SEED.index(b"<Manifest>") : SEED.index(b"<Operation>") + 11]),
    ),
    Case(
        "duplicate-report-prefix",
        400,
        MALFORMED,
        seed(b"<Prefix>job-result</Prefix>", b"<Prefix>a</Prefix><Prefix>b</Prefix>"),
    ),
    Case(
        "duplicate-operation-kind",
        400,
        MALFORMED,
        seed(b"</COSPutObjectCopy>", b"</COSPutObjectCopy><COSDeleteObject/>"),
    ),
    Case("wrong-root", 400, MALFORMED, SEED.replace(b"CreateJobRequest>", b"CreateJob>")),
    Case("error-as-root", 400, MALFORMED, b"<Error><Code>x</Code></Error>"),
    Case(
        "s3control-namespace",
        400,
        MALFORMED,
        seed(
            b"<CreateJobRequest>",
            b'<CreateJobRequest xmlns="http://awss3control.amazonaws.com/doc/2018-08-20/">',
        ),
    ),
    Case(
        "prefixed-root",
        400,
        MALFORMED,
        SEED.replace(b"<CreateJobRequest>", b'<c:CreateJobRequest xmlns:c="urn:c">').replace(
            b"</CreateJobRequest>", b"</c:CreateJobRequest>"
        ),
    ),
    Case("namespace-on-a-child", 400, MALFORMED, seed(b"<Priority>", b'<Priority xmlns="urn:x">')),
    Case("truncated", 400, MALFORMED, SEED[: len(SEED) // 2]),
    Case("mismatched-tags", 400, MALFORMED, seed(b"</Priority>", b"</Description>")),
    Case("two-roots", 400, MALFORMED, SEED + SEED),
    Case("text-beside-elements", 400, MALFORMED, seed(b"<Manifest><Location>", b"<Manifest>text<Location>")),
    Case("empty-body", 400, INVALID_REQUEST, b""),
    Case("whitespace-body", 400, INVALID_REQUEST, b" \r\n\t "),
]

ENCODINGS = [
    Case("invalid-utf8", 400, MALFORMED, description(b"\xff\xfe")),
    Case("overlong-utf8-lt", 400, MALFORMED, description(b"\xc0\xbcx")),
    Case("utf8-encoded-surrogate", 400, MALFORMED, description(b"\xed\xa0\x80")),
    Case("raw-nul-byte", 400, MALFORMED, description(b"a\x00b")),
    Case("utf16-bom-doctype", 400, MALFORMED, encoded("utf-16", "UTF-16")),
    Case("utf16be-bom-doctype", 400, MALFORMED, encoded("utf-16-be", "UTF-16", b"\xfe\xff")),
    Case("utf16le-no-bom-doctype", 400, MALFORMED, encoded("utf-16-le", "UTF-16")),
    Case("utf16le-no-bom-no-declaration-doctype", 400, MALFORMED, encoded("utf-16-le", None)),
    Case(
        "utf7-doctype",
        400,
        MALFORMED,
        lambda t: (
            b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE r +AFs-+ADw-!ENTITY x SYSTEM +ACI-'
            + t.uri.encode()
            + b"+ACI-+AD4-+AF0-+AD4-<CreateJobRequest/>"
        ),
    ),
    Case("ebcdic-doctype", 400, MALFORMED, encoded("cp037", "IBM037")),
    Case("latin1-doctype", 400, MALFORMED, encoded("latin-1", "ISO-8859-1")),
]

COMPRESSION = [
    Case(
        "gzip-content-encoding",
        400,
        INVALID_REQUEST,
        gzip.compress(SEED),
        headers={"Content-Encoding": "gzip"},
    ),
    Case(
        "gzip-bomb-content-encoding",
        400,
        INVALID_REQUEST,
        lambda t: gzip_bomb(),
        headers={"Content-Encoding": "gzip"},
    ),
    Case(
        "deflate-content-encoding",
        400,
        INVALID_REQUEST,
        zlib.compress(SEED),
        headers={"Content-Encoding": "deflate"},
    ),
    Case("br-content-encoding", 400, INVALID_REQUEST, SEED, headers={"Content-Encoding": "br"}),
    Case(
        "stacked-content-encoding",
        400,
        INVALID_REQUEST,
        gzip.compress(SEED),
        headers={"Content-Encoding": "gzip, identity"},
    ),
    Case("gzip-bytes-without-header", 400, MALFORMED, gzip.compress(SEED)),
    Case(
        "gzip-bytes-called-identity",
        400,
        MALFORMED,
        gzip.compress(SEED),
        headers={"Content-Encoding": "identity"},
    ),
]

CRLF = b"&#13;&#10;Set-Cookie: a=b"
INJECTION = [
    Case("description-crlf-reference", 400, INVALID_ARGUMENT, description(b"job" + CRLF)),
    Case("description-raw-crlf", 400, INVALID_ARGUMENT, description(b"job\r\nSet-Cookie: a=b")),
    Case("description-nel", 400, INVALID_ARGUMENT, description(b"job&#x85;x")),
    Case("description-del", 400, INVALID_ARGUMENT, description(b"job&#x7f;x")),
    Case("description-escape-reference", 400, MALFORMED, description(b"&#x1b;[2J")),
    Case("description-raw-escape", 400, MALFORMED, description(b"\x1b[2J")),
    Case("description-raw-bell", 400, MALFORMED, description(b"\x07")),
    Case("description-noncharacter", 400, MALFORMED, description(b"&#xFFFE;")),
    Case("token-crlf", 400, INVALID_ARGUMENT, seed(b"184ce261", b"184ce261" + CRLF)),
    Case("role-arn-lf", 400, INVALID_ARGUMENT, seed(b"COS_Batch_QcsRole<", b"COS_Batch_QcsRole&#10;<")),
    Case("etag-crlf", 400, MALFORMED, seed(b'8b"</ETag>', b'8b"' + CRLF + b"</ETag>")),
    Case(
        "version-id-crlf",
        400,
        MALFORMED,
        seed(b"</ETag>", b"</ETag><ObjectVersionId>v" + CRLF + b"</ObjectVersionId>"),
    ),
    Case("object-arn-lf", 400, MALFORMED, seed(b".csv</ObjectArn>", b".csv&#10;</ObjectArn>")),
    Case("target-resource-lf", 400, MALFORMED, seed(b"0</TargetResource>", b"0&#10;</TargetResource>")),
    Case("report-bucket-lf", 400, MALFORMED, seed(b"0</Bucket>", b"0&#10;</Bucket>")),
    Case(
        "cache-control-crlf",
        400,
        MALFORMED,
        copy_extra(
            b"<MetadataDirective>Replaced</MetadataDirective><NewObjectMetadata><CacheControl>max-age=1"
            + CRLF
            + b"</CacheControl></NewObjectMetadata>"
        ),
    ),
    Case(
        "metadata-key-lf",
        400,
        MALFORMED,
        copy_extra(
            b"<MetadataDirective>Replaced</MetadataDirective><NewObjectMetadata><UserMetadata><member>"
            b"<Key>k&#10;</Key><Value>v</Value></member></UserMetadata></NewObjectMetadata>"
        ),
    ),
    Case(
        "tag-value-crlf",
        400,
        MALFORMED,
        copy_extra(
            b"<TaggingDirective>Replaced</TaggingDirective><NewObjectTagging><COSTag><Key>k</Key><Value>v"
            + CRLF
            + b"</Value></COSTag></NewObjectTagging>"
        ),
    ),
    Case(
        "status-reason-crlf",
        400,
        INVALID_ARGUMENT,
        path=f"/jobs/{MISSING_JOB}/status?requestedJobStatus=Cancelled&statusUpdateReason=x%0D%0ASet-Cookie:%20a=b",
    ),
    Case(
        "appid-trailing-lf",
        400,
        INVALID_ARGUMENT,
        method="GET",
        headers={"x-cos-appid": f"{APPID}\n"},
        serve=False,
    ),
    Case(
        "appid-folded-header",
        400,
        INVALID_ARGUMENT,
        raw=raw(f"GET /jobs HTTP/1.1\r\nHost: 127.0.0.1\r\nx-cos-appid: {APPID}\r\n Set-Cookie: a=b\r\n\r\n"),
        gateway=False,
    ),
    Case(
        "trace-id-crlf",
        404,
        NO_SUCH_JOB,
        method="GET",
        path=f"/jobs/{MISSING_JOB}x",
        headers={"x-cos-trace-id": "t\r\nSet-Cookie: a=b"},
        serve=False,
    ),
    Case(
        "trace-id-folded-header",
        404,
        NO_SUCH_JOB,
        raw=raw(GET_MISSING + "x-cos-trace-id: t\r\n Set-Cookie: a=b\r\n\r\n"),
        gateway=False,
    ),
    Case(
        "trace-id-control-characters",
        404,
        NO_SUCH_JOB,
        raw=raw(GET_MISSING + "x-cos-trace-id: t\x1b[2J\x00\x7f\r\n\r\n"),
        gateway=False,
    ),
    Case(
        "trace-id-8KiB",
        404,
        NO_SUCH_JOB,
        method="GET",
        path=f"/jobs/{MISSING_JOB}x",
        headers={"x-cos-trace-id": "t" * 8192},
    ),
    Case(
        "escape-in-request-line",
        404,
        NO_SUCH_JOB,
        raw=raw(f"GET /jobs/\x1b[2J\x1b]0;pwned\x07 HTTP/1.1\r\nHost: x\r\nx-cos-appid: {APPID}\r\n\r\n"),
        gateway=False,
    ),
    Case("crlf-in-job-id", 404, NO_SUCH_JOB, method="GET", path="/jobs/a%0D%0ASet-Cookie:%20a=b"),
]

PATHS = [
    Case("dot-dot-path", 404, NO_SUCH_RESOURCE, method="GET", path="/jobs/../etc/passwd"),
    Case(
        "encoded-dot-dot-path",
        404,
        NO_SUCH_RESOURCE,
        method="GET",
        path="/jobs/%2e%2e%2f%2e%2e%2fetc%2fpasswd",
    ),
    Case("encoded-slash-back-to-jobs", 404, NO_SUCH_RESOURCE, method="DELETE", path="/jobs/..%2F..%2Fjobs"),
    Case("dot-dot-job-id", 404, NO_SUCH_JOB, method="GET", path="/jobs/%2e%2e"),
    Case("dot-dot-job-id-priority", 404, NO_SUCH_JOB, path="/jobs/%2E%2E/priority?priority=1"),
    Case("backslash-traversal", 404, NO_SUCH_JOB, method="GET", path="/jobs/..%5C..%5Cwindows%5Cwin.ini"),
    Case("nul-job-id", 404, NO_SUCH_JOB, method="GET", path="/jobs/%00"),
    Case("lf-job-id", 404, NO_SUCH_JOB, method="GET", path="/jobs/abc%0A"),
    Case("invalid-utf8-job-id", 404, NO_SUCH_JOB, method="GET", path="/jobs/%FF%FE"),
    Case("job-id-65-chars", 404, NO_SUCH_JOB, method="GET", path="/jobs/" + "j" * 65),
    Case("double-slash-root", 404, NO_SUCH_RESOURCE, method="GET", path="//etc/passwd"),
    Case("missing-job-id", 400, INVALID_REQUEST, path="/jobs//status?requestedJobStatus=Ready"),
    Case("max-results-nul", 400, INVALID_ARGUMENT, method="GET", path="/jobs?maxResults=%00"),
    Case("max-results-twice", 400, INVALID_ARGUMENT, method="GET", path="/jobs?maxResults=1&maxResults=2"),
    Case(
        "max-results-huge", 400, INVALID_ARGUMENT, method="GET", path="/jobs?maxResults=99999999999999999999"
    ),
    Case("max-results-bad-escape", 400, INVALID_ARGUMENT, method="GET", path="/jobs?maxResults=%zz"),
    Case("job-statuses-nul", 400, INVALID_ARGUMENT, method="GET", path="/jobs?jobStatuses=%00"),
    Case(
        "job-statuses-traversal", 400, INVALID_ARGUMENT, method="GET", path="/jobs?jobStatuses=Active,../../x"
    ),
    Case("next-token-traversal", 400, INVALID_ARGUMENT, method="GET", path="/jobs?nextToken=../../jobs"),
    Case("next-token-nul", 400, INVALID_ARGUMENT, method="GET", path="/jobs?nextToken=%00"),
    Case("priority-exponent", 400, INVALID_REQUEST, path=f"/jobs/{MISSING_JOB}/priority?priority=1e3"),
    Case("priority-negative", 400, INVALID_REQUEST, path=f"/jobs/{MISSING_JOB}/priority?priority=-1"),
    Case("priority-hex", 400, INVALID_REQUEST, path=f"/jobs/{MISSING_JOB}/priority?priority=0x10"),
    Case("priority-overflow", 400, INVALID_REQUEST, path=f"/jobs/{MISSING_JOB}/priority?priority=2147483648"),
    Case("priority-nul", 400, INVALID_REQUEST, path=f"/jobs/{MISSING_JOB}/priority?priority=1%00"),
    Case("status-nul", 400, INVALID_ARGUMENT, path=f"/jobs/{MISSING_JOB}/status?requestedJobStatus=Ready%00"),
    Case(
        "status-traversal",
        400,
        INVALID_ARGUMENT,
        path=f"/jobs/{MISSING_JOB}/status?requestedJobStatus=../Ready",
    ),
    Case(
        "status-reason-257-bytes",
        400,
        INVALID_ARGUMENT,
        path=f"/jobs/{MISSING_JOB}/status?requestedJobStatus=Cancelled&statusUpdateReason={'r' * 257}",
    ),
    Case(
        "request-line-70k",
        400,
        INVALID_REQUEST,
        raw=raw(f"GET /jobs?nextToken={'n' * 70_000} HTTP/1.1\r\nHost: x\r\n\r\n"),
        gateway=False,
    ),
    Case(
        "header-line-70k",
        400,
        INVALID_REQUEST,
        raw=raw(f"GET /jobs HTTP/1.1\r\nHost: x\r\nx-pad: {'p' * 70_000}\r\n\r\n"),
        gateway=False,
    ),
    Case(
        "headers-200",
        400,
        INVALID_REQUEST,
        raw=raw("GET /jobs HTTP/1.1\r\n" + "".join(f"x-h{i}: v\r\n" for i in range(200)) + "\r\n"),
        gateway=False,
    ),
    Case(
        "unknown-method",
        400,
        INVALID_REQUEST,
        raw=raw(f"FOO /jobs HTTP/1.1\r\nHost: x\r\nx-cos-appid: {APPID}\r\n\r\n"),
        gateway=False,
    ),
    Case(
        "tls-hello-on-plain-http",
        400,
        INVALID_REQUEST,
        raw=raw(b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 32 + b"\r\n\r\n"),
        gateway=False,
    ),
]

CORPUS: list[Case] = [
    *XXE,
    *MINIMAL,
    *BOMBS,
    *OVERSIZE,
    *STRUCTURE,
    *ENCODINGS,
    *COMPRESSION,
    *INJECTION,
    *PATHS,
]
assert len({case.name for case in CORPUS}) == len(CORPUS), "case names must be unique"
