"""SQLite job store: the embedded default (`BATCHOPS_DB`, default `.batchops/batchops.db`).

A small pool of connections, each lent to one operation at a time (a server thread per HTTP
connection must not leave a connection behind), WAL journal, and every write inside
``BEGIN IMMEDIATE``, so writers from several threads and processes serialize on the database
lock and each check-then-write (token free? limit reached? version unchanged?) is atomic.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

from batchops.store.base import (
    ActiveLimitReachedError,
    ChunkClaim,
    ChunkRecord,
    DuplicateTokenError,
    FinalizeCheckpoint,
    JobPage,
    JobRecord,
    PrepareCheckpoint,
    Segment,
    StoreUnavailableError,
    UnknownJobError,
    VersionConflictError,
)

BUSY_TIMEOUT_SECONDS = 30.0
MAX_IDLE_CONNECTIONS = 8

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    appid TEXT NOT NULL,
    job_id TEXT NOT NULL,
    client_request_token TEXT NOT NULL,
    status TEXT NOT NULL,
    priority INTEGER NOT NULL,
    creation_time TEXT NOT NULL,
    active INTEGER NOT NULL,
    version INTEGER NOT NULL,
    body TEXT NOT NULL,
    PRIMARY KEY (appid, job_id),
    UNIQUE (appid, client_request_token)
);
CREATE INDEX IF NOT EXISTS jobs_newest_first ON jobs (appid, creation_time DESC, job_id DESC);
CREATE INDEX IF NOT EXISTS jobs_active ON jobs (appid, active);
CREATE INDEX IF NOT EXISTS jobs_by_id ON jobs (job_id);
CREATE TABLE IF NOT EXISTS chunks (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    first_ordinal INTEGER NOT NULL,
    task_count INTEGER NOT NULL,
    payload BLOB NOT NULL,
    next_offset INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until REAL NOT NULL DEFAULT 0,
    PRIMARY KEY (job_id, idx)
);
CREATE TABLE IF NOT EXISTS finalizers (
    job_id TEXT PRIMARY KEY,
    worker TEXT NOT NULL,
    until REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS prepare_checkpoints (
    job_id TEXT PRIMARY KEY,
    next_index INTEGER NOT NULL,
    next_ordinal INTEGER NOT NULL,
    position TEXT NOT NULL,
    done INTEGER NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS finalize_checkpoints (
    job_id TEXT PRIMARY KEY,
    step INTEGER NOT NULL,
    state TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS segments (
    job_id TEXT NOT NULL,
    idx INTEGER NOT NULL,
    start INTEGER NOT NULL,
    stop INTEGER NOT NULL,
    succeeded INTEGER NOT NULL,
    failed INTEGER NOT NULL,
    results BLOB NOT NULL,
    PRIMARY KEY (job_id, idx, start)
);
"""
_CHUNK_COLUMNS = "c.idx, c.first_ordinal, c.task_count, c.payload"
_COLUMNS = "appid, job_id, client_request_token, status, priority, creation_time, active, version, body"


class SQLiteJobStore:
    def __init__(self, path: str | Path, busy_timeout: float = BUSY_TIMEOUT_SECONDS) -> None:
        self._path = Path(path)
        self._busy_timeout = busy_timeout
        self._idle: list[sqlite3.Connection] = []
        self._lock = threading.Lock()
        with _unavailable_on_error():
            self._path.parent.mkdir(parents=True, exist_ok=True)
            with self._connection() as db:
                db.executescript(_SCHEMA)

    @property
    def path(self) -> Path:
        return self._path

    def insert_job(self, record: JobRecord, max_active: int) -> None:
        with self._write() as db:
            existing = db.execute(
                "SELECT job_id FROM jobs WHERE appid = ? AND client_request_token = ?",
                (record.appid, record.client_request_token),
            ).fetchone()
            if existing:
                raise DuplicateTokenError(existing[0])
            (active,) = db.execute(
                "SELECT COUNT(*) FROM jobs WHERE appid = ? AND active = 1", (record.appid,)
            ).fetchone()
            if record.active and active >= max_active:
                raise ActiveLimitReachedError(max_active)
            db.execute(f"INSERT INTO jobs ({_COLUMNS}) VALUES ({', '.join('?' * 9)})", _row(record))  # noqa: S608

    def get_job(self, appid: str, job_id: str, consistent: bool = True) -> JobRecord | None:
        # ``consistent`` changes nothing here: every SQLite read sees every committed write.
        with _unavailable_on_error(), self._connection() as db:
            row = db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE appid = ? AND job_id = ?",  # noqa: S608
                (appid, job_id),
            ).fetchone()
        return None if row is None else _record(row)

    def list_jobs(
        self, appid: str, statuses: frozenset[str] | None, limit: int, after_job_id: str | None
    ) -> JobPage:
        where = ["appid = ?"]
        params: list[object] = [appid]
        if statuses is not None:
            where.append(f"status IN ({', '.join('?' * len(statuses))})")
            params.extend(sorted(statuses))
        with _unavailable_on_error(), self._connection() as db:
            if after_job_id is not None:
                after = db.execute(
                    "SELECT creation_time FROM jobs WHERE appid = ? AND job_id = ?", (appid, after_job_id)
                ).fetchone()
                if after is None:
                    raise UnknownJobError(after_job_id)
                where.append("(creation_time, job_id) < (?, ?)")
                params.extend([after[0], after_job_id])
            rows = db.execute(
                f"SELECT {_COLUMNS} FROM jobs WHERE {' AND '.join(where)} "  # noqa: S608 - fixed fragments
                "ORDER BY creation_time DESC, job_id DESC LIMIT ?",
                (*params, limit + 1),
            ).fetchall()
        records = [_record(r) for r in rows[:limit]]
        more = len(rows) > limit
        return JobPage(records=records, next_after_job_id=records[-1].job_id if more and records else None)

    def replace_job(self, old: JobRecord, new: JobRecord) -> None:
        with self._write() as db:
            updated = db.execute(
                "UPDATE jobs SET status = ?, priority = ?, active = ?, version = ?, body = ? "
                "WHERE appid = ? AND job_id = ? AND version = ?",
                (
                    new.status,
                    new.priority,
                    int(new.active),
                    new.version,
                    new.body,
                    old.appid,
                    old.job_id,
                    old.version,
                ),
            ).rowcount
            if updated != 1:
                raise VersionConflictError(old.job_id)

    def delete_job(self, record: JobRecord) -> None:
        with self._write() as db:
            deleted = db.execute(
                "DELETE FROM jobs WHERE appid = ? AND job_id = ? AND version = ?",
                (record.appid, record.job_id, record.version),
            ).rowcount
            if deleted != 1:
                raise VersionConflictError(record.job_id)

    # --- chunk ledger ---------------------------------------------------------------------------

    def put_chunks(self, job_id: str, chunks: Sequence[ChunkRecord]) -> None:
        with self._write() as db:
            db.executemany(
                "INSERT INTO chunks (job_id, idx, first_ordinal, task_count, payload) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (job_id, idx) DO NOTHING",
                [(job_id, c.index, c.first_ordinal, c.task_count, c.payload) for c in chunks],
            )

    def claim_chunk(
        self, worker: str, now: float, lease_seconds: float, job_status: str = "Active"
    ) -> ChunkClaim | None:
        with self._write() as db:
            row = db.execute(
                f"SELECT j.appid, j.job_id, {_CHUNK_COLUMNS}, c.next_offset FROM chunks c "  # noqa: S608
                "JOIN jobs j ON j.job_id = c.job_id "
                "WHERE j.status = ? AND c.next_offset < c.task_count AND c.lease_until < ? "
                "ORDER BY j.priority DESC, j.creation_time, c.idx LIMIT 1",
                (job_status, now),
            ).fetchone()
            if row is None:
                return None
            appid, job_id, index, first, count, payload, start = row
            db.execute(
                "UPDATE chunks SET lease_owner = ?, lease_until = ? WHERE job_id = ? AND idx = ?",
                (worker, now + lease_seconds, job_id, index),
            )
        return ChunkClaim(appid, job_id, ChunkRecord(index, first, count, payload), start)

    def get_chunk(self, job_id: str, index: int) -> ChunkRecord | None:
        with _unavailable_on_error(), self._connection() as db:
            row = db.execute(
                "SELECT idx, first_ordinal, task_count, payload FROM chunks WHERE job_id = ? AND idx = ?",
                (job_id, index),
            ).fetchone()
        return None if row is None else ChunkRecord(*row)

    def prepare_checkpoint(self, job_id: str) -> PrepareCheckpoint | None:
        with _unavailable_on_error(), self._connection() as db:
            row = db.execute(
                "SELECT next_index, next_ordinal, position, done, updated FROM prepare_checkpoints "
                "WHERE job_id = ?",
                (job_id,),
            ).fetchone()
        if row is None:
            return None
        next_index, next_ordinal, position, done, updated = row
        return PrepareCheckpoint(next_index, next_ordinal, position, bool(done), updated)

    def advance_prepare(
        self, job_id: str, expected: PrepareCheckpoint | None, checkpoint: PrepareCheckpoint
    ) -> bool:
        values = (
            checkpoint.next_index,
            checkpoint.next_ordinal,
            checkpoint.position,
            int(checkpoint.done),
            checkpoint.updated,
        )
        with self._write() as db:
            if expected is None:
                return (
                    db.execute(
                        "INSERT INTO prepare_checkpoints "
                        "(next_index, next_ordinal, position, done, updated, job_id) "
                        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (job_id) DO NOTHING",
                        (*values, job_id),
                    ).rowcount
                    == 1
                )
            return (
                db.execute(
                    "UPDATE prepare_checkpoints SET next_index = ?, next_ordinal = ?, position = ?, "
                    "done = ?, updated = ? WHERE job_id = ? AND next_index = ? AND done = ?",
                    (*values, job_id, expected.next_index, int(expected.done)),
                ).rowcount
                == 1
            )

    def hold_chunk(self, job_id: str, index: int, worker: str, now: float, until: float) -> bool:
        with self._write() as db:
            return (
                db.execute(
                    "UPDATE chunks SET lease_owner = ?, lease_until = ? WHERE job_id = ? AND idx = ? "
                    "AND (lease_owner IS NULL OR lease_until < ? OR lease_owner = ?)",
                    (worker, until, job_id, index, now, worker),
                ).rowcount
                == 1
            )

    def claim_finalize(self, job_id: str, worker: str, now: float, until: float) -> bool:
        with self._write() as db:
            held = db.execute("SELECT worker, until FROM finalizers WHERE job_id = ?", (job_id,)).fetchone()
            if held is not None and held[0] != worker and held[1] >= now:
                return False
            db.execute(
                "INSERT INTO finalizers (job_id, worker, until) VALUES (?, ?, ?) "
                "ON CONFLICT (job_id) DO UPDATE SET worker = excluded.worker, until = excluded.until",
                (job_id, worker, until),
            )
            return True

    def finalize_claimed(self, job_id: str, now: float) -> bool:
        with _unavailable_on_error(), self._connection() as db:
            held = db.execute(
                "SELECT 1 FROM finalizers WHERE job_id = ? AND until >= ?", (job_id, now)
            ).fetchone()
        return held is not None

    def finalize_checkpoint(self, job_id: str) -> FinalizeCheckpoint | None:
        with _unavailable_on_error(), self._connection() as db:
            row = db.execute(
                "SELECT step, state, updated FROM finalize_checkpoints WHERE job_id = ?", (job_id,)
            ).fetchone()
        return None if row is None else FinalizeCheckpoint(int(row[0]), str(row[1]), float(row[2]))

    def advance_finalize(
        self, job_id: str, expected: FinalizeCheckpoint | None, checkpoint: FinalizeCheckpoint
    ) -> bool:
        values = (checkpoint.step, checkpoint.state, checkpoint.updated)
        with self._write() as db:
            if expected is None:
                # Only while a finalizer's claim stands: a job whose ledger was dropped keeps none.
                return (
                    db.execute(
                        "INSERT INTO finalize_checkpoints (step, state, updated, job_id) "
                        "SELECT ?, ?, ?, ? WHERE EXISTS (SELECT 1 FROM finalizers WHERE job_id = ?) "
                        "ON CONFLICT (job_id) DO NOTHING",
                        (*values, job_id, job_id),
                    ).rowcount
                    == 1
                )
            return (
                db.execute(
                    "UPDATE finalize_checkpoints SET step = ?, state = ?, updated = ? "
                    "WHERE job_id = ? AND step = ?",
                    (*values, job_id, expected.step),
                ).rowcount
                == 1
            )

    def renew_lease(self, job_id: str, index: int, worker: str, until: float) -> bool:
        with self._write() as db:
            return (
                db.execute(
                    "UPDATE chunks SET lease_until = ? WHERE job_id = ? AND idx = ? AND lease_owner = ?",
                    (until, job_id, index, worker),
                ).rowcount
                == 1
            )

    def release_chunk(self, job_id: str, index: int, worker: str) -> None:
        with self._write() as db:
            db.execute(
                "UPDATE chunks SET lease_owner = NULL, lease_until = 0 "
                "WHERE job_id = ? AND idx = ? AND lease_owner = ?",
                (job_id, index, worker),
            )

    def record_segment(self, job_id: str, segment: Segment) -> Segment | None:
        with self._write() as db:
            if (
                db.execute(
                    "SELECT 1 FROM chunks WHERE job_id = ? AND idx = ?", (job_id, segment.index)
                ).fetchone()
                is None
            ):
                return None
            existing = db.execute(
                "SELECT idx, start, stop, succeeded, failed, results FROM segments "
                "WHERE job_id = ? AND idx = ? AND start = ?",
                (job_id, segment.index, segment.start),
            ).fetchone()
            if existing is not None:
                return Segment(*existing)
            db.execute(
                "INSERT INTO segments (job_id, idx, start, stop, succeeded, failed, results) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (
                    job_id,
                    segment.index,
                    segment.start,
                    segment.end,
                    segment.succeeded,
                    segment.failed,
                    segment.results,
                ),
            )
            db.execute(
                "UPDATE chunks SET next_offset = MAX(next_offset, ?) WHERE job_id = ? AND idx = ?",
                (segment.end, job_id, segment.index),
            )
        return segment

    def segment_at(self, job_id: str, index: int, start: int) -> Segment | None:
        with _unavailable_on_error(), self._connection() as db:
            row = db.execute(
                "SELECT idx, start, stop, succeeded, failed, results FROM segments "
                "WHERE job_id = ? AND idx = ? AND start = ?",
                (job_id, index, start),
            ).fetchone()
        return None if row is None else Segment(*row)

    def progress(self, job_id: str) -> tuple[int, int]:
        with _unavailable_on_error(), self._connection() as db:
            succeeded, failed = db.execute(
                "SELECT COALESCE(SUM(succeeded), 0), COALESCE(SUM(failed), 0) FROM segments WHERE job_id = ?",
                (job_id,),
            ).fetchone()
        return int(succeeded), int(failed)

    def segments(self, job_id: str, start: tuple[int, int] = (0, 0)) -> Iterator[tuple[Segment, ChunkRecord]]:
        with _unavailable_on_error(), self._connection() as db:
            cursor = db.execute(
                f"SELECT s.idx, s.start, s.stop, s.succeeded, s.failed, s.results, {_CHUNK_COLUMNS} "  # noqa: S608
                "FROM segments s JOIN chunks c ON c.job_id = s.job_id AND c.idx = s.idx "
                "WHERE s.job_id = ? AND (s.idx, s.start) >= (?, ?) ORDER BY s.idx, s.start",
                (job_id, *start),
            )
            for row in cursor:
                yield Segment(*row[:6]), ChunkRecord(*row[6:])

    def busy_chunks(self, job_id: str, now: float) -> int:
        with _unavailable_on_error(), self._connection() as db:
            (count,) = db.execute(
                "SELECT COUNT(*) FROM chunks "
                "WHERE job_id = ? AND lease_owner IS NOT NULL AND lease_until >= ?",
                (job_id, now),
            ).fetchone()
        return int(count)

    def lease_owners(self, now: float) -> list[str]:
        """Workers holding a lease that has not expired."""
        with _unavailable_on_error(), self._connection() as db:
            rows = db.execute(
                "SELECT DISTINCT lease_owner FROM chunks WHERE lease_owner IS NOT NULL AND lease_until >= ?",
                (now,),
            ).fetchall()
        return [str(owner) for (owner,) in rows]

    def release_leases_of(self, owner: str) -> int:
        """Give back every lease ``owner`` holds (it is known to be gone); how many there were."""
        with self._write() as db:
            return db.execute(
                "UPDATE chunks SET lease_owner = NULL, lease_until = 0 WHERE lease_owner = ?", (owner,)
            ).rowcount

    def jobs_in_status(self, statuses: frozenset[str], limit: int) -> list[tuple[str, str]]:
        with _unavailable_on_error(), self._connection() as db:
            rows = db.execute(
                f"SELECT appid, job_id FROM jobs WHERE status IN ({', '.join('?' * len(statuses))}) "  # noqa: S608
                "ORDER BY priority DESC, creation_time LIMIT ?",
                (*sorted(statuses), limit),
            ).fetchall()
        return [(str(appid), str(job_id)) for appid, job_id in rows]

    def drop_chunks(self, job_id: str) -> None:
        with self._write() as db:
            db.execute("DELETE FROM segments WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM finalizers WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM prepare_checkpoints WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM finalize_checkpoints WHERE job_id = ?", (job_id,))
            db.execute("DELETE FROM chunks WHERE job_id = ?", (job_id,))

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for db in idle:
            db.close()

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """Lend a connection for one operation; keep a few idle ones, close the rest."""
        with self._lock:
            db = self._idle.pop() if self._idle else None
        if db is None:
            db = sqlite3.connect(
                self._path, timeout=self._busy_timeout, isolation_level=None, check_same_thread=False
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
        try:
            yield db
        finally:
            if db.in_transaction:
                db.close()  # a broken transaction: never lend it again
            else:
                with self._lock:
                    keep = len(self._idle) < MAX_IDLE_CONNECTIONS
                    if keep:
                        self._idle.append(db)
                if not keep:
                    db.close()

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        with _unavailable_on_error(), self._connection() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")


@contextmanager
def _unavailable_on_error() -> Iterator[None]:
    try:
        yield
    except (sqlite3.OperationalError, sqlite3.DatabaseError, OSError) as exc:
        raise StoreUnavailableError(f"SQLite job store: {exc}") from exc


def _row(record: JobRecord) -> tuple[object, ...]:
    return (
        record.appid,
        record.job_id,
        record.client_request_token,
        record.status,
        record.priority,
        _timestamp(record.creation_time),
        int(record.active),
        record.version,
        record.body,
    )


def _record(row: tuple[object, ...]) -> JobRecord:
    appid, job_id, token, status, priority, creation_time, active, version, body = row
    return JobRecord(
        appid=str(appid),
        job_id=str(job_id),
        client_request_token=str(token),
        status=str(status),
        priority=int(str(priority)),
        creation_time=datetime.fromisoformat(str(creation_time)),
        active=bool(active),
        version=int(str(version)),
        body=str(body),
    )


def _timestamp(moment: datetime) -> str:
    # Fixed width, so text order is time order.
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "+00:00"
