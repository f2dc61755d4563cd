"""Property: a successful S3 response read and parsed by the lean path is the dict boto3 makes.

The oracle is the chain boto3 runs: http.client reads the bytes, urllib3 gathers the headers,
botocore's Expires handler and RestXMLParser parse them with the operation's output shape. The
lean side is ``transport.read_response`` and ``responses.OutputParser`` on the same bytes.
"""

from __future__ import annotations

import datetime
import http.client
import io
from email.utils import format_datetime
from typing import Any

import boto3
import pytest
from botocore.awsrequest import HeadersDict
from botocore.handlers import handle_expires_header
from botocore.parsers import create_parser
from botocore.utils import parse_timestamp
from hypothesis import given, settings
from hypothesis import strategies as st
from urllib3 import HTTPHeaderDict

from batchops.s3fast.responses import OutputParser, timestamp
from batchops.s3fast.transport import read_response

SERVICE = boto3.client("s3", region_name="us-east-1").meta.service_model
METHODS = {
    "CopyObject": "PUT",
    "HeadObject": "HEAD",
    "DeleteObject": "DELETE",
    "DeleteObjects": "POST",
    "RestoreObject": "POST",
}
STATUS = {
    "CopyObject": 200,
    "HeadObject": 200,
    "DeleteObject": 204,
    "DeleteObjects": 200,
    "RestoreObject": 202,
}
NS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'

words = st.text(alphabet=st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1, max_size=16)
texts = st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=16)
datetimes = st.datetimes(min_value=datetime.datetime(1971, 1, 1), max_value=datetime.datetime(2099, 1, 1))
http_dates = datetimes.map(lambda d: format_datetime(d.replace(tzinfo=datetime.UTC), usegmt=True))
iso_dates = st.tuples(datetimes, st.sampled_from(["", ".000", ".5", ".123456"])).map(
    lambda pair: pair[0].strftime("%Y-%m-%dT%H:%M:%S") + pair[1] + "Z"
)
odd_dates = st.sampled_from(
    ["Wed, 21 Oct 2015 07:28:00 +0000", "2015-10-21T07:28:00+00:00", "1445412480", "2015-10-21"]
)
xml_text = st.text(alphabet=st.characters(blacklist_categories=["Cs", "Cc"]), max_size=12)


def header_value(shape: Any) -> st.SearchStrategy[str]:
    kind = shape.type_name
    if kind == "boolean":
        return st.sampled_from(["true", "false", "TRUE", "yes"])
    if kind in ("integer", "long"):
        return st.integers(min_value=0, max_value=2**50).map(str)
    if kind == "timestamp":
        return http_dates | iso_dates | odd_dates
    return texts


def headers_for(name: str) -> st.SearchStrategy[list[tuple[str, str]]]:
    shape = SERVICE.operation_model(name).output_shape
    assert shape is not None
    members = {
        member.serialization["name"]: header_value(member)
        for member in shape.members.values()
        if member.serialization.get("location") == "header"
    }
    chosen = st.fixed_dictionaries({}, optional=members).map(lambda d: list(d.items()))
    metadata = st.lists(
        st.tuples(st.from_regex(r"[xX]-[aA]mz-[mM]eta-[A-Za-z0-9-]{1,8}", fullmatch=True), texts), max_size=3
    )
    extra = st.lists(
        st.tuples(
            st.sampled_from(
                ["x-amz-request-id", "x-amz-id-2", "x-amzn-RequestId", "Server", "Date", "ETag", "etag"]
            ),
            words,
        ),
        max_size=4,
    )
    return (
        st.tuples(chosen, metadata, extra)
        .flatmap(lambda parts: st.permutations(parts[0] + parts[1] + parts[2]))
        .map(list)
    )


def element(name: str, value: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return value.map(lambda text: f"<{name}>{text.replace('&', '&amp;').replace('<', '&lt;')}</{name}>")


def document(root: str, children: st.SearchStrategy[list[str]]) -> st.SearchStrategy[bytes]:
    return st.tuples(st.booleans(), st.booleans(), children).map(
        lambda parts: (
            ('<?xml version="1.0" encoding="UTF-8"?>\n' if parts[0] else "")
            + f"<{root}{NS if parts[1] else ''}>"
            + "".join(parts[2])
            + f"</{root}>"
        ).encode()
    )


copy_result = document(
    "CopyObjectResult",
    st.lists(
        element("ETag", xml_text)
        | element("LastModified", iso_dates)
        | element("ChecksumCRC32", words)
        | element("ChecksumType", st.sampled_from(["FULL_OBJECT", "COMPOSITE"]))
        | element("Unknown", xml_text),
        max_size=4,
        unique_by=lambda e: e.split(">")[0],
    ),
)
deleted = st.lists(
    element("Key", xml_text)
    | element("VersionId", words)
    | element("DeleteMarker", st.sampled_from(["true", "false"]))
    | element("DeleteMarkerVersionId", words),
    max_size=4,
    unique_by=lambda e: e.split(">")[0],
).map(lambda fields: "<Deleted>" + "".join(fields) + "</Deleted>")
errors = st.lists(
    element("Key", xml_text)
    | element("VersionId", words)
    | element("Code", words)
    | element("Message", xml_text),
    max_size=4,
    unique_by=lambda e: e.split(">")[0],
).map(lambda fields: "<Error>" + "".join(fields) + "</Error>")
delete_result = document("DeleteResult", st.lists(deleted | errors, max_size=6))
BODIES: dict[str, st.SearchStrategy[bytes]] = {
    "CopyObject": copy_result | st.just(b""),
    "DeleteObjects": delete_result,
    "HeadObject": st.just(b""),
    "DeleteObject": st.just(b""),
    "RestoreObject": st.just(b""),
}


def wire(status: int, headers: list[tuple[str, str]], body: bytes, chunked: bool) -> bytes:
    lines = [f"HTTP/1.1 {status} {http.client.responses[status]}"]
    lines += [f"{name}: {value}" for name, value in headers]
    if chunked and body:
        lines.append("Transfer-Encoding: chunked")
        payload = (
            b"".join(b"%x\r\n%s\r\n" % (len(part), part) for part in (body[:7], body[7:]) if part)
            + b"0\r\n\r\n"
        )
    else:
        lines.append(f"Content-Length: {len(body)}")
        payload = body
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


class _Socket:
    def __init__(self, data: bytes) -> None:
        self.data = data

    def makefile(self, *_: Any, **__: Any) -> io.BytesIO:
        return io.BytesIO(self.data)


def as_boto3_parses(name: str, method: str, raw: bytes) -> dict[str, Any]:
    response = http.client.HTTPResponse(_Socket(raw), method=method)  # type: ignore[arg-type]
    response.begin()
    headers = HeadersDict(HTTPHeaderDict(response.msg.items()))
    body = response.read()
    model = SERVICE.operation_model(name)
    response_dict = {"status_code": response.status, "headers": headers, "body": body, "context": {}}
    customized: dict[str, Any] = {}
    handle_expires_header(model, response_dict, customized)
    parsed: dict[str, Any] = create_parser("rest-xml").parse(response_dict, model.output_shape)  # type: ignore[arg-type]
    parsed.update(customized)
    return parsed


def as_lean_parses(name: str, method: str, raw: bytes) -> dict[str, Any]:
    response, _ = read_response(io.BytesIO(raw), method)
    return OutputParser(SERVICE.operation_model(name)).parse(response.status, response.headers, response.body)


@pytest.mark.parametrize("name", sorted(METHODS))
def test_a_success_parses_as_boto3_parses_it(name: str) -> None:
    @settings(max_examples=150, deadline=None)
    @given(headers=headers_for(name), body=BODIES[name], chunked=st.booleans())
    def check(headers: list[tuple[str, str]], body: bytes, chunked: bool) -> None:
        # GIVEN the bytes of a successful response
        raw = wire(STATUS[name], headers, body, chunked)
        # WHEN boto3's chain and the lean path read and parse them
        try:
            theirs = as_boto3_parses(name, METHODS[name], raw)
        except ValueError:
            # a header botocore cannot read (e.g. a non-numeric Content-Length): lean fails too
            with pytest.raises(ValueError):
                as_lean_parses(name, METHODS[name], raw)
            return
        ours = as_lean_parses(name, METHODS[name], raw)
        # THEN the dicts are the same
        assert ours == theirs

    check()


@settings(max_examples=500, deadline=None)
@given(http_dates | iso_dates | odd_dates)
def test_timestamps_are_botocores(text: str) -> None:
    ours, theirs = timestamp(text), parse_timestamp(text)
    assert (ours, ours.tzinfo) == (theirs, theirs.tzinfo)
