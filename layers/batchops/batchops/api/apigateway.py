"""API Gateway REST proxy events <-> the shared ApiRequest/ApiResponse."""

from __future__ import annotations

import base64

from aws_lambda_powertools.event_handler import Response
from aws_lambda_powertools.utilities.data_classes import APIGatewayProxyEvent

from batchops.api.routes import ApiRequest, ApiResponse


def request_from_event(event: APIGatewayProxyEvent) -> ApiRequest:
    raw = event.raw_event
    query: dict[str, list[str]] = {}
    for name, values in (raw.get("multiValueQueryStringParameters") or {}).items():
        query[name] = list(values or [])
    for name, value in (raw.get("queryStringParameters") or {}).items():
        query.setdefault(name, [value])
    headers = {name.lower(): value for name, value in (raw.get("headers") or {}).items()}
    body = event.body or ""
    return ApiRequest(
        method=event.http_method.upper(),
        path=event.path,
        query=query,
        headers=headers,
        body=base64.b64decode(body) if event.is_base64_encoded else body.encode("utf-8"),
    )


def response_for_gateway(response: ApiResponse) -> Response[str]:
    # Our bodies are UTF-8 XML: sent as text so API Gateway needs no binary media types.
    return Response(status_code=response.status, body=response.body.decode("utf-8"), headers=response.headers)
