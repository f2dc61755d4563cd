"""What a Lambda function's cold start does: its handler module imported in a fresh interpreter.

Init builds no AWS client and imports neither boto3 nor botocore's session (clients are built on
first use; `make bench` times it), yet still reads and checks every setting, so that a
misconfigured function fails at init, as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import EVENTS, ROOT

FUNCTIONS = {"JobsApiFunction": "jobs_api", "RunJobFunction": "run_job", "SubmitJobFunction": "submit_job"}
# Loaded by the first client or the first batch of messages, never by init.
NOT_AT_INIT = ("boto3", "s3transfer", "botocore.session", "aws_lambda_powertools.utilities.batch")

IMPORT_APP = """
import importlib, json, sys
sys.path[0:0] = json.loads(sys.argv[1])
importlib.import_module("app")
print(json.dumps(sorted(sys.modules)))
"""


def cold_start(function: str, traced: bool, **overrides: str) -> subprocess.CompletedProcess[str]:
    directory = FUNCTIONS[function]
    env = {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_REGION": "us-east-1",
        "AWS_ENDPOINT_URL": "http://127.0.0.1:9",
        "AWS_LAMBDA_FUNCTION_NAME": function,
        # Set by Lambda's runtime, `sam local` too. (Without it the X-Ray SDK, which Powertools'
        # Tracer imports even when disabled, builds a botocore session for its sampling rules.)
        "LAMBDA_TASK_ROOT": str(ROOT / "functions" / directory),
        **json.loads((EVENTS / "env.json").read_text())[function],
        **overrides,
    }
    if traced:  # as deployed (Tracing: Active): X-Ray patches botocore at init
        env["AWS_XRAY_DAEMON_ADDRESS"] = "127.0.0.1:9"
    else:  # as `sam local` runs it
        env["POWERTOOLS_TRACE_DISABLED"] = "true"
    paths = [str(ROOT / "functions" / directory), str(ROOT / "layers" / "batchops")]
    return subprocess.run(
        [sys.executable, "-I", "-c", IMPORT_APP, json.dumps(paths)],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize("traced", [True, False], ids=["traced", "untraced"])
@pytest.mark.parametrize("function", sorted(FUNCTIONS))
def test_init_builds_no_client(function: str, traced: bool) -> None:
    # GIVEN the function's environment WHEN its handler module is imported
    done = cold_start(function, traced)
    assert done.returncode == 0, done.stderr
    loaded = set(json.loads(done.stdout.splitlines()[-1]))
    # THEN neither the SDK's client machinery nor the batch utility was loaded
    assert sorted(m for m in loaded if m.startswith(NOT_AT_INIT)) == []
    assert "batchops.settings" in loaded


@pytest.mark.parametrize(
    ("function", "overrides", "message"),
    [
        (
            "JobsApiFunction",
            {"BATCHOPS_MAX_ACTIVE_JOBS": "many"},
            "BATCHOPS_MAX_ACTIVE_JOBS must be a positive",
        ),
        ("RunJobFunction", {"WORK_QUEUE_URL": ""}, "WORK_QUEUE_URL must be set"),
        ("SubmitJobFunction", {"BATCHOPS_RULES": "[{}]"}, "rule"),
    ],
)
def test_a_misconfigured_function_still_fails_at_init(
    function: str, overrides: dict[str, str], message: str
) -> None:
    done = cold_start(function, traced=False, **overrides)
    assert done.returncode != 0
    assert "SettingsError" in done.stderr
    assert message in done.stderr
