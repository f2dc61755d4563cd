"""Object filters: which inventory rows a rule's job acts on (pure; no I/O).

The filters are the ones S3's manifest generator offers (``KeyNameConstraint``,
``ObjectSizeGreaterThanBytes``/``LessThanBytes``, ``CreatedAfter``/``Before``,
``MatchAnyStorageClass``) plus the two an "all versions" inventory needs (latest version only,
no delete markers). A record is kept when it passes **every** filter that is set; within one
kind of key filter (prefixes, suffixes, substrings) matching **any** listed entry is enough.

Rules, and why:

- **Boundaries are strict**, as S3's names say: ``sizeGreaterThan: 100`` drops a 100-byte
  object, ``modifiedBefore`` drops an object modified at exactly that instant.
- **A record without the data a filter needs does not pass it.** An inventory without a Size
  column (or a delete marker, whose Size is empty) fails every size filter; one without IsLatest
  fails ``latestVersionOnly``, one without IsDeleteMarker fails ``excludeDeleteMarkers`` (so with
  that filter a current-versions-only inventory gives an empty manifest: drop the filter there).
  Filters mostly pick objects to delete, copy or restore, so unknown must never mean "matches":
  an empty job is visible, acting on the wrong objects is not undoable.
- **Key filters see the decoded key** (what ``ManifestTask.key`` holds), case-sensitively;
  ``keyRegex`` uses ``re.search`` (anchor it with ``^`` or ``\\A`` to match from the start).
- **Storage classes** are compared upper-cased (S3 and COS spell them upper-case; a rule
  written ``standard_ia`` means the same thing).
- **Times**: ``modifiedAfter``/``modifiedBefore`` take an ISO-8601 time with a zone
  (``2026-01-01T00:00:00Z``) or an age ``<n>d``, ``<n>h``, ``<n>m`` (days, hours, **minutes**)
  meaning "now minus that". Ages resolve once, when ``matcher`` is built, so one manifest is
  filtered against one instant however long the inventory takes to read.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from batchops.manifest.inventory import InventoryRecord
from batchops.submit.errors import RuleError

__all__ = ["MAX_AGE", "ObjectFilters", "matcher", "parse_age", "parse_filters"]

MAX_AGE = timedelta(days=36_525)
"""The oldest relative age accepted (a century): beyond it ``now - age`` is a typo, not a filter."""

MAX_KEY_PART = 1024
"""Longest prefix, suffix or substring, as S3's KeyNameConstraint allows (and the longest key)."""

_AGE = re.compile(r"([0-9]{1,9})([dhm])")
_AGE_UNITS = {"d": "days", "h": "hours", "m": "minutes"}

Bound = datetime | timedelta | None
"""A time bound: an aware instant, an age before "now", or nothing."""


@dataclass(frozen=True)
class ObjectFilters:
    """The filters of one rule; an unset filter (empty, None or False) lets every record through.

    Build it with ``parse_filters`` from configuration: that names the bad field. Building it
    directly checks only what would otherwise fail in the middle of a manifest (a naive datetime
    cannot be compared with a record's aware time; a negative size or age is meaningless).
    """

    key_prefixes: tuple[str, ...] = ()
    key_suffixes: tuple[str, ...] = ()
    key_substrings: tuple[str, ...] = ()
    key_regex: str | None = None
    size_greater_than: int | None = None
    size_less_than: int | None = None
    modified_after: Bound = None
    modified_before: Bound = None
    storage_classes: frozenset[str] = frozenset()
    latest_version_only: bool = False
    exclude_delete_markers: bool = False

    def __post_init__(self) -> None:
        for name in ("size_greater_than", "size_less_than"):
            size = getattr(self, name)
            if size is not None and size < 0:
                raise ValueError(f"{name} must not be negative, not {size}")
        for name in ("modified_after", "modified_before"):
            bound = getattr(self, name)
            if isinstance(bound, datetime) and bound.utcoffset() is None:
                raise ValueError(f"{name} must be timezone-aware, not {bound!r}")
            if isinstance(bound, timedelta) and not timedelta(0) <= bound <= MAX_AGE:
                raise ValueError(f"{name} must be an age between 0 and {MAX_AGE.days} days, not {bound}")

    @property
    def is_empty(self) -> bool:
        """True when no filter is set: the job can use the inventory as its manifest directly."""
        return self == ObjectFilters()


def parse_age(text: str) -> timedelta:
    """``"30d"``, ``"12h"``, ``"90m"`` (minutes) as a timedelta; ValueError for anything else."""
    found = _AGE.fullmatch(text)
    if found is None:
        raise ValueError(f"{text!r} is not an age like 30d, 12h or 90m")
    age = timedelta(**{_AGE_UNITS[found.group(2)]: int(found.group(1))})
    if age > MAX_AGE:
        raise ValueError(f"{text!r} is more than {MAX_AGE.days} days")
    return age


# -- configuration ---------------------------------------------------------------------------

_KEYS = (
    "keyPrefixes",
    "keySuffixes",
    "keySubstrings",
    "keyRegex",
    "sizeGreaterThan",
    "sizeLessThan",
    "modifiedAfter",
    "modifiedBefore",
    "storageClasses",
    "latestVersionOnly",
    "excludeDeleteMarkers",
)


def parse_filters(rule: str, data: Mapping[str, Any]) -> ObjectFilters:
    """Read a rule's ``filters`` JSON object; a RuleError names ``filters.<key>`` and the value.

    Keys are camelCase exactly as listed in ``_KEYS``; an unknown key is an error rather than
    ignored, because a misspelt filter silently ignored would widen the job to every object.
    """
    if not isinstance(data, Mapping):
        raise RuleError(rule, "filters", data, "must be a JSON object")
    unknown = [name for name in data if name not in _KEYS]
    if unknown:
        name = unknown[0]
        raise RuleError(rule, f"filters.{name}", data[name], f"unknown filter; use one of {', '.join(_KEYS)}")

    def field(name: str) -> tuple[str, Any]:
        return f"filters.{name}", data.get(name)

    greater = _size(rule, *field("sizeGreaterThan"))
    less = _size(rule, *field("sizeLessThan"))
    if greater is not None and less is not None and less - greater < 2:
        raise RuleError(rule, "filters.sizeLessThan", less, f"no whole size is both > {greater} and < {less}")
    after = _bound(rule, *field("modifiedAfter"))
    before = _bound(rule, *field("modifiedBefore"))
    _check_window(rule, after, before, data.get("modifiedBefore"))
    return ObjectFilters(
        key_prefixes=_key_parts(rule, *field("keyPrefixes")),
        key_suffixes=_key_parts(rule, *field("keySuffixes")),
        key_substrings=_key_parts(rule, *field("keySubstrings")),
        key_regex=_regex(rule, *field("keyRegex")),
        size_greater_than=greater,
        size_less_than=less,
        modified_after=after,
        modified_before=before,
        storage_classes=_storage_classes(rule, *field("storageClasses")),
        latest_version_only=_flag(rule, *field("latestVersionOnly")),
        exclude_delete_markers=_flag(rule, *field("excludeDeleteMarkers")),
    )


def _strings(rule: str, name: str, value: Any) -> list[str]:
    """A non-empty JSON list of non-empty strings: an empty list would match nothing at all."""
    if not isinstance(value, list) or not value:
        raise RuleError(rule, name, value, "must be a non-empty list of strings")
    for item in value:
        if not isinstance(item, str) or not item:
            raise RuleError(rule, name, value, f"every entry must be a non-empty string, not {item!r}")
    return value


def _key_parts(rule: str, name: str, value: Any) -> tuple[str, ...]:
    if value is None:
        return ()
    parts = _strings(rule, name, value)
    for part in parts:
        if len(part) > MAX_KEY_PART:
            raise RuleError(rule, name, value, f"entries are at most {MAX_KEY_PART} characters long")
    return tuple(dict.fromkeys(parts))


def _regex(rule: str, name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise RuleError(rule, name, value, "must be a non-empty string (a Python regular expression)")
    try:
        re.compile(value)
    except re.error as exc:
        raise RuleError(rule, name, value, f"is not a valid regular expression: {exc}") from exc
    return value


def _size(rule: str, name: str, value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise RuleError(rule, name, value, "must be a whole number of bytes")
    if value < 0:
        raise RuleError(rule, name, value, "must not be negative")
    return value


def _bound(rule: str, name: str, value: Any) -> Bound:
    if value is None:
        return None
    if not isinstance(value, str) or not value.strip():
        raise RuleError(rule, name, value, "must be an ISO-8601 time with a zone, or an age like 30d")
    text = value.strip()
    if text[-1:].isalpha() and text[:-1].isdigit():
        try:
            return parse_age(text)
        except ValueError as exc:
            raise RuleError(rule, name, value, f"is not a usable age: {exc}") from exc
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise RuleError(
            rule, name, value, "is neither an ISO-8601 time (2026-01-01T00:00:00Z) nor an age like 30d"
        ) from exc
    if moment.utcoffset() is None:
        raise RuleError(rule, name, value, "needs a time zone (end it with Z for UTC)")
    return moment.astimezone(UTC)


def _check_window(rule: str, after: Bound, before: Bound, raw_before: Any) -> None:
    """Refuse a window no time can fall into, when that is known without a clock."""
    empty = False
    if isinstance(after, datetime) and isinstance(before, datetime):
        empty = after >= before
    elif isinstance(after, timedelta) and isinstance(before, timedelta):
        empty = after <= before  # now - after >= now - before
    if empty:
        raise RuleError(rule, "filters.modifiedBefore", raw_before, "leaves no time after modifiedAfter")


def _storage_classes(rule: str, name: str, value: Any) -> frozenset[str]:
    if value is None:
        return frozenset()
    names = _strings(rule, name, value)
    if any(not item.strip() for item in names):
        raise RuleError(rule, name, value, "a storage class name must not be blank")
    return frozenset(item.strip().upper() for item in names)


def _flag(rule: str, name: str, value: Any) -> bool:
    if value is None:
        return False
    if not isinstance(value, bool):
        raise RuleError(rule, name, value, "must be true or false")
    return value


# -- matching --------------------------------------------------------------------------------

Check = Callable[[InventoryRecord], bool]


def matcher(filters: ObjectFilters, now: datetime) -> Check:
    """A predicate keeping the records that pass every set filter, with ages resolved against ``now``.

    ``now`` must be timezone-aware. Only the filters that are set are checked per record (a
    100k-row inventory calls this 100k times).
    """
    if now.utcoffset() is None:
        raise ValueError(f"now must be timezone-aware, not {now!r}")
    checks = list(_checks(filters, now.astimezone(UTC)))
    if not checks:
        return lambda record: True
    if len(checks) == 1:
        return checks[0]
    return lambda record: all(check(record) for check in checks)


def _checks(filters: ObjectFilters, now: datetime) -> Iterable[Check]:
    if filters.key_prefixes:
        prefixes = filters.key_prefixes
        yield lambda record: record.task.key.startswith(prefixes)
    if filters.key_suffixes:
        suffixes = filters.key_suffixes
        yield lambda record: record.task.key.endswith(suffixes)
    if filters.key_substrings:
        substrings = filters.key_substrings
        yield lambda record: any(part in record.task.key for part in substrings)
    if filters.key_regex is not None:
        search = re.compile(filters.key_regex).search
        yield lambda record: search(record.task.key) is not None
    if filters.size_greater_than is not None:
        floor = filters.size_greater_than
        yield lambda record: record.size is not None and record.size > floor
    if filters.size_less_than is not None:
        ceiling = filters.size_less_than
        yield lambda record: record.size is not None and record.size < ceiling
    if filters.modified_after is not None:
        after = _instant(filters.modified_after, now)
        yield lambda record: record.last_modified is not None and record.last_modified > after
    if filters.modified_before is not None:
        before = _instant(filters.modified_before, now)
        yield lambda record: record.last_modified is not None and record.last_modified < before
    if filters.storage_classes:
        classes = frozenset(name.upper() for name in filters.storage_classes)
        yield lambda record: record.storage_class is not None and record.storage_class.upper() in classes
    if filters.latest_version_only:
        yield lambda record: record.is_latest is True
    if filters.exclude_delete_markers:
        yield lambda record: record.is_delete_marker is False


def _instant(bound: datetime | timedelta, now: datetime) -> datetime:
    return now - bound if isinstance(bound, timedelta) else bound
