"""SubmitJobFunction: a landed inventory manifest becomes one CreateJob per matching rule.

Thin: Powertools wiring, the event parsed into a trigger, one call into batchops.submit. Triggers:
S3 notifications, EventBridge "Object Created", the SCF COS trigger, and schedules (a sweep for
inventories whose notification was lost). Environment: BATCHOPS_RULES (or the flat BATCHOPS_*
rule variables), BATCHOPS_TARGET (direct | http), JOBS_TABLE and WORK_QUEUE_URL (direct),
BATCHOPS_ENDPOINT, BATCHOPS_SECRET_ID, BATCHOPS_SECRET_KEY (http), BATCHOPS_APPID.
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchops.clients import lazy, s3_client_with
from batchops.settings import SubmitSettings
from batchops.submit.service import Skipped, Submission
from batchops.submit.triggers import EventError, parse_event
from batchops.submit.wiring import submitter_from_settings

settings = SubmitSettings.from_env(os.environ)
logger = Logger(service="batchops-submit-job")
tracer = Tracer(service="batchops-submit-job")
metrics = Metrics(namespace="BatchOps", service="batchops-submit-job")
submitter = submitter_from_settings(settings, lazy(s3_client_with))


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    try:
        trigger = parse_event(event)
    except EventError as exc:
        # Not ours to retry: an event of the wrong shape never becomes right.
        logger.error("event ignored", reason=str(exc))
        metrics.add_metric(name="ManifestsSkipped", unit=MetricUnit.Count, value=1)
        return {"submitted": [], "skipped": [str(exc)]}
    outcomes = submitter.handle(trigger)
    submitted = [o for o in outcomes if isinstance(o, Submission)]
    skipped = [o for o in outcomes if isinstance(o, Skipped)]
    for outcome in submitted:
        logger.info(
            "duplicate submission" if outcome.duplicate else "job submitted",
            rule=outcome.rule,
            manifest=outcome.manifest,
            token=outcome.token,
            job_id=outcome.job_id,
        )
    for skip in skipped:
        logger.info("manifest skipped", key=skip.key, reason=skip.reason)
    metrics.add_metric(
        name="JobsSubmitted", unit=MetricUnit.Count, value=sum(not o.duplicate for o in submitted)
    )
    metrics.add_metric(
        name="DuplicateSubmissions", unit=MetricUnit.Count, value=sum(o.duplicate for o in submitted)
    )
    metrics.add_metric(name="ManifestsSkipped", unit=MetricUnit.Count, value=len(skipped))
    return {
        "submitted": [
            {"rule": o.rule, "jobId": o.job_id, "duplicate": o.duplicate, "token": o.token} for o in submitted
        ],
        "skipped": [f"{o.key}: {o.reason}" for o in skipped],
    }
