"""Property: the lean signer's Authorization header is botocore's S3SigV4Auth's, for any request.

The oracle is botocore's own signer on the same method, URL, headers, body, credentials and
time; the URLs are built the way botocore's serializer builds them (keys percent-encoded with
``/`` and ``~`` kept), so awkward keys (spaces, +, %, unicode, ~, leading and doubled slashes,
newlines) reach both signers exactly as they would be sent.
"""

from __future__ import annotations

import hashlib
from typing import Any, NamedTuple
from urllib.parse import quote, urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials as BotocoreCredentials
from hypothesis import given, settings
from hypothesis import strategies as st

from batchops.s3fast.sigv4 import Credentials, SigV4Signer, canonical_query, host_of

TIMESTAMP = "20240229T235959Z"

awkward_keys = st.one_of(
    st.text(min_size=1, max_size=40),
    st.sampled_from(
        [
            "a b",
            "a+b",
            "100%",
            "%2F",
            "é/ü/漢字",
            "~tilde",
            "/leading",
            "dir//double",
            "line\nbreak",
            "tab\t",
            "*?#[]",
        ]
    ),
    st.lists(
        st.sampled_from(["/", " ", "+", "%", "~", "é", "a", "\n", "=", "&", "?"]), min_size=1, max_size=12
    ).map("".join),
).filter(lambda key: "\x00" not in key and all(not 0xD800 <= ord(c) <= 0xDFFF for c in key))
header_names = st.one_of(
    st.sampled_from(
        [
            "Content-Type",
            "x-amz-copy-source",
            "x-amz-meta-Team",
            "X-Amz-Tagging",
            "Expires",
            "User-Agent",
            "Expect",
            "Content-Length",
            "x-amz-checksum-crc32",
        ]
    ),
    st.from_regex(r"x-amz-meta-[A-Za-z0-9-]{1,12}", fullmatch=True),
)
header_values = st.one_of(
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
    # runs of spaces and tabs, which SigV4 collapses
    st.lists(st.sampled_from([" ", "  ", "\t", "a", "b=c", ","]), max_size=8).map("".join),
)
query_pairs = st.lists(
    st.tuples(
        st.sampled_from(["versionId", "restore", "delete", "partNumber", "uploadId", "x"]),
        st.text(max_size=8),
    ),
    max_size=3,
)


class Request(NamedTuple):
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    credentials: Credentials


def botocore_signature(request: Request, region: str) -> dict[str, str]:
    aws = AWSRequest(method=request.method, url=request.url, headers=dict(request.headers), data=request.body)
    aws.context["timestamp"] = TIMESTAMP
    creds = request.credentials
    auth: Any = S3SigV4Auth(
        BotocoreCredentials(creds.access_key, creds.secret_key, creds.token), "s3", region
    )
    # add_auth with the clock pinned: the same four steps
    auth._modify_request_before_signing(aws)
    signature = auth.signature(auth.string_to_sign(aws, auth.canonical_request(aws)), aws)
    auth._inject_signature_to_request(aws, signature)
    return dict(aws.headers.items())


def lean_signature(request: Request, region: str) -> dict[str, str]:
    parts = urlsplit(request.url)
    assert parts.hostname is not None
    signed = dict(request.headers)
    SigV4Signer(region).sign(
        request.method,
        host_of(parts.scheme, parts.hostname, parts.port),
        parts.path,
        parts.query,
        signed,
        payload_hash=hashlib.sha256(request.body).hexdigest(),
        credentials=request.credentials,
        timestamp=TIMESTAMP,
    )
    return signed


@settings(max_examples=300, deadline=None)
@given(
    method=st.sampled_from(["GET", "PUT", "POST", "HEAD", "DELETE"]),
    origin=st.sampled_from(
        [
            "http://127.0.0.1:9000",
            "https://s3.eu-west-1.amazonaws.com",
            "https://B.S3.amazonaws.com:443",
            "http://[::1]:80",
        ]
    ),
    bucket=st.sampled_from(["", "/bucket", "/b.dotted-bucket_1"]),
    key=awkward_keys,
    query=query_pairs,
    headers=st.dictionaries(header_names, header_values, max_size=6),
    body=st.binary(max_size=64),
    token=st.one_of(st.none(), st.text(alphabet="abcdefXYZ0123456789+/=", min_size=1, max_size=40)),
    region=st.sampled_from(["us-east-1", "eu-west-1", "ap-southeast-2"]),
)
def test_authorization_equals_botocores(
    *,
    method: str,
    origin: str,
    bucket: str,
    key: str,
    query: list[tuple[str, str]],
    headers: dict[str, str],
    body: bytes,
    token: str | None,
    region: str,
) -> None:
    # GIVEN a request as botocore's serializer lays it out
    url = f"{origin}{bucket}/{quote(key.encode(), safe='/~')}"
    if query:
        url += "?" + "&".join(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}" for k, v in query)
    credentials = Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    # WHEN both sign it at the same time with the same credentials
    request = Request(method, url, headers, body, credentials)
    ours = lean_signature(request, region)
    theirs = botocore_signature(request, region)
    # THEN every header they set is the same, the signature included
    for name in ("Authorization", "X-Amz-Date", "X-Amz-Content-SHA256", "X-Amz-Security-Token"):
        assert ours.get(name) == theirs.get(name), name


def test_the_aws_documentation_example() -> None:
    # GIVEN the GET Object example of the S3 SigV4 documentation (Range header, us-east-1)
    headers = {
        "Range": "bytes=0-9",
        "x-amz-content-sha256": "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    }
    signed = dict(headers)
    credentials = Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", None)
    # WHEN signed (X-Amz-Content-SHA256 is set by the signer, replacing the lower-case spelling)
    del signed["x-amz-content-sha256"]
    SigV4Signer("us-east-1").sign(
        "GET",
        "examplebucket.s3.amazonaws.com",
        "/test.txt",
        "",
        signed,
        payload_hash=headers["x-amz-content-sha256"],
        credentials=credentials,
        timestamp="20130524T000000Z",
    )
    # THEN the signature is the documented one
    assert signed["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_the_canonical_query_sorts_already_encoded_pairs() -> None:
    assert canonical_query("versionId=a%2Bb&restore") == "restore=&versionId=a%2Bb"
    assert canonical_query("") == ""


def test_host_is_lowercase_without_the_default_port() -> None:
    assert host_of("https", "S3.Example.COM", 443) == "s3.example.com"
    assert host_of("http", "127.0.0.1", 9000) == "127.0.0.1:9000"
    assert host_of("http", "::1", None) == "[::1]"
