"""Small helpers the tests share: raw HTTP calls and COS error parsing."""

from __future__ import annotations

import base64
import hashlib
import http.client
import os
from collections.abc import Mapping
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


def set_environment(env: Mapping[str, str]) -> dict[str, str | None]:
    """Set ``env`` in os.environ (as Lambda sets a function's environment); what it replaced."""
    saved = {name: os.environ.get(name) for name in env}
    os.environ.update(env)
    return saved


def restore_environment(saved: Mapping[str, str | None]) -> None:
    for name, value in saved.items():
        if value is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = value
