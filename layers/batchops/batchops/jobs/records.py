"""Job <-> JobRecord: how the job layer hands a job to a store and reads it back.

The body is JSON built from the dataclass tree by its type hints, so adding a field to the model
needs no change here. Operations, a union of dataclasses, are written as ``{<COS name>: {...}}``.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import types
import typing
from datetime import datetime
from enum import Enum
from typing import Any, cast

from batchops.jobs.model import Job
from batchops.jobs.status import is_terminal
from batchops.store.base import JobRecord

# Fields the store indexes; they live in the record's columns, not in its body.
_INDEXED = frozenset({"job_id", "appid", "status", "creation_time", "priority"})


def job_to_record(job: Job, version: int) -> JobRecord:
    body = {f.name: _encode(getattr(job, f.name)) for f in dataclasses.fields(job) if f.name not in _INDEXED}
    return JobRecord(
        appid=job.appid,
        job_id=job.job_id,
        client_request_token=job.spec.client_request_token,
        status=job.status.value,
        priority=job.priority,
        creation_time=job.creation_time,
        active=not is_terminal(job.status),
        version=version,
        body=json.dumps(body, separators=(",", ":"), ensure_ascii=False),
    )


def record_to_job(record: JobRecord) -> Job:
    data: dict[str, Any] = json.loads(record.body)
    data.update(
        job_id=record.job_id,
        appid=record.appid,
        status=record.status,
        creation_time=record.creation_time.isoformat(),
        priority=record.priority,
    )
    return cast("Job", _decode(Job, data))


def _encode(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        encoded = {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value)}
        name = getattr(value, "name", None)
        # Union members carry their wire name as a class attribute, not a field.
        if isinstance(name, Enum) and "name" not in encoded:
            return {name.value: encoded}
        return encoded
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, tuple):
        return [_encode(v) for v in value]
    return value


@functools.cache
def _type_hints(tp: Any) -> dict[str, Any]:
    """A dataclass's resolved field types: resolving them is most of a job record's decoding,
    and a running chunk reads its job several times."""
    return typing.get_type_hints(tp)


def _decode(tp: Any, data: Any) -> Any:  # noqa: PLR0911 - one branch per kind of type
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        members = [a for a in typing.get_args(tp) if a is not type(None)]
        if data is None:
            return None
        if len(members) == 1:
            return _decode(members[0], data)
        ((wire_name, payload),) = data.items()
        for member in members:
            if getattr(member, "name", None) == wire_name:
                return _decode(member, payload)
        raise ValueError(f"unknown union member {wire_name!r}")
    if origin is tuple:
        (item_type, _ellipsis) = typing.get_args(tp)
        return tuple(_decode(item_type, v) for v in data)
    if dataclasses.is_dataclass(tp):
        hints = _type_hints(cast("Any", tp))
        kwargs = {
            f.name: _decode(hints[f.name], data[f.name]) for f in dataclasses.fields(tp) if f.name in data
        }
        return cast("Any", tp)(**kwargs)
    if isinstance(tp, type) and issubclass(tp, Enum):
        return tp(data)
    if tp is datetime:
        return datetime.fromisoformat(data)
    return cast("Any", data)
