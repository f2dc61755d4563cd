"""COS request signatures (`q-sign-algorithm=sha1`): signing for the `http` target, checking for the API.

The algorithm is reference/reliability-security.md §2. Its traps, each pinned by the published vectors:
the path is signed percent-DECODED, names are lowercased after encoding, encoding keeps only
`A-Z a-z 0-9 - _ . ~` (so space is `%20`, `/` is `%2F`), and the HMAC key of the last step is the
SignKey's hex *string*, not its bytes.

A verifier parses the client's Authorization with `parse_authorization`, recomputes with
`expected_signature` from the client's own `q-header-list`/`q-url-param-list` (SDKs disagree on
which headers to sign), and compares with `hmac.compare_digest`. Policy (which headers must be
signed, that the listed parameters equal those present, the time window) stays with the verifier:
`canonical_name` gives the form the lists use.

Header values are text as the client meant it and are signed as UTF-8; a server whose HTTP stack
decoded header bytes as Latin-1 must undo that before verifying.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from urllib.parse import quote, unquote

ALGORITHM = "sha1"
FIELDS = (
    "q-sign-algorithm",
    "q-ak",
    "q-sign-time",
    "q-key-time",
    "q-header-list",
    "q-url-param-list",
    "q-signature",
)

_METHOD = re.compile(r"[A-Za-z]+")
# Bounded so int() never meets a giant number; Unix seconds need 10 digits for centuries.
_KEY_TIME = re.compile(r"([0-9]{1,19});([0-9]{1,19})")
# Hex only: hmac.compare_digest raises TypeError on non-ASCII str, so nothing else may reach it.
_SIGNATURE = re.compile(r"[0-9a-f]{40}")
# What lower(UrlEncode(name)) can produce; anything else was not made by a COS client.
_LIST_NAME = re.compile(r"[0-9a-z._~%-]+")


class SignatureFormatError(ValueError):
    """The Authorization value, or the request it should cover, cannot be signed or checked as given."""


@dataclass(frozen=True)
class ParsedAuthorization:
    """The seven fields of a COS Authorization value, validated for shape (not for truth)."""

    algorithm: str
    access_key: str
    sign_time: tuple[int, int]
    key_time: str  # verbatim: it is the text that was signed
    header_list: tuple[str, ...]
    url_param_list: tuple[str, ...]
    signature: str


def url_encode(text: str) -> str:
    """COS's UrlEncode: UTF-8, every byte but `A-Z a-z 0-9 - _ . ~` as %XX (space is %20, never +)."""
    return quote(text.encode("utf-8"), safe="-_.~")


def canonical_name(name: str) -> str:
    """A header or parameter name as it appears in the lists: encoded, then lowercased."""
    return url_encode(name).lower()


def format_key_time(start: int, end: int) -> str:
    """`<start>;<end>` in Unix seconds; used for both q-sign-time and q-key-time."""
    if not 0 <= start <= end:
        raise SignatureFormatError(f"bad signature validity {start};{end}: need 0 <= start <= end")
    return f"{start};{end}"


def sign_key(secret_key: str, key_time: str) -> str:
    """SignKey = hex(HMAC-SHA1(SecretKey, KeyTime)); the hex string itself keys the final HMAC."""
    return hmac.new(secret_key.encode("utf-8"), key_time.encode("utf-8"), hashlib.sha1).hexdigest()


def format_pairs(items: Mapping[str, str | None]) -> tuple[str, str]:
    """(name list, `k=v&...` string) for headers or parameters; a None value signs as `""`."""
    return _join(_by_canonical_name(items, "name"))


def http_string(method: str, pathname: str, http_parameters: str, http_headers: str) -> str:
    """`method\\npathname\\nparameters\\nheaders\\n`; empty parts keep their newlines.

    `pathname` is the percent-decoded path. It may hold newlines, but parameters and headers are
    encoded and the method is letters only, so the parts still split back one way.
    """
    if _METHOD.fullmatch(method) is None:
        raise SignatureFormatError(f"bad HTTP method {method[:20]!r}")
    return f"{method.lower()}\n{pathname}\n{http_parameters}\n{http_headers}\n"


def string_to_sign(key_time: str, http_string: str) -> str:
    """`sha1\\nKeyTime\\nhex(SHA1(HttpString))\\n`."""
    # SHA-1 is what the COS protocol mandates here, not a choice this code makes.
    digest = hashlib.sha1(http_string.encode("utf-8")).hexdigest()  # noqa: S324
    return f"{ALGORITHM}\n{key_time}\n{digest}\n"


def sign(
    *,
    method: str,
    path: str,
    params: Mapping[str, str | None],
    headers: Mapping[str, str],
    secret_id: str,
    secret_key: str,
    start: int,
    end: int,
    signed_headers: Iterable[str] | None = None,
) -> str:
    """The full Authorization value for a request.

    `path` is as sent (percent-encoded); `params` are decoded, None meaning no value (`/?acl`).
    `signed_headers` picks, case-insensitively, which of `headers` to sign (default: all of them);
    each must be among `headers`.
    """
    available = _by_canonical_name(headers, "header")
    chosen = available if signed_headers is None else _pick(available, map(canonical_name, signed_headers))
    header_list, http_headers = _join(chosen)
    param_list, http_parameters = format_pairs(params)
    times = format_key_time(start, end)
    text = http_string(method, _pathname(path), http_parameters, http_headers)
    values = (ALGORITHM, secret_id, times, times, header_list, param_list, _hmac(secret_key, times, text))
    return "&".join(f"{name}={value}" for name, value in zip(FIELDS, values, strict=True))


def parse_authorization(value: str) -> ParsedAuthorization:
    """The seven fields, each exactly once, in any order; anything else is SignatureFormatError.

    q-sign-time must equal q-key-time: the Go SDK signs one and the Python SDK the other, so only
    equal values mean the same thing to every client.
    """
    fields: dict[str, str] = {}
    for part in value.split("&"):
        name, equals, text = part.partition("=")
        if not equals or name not in FIELDS:
            raise SignatureFormatError(f"unexpected Authorization field {part[:40]!r}")
        if name in fields:
            raise SignatureFormatError(f"Authorization field {name} given twice")
        fields[name] = text
    missing = [name for name in FIELDS if name not in fields]
    if missing:
        raise SignatureFormatError(f"Authorization lacks {', '.join(missing)}")
    if fields["q-sign-algorithm"] != ALGORITHM:
        raise SignatureFormatError(f"q-sign-algorithm must be sha1, not {fields['q-sign-algorithm'][:20]!r}")
    if not fields["q-ak"]:
        raise SignatureFormatError("q-ak is empty")
    times = _KEY_TIME.fullmatch(fields["q-key-time"])
    if times is None or int(times[1]) > int(times[2]):
        raise SignatureFormatError(f"q-key-time must be <start>;<end>, not {fields['q-key-time'][:40]!r}")
    if fields["q-sign-time"] != fields["q-key-time"]:
        raise SignatureFormatError("q-sign-time differs from q-key-time")
    if _SIGNATURE.fullmatch(fields["q-signature"]) is None:
        raise SignatureFormatError("q-signature must be 40 lowercase hex digits")
    return ParsedAuthorization(
        algorithm=ALGORITHM,
        access_key=fields["q-ak"],
        sign_time=(int(times[1]), int(times[2])),
        key_time=fields["q-key-time"],
        header_list=_split_list(fields["q-header-list"], "q-header-list"),
        url_param_list=_split_list(fields["q-url-param-list"], "q-url-param-list"),
        signature=fields["q-signature"],
    )


def expected_signature(
    *,
    method: str,
    path: str,
    params: Mapping[str, str | None],
    headers: Mapping[str, str],
    secret_key: str,
    key_time: str,
    header_list: Iterable[str],
    url_param_list: Iterable[str],
) -> str:
    """The hex signature a request must carry, computed over exactly the listed headers and parameters.

    Lists are in canonical form (as parsed). A listed name missing from the request is
    SignatureFormatError; unlisted ones are ignored here, so the verifier must refuse them itself.
    """
    chosen_headers = _pick(_by_canonical_name(headers, "header"), header_list)
    chosen_params = _pick(_by_canonical_name(params, "parameter"), url_param_list)
    text = http_string(method, _pathname(path), _join(chosen_params)[1], _join(chosen_headers)[1])
    return _hmac(secret_key, key_time, text)


def _hmac(secret_key: str, key_time: str, http_string: str) -> str:
    key = sign_key(secret_key, key_time).encode("ascii")
    return hmac.new(key, string_to_sign(key_time, http_string).encode("utf-8"), hashlib.sha1).hexdigest()


def _pathname(path: str) -> str:
    try:
        return unquote(path, errors="strict")
    except UnicodeDecodeError as error:
        raise SignatureFormatError(f"path {path[:80]!r} does not decode as UTF-8") from error


def _by_canonical_name(items: Mapping[str, str | None], what: str) -> dict[str, str]:
    # Two names that differ only in case would make the signed text ambiguous: refuse them.
    out: dict[str, str] = {}
    for name, value in items.items():
        key = canonical_name(name)
        if key in out:
            raise SignatureFormatError(f"{what} {name[:80]!r} given twice (names ignore case)")
        out[key] = "" if value is None else value
    return out


def _pick(available: Mapping[str, str], names: Iterable[str]) -> dict[str, str]:
    picked: dict[str, str] = {}
    for name in names:
        if name in picked:
            raise SignatureFormatError(f"{name[:80]!r} listed twice")
        if name not in available:
            raise SignatureFormatError(f"signed {name[:80]!r} is not in the request")
        picked[name] = available[name]
    return picked


def _join(encoded: Mapping[str, str]) -> tuple[str, str]:
    keys = sorted(encoded)  # keys are ASCII once encoded, so code-point order is byte order
    return ";".join(keys), "&".join(f"{key}={url_encode(encoded[key])}" for key in keys)


def _split_list(text: str, field: str) -> tuple[str, ...]:
    names = tuple(text.split(";")) if text else ()
    for name in names:
        if _LIST_NAME.fullmatch(name) is None:
            raise SignatureFormatError(f"{field} holds {name[:40]!r}, not a lowercase encoded name")
    return names


def authorization_for(
    *,
    method: str,
    path: str,
    params: Mapping[str, str | None],
    headers: Mapping[str, str],
    secret_id: str,
    secret_key: str,
    now: int,
    valid_seconds: int = 600,
) -> str:
    """The Authorization a client sends: every given header signed, valid from a minute ago (for
    clock skew) for ``valid_seconds``."""
    return sign(
        method=method,
        path=path,
        params=params,
        headers=headers,
        secret_id=secret_id,
        secret_key=secret_key,
        start=now - 60,
        end=now + valid_seconds,
    )
