"""The hardened parser refuses every hostile document without reading anything."""

from __future__ import annotations

import gzip
from pathlib import Path

import pytest

from batchops.api.xml_safe import MAX_BODY_BYTES, BodyTooLargeError, UnsafeXmlError, parse_untrusted

LAUGHS = (
    b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
    + b"".join(
        b'<!ENTITY lol%d "%s">' % (i, (b"&lol%d;" % (i - 1) if i > 1 else b"&lol;") * 10)
        for i in range(1, 10)
    )
    + b"]><CreateJobRequest>&lol9;</CreateJobRequest>"
)


def hostile(canary: Path) -> dict[str, bytes]:
    uri = canary.as_uri()
    return {
        "xxe-file": f'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY x SYSTEM "{uri}">]><r>&x;</r>'.encode(),
        "xxe-bare-path": f'<!DOCTYPE r [<!ENTITY x SYSTEM "{canary}">]><r>&x;</r>'.encode(),
        "parameter-entity": f'<!DOCTYPE r [<!ENTITY % p SYSTEM "{uri}"> %p;]><r/>'.encode(),
        "external-dtd": f'<!DOCTYPE r SYSTEM "{uri}"><r/>'.encode(),
        "billion-laughs": LAUGHS,
        "quadratic-blowup": b'<!DOCTYPE r [<!ENTITY a "' + b"a" * 5000 + b'">]><r>' + b"&a;" * 5000 + b"</r>",
        "utf16-xxe": (
            f'<?xml version="1.0" encoding="UTF-16"?><!DOCTYPE r [<!ENTITY x SYSTEM "{uri}">]><r>&x;</r>'
        ).encode("utf-16"),
        "deep-nesting": b"<a>" * 5000 + b"</a>" * 5000,
        "gzip": gzip.compress(b"<CreateJobRequest/>"),
        "truncated": b"<CreateJobRequest><Priority>1</Priority>",
        "mismatched-tags": b"<a><b>x</a></b>",
        "undefined-entity": b"<r>&nope;</r>",
        "nul-char-ref": b"<r>&#0;</r>",
    }


@pytest.fixture
def canary(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("CANARY-7f3a")
    return path


@pytest.mark.parametrize(
    "name",
    sorted(hostile(Path("/x")).keys()),
)
def test_hostile_documents_are_refused_and_leak_nothing(name: str, canary: Path) -> None:
    # GIVEN a hostile document that names a secret file
    document = hostile(canary)[name]
    # WHEN it is parsed
    with pytest.raises(UnsafeXmlError) as caught:
        parse_untrusted(document)
    # THEN it is refused with a message that carries neither the secret nor parser internals
    assert "CANARY" not in str(caught.value)
    assert str(caught.value) in (
        "DOCTYPE is not allowed",
        "not well-formed XML",
        "entity references are not allowed",
    )


def test_oversize_body_is_refused_before_parsing() -> None:
    body = b"<r>" + b"x" * (MAX_BODY_BYTES + 1) + b"</r>"
    with pytest.raises(BodyTooLargeError):
        parse_untrusted(body)


def test_character_references_still_decode() -> None:
    root = parse_untrusted(b"<r>a &amp; b &#x4e2d;</r>")
    assert root.text == "a & b \u4e2d"


def test_comments_and_processing_instructions_are_dropped() -> None:
    root = parse_untrusted(b"<r><!-- c --><?pi x?><a>1</a></r>")
    assert [child.tag for child in root] == ["a"]
