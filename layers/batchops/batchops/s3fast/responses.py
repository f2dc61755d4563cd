"""S3 responses into the dicts and exceptions boto3 returns for them.

Successful responses take the fast path: a parser compiled once per operation from botocore's
own output shape (which headers hold which members, of which type; which XML elements), run on
an lxml tree. Error responses, the rare case, go through botocore's ``RestXMLParser`` and the
same modeled-error pass botocore's endpoint makes, so every error dict is botocore's by
construction. Unit and property tests hold the fast path equal to botocore's parser.
"""

from __future__ import annotations

import contextlib
import datetime
import re
import threading
from collections.abc import Callable, Mapping
from typing import Any

from botocore.awsrequest import HeadersDict
from botocore.handlers import handle_expires_header
from botocore.model import OperationModel, Shape, StructureShape
from botocore.parsers import ResponseParserError, create_parser
from botocore.utils import parse_timestamp
from dateutil.tz import tzutc  # type: ignore[import-untyped]
from lxml import etree

from batchops.api.xml_safe import parser_options

_UTC = tzutc()
_ISO = re.compile(r"(\d{4})-(\d\d)-(\d\d)T(\d\d):(\d\d):(\d\d)(?:\.(\d{1,6}))?Z\Z")
_HTTP_DATE = re.compile(r"[A-Z][a-z]{2}, (\d\d) ([A-Z][a-z]{2}) (\d{4}) (\d\d):(\d\d):(\d\d) GMT\Z")
_MONTHS = {
    name: number
    for number, name in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), start=1
    )
}


def timestamp(text: str) -> datetime.datetime:
    """What botocore's ``parse_timestamp`` returns, without dateutil's parser for the two forms
    S3 sends (ISO 8601 in bodies, RFC 1123 in headers); anything else goes to botocore."""
    iso = _ISO.match(text)
    if iso:
        year, month, day, hour, minute, second, fraction = iso.groups()
        micro = int(fraction.ljust(6, "0")) if fraction else 0
        return datetime.datetime(
            int(year), int(month), int(day), int(hour), int(minute), int(second), micro, tzinfo=_UTC
        )
    http = _HTTP_DATE.match(text)
    if http and http.group(2) in _MONTHS:
        day, month_name, year, hour, minute, second = http.groups()
        return datetime.datetime(
            int(year), _MONTHS[month_name], int(day), int(hour), int(minute), int(second), tzinfo=_UTC
        )
    parsed: datetime.datetime = parse_timestamp(text)
    return parsed


_local = threading.local()


def parse_xml(body: bytes) -> etree._Element:
    """One pass of lxml with ``batchops.api.xml_safe``'s options (no DTD, entities or network);
    a document declaring a DOCTYPE is refused. Raises ``etree.XMLSyntaxError`` or ValueError."""
    parser = getattr(_local, "parser", None)
    if parser is None:
        # lxml parsers are not to be shared between threads.
        parser = _local.parser = etree.XMLParser(**parser_options())
    root = etree.fromstring(body, parser)
    docinfo: Any = root.getroottree().docinfo
    if docinfo.doctype or docinfo.internalDTD is not None:
        raise ValueError("DOCTYPE in a response")
    return root


# --- the fast path ---------------------------------------------------------------------------------

_Node = Any  # an lxml element, or a list of them for a repeated tag (as botocore groups them)
_ValueParser = Callable[[_Node], Any]


def _tag(element: etree._Element) -> str:
    tag = element.tag
    assert isinstance(tag, str)
    return tag[tag.index("}") + 1 :] if tag[0] == "{" else tag


def _children(node: _Node) -> dict[str, _Node]:
    """botocore's ``_build_name_to_xml_node``: children by tag, a repeated tag as a list."""
    if isinstance(node, list):
        node = node[0]
    found: dict[str, _Node] = {}
    for child in node:
        name = _tag(child)
        if name in found:
            existing = found[name]
            if isinstance(existing, list):
                existing.append(child)
            else:
                found[name] = [existing, child]
        else:
            found[name] = child
    return found


def _text(node: _Node) -> Any:
    return (node.text or "") if hasattr(node, "text") else node


class UnsupportedShapeError(Exception):
    """An output shape the fast path does not handle (the operation then uses botocore's parser)."""


def _compile(shape: Shape) -> _ValueParser:
    kind = shape.type_name
    if kind == "string":
        return _text
    if kind == "boolean":
        return lambda node: _text(node) == "true"
    if kind in ("integer", "long"):
        return lambda node: int(_text(node))
    if kind == "timestamp":
        return lambda node: timestamp(_text(node))
    if kind == "structure":
        assert isinstance(shape, StructureShape)
        return _compile_structure(shape)
    if kind == "list" and shape.serialization.get("flattened"):
        item = _compile(shape.member)  # type: ignore[attr-defined]
        return lambda node: [item(one) for one in (node if isinstance(node, list) else [node])]
    raise UnsupportedShapeError(f"{shape.name} ({kind})")


def _compile_structure(shape: StructureShape) -> _ValueParser:
    if shape.is_tagged_union or shape.metadata.get("exception"):
        raise UnsupportedShapeError(shape.name)
    members: list[tuple[str, str, _ValueParser]] = []
    for name, member in shape.members.items():
        if member.serialization.get("location") or member.serialization.get("eventheader"):
            continue
        if member.serialization.get("xmlAttribute"):
            raise UnsupportedShapeError(f"{shape.name}.{name}")
        xml_name = member.serialization.get("name", name)
        if member.type_name == "list" and member.serialization.get("flattened"):
            xml_name = member.member.serialization.get("name", xml_name)  # type: ignore[attr-defined]
        members.append((name, xml_name, _compile(member)))

    def parse(node: _Node) -> dict[str, Any]:
        children = _children(node)
        parsed: dict[str, Any] = {}
        for name, xml_name, value in members:
            child = children.get(xml_name)
            if child is not None:
                parsed[name] = value(child)
        return parsed

    return parse


_HEADER_TYPES: dict[str, Callable[[str], Any]] = {
    "string": lambda value: value,
    "boolean": lambda value: value == "true",
    "integer": int,
    "long": int,
    "timestamp": timestamp,
}


class OutputParser:
    """The successful-response parser of one operation."""

    def __init__(self, operation: OperationModel) -> None:
        shape = operation.output_shape
        assert isinstance(shape, StructureShape)
        self.headers: dict[str, tuple[str, Callable[[str], Any]]] = {}
        self.prefixes: list[tuple[str, str]] = []
        for name, member in shape.members.items():
            location = member.serialization.get("location")
            if location == "header":
                if member.type_name not in _HEADER_TYPES or member.metadata.get("jsonvalue"):
                    raise UnsupportedShapeError(f"{shape.name}.{name}")
                header = member.serialization.get("name", name).lower()
                self.headers[header] = (name, _HEADER_TYPES[member.type_name])
            elif location == "headers":
                self.prefixes.append((member.serialization.get("name", "").lower(), name))
            elif location is not None:
                raise UnsupportedShapeError(f"{shape.name}.{name} ({location})")
        self.expires = "expires" in self.headers and self.headers["expires"][0] == "Expires"
        payload = shape.serialization.get("payload")
        self.payload: tuple[str, _ValueParser] | None = None
        self.body: _ValueParser | None = None
        if payload is not None:
            payload_shape = shape.members[payload]
            if payload_shape.type_name != "structure":
                raise UnsupportedShapeError(f"{shape.name} payload {payload_shape.type_name}")
            self.payload = (payload, _compile(payload_shape))
        else:
            self.body = _compile_structure(shape)

    def parse(
        self, status: int, headers: Mapping[str, str], body: bytes, root: etree._Element | None = None
    ) -> dict[str, Any]:
        """The parsed dict, ``ResponseMetadata`` included (RetryAttempts is the caller's).

        ``root`` is the body already parsed, if the caller had to look into it."""
        parsed: dict[str, Any] = {}
        http_headers: dict[str, str] = {}
        prefixed: dict[str, dict[str, str]] = {}
        for name in headers:
            value = headers[name]
            lower = name.lower()
            http_headers[lower] = value
            member = self.headers.get(lower)
            if member is not None:
                if lower == "expires" and self.expires:
                    parsed["ExpiresString"] = value
                    # botocore drops an Expires it cannot read, keeping ExpiresString
                    with contextlib.suppress(ValueError, OverflowError):
                        parsed["Expires"] = timestamp(value)
                    continue
                parsed[member[0]] = member[1](value)
            for prefix, member_name in self.prefixes:
                if lower.startswith(prefix):
                    prefixed.setdefault(member_name, {})[name[len(prefix) :]] = value
        for _, member_name in self.prefixes:
            parsed[member_name] = prefixed.get(member_name, {})
        # As botocore: a body is parsed even when the shape has nothing in it (a 204 with a
        # broken body is a parse error there too).
        if root is None:
            root = _EMPTY if not body else _parse_or_raise(body)
        if self.payload is not None:
            parsed[self.payload[0]] = self.payload[1](root)
        elif self.body is not None:
            parsed.update(self.body(root))
        metadata: dict[str, Any] = {}
        if "x-amzn-requestid" in http_headers:
            metadata["RequestId"] = http_headers["x-amzn-requestid"]
        elif "x-amz-request-id" in http_headers:
            metadata["RequestId"] = http_headers["x-amz-request-id"]
            metadata["HostId"] = http_headers.get("x-amz-id-2", "")
        metadata["HTTPStatusCode"] = status
        metadata["HTTPHeaders"] = http_headers
        parsed["ResponseMetadata"] = metadata
        return parsed


# botocore parses an empty body as an element without children.
_EMPTY = etree.Element("empty")


def _parse_or_raise(body: bytes) -> etree._Element:
    try:
        return parse_xml(body)
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise ResponseParserError(f"Unable to parse response ({exc}), invalid XML received") from exc


# --- errors: botocore's parser ---------------------------------------------------------------------


class ErrorParser:
    """Error responses as botocore's endpoint parses them (``_do_get_response``)."""

    def __init__(self, operation: OperationModel) -> None:
        self._operation = operation

    def parse(self, status: int, headers: Any, body: bytes, original_status: int) -> dict[str, Any]:
        """``status`` is what botocore parses with (500 for a 200 with an error inside);
        ``original_status`` decides, as in botocore, whether modeled error fields are added."""
        # a parser per response, as botocore's endpoint makes one (they are not meant to be shared)
        parser = create_parser("rest-xml")
        response = {"headers": HeadersDict(headers), "status_code": status, "body": body, "context": {}}
        customized: dict[str, Any] = {}
        handle_expires_header(self._operation, response, customized)
        parsed: dict[str, Any] = parser.parse(response, self._operation.output_shape)  # type: ignore[arg-type]
        parsed.update(customized)
        if original_status >= 300:
            code = parsed.get("Error", {}).get("Code")
            shape = self._operation.service_model.shape_for_error_code(code) if code else None
            if shape is not None:
                parsed.update(parser.parse(response, shape))
        return parsed
