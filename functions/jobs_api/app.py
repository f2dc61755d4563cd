"""JobsApiFunction: the COS jobs API behind API Gateway (REST, proxy integration).

Thin: Powertools wiring, event -> ApiRequest, one call into batchops.api, ApiResponse -> event.
Environment: JOBS_TABLE (required), WORK_QUEUE_URL (where created and confirmed jobs' work is
sent), BATCHOPS_MAX_ACTIVE_JOBS (default 1000), BATCHOPS_CREDENTIALS or BATCHOPS_CREDENTIALS_SECRET
(COS signatures required).
"""

from __future__ import annotations

import os
from typing import Any

from aws_lambda_powertools import Logger, Metrics, Tracer
from aws_lambda_powertools.event_handler import APIGatewayRestResolver, Response
from aws_lambda_powertools.logging import correlation_paths
from aws_lambda_powertools.metrics import MetricUnit
from aws_lambda_powertools.utilities.typing import LambdaContext

from batchops.api.apigateway import request_from_event, response_for_gateway
from batchops.api.auth import SignatureVerifier
from batchops.api.credentials import configured_credentials
from batchops.api.errors import ApiError, ErrorCode
from batchops.api.routes import ApiRequest, JobsApi
from batchops.clients import dynamodb_client, lazy, secretsmanager_client, sqs_client
from batchops.engine.sqs import SqsDispatcher
from batchops.jobs.service import JobService
from batchops.settings import JobsApiSettings
from batchops.store.dynamodb import DynamoDBJobStore
from batchops.store.dynamodb_ledger import DynamoDBLedger

settings = JobsApiSettings.from_env(os.environ)
logger = Logger(service="batchops-jobs-api")
tracer = Tracer(service="batchops-jobs-api")
metrics = Metrics(namespace="BatchOps", service="batchops-jobs-api")
# Built on first use, so that import and init stay short; the first request builds them.
dynamodb = lazy(dynamodb_client)
ledger = DynamoDBLedger(settings.jobs_table, dynamodb)
dispatcher = SqsDispatcher(lazy(sqs_client), settings.work_queue_url) if settings.work_queue_url else None
# Built at init only when a secret is configured: the keys' client must exist before a request.
credentials = configured_credentials(settings.credentials, settings.credentials_secret, secretsmanager_client)
api = JobsApi(
    verifier=SignatureVerifier(credentials) if credentials else None,
    service=JobService(
        DynamoDBJobStore(settings.jobs_table, dynamodb),
        max_active_jobs=settings.max_active_jobs,
        live_progress=ledger.progress,
        on_change=None if dispatcher is None else dispatcher.on_job_change,
    ),
)
app = APIGatewayRestResolver()

ALL_METHODS = ["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"]


# Any path, even one whose decoded form holds a line break (".+" would stop there): JobsApi
# answers every path itself, with a COS error for the ones it does not serve.
@app.route(r"[\s\S]+", method=ALL_METHODS)
def jobs_api() -> Response[str]:
    response = api.handle(request_from_event(app.current_event))
    logger.append_keys(cos_request_id=response.headers["x-cos-request-id"])
    if response.error_code:
        metrics.add_metric(name=f"{response.error_code}Errors", unit=MetricUnit.Count, value=1)
    return response_for_gateway(response)


def unexpected(exc: Exception) -> Response[str]:
    # Whatever went wrong before JobsApi could answer, the client still gets a COS error body.
    logger.exception("unhandled error before the jobs API answered")
    request = ApiRequest(method=app.current_event.http_method, path=app.current_event.path)
    error = ApiError(ErrorCode.INTERNAL_ERROR, "We encountered an internal error. Please try again.")
    return response_for_gateway(api.refuse(request, error))


app.exception_handler(Exception)(unexpected)


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_REST, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics(raise_on_empty_metrics=False)
def lambda_handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
