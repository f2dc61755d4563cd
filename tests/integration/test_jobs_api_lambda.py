"""functions/jobs_api: each events/jobs_api file passed to lambda_handler as `sam local invoke -e` would.

The handler module is imported as Lambda imports it, with its settings from the environment and
its DynamoDB client from boto3's own endpoint configuration, pointed at the moto server.
"""

from __future__ import annotations

import importlib.util
import json
import os
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import pytest
from lxml import etree

from batchops.jobs.service import JobService
from batchops.store.dynamodb import DynamoDBJobStore
from tests.conftest import EVENTS, ROOT, SEED_XML, create_jobs_table
from tests.helpers import restore_environment, set_environment

EVENT_JOB_ID = "53dc6228-c50b-46f7-8ad7-65e7159f1aae"


@dataclass
class FakeContext:
    function_name: str = "JobsApiFunction"
    memory_limit_in_mb: int = 512
    invoked_function_arn: str = "arn:aws:lambda:ap-chengdu:123456789012:function:JobsApiFunction"
    aws_request_id: str = "5e7d2e5b-3e2c-4a0f-9a51-0f4b1d1f6a11"

    def get_remaining_time_in_millis(self) -> int:
        return 29_000


def event(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((EVENTS / "jobs_api" / name).read_text())
    return loaded


@pytest.fixture(scope="module")
def handler(moto_endpoint: str) -> Iterator[ModuleType]:
    import boto3

    table = create_jobs_table(boto3.client("dynamodb", endpoint_url=moto_endpoint), "batchops-jobs-lambda")
    env = {"JOBS_TABLE": table, "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint, "BATCHOPS_MAX_ACTIVE_JOBS": "50"}
    saved = set_environment(env)
    spec = importlib.util.spec_from_file_location("jobs_api_app", ROOT / "functions" / "jobs_api" / "app.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["jobs_api_app"] = module
    spec.loader.exec_module(module)
    try:
        yield module
    finally:
        sys.modules.pop("jobs_api_app", None)
        restore_environment(saved)


def invoke(handler: ModuleType, payload: dict[str, Any]) -> tuple[int, dict[str, Any], etree._Element | None]:
    result: dict[str, Any] = handler.lambda_handler(payload, FakeContext())
    headers = {k.lower(): v for k, v in (result.get("multiValueHeaders") or {}).items()}
    body = result.get("body") or ""
    return result["statusCode"], headers, etree.fromstring(body.encode()) if body else None


def test_create_job_event_is_the_seed_request() -> None:
    assert event("create_job.json")["body"].encode() == SEED_XML.read_bytes()


def test_every_route_event_through_the_handler(handler: ModuleType) -> None:
    # GIVEN the create event (the seed's request) WHEN invoked THEN a job is created
    status, headers, root = invoke(handler, event("create_job.json"))
    assert status == 200
    assert headers["content-type"] == ["application/xml"]
    assert headers["x-cos-request-id"][0]
    assert root is not None and root.tag == "CreateJobResult" and root.findtext("JobId")

    # WHEN invoked again THEN the duplicate error names that job
    status, _, error = invoke(handler, event("create_job.json"))
    assert status == 400
    assert error is not None
    assert (error.findtext("Code"), error.findtext("Message")) == ("InvalidRequest", "Duplicate request.")
    assert error.findtext("Resource") == f"/jobs/{root.findtext('JobId')}"

    # GIVEN a job with the id the other events name, created through the same store
    service = JobService(
        DynamoDBJobStore(os.environ["JOBS_TABLE"], handler.dynamodb_client()),
        max_active_jobs=50,
        job_ids=lambda: EVENT_JOB_ID,
    )
    from batchops.api.create_job import parse_create_job

    spec = parse_create_job(SEED_XML.read_bytes().replace(b"184ce261", b"0eb0e7a1"))
    service.create("1250000000", spec)

    status, _, described = invoke(handler, event("describe_job.json"))
    assert status == 200
    assert described is not None
    assert (described.findtext("Job/JobId"), described.findtext("Job/Status")) == (EVENT_JOB_ID, "New")

    status, _, listed = invoke(handler, event("list_jobs.json"))
    assert status == 200
    assert listed is not None
    assert listed.findtext("Jobs/member/JobId") == EVENT_JOB_ID

    status, _, priority = invoke(handler, event("update_job_priority.json"))
    assert status == 200
    assert priority is not None and priority.findtext("Priority") == "20"

    status, _, updated = invoke(handler, event("update_job_status.json"))
    assert status == 200
    assert updated is not None
    assert (updated.findtext("Status"), updated.findtext("StatusUpdateReason")) == ("Cancelled", "to do")

    status, _, deleted = invoke(handler, event("delete_job.json"))
    assert (status, deleted) == (204, None)
    status, _, gone = invoke(handler, event("describe_job.json"))
    assert status == 404
    assert gone is not None and gone.findtext("Code") == "NoSuchJob"


def test_bad_bodies_through_the_handler(handler: ModuleType) -> None:
    payload = event("create_job.json")
    payload["body"] = (
        '<!DOCTYPE r [<!ENTITY x SYSTEM "file:///etc/passwd">]><CreateJobRequest>&x;</CreateJobRequest>'
    )
    payload["headers"].pop("Content-MD5")
    payload["multiValueHeaders"].pop("Content-MD5")
    status, _, error = invoke(handler, payload)
    assert status == 400
    assert error is not None and error.findtext("Code") == "MalformedXML"
    assert "root:" not in etree.tostring(error).decode()

    payload = event("list_jobs.json")
    payload["headers"].pop("x-cos-appid")
    payload["multiValueHeaders"].pop("x-cos-appid")
    status, _, error = invoke(handler, payload)
    assert status == 400
    assert error is not None and error.findtext("Code") == "InvalidArgument"


def test_env_json_names_the_function_of_the_template() -> None:
    env = json.loads((EVENTS / "env.json").read_text())
    from tests.conftest import template

    assert set(env) <= set(template()["Resources"])
    assert "JOBS_TABLE" in env["JobsApiFunction"]


def test_a_request_the_adapter_cannot_read_still_gets_a_cos_error(handler: ModuleType) -> None:
    payload = event("create_job.json")
    payload["isBase64Encoded"] = True
    payload["body"] = "a"  # not base64: API Gateway never sends this, but nothing may answer in HTML or JSON
    status, headers, error = invoke(handler, payload)
    assert status == 500
    assert headers["content-type"] == ["application/xml"]
    assert error is not None and error.findtext("Code") == "InternalError"


def test_with_credentials_the_lambda_api_takes_signed_requests_only(moto_endpoint: str) -> None:
    import time
    import uuid

    import boto3

    from batchops.cos_signature import authorization_for
    from tests.integration.deployed_harness import load

    table = create_jobs_table(
        boto3.client("dynamodb", endpoint_url=moto_endpoint), f"jobs-{uuid.uuid4().hex[:8]}"
    )
    env = {
        "JOBS_TABLE": table,
        "AWS_ENDPOINT_URL_DYNAMODB": moto_endpoint,
        "BATCHOPS_CREDENTIALS": '{"AKIDlambda": "lambda-secret"}',
    }
    saved = set_environment(env)
    try:
        module = load(f"jobs_api_signed_{uuid.uuid4().hex[:8]}", "functions/jobs_api/app.py")
        unsigned = event("create_job.json")
        status, _, error = invoke(module, unsigned)
        assert (status, error.findtext("Code") if error is not None else None) == (403, "AccessDenied")
        signed = event("create_job.json")
        signed["headers"]["Authorization"] = authorization_for(
            method="POST",
            path=signed["path"],
            params={},
            headers={
                k: v
                for k, v in signed["headers"].items()
                if k in ("Host", "x-cos-appid", "Content-MD5", "Content-Type")
            },
            secret_id="AKIDlambda",
            secret_key="lambda-secret",
            now=int(time.time()),
        )
        signed["multiValueHeaders"]["Authorization"] = [signed["headers"]["Authorization"]]
        status, _, result = invoke(module, signed)
        assert status == 200 and result is not None and result.findtext("JobId")
    finally:
        restore_environment(saved)
