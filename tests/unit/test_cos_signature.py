"""COS sha1 signatures reproduce the published vectors and a verifier can trust what it parses."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Iterable, Mapping

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from batchops.cos_signature import (
    FIELDS,
    ParsedAuthorization,
    SignatureFormatError,
    canonical_name,
    expected_signature,
    format_key_time,
    format_pairs,
    http_string,
    parse_authorization,
    sign,
    sign_key,
    string_to_sign,
)

SECRET_ID = "AKIDQjz3ltompVjBni5LitkWHFlFpwkn9U5q"
SECRET_KEY = "BQYIM75p8x0iWVFSIgqEKwFprpRSVHlz"
WIRE_PATH = "/exampleobject(%E8%85%BE%E8%AE%AF%E4%BA%91)"
DECODED_PATH = "/exampleobject(腾讯云)"
HOST = "examplebucket-1250000000.cos.ap-beijing.myqcloud.com"

V1_HEADERS = {
    "Date": "Thu, 16 May 2019 06:45:51 GMT",
    "Host": HOST,
    "Content-Type": "text/plain",
    "Content-Length": "13",
    "Content-MD5": "mQ/fVh815F3k6TAUm8m0eg==",
    "x-cos-acl": "private",
    "x-cos-grant-read": 'uin="100000000011"',
}
V1_HEADER_LIST = "content-length;content-md5;content-type;date;host;x-cos-acl;x-cos-grant-read"
V1_HTTP_HEADERS = (
    "content-length=13&content-md5=mQ%2FfVh815F3k6TAUm8m0eg%3D%3D&content-type=text%2Fplain"
    "&date=Thu%2C%2016%20May%202019%2006%3A45%3A51%20GMT"
    "&host=examplebucket-1250000000.cos.ap-beijing.myqcloud.com&x-cos-acl=private"
    "&x-cos-grant-read=uin%3D%22100000000011%22"
)
V1_SIGNATURE = "3b8851a11a569213c17ba8fa7dcf2abec6935172"

V2_PARAMS: dict[str, str | None] = {
    "response-content-type": "application/octet-stream",
    "response-cache-control": "max-age=600",
}
V2_HEADERS = {"Date": "Thu, 16 May 2019 06:55:53 GMT", "Host": HOST}
V2_SIGNATURE = "01681b8c9d798a678e43b685a9f1bba0f6c0e012"


def sha1_hex(text: str) -> str:
    return hashlib.sha1(text.encode()).hexdigest()


def v1_authorization(
    *,
    method: str = "PUT",
    path: str = WIRE_PATH,
    params: Mapping[str, str | None] | None = None,
    headers: Mapping[str, str] = V1_HEADERS,
    start: int = 1557989151,
    end: int = 1557996351,
    signed_headers: Iterable[str] | None = None,
) -> str:
    """The V1 request signed, with one thing changed."""
    return sign(
        method=method,
        path=path,
        params=params or {},
        headers=headers,
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
        start=start,
        end=end,
        signed_headers=signed_headers,
    )


def test_v1_upload_reproduces_every_intermediate_value() -> None:
    # GIVEN the published upload request of doc 7778
    key_time = format_key_time(1557989151, 1557996351)
    # WHEN each step is computed
    header_list, http_headers = format_pairs(V1_HEADERS)
    text = http_string("PUT", DECODED_PATH, "", http_headers)
    # THEN each intermediate value is the published one
    assert key_time == "1557989151;1557996351"
    assert sign_key(SECRET_KEY, key_time) == "eb2519b498b02ac213cb1f3d1a3d27a3b3c9bc5f"
    assert header_list == V1_HEADER_LIST
    assert http_headers == V1_HTTP_HEADERS
    assert string_to_sign(key_time, text) == (
        "sha1\n1557989151;1557996351\n8b2751e77f43a0995d6e9eb9477f4b685cca4172\n"
    )
    # AND sign() assembles the full Authorization around the published signature
    assert v1_authorization() == (
        f"q-sign-algorithm=sha1&q-ak={SECRET_ID}&q-sign-time=1557989151;1557996351"
        f"&q-key-time=1557989151;1557996351&q-header-list={V1_HEADER_LIST}"
        f"&q-url-param-list=&q-signature={V1_SIGNATURE}"
    )


def test_v2_download_reproduces_every_intermediate_value() -> None:
    # GIVEN the published download request with two response-* parameters
    key_time = format_key_time(1557989753, 1557996953)
    # WHEN the parameters and headers are formatted and the request signed
    param_list, http_parameters = format_pairs(V2_PARAMS)
    header_list, http_headers = format_pairs(V2_HEADERS)
    text = http_string("GET", DECODED_PATH, http_parameters, http_headers)
    authorization = sign(
        method="GET",
        path=WIRE_PATH,
        params=V2_PARAMS,
        headers=V2_HEADERS,
        secret_id=SECRET_ID,
        secret_key=SECRET_KEY,
        start=1557989753,
        end=1557996953,
    )
    # THEN every published value comes out
    assert sign_key(SECRET_KEY, key_time) == "937914bf490e9e8c189836aad2052e4feeb35eaf"
    assert param_list == "response-cache-control;response-content-type"
    assert http_parameters == (
        "response-cache-control=max-age%3D600&response-content-type=application%2Foctet-stream"
    )
    assert header_list == "date;host"
    assert string_to_sign(key_time, text) == (
        "sha1\n1557989753;1557996953\n54ecfe22f59d3514fdc764b87a32d8133ea611e6\n"
    )
    assert authorization.endswith(
        "&q-header-list=date;host&q-url-param-list=response-cache-control;response-content-type"
        f"&q-signature={V2_SIGNATURE}"
    )


def test_only_the_decoded_path_is_signed() -> None:
    # GIVEN the V1 request
    # WHEN the wire path is signed as it is, or its decoded form, which has nothing to decode
    # THEN both give the published signature: the signed pathname is the decoded one
    assert v1_authorization().endswith(V1_SIGNATURE)
    assert v1_authorization(path=DECODED_PATH).endswith(V1_SIGNATURE)
    # AND a path that is not UTF-8 once decoded cannot be signed
    with pytest.raises(SignatureFormatError, match="UTF-8"):
        v1_authorization(path="/bad%FF")


def test_verifier_accepts_v1_and_refuses_a_tampered_header() -> None:
    # GIVEN the V1 Authorization as a server receives it
    parsed = parse_authorization(v1_authorization())

    def recompute(headers: dict[str, str]) -> str:
        return expected_signature(
            method="PUT",
            path=WIRE_PATH,
            params={},
            headers={name.lower(): value for name, value in headers.items()},
            secret_key=SECRET_KEY,
            key_time=parsed.key_time,
            header_list=parsed.header_list,
            url_param_list=parsed.url_param_list,
        )

    # WHEN the server recomputes from the untouched and from a tampered request
    # THEN only the untouched one matches
    assert hmac.compare_digest(recompute(V1_HEADERS), parsed.signature)
    tampered = V1_HEADERS | {"x-cos-acl": "public-read"}
    assert not hmac.compare_digest(recompute(tampered), parsed.signature)


def test_signed_headers_choose_what_is_signed_case_insensitively() -> None:
    # GIVEN a request that signs only Host and Content-MD5, named in another case
    def authorization(user_agent: str) -> str:
        return v1_authorization(
            headers=V1_HEADERS | {"User-Agent": user_agent}, signed_headers=["HOST", "content-md5"]
        )

    # WHEN an unsigned header changes
    # THEN the signature does not, and the list holds only the chosen headers
    assert authorization("a") == authorization("b")
    assert "&q-header-list=content-md5;host&" in authorization("a")
    # AND a chosen header that is not sent is an error, not a silently smaller list
    with pytest.raises(SignatureFormatError, match="x-cos-appid"):
        v1_authorization(signed_headers=["x-cos-appid"])


def test_expected_signature_refuses_listed_names_the_request_lacks() -> None:
    common = {"method": "GET", "path": "/", "secret_key": SECRET_KEY, "key_time": "1;2"}
    with pytest.raises(SignatureFormatError, match="host"):
        expected_signature(params={}, headers={}, header_list=["host"], url_param_list=[], **common)
    with pytest.raises(SignatureFormatError, match="acl"):
        expected_signature(params={}, headers={}, header_list=[], url_param_list=["acl"], **common)


def test_a_parameter_without_value_signs_as_name_equals_nothing() -> None:
    # GIVEN `/?acl`
    # WHEN formatted and signed
    # THEN it is `acl=`, the same as an explicit empty value
    assert format_pairs({"acl": None}) == ("acl", "acl=")
    with_none = v1_authorization(params={"acl": None})
    assert with_none == v1_authorization(params={"acl": ""})
    assert "&q-url-param-list=acl&" in with_none


def test_values_and_names_encode_as_the_reference_says() -> None:
    # GIVEN values with space, /, =, ", the characters quote() keeps by default, and non-ASCII
    value = "a b/c=d\"é!'()*+~_-."
    # WHEN formatted
    names, text = format_pairs({"X-Cos-Meta-Note": value, "Prefix": "腾讯云"})
    # THEN only A-Z a-z 0-9 - _ . ~ survive, space is %20, and names are lowercased after encoding
    assert names == "prefix;x-cos-meta-note"
    assert text == (
        "prefix=%E8%85%BE%E8%AE%AF%E4%BA%91&x-cos-meta-note=a%20b%2Fc%3Dd%22%C3%A9%21%27%28%29%2A%2B~_-."
    )
    assert canonical_name("Café") == "caf%c3%a9"


def test_names_differing_only_in_case_are_refused() -> None:
    with pytest.raises(SignatureFormatError, match="twice"):
        v1_authorization(headers={"Host": HOST, "host": HOST})


def test_parse_round_trips_what_sign_produced() -> None:
    parsed = parse_authorization(v1_authorization())
    assert parsed == ParsedAuthorization(
        algorithm="sha1",
        access_key=SECRET_ID,
        sign_time=(1557989151, 1557996351),
        key_time="1557989151;1557996351",
        header_list=tuple(V1_HEADER_LIST.split(";")),
        url_param_list=(),
        signature=V1_SIGNATURE,
    )


def replace_field(authorization: str, name: str, value: str) -> str:
    return "&".join(
        f"{name}={value}" if part.startswith(f"{name}=") else part for part in authorization.split("&")
    )


GOOD = f"q-sign-algorithm=sha1&q-ak={SECRET_ID}&q-sign-time=1;2&q-key-time=1;2&q-header-list=host&q-url-param-list=&q-signature={V1_SIGNATURE}"


@pytest.mark.parametrize(
    ("authorization", "complaint"),
    [
        (GOOD + "&q-ak=other", "twice"),
        (GOOD.replace("&q-url-param-list=", ""), "lacks q-url-param-list"),
        (replace_field(GOOD, "q-sign-algorithm", "md5"), "sha1"),
        (replace_field(GOOD, "q-sign-time", "1;3"), "differs"),
        (replace_field(replace_field(GOOD, "q-sign-time", "3;2"), "q-key-time", "3;2"), "q-key-time"),
        (replace_field(replace_field(GOOD, "q-sign-time", "a;2"), "q-key-time", "a;2"), "q-key-time"),
        (replace_field(replace_field(GOOD, "q-sign-time", "1"), "q-key-time", "1"), "q-key-time"),
        (
            replace_field(replace_field(GOOD, "q-sign-time", "\u0661;\u0662"), "q-key-time", "\u0661;\u0662"),
            "q-key-time",
        ),
        (replace_field(GOOD, "q-signature", V1_SIGNATURE.upper()), "hex"),
        (replace_field(GOOD, "q-signature", "é" * 40), "hex"),
        (replace_field(GOOD, "q-ak", ""), "q-ak"),
        (replace_field(GOOD, "q-header-list", "Host"), "q-header-list"),
        (replace_field(GOOD, "q-header-list", "host;;date"), "q-header-list"),
        (GOOD + "&q-extra=1", "unexpected"),
        (GOOD + "&", "unexpected"),
        ("", "unexpected"),
        (" " + GOOD, "unexpected"),
    ],
)
def test_parse_refuses_anything_but_the_seven_fields(authorization: str, complaint: str) -> None:
    assert parse_authorization(GOOD).header_list == ("host",)
    with pytest.raises(SignatureFormatError, match=complaint):
        parse_authorization(authorization)


def test_fields_may_come_in_any_order() -> None:
    shuffled = "&".join(reversed(GOOD.split("&")))
    assert parse_authorization(shuffled) == parse_authorization(GOOD)
    assert len(FIELDS) == 7


def test_bad_times_and_methods_cannot_be_signed() -> None:
    with pytest.raises(SignatureFormatError, match="start"):
        v1_authorization(start=10, end=9)
    with pytest.raises(SignatureFormatError, match="method"):
        v1_authorization(method="PUT\n/other")


header_names = st.text(st.sampled_from("abcdefghijklmnopqrstuvwxyz-_."), min_size=1, max_size=12).filter(
    lambda name: name != "host"
)
texts = st.text(st.characters(codec="utf-8", exclude_categories=["Cs"]), max_size=30)


@settings(max_examples=200)
@given(
    headers=st.dictionaries(header_names, texts, max_size=6),
    params=st.dictionaries(header_names, st.none() | texts, max_size=6),
    path=texts,
)
def test_what_sign_produces_a_verifier_recomputes(
    headers: dict[str, str], params: dict[str, str | None], path: str
) -> None:
    # GIVEN any request signed by sign()
    headers = headers | {"host": HOST}
    wire_path = "/" + path.replace("%", "%25")
    parsed = parse_authorization(
        sign(
            method="POST",
            path=wire_path,
            params=params,
            headers=headers,
            secret_id="AKID",
            secret_key="secret",
            start=100,
            end=200,
        )
    )
    # WHEN a verifier recomputes from the parsed lists
    expected = expected_signature(
        method="POST",
        path=wire_path,
        params=params,
        headers=headers,
        secret_key="secret",
        key_time=parsed.key_time,
        header_list=parsed.header_list,
        url_param_list=parsed.url_param_list,
    )
    # THEN it matches, and lists every header and parameter
    assert hmac.compare_digest(expected, parsed.signature)
    assert set(parsed.header_list) == {canonical_name(name) for name in headers}
    assert set(parsed.url_param_list) == {canonical_name(name) for name in params}
