"""Trigger events -> what landed: S3 notifications, EventBridge "Object Created", the Tencent SCF
COS trigger, and schedules (EventBridge Schedule, SCF Timer) that ask for a sweep.

Keys arrive URL-form-encoded in S3 notifications and EventBridge events (a space is ``+``), so
they are decoded once with ``unquote_plus``, as Powertools does. The SCF COS trigger gives the
key as ``/<appid>/<bucket>/<key>``, plain.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote_plus


@dataclass(frozen=True)
class LandedObject:
    bucket: str
    key: str
    etag: str | None = None
    version_id: str | None = None
    appid: str | None = None


@dataclass(frozen=True)
class Sweep:
    """A schedule fired: look for inventories whose notification was lost."""


@dataclass(frozen=True)
class Ignored:
    reason: str


Trigger = list[LandedObject] | Sweep | Ignored


class EventError(ValueError):
    """The event is none of the shapes batchops is triggered by."""


def parse_event(event: Mapping[str, Any]) -> Trigger:
    if event.get("Event") == "s3:TestEvent":
        return Ignored("s3:TestEvent")
    if event.get("detail-type") == "Scheduled Event" or event.get("Type") == "Timer":
        return Sweep()
    if event.get("detail-type") == "Object Created":
        return [_eventbridge(event)]
    records = event.get("Records")
    if isinstance(records, list) and records:
        landed = []
        for record in records:
            if not isinstance(record, Mapping):
                raise EventError("a record is not an object")
            if "s3" in record:
                if str(record.get("eventName", "ObjectCreated")).startswith("ObjectCreated"):
                    landed.append(_s3(record))
            elif "cos" in record:
                if str((record.get("event") or {}).get("eventName", "cos:ObjectCreated")).startswith(
                    "cos:ObjectCreated"
                ):
                    landed.append(_cos(record))
            else:
                raise EventError(f"a record from {record.get('eventSource')!r} is not an object notification")
        # Deletions (a lifecycle rule expiring old inventories) land nothing.
        return landed if landed else Ignored("no object was created")
    raise EventError("not an S3, EventBridge, COS or schedule event")


def _s3(record: Mapping[str, Any]) -> LandedObject:
    try:
        s3 = record["s3"]
        obj = s3["object"]
        return LandedObject(
            bucket=str(s3["bucket"]["name"]),
            key=unquote_plus(str(obj["key"])),
            etag=obj.get("eTag") or obj.get("etag"),
            version_id=obj.get("versionId") or None,
        )
    except (KeyError, TypeError) as exc:
        raise EventError(f"S3 notification without {exc}") from exc


def _eventbridge(event: Mapping[str, Any]) -> LandedObject:
    try:
        detail = event["detail"]
        obj = detail["object"]
        return LandedObject(
            bucket=str(detail["bucket"]["name"]),
            key=unquote_plus(str(obj["key"])),
            etag=obj.get("etag") or obj.get("eTag"),
            version_id=obj.get("version-id") or None,
        )
    except (KeyError, TypeError) as exc:
        raise EventError(f"EventBridge Object Created event without {exc}") from exc


def _cos(record: Mapping[str, Any]) -> LandedObject:
    try:
        cos = record["cos"]
        appid = str(cos["cosBucket"]["appid"])
        name = str(cos["cosBucket"]["name"])
        path = str(cos["cosObject"]["key"])
        meta = cos["cosObject"].get("meta") or {}
    except (KeyError, TypeError) as exc:
        raise EventError(f"COS trigger record without {exc}") from exc
    prefix = f"/{appid}/{name}/"
    if not path.startswith(prefix):
        raise EventError(f"COS object key {path!r} does not start with {prefix!r}")
    # COS buckets are addressed by their full name, <name>-<appid>.
    bucket = name if name.endswith(f"-{appid}") else f"{name}-{appid}"
    return LandedObject(
        bucket=bucket,
        key=path[len(prefix) :],
        etag=meta.get("ETag") or meta.get("x-cos-meta-etag") or None,
        version_id=cos["cosObject"].get("vid") or None,
        appid=appid,
    )
