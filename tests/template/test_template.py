"""template.yaml checked offline: cfn-lint, then the real SAM translator."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import ROOT, template


def transformed(parameters: dict[str, str] | None = None) -> dict[str, Any]:
    from samtranslator.translator.transform import transform

    class OfflinePolicyLoader:
        """Stands in for the IAM-backed loader; SAM's bundled managed-policy list is used instead."""

        def load(self) -> dict[str, str]:
            return {}

    sam = copy.deepcopy(template())
    for resource in sam["Resources"].values():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = f"s3://offline/{props[key].strip('/')}"
    result: dict[str, Any] = transform(sam, parameters or {}, OfflinePolicyLoader())
    return result


def test_cfn_lint_finds_nothing() -> None:
    from cfnlint.api import ManualArgs, lint_file

    matches = lint_file(ROOT / "template.yaml", config=ManualArgs(regions=["us-east-1"]))
    assert [str(m) for m in matches] == []


def test_sam_translator_accepts_the_template(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    resources = transformed()["Resources"]
    types = {r["Type"] for r in resources.values()}
    assert {"AWS::Lambda::Function", "AWS::Lambda::LayerVersion", "AWS::ApiGateway::RestApi"} <= types
    function = resources["JobsApiFunction"]["Properties"]
    assert function["Runtime"] == "python3.12"
    assert function["Handler"] == "app.lambda_handler"


def test_every_function_and_layer_path_exists() -> None:
    for name, resource in template()["Resources"].items():
        props = resource.get("Properties", {})
        for key in ("CodeUri", "ContentUri"):
            if key in props:
                assert (ROOT / props[key]).is_dir(), name
        if resource["Type"] == "AWS::Serverless::Function":
            assert (ROOT / props["CodeUri"] / "app.py").is_file(), name
            assert (ROOT / props["CodeUri"] / "requirements.txt").is_file(), name


def test_layer_uses_build_method_layout() -> None:
    layer = template()["Resources"]["BatchopsLayer"]
    assert layer["Metadata"]["BuildMethod"] == "python3.12"
    content = ROOT / layer["Properties"]["ContentUri"]
    assert (content / "batchops" / "__init__.py").is_file()
    assert not (content / "python").exists()  # SAM adds python/ itself
    pins = (content / "requirements.txt").read_text()
    for package in ("aws-lambda-powertools", "lxml", "boto3", "isal"):
        assert package in pins


def test_jobs_api_is_iam_authorized(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    body = transformed()["Resources"]["JobsApi"]["Properties"]["Body"]
    for path in ("/jobs", "/jobs/{proxy+}"):
        assert body["paths"][path]["x-amazon-apigateway-any-method"]["security"] == [{"AWS_IAM": []}]


def test_events_dir_has_an_event_per_api_route() -> None:
    names = {p.name for p in (ROOT / "events" / "jobs_api").glob("*.json")}
    assert names == {
        "create_job.json",
        "describe_job.json",
        "list_jobs.json",
        "update_job_priority.json",
        "update_job_status.json",
        "delete_job.json",
    }
    assert Path(ROOT / "events" / "env.json").is_file()


def test_run_job_queue_follows_lambdas_sqs_guidance() -> None:
    resources = template()["Resources"]
    function = resources["RunJobFunction"]["Properties"]
    event = function["Events"]["Work"]["Properties"]
    assert event["FunctionResponseTypes"] == ["ReportBatchItemFailures"]
    queue = resources["WorkQueue"]["Properties"]
    assert queue["VisibilityTimeout"] >= 6 * function["Timeout"]
    assert int(queue["RedrivePolicy"]["maxReceiveCount"]) >= 5
    assert function["Timeout"] > int(function["Environment"]["Variables"]["BATCHOPS_DEADLINE_MARGIN_SECONDS"])
    # the status looks of a job's chunks are spaced out by how many can run at once
    assert function["Environment"]["Variables"]["BATCHOPS_WORKER_CONCURRENCY"] == {"Ref": "WorkerConcurrency"}
    assert event["ScalingConfig"]["MaximumConcurrency"] == {"Ref": "WorkerConcurrency"}


def test_every_function_has_its_settings() -> None:
    resources = template()["Resources"]
    env = template()["Globals"]["Function"]["Environment"]["Variables"]
    assert {"JOBS_TABLE", "WORK_QUEUE_URL"} <= set(env)
    assert {"JobsApiFunction", "RunJobFunction"} <= set(resources)


def test_submit_function_is_triggered_swept_and_has_a_failure_destination() -> None:
    function = template()["Resources"]["SubmitJobFunction"]["Properties"]
    events = {event["Type"] for event in function["Events"].values()}
    assert events == {"EventBridgeRule", "Schedule"}
    assert function["EventInvokeConfig"]["DestinationConfig"]["OnFailure"]["Type"] == "SQS"
    assert (ROOT / "events" / "submit_job" / "scheduled.json").is_file()


def test_a_stack_created_inventory_bucket_triggers_submit_directly(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    resources = transformed({"CreateInventoryBucket": "true"})["Resources"]
    bucket = resources["InventoryBucket"]
    assert bucket["Condition"] == "CreatesInventoryBucket"
    (config,) = bucket["Properties"]["NotificationConfiguration"]["LambdaConfigurations"]
    condition, when_true, _ = config["Fn::If"]
    assert (condition, when_true["Event"]) == ("CreatesInventoryBucket", "s3:ObjectCreated:*")
    assert resources["StackBucketSubmitJobFunction"]["Condition"] == "CreatesInventoryBucket"


def test_the_api_callers_parameter_attaches_the_invoke_policy(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    policy = transformed({"JobsApiCallerRoles": "ops-role,ci-role"})["Resources"]["JobsApiInvokePolicy"]
    assert policy["Properties"]["PolicyDocument"]["Statement"][0]["Action"] == "execute-api:Invoke"
    assert policy["Properties"]["Roles"]["Fn::If"][0] == "HasApiCallers"


def resolved(node: Any, conditions: dict[str, bool], parameters: dict[str, str]) -> Any:
    """``node`` with Fn::If decided, Ref to parameters replaced and AWS::NoValue dropped."""
    if isinstance(node, list):
        items = [resolved(item, conditions, parameters) for item in node]
        return [item for item in items if item != {"Ref": "AWS::NoValue"}]
    if not isinstance(node, dict):
        return node
    if set(node) == {"Fn::If"}:
        name, when_true, when_false = node["Fn::If"]
        return resolved(when_true if conditions[name] else when_false, conditions, parameters)
    if set(node) == {"Ref"} and node["Ref"] in parameters:
        return parameters[node["Ref"]]
    if set(node) == {"Fn::Sub"} and isinstance(node["Fn::Sub"], list):
        text, names = node["Fn::Sub"]
        values = resolved(names, conditions, parameters)
        if all(isinstance(value, str) for value in values.values()):
            for key, value in values.items():
                text = text.replace("${" + key + "}", value)
            return text
    values = {key: resolved(value, conditions, parameters) for key, value in node.items()}
    return {key: value for key, value in values.items() if value != {"Ref": "AWS::NoValue"}}


SECRET_ARN = "arn:aws:secretsmanager:us-east-1:123456789012:secret:batchops/keys-AbCdEf"


@pytest.mark.parametrize("arn", ["", SECRET_ARN])
def test_only_the_jobs_api_may_read_exactly_the_credentials_secret(
    monkeypatch: pytest.MonkeyPatch, arn: str
) -> None:
    # GIVEN the stack with and without CredentialsSecretArn
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    parameters = {"CredentialsSecretArn": arn} if arn else {}
    conditions = dict.fromkeys(template()["Conditions"], False) | {"HasCredentialsSecret": bool(arn)}
    resources = resolved(transformed(parameters)["Resources"], conditions, parameters)
    # WHEN every statement of every role that names Secrets Manager is collected
    grants = [
        (name, statement)
        for name, resource in resources.items()
        if resource["Type"] == "AWS::IAM::Role"
        for policy in resource["Properties"].get("Policies", [])
        if isinstance(policy, dict)
        for statement in policy["PolicyDocument"]["Statement"]
        if "secretsmanager" in str(statement)
    ]
    variables = resources["JobsApiFunction"]["Properties"]["Environment"]["Variables"]
    if not arn:
        # THEN without the parameter no role may touch a secret and the function reads none
        assert grants == []
        assert "BATCHOPS_CREDENTIALS_SECRET" not in variables
        return
    # THEN only the jobs API's role may, and only GetSecretValue on that one ARN
    assert grants == [
        (
            "JobsApiFunctionRole",
            {"Action": ["secretsmanager:GetSecretValue"], "Effect": "Allow", "Resource": SECRET_ARN},
        )
    ]
    assert variables["BATCHOPS_CREDENTIALS_SECRET"] == SECRET_ARN
