"""The ClientRequestToken of a submission: the same manifest and rule always give the same one."""

from __future__ import annotations

import uuid

# A fixed namespace, so tokens are stable across deployments and versions of batchops.
TOKEN_NAMESPACE = uuid.UUID("6f1c3c52-5a53-4a3c-9a3e-6261746368f5")


def client_request_token(bucket: str, key: str, etag: str, rule: str) -> str:
    """UUIDv5 of (manifest bucket, key, ETag without quotes, rule name)."""
    return str(uuid.uuid5(TOKEN_NAMESPACE, "\n".join((bucket, key, etag.strip().strip('"'), rule))))
