"""botocore shapes S3 requests with event handlers; the lean client has to apply the same ones.

This pins the handlers botocore registers for the lean operations to what the lean client does
with each: a botocore release that adds one fails here, so somebody looks at it.
"""

from __future__ import annotations

import boto3
import pytest

from batchops.s3fast.client import LEAN_OPERATIONS, PARAMETER_HANDLERS

# What the lean client does for the handlers it does not call from PARAMETER_HANDLERS.
EQUIVALENT = {
    "validate_bucket_name": "the same pattern decides which buckets the lean path takes",
    "remove_bucket_from_url_paths_from_model": "FastSerializer strips /{Bucket} from the URI",
    "escape_xml_payload": "serialize.delete_body escapes CR and LF the same way",
    "add_recursion_detection_header": "called by the lean client on every request",
}
# Handlers that change nothing in these operations' requests.
NO_EFFECT = {
    "S3RegionRedirectorv2.annotate_request_context": "redirects are left to boto3",
    "ClientCreator._inject_s3_input_parameters": "context bookkeeping only",
    "generate_idempotent_uuid": "no idempotency token in these operations",
    "_handle_request_validation_mode_member": "response checksums: GetObject only",
    "add_expect_header": "file-like bodies only",
    "S3ExpressIdentityResolver.apply_signing_cache_key": "S3 Express buckets are left to boto3",
    "inject_api_version_header_if_needed": "endpoint-discovery operations only",
}


@pytest.mark.parametrize("operation", sorted(LEAN_OPERATIONS.values()))
def test_every_request_shaping_handler_is_accounted_for(operation: str) -> None:
    emitter = boto3.client("s3", region_name="us-east-1").meta.events._emitter  # type: ignore[attr-defined]
    registered = {
        getattr(handler, "__qualname__", repr(handler))
        for event in ("before-parameter-build", "before-call", "provide-client-params")
        for handler in emitter._handlers.prefix_search(f"{event}.s3.{operation}")
    }
    applied = {handler.__qualname__ for handler in PARAMETER_HANDLERS[operation]}
    assert registered - applied - EQUIVALENT.keys() - NO_EFFECT.keys() == set()
    assert applied <= registered
