"""The lean client against boto3 on the same scripted HTTP answers: the same requests on the
wire (signature included), the same dicts back, the same exceptions, the same retries.

Every case runs boto3 first, then the lean client signing at boto3's times; ``assert_same``
also checks that each request was the lean client's own (not handed to boto3).
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.integration.s3fast.conftest import assert_same
from tests.scripted_http import Answer, ScriptedServer, response, s3_error, xml

COPY_RESULT = xml(
    200,
    '<?xml version="1.0" encoding="UTF-8"?>\n<CopyObjectResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">'
    "<LastModified>2024-03-01T10:00:00.123Z</LastModified><ETag>&quot;abc&quot;</ETag></CopyObjectResult>",
    {
        "x-amz-version-id": "v2",
        "x-amz-copy-source-version-id": "v1",
        "x-amz-server-side-encryption": "AES256",
    },
)


def copy(client: Any) -> Any:
    return client.copy_object(
        Bucket="dst",
        Key="dir/a b+c~é.txt",
        CopySource={"Bucket": "src", "Key": "dir/a b+c~é.txt", "VersionId": "v 1"},
        MetadataDirective="REPLACE",
        Metadata={"Team": "data"},
        TaggingDirective="REPLACE",
        Tagging="a=b&c=d",
        ContentType="text/plain",
    )


def head(client: Any) -> Any:
    return client.head_object(Bucket="src", Key="k", VersionId="v1")


def restore(client: Any) -> Any:
    return client.restore_object(
        Bucket="src", Key="cold", RestoreRequest={"Days": 7, "GlacierJobParameters": {"Tier": "Bulk"}}
    )


def delete_many(client: Any) -> Any:
    return client.delete_objects(
        Bucket="b", Delete={"Objects": [{"Key": "a&b"}, {"Key": "c\nd", "VersionId": "v"}], "Quiet": False}
    )


# Every case twice: the lean call made blocking, and multiplexed (conftest.lean_via).
pytestmark = pytest.mark.usefixtures("lean_via")


# --- successes ------------------------------------------------------------------------------------


def test_copy(server: ScriptedServer) -> None:
    assert_same(server, [COPY_RESULT], copy)


def test_head(server: ScriptedServer) -> None:
    answer = response(
        200,
        headers=[
            ("Content-Length", "11"),
            ("ETag", '"e"'),
            ("Last-Modified", "Fri, 01 Mar 2024 10:00:00 GMT"),
            ("Expires", "Thu, 01 Jan 2030 00:00:00 GMT"),
            ("x-amz-meta-Team", "data"),
            ("x-amz-meta-team", "dup"),
            ("x-amz-delete-marker", "false"),
            ("x-amz-tagging-count", "2"),
            ("x-amz-storage-class", "GLACIER"),
            ("x-amz-restore", 'ongoing-request="true"'),
        ],
    )
    run = assert_same(server, [answer], head)
    assert run.outcome[1]["ContentLength"] == 11


def test_delete_one(server: ScriptedServer) -> None:
    answer = response(204, headers={"x-amz-delete-marker": "true", "x-amz-version-id": "dm1"})
    assert_same(server, [answer], lambda c: c.delete_object(Bucket="b", Key="k"))


def test_delete_many_with_per_key_errors(server: ScriptedServer) -> None:
    answer = xml(
        200,
        "<DeleteResult><Deleted><Key>a&amp;b</Key></Deleted><Deleted><Key>c\nd</Key><VersionId>v</VersionId>"
        "<DeleteMarker>true</DeleteMarker><DeleteMarkerVersionId>m</DeleteMarkerVersionId></Deleted>"
        "<Error><Key>x</Key><Code>AccessDenied</Code><Message>Access Denied</Message></Error></DeleteResult>",
    )
    assert_same(server, [answer], delete_many)


def test_delete_many_chunked(server: ScriptedServer) -> None:
    body = b"<DeleteResult><Deleted><Key>a&amp;b</Key></Deleted></DeleteResult>"
    chunked = (
        b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Type: application/xml\r\n\r\n"
        + b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in (body[:10], body[10:]))
        + b"0\r\nx-trailer: t\r\n\r\n"
    )
    assert_same(server, [chunked], delete_many)


@pytest.mark.parametrize("status", [202, 200])
def test_restore(server: ScriptedServer, status: int) -> None:
    assert_same(server, [response(status)], restore)


# --- errors --------------------------------------------------------------------------------------


def test_head_not_found_has_no_body(server: ScriptedServer) -> None:
    assert_same(server, [response(404, headers={"Content-Type": "application/xml"})], head)


@pytest.mark.parametrize(
    "answer",
    [
        s3_error(404, "NoSuchKey", "The specified key does not exist.", Key="k"),
        s3_error(403, "AccessDenied", "Access Denied"),
        s3_error(
            412,
            "PreconditionFailed",
            "At least one precondition failed",
            Condition="x-amz-copy-source-If-Match",
        ),
        s3_error(
            400, "InvalidRequest", "The specified copy source is larger than the maximum allowable size"
        ),
        response(400, b"<not xml", {"Content-Type": "application/xml"}),
        response(
            409,
            b'<?xml version="1.0"?><ErrorResponse><Error><Code>Odd</Code></Error><RequestId>r</RequestId></ErrorResponse>',
        ),
    ],
)
def test_client_errors(server: ScriptedServer, answer: bytes) -> None:
    assert_same(server, [answer], copy)


def test_a_modeled_error_carries_its_fields(server: ScriptedServer) -> None:
    answer = s3_error(
        403, "InvalidObjectState", "The operation is not valid", StorageClass="STANDARD", AccessTier="x"
    )
    run = assert_same(server, [answer], restore)
    assert run.outcome[3]["StorageClass"] == "STANDARD"


def test_restore_already_in_progress(server: ScriptedServer) -> None:
    assert_same(server, [s3_error(409, "RestoreAlreadyInProgress", "in progress")], restore)


# --- retries -------------------------------------------------------------------------------------


def test_server_errors_are_retried_until_success(server: ScriptedServer) -> None:
    html = response(502, b"<html><body>Bad Gateway</body></html>", {"Content-Type": "text/html"})
    run = assert_same(server, [s3_error(500, "InternalError"), html, COPY_RESULT], copy)
    assert run.outcome[1]["ResponseMetadata"]["RetryAttempts"] == 2
    assert run.outcome[1]["ResponseMetadata"]["MaxAttemptsReached"] is True  # botocore notes it


def test_persistent_server_errors_exhaust_the_attempts(server: ScriptedServer) -> None:
    run = assert_same(server, [s3_error(500, "InternalError")] * 3, copy)
    assert "reached max retries: 2" in run.outcome[2]


def test_throttling_is_retried(server: ScriptedServer) -> None:
    assert_same(server, [s3_error(503, "SlowDown", "Please reduce your request rate."), COPY_RESULT], copy)


def test_persistent_throttling(server: ScriptedServer) -> None:
    run = assert_same(server, [s3_error(503, "SlowDown")] * 2, copy, max_attempts=2)
    assert run.outcome[3]["ResponseMetadata"]["MaxAttemptsReached"] is True


def test_request_timeout_code_is_retried(server: ScriptedServer) -> None:
    assert_same(server, [s3_error(400, "RequestTimeout"), COPY_RESULT], copy)


def test_a_429_is_retried(server: ScriptedServer) -> None:
    assert_same(server, [response(429), COPY_RESULT], copy)


def test_a_200_with_an_error_inside_is_a_500(server: ScriptedServer) -> None:
    inside = xml(
        200, "<Error><Code>InternalError</Code><Message>We encountered an internal error.</Message></Error>"
    )
    assert_same(server, [inside, COPY_RESULT], copy)
    run = assert_same(server, [inside] * 3, copy)
    assert run.outcome[3]["ResponseMetadata"]["HTTPStatusCode"] == 500


def test_a_200_cut_short_is_a_500(server: ScriptedServer) -> None:
    truncated = xml(200, "<CopyObjectResult><ETag>&quot;abc")
    assert_same(server, [truncated, COPY_RESULT], copy)


def test_a_connection_closed_without_an_answer_is_retried(server: ScriptedServer) -> None:
    assert_same(server, [Answer(hang_up=True), Answer(reset=True), COPY_RESULT], copy)


def test_a_connection_that_keeps_closing(server: ScriptedServer) -> None:
    run = assert_same(server, [Answer(hang_up=True)] * 3, copy)
    assert "ConnectionClosedError" in run.outcome[1]


def test_a_body_cut_short_by_the_connection(server: ScriptedServer) -> None:
    cut = Answer(COPY_RESULT[:-20], close_after=True)
    assert_same(server, [cut, COPY_RESULT], copy)


def test_a_read_timeout_is_retried(server: ScriptedServer) -> None:
    late = Answer(COPY_RESULT, delay=0.6)
    assert_same(server, [late, COPY_RESULT], copy, read_timeout=0.3)


def test_read_timeouts_exhaust_the_attempts(server: ScriptedServer) -> None:
    late = Answer(COPY_RESULT, delay=0.4)
    run = assert_same(server, [late, late], copy, read_timeout=0.2, max_attempts=2)
    assert "ReadTimeoutError" in run.outcome[1]


def test_a_closed_port(server: ScriptedServer) -> None:
    from tests.conftest import free_port

    closed = f"http://127.0.0.1:{free_port()}"
    from tests.integration.s3fast.conftest import compare

    theirs, ours = compare(server, [], copy, url=closed)
    assert ours.outcome == theirs.outcome
    assert "EndpointConnectionError" in ours.outcome[1]


def test_the_retry_quota_runs_out_as_botocores(server: ScriptedServer) -> None:
    # GIVEN a server failing every request: each call makes 2 attempts (14 of the 500 tokens each
    # retry) until the quota is gone, then 1
    def forty_calls(client: Any) -> list[int]:
        attempts = []
        for _ in range(40):
            before = len(server.requests)
            try:
                copy(client)
            except Exception as exc:
                metadata = exc.response["ResponseMetadata"]  # type: ignore[attr-defined]
                attempts.append(metadata["RetryAttempts"] + 1 + 10 * bool(metadata.get("RetryQuotaReached")))
            assert len(server.requests) > before
        return attempts

    # WHEN both clients make forty calls on their own fresh quota
    run = assert_same(server, [], forty_calls, max_attempts=2)
    # THEN both stop retrying at the same call
    assert run.outcome[1][:35] == [2] * 35
    assert run.outcome[1][-1] == 11


@pytest.fixture(autouse=True)
def _failing_by_default(server: ScriptedServer, request: pytest.FixtureRequest) -> None:
    if request.node.name.startswith("test_the_retry_quota"):
        server.default = Answer(s3_error(500, "InternalError"))


def test_in_lambda_the_trace_id_goes_along(server: ScriptedServer, monkeypatch: pytest.MonkeyPatch) -> None:
    # botocore's recursion detection: in Lambda every request carries the invocation's trace id
    monkeypatch.setenv("AWS_LAMBDA_FUNCTION_NAME", "RunJobFunction")
    monkeypatch.setenv(
        "_X_AMZN_TRACE_ID", "Root=1-5759e988-bd862e3fe1be46a994272793;Parent=53995c3f42cd8ad8;Sampled=1"
    )
    run = assert_same(server, [COPY_RESULT], copy)
    assert run.requests[0].headers["x-amzn-trace-id"].startswith("Root=1-5759e988")


def test_a_retry_after_a_dated_answer_carries_botocores_ttl(server: ScriptedServer) -> None:
    dated = response(
        500, b"<Error><Code>InternalError</Code></Error>", {"Date": "Fri, 01 Mar 2024 10:00:00 GMT"}
    )
    run = assert_same(server, [dated, COPY_RESULT], copy)
    assert run.requests[1].headers["amz-sdk-request"].startswith("ttl=20240301T100005Z; attempt=2")
