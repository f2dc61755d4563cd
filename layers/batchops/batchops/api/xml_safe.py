"""The one way untrusted XML enters batchops.

lxml's defaults are safe for XXE since 6.1, but a web endpoint needs more than defaults: no DTD of
any kind (a DOCTYPE is refused before its internal subset is read, which also catches UTF-16
documents that a byte search would miss), no entity references left in the tree, no network, no
huge-tree relaxations and no recovery from broken markup. See
reliability-security.md §1.3 for the experiments behind each flag.
"""

from __future__ import annotations

from typing import Any

from lxml import etree

MAX_BODY_BYTES = 64 * 1024

_PARSER_OPTIONS: dict[str, Any] = {
    "resolve_entities": False,
    "no_network": True,
    "load_dtd": False,
    "dtd_validation": False,
    "attribute_defaults": False,
    "huge_tree": False,
    "recover": False,
    "remove_pis": True,
    "remove_comments": True,
    "collect_ids": False,
}


def parser_options() -> dict[str, Any]:
    """The hardened parser options, for a caller that needs its own parser (one per thread)."""
    return dict(_PARSER_OPTIONS)


class UnsafeXmlError(ValueError):
    """The document is not well-formed, or uses a feature we refuse (DOCTYPE, entities)."""


class BodyTooLargeError(ValueError):
    """The document is larger than MAX_BODY_BYTES."""


class _RefuseDoctype:
    """Parser target whose only job is to stop at a DOCTYPE before libxml2 reads the subset."""

    def doctype(self, name: str, pubid: str | None, system: str | None) -> None:
        raise UnsafeXmlError("DOCTYPE is not allowed")

    def start(self, tag: str | bytes, attrib: dict[str | bytes, str | bytes]) -> None:
        return None

    def end(self, tag: str | bytes) -> None:
        return None

    def data(self, data: str | bytes) -> None:
        return None

    def comment(self, text: str | bytes) -> None:
        return None

    def close(self) -> None:
        return None


def parse_untrusted(body: bytes, max_bytes: int = MAX_BODY_BYTES) -> etree._Element:
    """Parse an untrusted XML document and return its root element.

    Raises
    ------
    BodyTooLargeError
        The body exceeds ``max_bytes``.
    UnsafeXmlError
        The body is not well-formed XML, or declares a DOCTYPE or entities. The message never
        carries parser internals, so it is safe to return to a client.
    """
    if len(body) > max_bytes:
        raise BodyTooLargeError(f"body of {len(body)} bytes exceeds {max_bytes}")
    try:
        # Pass 1 streams through a target that refuses any DOCTYPE, whatever the encoding.
        etree.fromstring(body, etree.XMLParser(target=_RefuseDoctype(), **_PARSER_OPTIONS))
        # Pass 2 builds the tree with the same options.
        root = etree.fromstring(body, etree.XMLParser(**_PARSER_OPTIONS))
    except UnsafeXmlError:
        raise
    except (etree.XMLSyntaxError, ValueError) as exc:
        raise UnsafeXmlError("not well-formed XML") from exc
    docinfo = root.getroottree().docinfo
    if getattr(docinfo, "doctype", "") or docinfo.internalDTD is not None or docinfo.externalDTD is not None:
        raise UnsafeXmlError("DOCTYPE is not allowed")
    if any(True for _ in root.iter(etree.Entity)):
        raise UnsafeXmlError("entity references are not allowed")
    return root
