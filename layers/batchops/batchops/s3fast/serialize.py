"""Parameters into botocore's request dict, for the plain forms of the lean operations' parameters.

botocore validates with a generic walk of the input shape and serialises with another (about
16 µs for a CopyObject; 4.5 µs per key of a DeleteObjects body). This module does the same
for parameters of the simple kinds (strings, integers, booleans, RFC 822 header timestamps,
the metadata map, a Delete list of keys and versions, a plain RestoreRequest) and returns None
for anything else, which the wrapped boto3 client then handles, validation errors included.
What it returns equals botocore's ``serialize_to_request`` for the same parameters (a
property test compares them), so the rest of the lean path cannot tell which built it.

It runs after botocore's own parameter handlers (copy-source quoting, the metadata ASCII check,
SSE-C key digests): see ``client.PARAMETER_HANDLERS``.
"""

from __future__ import annotations

import calendar
import datetime
from collections.abc import Callable
from email.utils import formatdate
from typing import Any

from botocore.model import OperationModel, Shape
from botocore.utils import percent_encode

_XMLNS = ' xmlns="http://s3.amazonaws.com/doc/2006-03-01/"'
_Value = Callable[[Any], str | None]
"""A member's string form, or None when the value is not of the plain kind the fast path takes."""


def _string(min_length: int) -> _Value:
    def convert(value: Any) -> str | None:
        return value if type(value) is str and len(value) >= min_length else None

    return convert


def _integer(value: Any) -> str | None:
    return str(value) if type(value) is int else None


def _boolean(value: Any) -> str | None:
    return ("true" if value else "false") if type(value) is bool else None


def _http_date(value: Any) -> str | None:
    if not isinstance(value, datetime.datetime):
        return None
    # botocore: a naive datetime is UTC; the header carries whole seconds
    return formatdate(calendar.timegm(value.utctimetuple()), usegmt=True)


def _scalar(shape: Shape, location: str) -> _Value | None:
    kind = shape.type_name
    if shape.metadata.get("jsonvalue"):
        return None
    if kind == "string":
        return _string(int(shape.metadata.get("min", 0)))
    if kind in ("integer", "long") and not shape.metadata.get("min"):
        return _integer
    if kind == "boolean":
        return _boolean
    rfc822 = shape.serialization.get("timestampFormat", "rfc822").lower() == "rfc822"
    if kind == "timestamp" and location == "header" and rfc822:
        return _http_date
    return None


class _Draft:
    """The request being laid out: URI labels, query, headers, body."""

    __slots__ = ("body", "headers", "labels", "query")

    def __init__(self) -> None:
        self.labels: dict[str, str] = {}
        self.query: dict[str, str | int] = {}
        self.headers: dict[str, str] = {}
        self.body = b""


_Place = Callable[[_Draft, Any], bool]
"""Puts one parameter where botocore puts it; False if its value is not of the plain kind."""


def _header(name: str, convert: _Value) -> _Place:
    def place(draft: _Draft, value: Any) -> bool:
        text = convert(value)
        if text is None:
            return False
        draft.headers[name] = text
        return True

    return place


def _label(name: str, greedy: bool, convert: _Value) -> _Place:
    def place(draft: _Draft, value: Any) -> bool:
        text = convert(value)
        if text is None:
            return False
        draft.labels[name] = percent_encode(text, safe="/~") if greedy else percent_encode(text)
        return True

    return place


def _query(name: str, convert: _Value) -> _Place:
    def place(draft: _Draft, value: Any) -> bool:
        text = convert(value)
        if text is None:
            return False
        # botocore keeps an integer as it is until the URL is built
        draft.query[name] = value if type(value) is int else text
        return True

    return place


def _header_map(prefix: str) -> _Place:
    def place(draft: _Draft, value: Any) -> bool:
        if not isinstance(value, dict):
            return False
        for key, item in value.items():
            if type(key) is not str or type(item) is not str:
                return False
            draft.headers[prefix + key] = item
        return True

    return place


def _payload(build: Callable[[Any], bytes | None]) -> _Place:
    def place(draft: _Draft, value: Any) -> bool:
        body = build(value)
        if body is None:
            return False
        draft.body = body
        return True

    return place


class FastSerializer:
    """One operation's plain parameters into ``{"url_path", "query_string", "method", "headers", "body"}``."""

    def __init__(self, operation: OperationModel) -> None:
        shape = operation.input_shape
        assert shape is not None
        self.method: str = operation.http.get("method", "POST")
        uri: str = operation.http["requestUri"]
        # botocore's remove_bucket_from_url_paths_from_model: the endpoint carries the bucket
        self.uri = uri[len("/{Bucket}") :] if uri.startswith("/{Bucket}") else uri
        self.required = frozenset(shape.required_members)
        self.places: dict[str, _Place] = {}
        payload = shape.serialization.get("payload")
        for name, member in shape.members.items():
            location = member.serialization.get("location")
            wire_name = member.serialization.get("name", name)
            if name == payload and name in _PAYLOADS:
                self.places[name] = _payload(_PAYLOADS[name])
            elif location == "headers" and member.type_name == "map":
                self.places[name] = _header_map(wire_name)
            elif location in ("uri", "querystring", "header"):
                convert = _scalar(member, location)
                if convert is None:
                    continue  # a member of another kind: its presence sends the call to boto3
                if location == "uri":
                    self.places[name] = _label(wire_name, f"{{{wire_name}+}}" in self.uri, convert)
                elif location == "querystring":
                    self.places[name] = _query(wire_name, convert)
                else:
                    self.places[name] = _header(wire_name, convert)

    def serialize(self, params: dict[str, Any]) -> dict[str, Any] | None:
        """botocore's request dict for ``params``, or None if they are not all plain."""
        if not self.required <= params.keys():
            return None
        draft = _Draft()
        for name, value in params.items():
            place = self.places.get(name)
            if value is None or place is None or not place(draft, value):
                return None
        url_path = self.uri
        for label, text in draft.labels.items():
            url_path = url_path.replace(f"{{{label}+}}", text).replace(f"{{{label}}}", text)
        if "{" in url_path:
            return None
        return {
            "url_path": url_path,
            "query_string": draft.query,
            "method": self.method,
            "headers": draft.headers,
            "body": draft.body,
        }


def _escape(text: str) -> str:
    """ElementTree's escaping of element text."""
    if "&" in text:
        text = text.replace("&", "&amp;")
    if "<" in text:
        text = text.replace("<", "&lt;")
    if ">" in text:
        text = text.replace(">", "&gt;")
    return text


def _encode(document: str) -> bytes:
    return document.encode("utf-8", "xmlcharrefreplace")


_OBJECT_FIELDS = frozenset({"Key", "VersionId"})


def delete_body(delete: Any) -> bytes | None:
    """The Delete payload for ``{"Objects": [{"Key": ..., "VersionId": ...}, ...], "Quiet": ...}``.

    botocore builds it with ElementTree (members in the caller's order) and then escapes CR and
    LF as character references (``escape_xml_payload``, so no XML parser normalises them away).
    """
    if not isinstance(delete, dict) or "Objects" not in delete or not delete.keys() <= {"Objects", "Quiet"}:
        return None
    parts = [f"<Delete{_XMLNS}>"]
    for name, value in delete.items():
        if name == "Objects":
            if not isinstance(value, list) or not value:
                return None
            for entry in value:
                part = _object(entry)
                if part is None:
                    return None
                parts.append(part)
        else:
            if type(value) is not bool:
                return None
            parts.append(f"<Quiet>{'true' if value else 'false'}</Quiet>")
    parts.append("</Delete>")
    body = _encode("".join(parts))
    if b"\r" in body:
        body = body.replace(b"\r", b"&#xD;")
    if b"\n" in body:
        body = body.replace(b"\n", b"&#xA;")
    return body


def _object(entry: Any) -> str | None:
    """One ``<Object>`` of a Delete payload, its members in the caller's order."""
    if not isinstance(entry, dict):
        return None
    key = entry.get("Key")
    if len(entry) == 1 and type(key) is str and key:
        return f"<Object><Key>{_escape(key)}</Key></Object>"  # the common entry, a key alone
    if key is None or not entry.keys() <= _OBJECT_FIELDS:
        return None
    members = []
    for field, text in entry.items():
        if type(text) is not str or (field == "Key" and not text):
            return None
        members.append(f"<{field}>{_escape(text)}</{field}>")
    return f"<Object>{''.join(members)}</Object>"


def _restore_member(name: str, value: Any) -> str | None:
    if name == "Days":
        return f"<Days>{value}</Days>" if type(value) is int else None
    if name in ("Tier", "Description"):
        return f"<{name}>{_escape(value)}</{name}>" if type(value) is str else None
    plain_tier = isinstance(value, dict) and set(value) == {"Tier"} and type(value["Tier"]) is str
    if name == "GlacierJobParameters" and plain_tier:
        return f"<GlacierJobParameters><Tier>{_escape(value['Tier'])}</Tier></GlacierJobParameters>"
    return None


def restore_body(request: Any) -> bytes | None:
    """The RestoreRequest payload for ``Days``, ``GlacierJobParameters.Tier``, ``Tier`` and
    ``Description`` (a SELECT restore, or an output location, goes to boto3)."""
    if not isinstance(request, dict):
        return None
    parts = [f"<RestoreRequest{_XMLNS}>"]
    for name, value in request.items():
        part = _restore_member(name, value)
        if part is None:
            return None
        parts.append(part)
    if len(parts) == 1:
        return _encode(f"<RestoreRequest{_XMLNS} />")  # ElementTree's empty element
    parts.append("</RestoreRequest>")
    return _encode("".join(parts))


_PAYLOADS: dict[str, Callable[[Any], bytes | None]] = {"Delete": delete_body, "RestoreRequest": restore_body}
