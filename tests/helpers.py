"""Small helpers the tests share: raw HTTP calls and COS error parsing."""

from __future__ import annotations

import base64
import hashlib
import http.client
from dataclasses import dataclass
from urllib.parse import urlsplit

from lxml import etree

APPID = "1250000000"


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    @property
    def xml(self) -> etree._Element:
        return etree.fromstring(self.body)

    @property
    def code(self) -> str | None:
        return self.xml.findtext("Code")

    @property
    def message(self) -> str:
        return self.xml.findtext("Message") or ""


def call(
    url: str,
    method: str,
    path: str,
    body: bytes | None = None,
    *,
    headers: dict[str, str] | None = None,
    appid: str | None = APPID,
    md5: bool = True,
) -> Reply:
    """One real HTTP request, with the headers a COS client sends."""
    split = urlsplit(url)
    conn = http.client.HTTPConnection(split.hostname or "127.0.0.1", split.port, timeout=10)
    sent = dict(headers or {})
    if appid is not None:
        sent.setdefault("x-cos-appid", appid)
    if body is not None:
        sent.setdefault("Content-Type", "application/xml")
        if md5:
            sent.setdefault("Content-MD5", base64.b64encode(hashlib.md5(body).digest()).decode())
    try:
        conn.request(method, path, body=body, headers=sent)
        response = conn.getresponse()
        return Reply(response.status, {k.lower(): v for k, v in response.getheaders()}, response.read())
    finally:
        conn.close()
