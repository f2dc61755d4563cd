"""The three phases of a job, the same whichever dispatcher runs them.

- ``prepare``: New -> Preparing; read the manifest (its ETag pinned), cut it into chunks in the
  ledger, with a checkpoint (the next chunk and where its row starts) every ``CHUNKS_PER_WRITE``
  chunks, so that a deployed prepare stops before its Lambda deadline and the next message goes on
  from there; once the last chunk is planned -> Suspended (confirmation required) or Ready; a
  manifest that cannot be read fails the job with a FailureReasons entry saying why.
- ``run_chunk``: run a leased chunk's tasks from where its segments stop; record the outcomes as
  one segment (exactly once, whatever the redelivery); then ``settle`` the job: Completing when
  every task is accounted for, Failing past the failure threshold. Given ``following`` (the
  embedded worker's next lease), the next chunks start in the same window as one ends.
- ``finalize``: write the report from the segments, then Complete, Failed or Cancelled. A report
  too long for one invocation is written in steps: past its deadline a finalize completes the
  results files it has open, stores a checkpoint (the next segment, the counts so far, the files
  written) and hands on; the next finalize goes on from there.

Every phase may run again after a crash or a duplicate delivery: prepare stores the same chunks
and advances its checkpoint only from the one it started at (a duplicate preparer that loses that
race stops), a segment that already stands wins over a rerun, the report overwrites its own keys
and its checkpoint moves only from the one its step started at, and every status change is
compare-and-set.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Callable, Generator
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING

from batchops.engine.finalized import Finalized
from batchops.engine.job_clients import JobClients, JobRoleError, LeanClients, SharedClients
from batchops.engine.outcomes import encode_outcomes, write_report_rows
from batchops.engine.settings import EngineSettings
from batchops.engine.tasks import batch_outcomes, run_batches, run_tasks, task_batch
from batchops.engine.throttle import PrefixThrottle
from batchops.jobs.errors import JobStateError, JobStoreUnavailableError, NoSuchJobError
from batchops.jobs.model import Job, JobFailure, ManifestFormat
from batchops.jobs.service import JobService
from batchops.jobs.status import JobStatus, is_terminal
from batchops.manifest.chunks import decode_chunk, plan_blocks
from batchops.manifest.csv_manifest import iter_csv_blocks
from batchops.manifest.inventory import (
    iter_inventory_blocks,
    parse_inventory_manifest,
)
from batchops.manifest.position import START, Position, decode_position, encode_position
from batchops.manifest.resources import parse_bucket, parse_object
from batchops.manifest.row_blocks import RowBlock
from batchops.manifest.source import inventory_file_opener, open_manifest, read_small_object
from batchops.manifest.tasks import ManifestError
from batchops.report.checkpoint import (
    START as REPORT_START,
)
from batchops.report.checkpoint import (
    PendingUpload,
    ReportCheckpoint,
    decode_report_checkpoint,
    encode_report_checkpoint,
)
from batchops.report.writer import ReportAbandonedError, ReportWriter, results_key
from batchops.store.base import (
    ChunkClaim,
    ChunkLedger,
    ChunkRecord,
    FinalizeCheckpoint,
    PrepareCheckpoint,
    Segment,
    StoreError,
)

if TYPE_CHECKING:
    from mypy_boto3_s3.client import S3Client

    from batchops.ops.outcome import TaskOutcome
    from batchops.s3fast.multiplex import Batch

log = logging.getLogger(__name__)

CHUNKS_PER_WRITE = 64
_FINAL = {
    JobStatus.COMPLETING: JobStatus.COMPLETE,
    JobStatus.FAILING: JobStatus.FAILED,
    JobStatus.CANCELLING: JobStatus.CANCELLED,
}
_CSV_FORMATS = frozenset({ManifestFormat.CSV, ManifestFormat.S3_CSV})


class Engine:
    def __init__(
        self,
        service: JobService,
        ledger: ChunkLedger,
        s3: S3Client,
        settings: EngineSettings,
        *,
        clock: Callable[[], float] = time.time,
        clients: JobClients | None = None,
    ) -> None:
        self.service = service
        self.ledger = ledger
        self.s3 = s3
        self.settings = settings
        self.clock = clock
        # Deployed, each job's calls go through a client acting as the job's own role.
        self.clients: JobClients = clients or SharedClients(s3)
        if settings.s3_client == "lean":
            self.clients = LeanClients(self.clients)
        self._pool = ThreadPoolExecutor(max_workers=settings.workers * settings.task_concurrency)
        # One per process: a prefix S3 throttles slows down for every chunk running here.
        self._throttle = PrefixThrottle(
            settings.workers * settings.task_concurrency, pause_seconds=settings.slowdown_pause_seconds
        )

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    # --- prepare --------------------------------------------------------------------------------

    def prepare(
        self, appid: str, job_id: str, last_attempt: bool = False, deadline: float | None = None
    ) -> bool:
        """Plan a New (or Preparing) job from its checkpoint on; True if more is left to plan.

        Planning stops at the manifest's end, or with a checkpoint soon after ``deadline`` (clock
        time; None: never), for another call to go on from. The job stays Preparing until the
        last chunk is planned: only then are its total and chunk count known.

        A transient manifest error (throttling, 5xx, a dropped connection) propagates so the caller
        tries again later, unless this is the ``last_attempt``: then it fails the job like any other.
        """
        job = self.service.get(appid, job_id)
        if job.status is JobStatus.NEW:
            try:
                job = self.service.transition(appid, job_id, JobStatus.PREPARING)
            except JobStateError:
                return False  # another worker took it, or it was cancelled
        elif job.status is not JobStatus.PREPARING:
            return False
        checkpoint = self.ledger.prepare_checkpoint(job_id)
        if checkpoint is None or not checkpoint.done:
            checkpoint = self._plan_or_fail(job, checkpoint, deadline, last_attempt)
            if checkpoint is None or not checkpoint.done:
                return checkpoint is not None
        total, chunks = checkpoint.next_ordinal, checkpoint.next_index
        target = JobStatus.SUSPENDED if job.spec.confirmation_required else JobStatus.READY
        reason = "Waiting for confirmation" if target is JobStatus.SUSPENDED else "Prepared"
        try:
            self.service.transition(
                appid,
                job_id,
                target,
                reason=f"{reason}: {total} tasks",
                total_tasks=total,
                chunk_count=chunks,
            )
        except JobStateError:
            # Another preparer finished first (its chunks are these same chunks), or the job was
            # cancelled meanwhile: only then are the chunks garbage.
            self._drop_if_cancelled(appid, job_id)
        return False

    def _plan_or_fail(
        self, job: Job, checkpoint: PrepareCheckpoint | None, deadline: float | None, last_attempt: bool
    ) -> PrepareCheckpoint | None:
        """Plan on from ``checkpoint``; the checkpoint reached, or None when this preparer is done
        with the job: it failed the job, or another one overtook it."""
        appid, job_id = job.appid, job.job_id
        try:
            reached = self._plan(job, checkpoint, deadline)
        except JobRoleError as exc:
            self._fail_preparing(
                appid, job_id, "The job's role could not be assumed", "JobRoleNotAssumable", exc
            )
            return None
        except ManifestError as exc:
            if exc.transient and not last_attempt:
                raise
            log.info("job %s: manifest refused: %s", job_id, exc)
            self._fail_preparing(appid, job_id, "Manifest could not be read", exc.code, exc)
            return None
        if reached is None:
            # Another preparer (a duplicate message) moved the checkpoint first and goes on
            # alone; or the job ended and its ledger was dropped under this one.
            self._drop_if_cancelled(appid, job_id)
        return reached

    def _drop_if_cancelled(self, appid: str, job_id: str) -> None:
        if self.service.get(appid, job_id).status is JobStatus.CANCELLED:
            self.ledger.drop_chunks(job_id)

    def _fail_preparing(self, appid: str, job_id: str, reason: str, code: str, exc: Exception) -> None:
        self.ledger.drop_chunks(job_id)
        with contextlib.suppress(JobStateError):
            self.service.transition(
                appid, job_id, JobStatus.FAILED, reason=reason, failure=JobFailure(code, str(exc)[:256])
            )

    def _plan(
        self, job: Job, start: PrepareCheckpoint | None, deadline: float | None
    ) -> PrepareCheckpoint | None:
        """Store the job's chunks from ``start`` on; the checkpoint reached, or None if another
        preparer moved the checkpoint first.

        Chunks are written ``CHUNKS_PER_WRITE`` at a time, each write followed by a checkpoint
        conditioned on the previous one, so a preparer that dies between the two leaves chunks
        its successor writes again, identically. Past ``deadline`` it stops after the next chunk.
        """
        stored = start
        position = START if start is None else decode_position(start.position)
        batch: list[ChunkRecord] = []
        blocks = self._manifest_blocks(job, position)
        with contextlib.closing(blocks):  # the manifest's stream, when planning stops early
            planned = plan_blocks(
                blocks,
                max_tasks=self.settings.chunk_max_tasks,
                first_index=0 if start is None else start.next_index,
                first_ordinal=0 if start is None else start.next_ordinal,
            )
            for chunk, resume in planned:
                batch.append(ChunkRecord(chunk.index, chunk.first_ordinal, chunk.count, chunk.data))
                late = deadline is not None and self.clock() >= deadline
                if resume is not None and not late and len(batch) < CHUNKS_PER_WRITE:
                    continue
                self.ledger.put_chunks(job.job_id, batch)
                batch = []
                reached = PrepareCheckpoint(
                    next_index=chunk.index + 1,
                    next_ordinal=chunk.first_ordinal + chunk.count,
                    position="" if resume is None else encode_position(resume.position()),
                    done=resume is None,
                    updated=self.clock(),
                )
                if not self.ledger.advance_prepare(job.job_id, stored, reached):
                    return None
                stored = reached
                if late:
                    return stored
        if stored is not None and stored.done:
            return stored
        # The manifest had no (more) tasks: nothing was planned after ``stored``.
        empty = PrepareCheckpoint(
            next_index=0 if stored is None else stored.next_index,
            next_ordinal=0 if stored is None else stored.next_ordinal,
            position="",
            done=True,
            updated=self.clock(),
        )
        return empty if self.ledger.advance_prepare(job.job_id, stored, empty) else None

    def _manifest_blocks(self, job: Job, start: Position) -> Generator[RowBlock, None, None]:
        """The job's manifest tasks from ``start`` on, a block of rows at a time."""
        s3 = self.clients.s3_for(job)
        location = job.spec.manifest.location
        where = parse_object(location.object_arn)
        assert where.key is not None
        if job.spec.manifest.spec.format in _CSV_FORMATS:
            with open_manifest(
                s3, where.bucket, where.key, location.etag, location.object_version_id, first_byte=start[1]
            ) as body:
                yield from iter_csv_blocks(body, [f.value for f in job.spec.manifest.spec.fields], start)
            return
        inventory = parse_inventory_manifest(
            read_small_object(s3, where.bucket, where.key, location.etag, location.object_version_id)
        )
        yield from iter_inventory_blocks(
            inventory, inventory_file_opener(s3, inventory.destination_bucket), start
        )

    # --- run --------------------------------------------------------------------------------------

    def is_active(self, appid: str, job_id: str) -> bool:
        """Whether the job is Active, read cheaply (eventually consistent) when it is, which is
        almost always, and read again consistently before answering no."""
        if self.service.get(appid, job_id, consistent=False).status is JobStatus.ACTIVE:
            return True
        return self.service.get(appid, job_id).status is JobStatus.ACTIVE

    def activate(self, appid: str, job_id: str) -> None:
        with contextlib.suppress(JobStateError, NoSuchJobError):
            self.service.transition(appid, job_id, JobStatus.ACTIVE, reason="Running")

    def run_chunk(
        self,
        claim: ChunkClaim,
        worker: str,
        deadline: float | None = None,
        *,
        following: Callable[[], ChunkClaim | None] | None = None,
    ) -> Segment | None:
        """Run a leased chunk from ``claim.start``; return the segment that stands for that start.

        With ``following``, the worker's next leased chunk (None: no more now), the chunks it
        gives run on after this one, each asked for as the one before starts its last task: their
        copies and restores share one window of ``task_concurrency`` in flight, which stays full
        across the chunks' ends instead of draining at each. Each chunk is recorded, released and
        its job settled as its own last task ends, just as alone."""
        run = self._begin_chunk(claim, worker, deadline)
        if run is None:
            return None
        if following is None:
            return self._run_alone(run)
        return self._run_on(run, worker, deadline, following)

    def _begin_chunk(self, claim: ChunkClaim, worker: str, deadline: float | None) -> _ChunkRun | None:
        """The chunk's run, its lease kept alive from now on; None (the chunk released) when its
        job is not Active. A failure to begin releases the chunk too."""
        try:
            job = self.service.get(claim.appid, claim.job_id)
            s3 = self.clients.s3_for(job) if job.status is JobStatus.ACTIVE else None
        except BaseException:
            self.ledger.release_chunk(claim.job_id, claim.chunk.index, worker)
            raise
        if s3 is None:
            self.ledger.release_chunk(claim.job_id, claim.chunk.index, worker)
            return None
        return _ChunkRun(self, claim, worker, job, s3, deadline)

    def _run_alone(self, run: _ChunkRun) -> Segment | None:
        try:
            standing = run.record(
                run_tasks(
                    run.s3,
                    run.job.spec.operation,
                    run.tasks,
                    settings=self.settings,
                    pool=self._pool,
                    should_stop=run.stop,
                    throttle=self._throttle,
                )
            )
        finally:
            run.close()
        self.settle(run.claim.appid, run.claim.job_id)
        return standing

    def _run_on(
        self,
        first: _ChunkRun,
        worker: str,
        deadline: float | None,
        following: Callable[[], ChunkClaim | None],
    ) -> Segment | None:
        """``first``, then the chunks ``following`` leases, multiplexed in one window; a chunk that
        does not run multiplexed (deletes, a boto3 client) runs alone, after the window is done.
        The first error (recording a chunk, settling its job) ends the leasing; it is raised once
        the chunks running are through, every chunk begun closed whatever happens."""
        begun = [first]
        runs: dict[int, _ChunkRun] = {}
        errors: list[Exception] = []
        standing: list[Segment | None] = []
        after: list[_ChunkRun] = []

        def batch_of(run: _ChunkRun) -> Batch | None:
            batch = task_batch(
                run.s3,
                run.job.spec.operation,
                run.tasks,
                settings=self.settings,
                should_stop=run.stop,
                throttle=self._throttle,
            )
            if batch is not None:
                runs[id(batch)] = run
            return batch

        def next_batch() -> Batch | None:
            while not after and not errors and (claim := following()) is not None:
                run = self._begin_chunk(claim, worker, deadline)
                if run is None:
                    continue
                begun.append(run)
                batch = batch_of(run)
                if batch is not None:
                    return batch
                after.append(run)
            return None

        def finished(batch: Batch) -> None:
            run = runs[id(batch)]
            try:
                try:
                    segment = run.record(batch_outcomes(batch))
                finally:
                    run.close()
                if run is first:
                    standing.append(segment)
                self.settle(run.claim.appid, run.claim.job_id)
            except Exception as exc:  # raised once the chunks running with it are through
                errors.append(exc)

        try:
            batch = batch_of(first)
            if batch is None:
                return self._run_alone(first)
            run_batches(
                batch, settings=self.settings, pool=self._pool, following=next_batch, finished=finished
            )
            for run in after:
                if not errors:
                    self._run_alone(run)
        finally:
            for run in begun:
                try:
                    run.close()  # those an error left unrecorded: their leases go back now
                except Exception:
                    log.warning("chunk %s/%s: lease not released", run.claim.job_id, run.claim.chunk.index)
        if errors:
            raise errors[0]
        return standing[0] if standing else None

    def settle(self, appid: str, job_id: str) -> None:
        """Move an Active job on when its counts say so: all tasks done, or too many failed."""
        job = self.service.get(appid, job_id)
        if job.status is not JobStatus.ACTIVE:
            return
        succeeded, failed = self.ledger.progress(job_id)
        done = succeeded + failed
        with contextlib.suppress(JobStateError):
            if (
                done >= self.settings.failure_threshold_tasks
                and failed > done * self.settings.failure_threshold_rate
            ):
                rate = f"{failed} of {done} tasks failed"
                self.service.transition(
                    appid,
                    job_id,
                    JobStatus.FAILING,
                    reason=f"Failure rate over {self.settings.failure_threshold_rate:.0%}",
                    failure=JobFailure("TaskFailureRateExceeded", f"{rate}; the job stopped"),
                )
            elif done >= job.progress.total:
                self.service.transition(appid, job_id, JobStatus.COMPLETING, reason="Writing the report")

    # --- finalize ---------------------------------------------------------------------------------

    def finalize(self, appid: str, job_id: str, worker: str, deadline: float | None = None) -> Finalized:
        """Write the report of a Completing, Failing or Cancelling job and end it.

        Only one finalizer works on a job at a time: BUSY if another one holds it, or if this one
        lost its claim while writing (it stopped before writing over the other's report). Past
        ``deadline`` (clock time; None: never) it stops at the next segment with a checkpoint in
        the ledger and answers MORE, for another call to go on from. A job that ended without
        finalizing (cancelled before it ran) just has its ledger dropped.
        """
        job = self.service.get(appid, job_id)
        final = _FINAL.get(job.status)
        if final is None:
            if job.status in (JobStatus.COMPLETE, JobStatus.FAILED, JobStatus.CANCELLED):
                self.ledger.drop_chunks(job_id)
            return Finalized.DONE
        claim = _FinalizeClaim(self, job, worker)
        if not claim.take():
            return Finalized.BUSY
        # The finalizer that ends a job drops its ledger, claim included: one that read the job
        # before that may take a fresh claim after it, and would write an empty report over the
        # real one. Ending comes before the drop, so a look now sees the job ended.
        now_status = self.service.get(appid, job_id).status
        if now_status is not job.status:
            if is_terminal(now_status):
                self.ledger.drop_chunks(job_id)  # the claim this one just put back
                return Finalized.DONE
            claim.release()
            return Finalized.BUSY
        claim.start()
        try:
            return self._finalize_claimed(job, final, claim, deadline)
        finally:
            claim.stop()

    def _finalize_claimed(
        self, job: Job, final: JobStatus, claim: _FinalizeClaim, deadline: float | None
    ) -> Finalized:
        appid, job_id = job.appid, job.job_id
        failure = None
        report = job.spec.report
        counts: tuple[int, int] | None = None
        if report.enabled and report.bucket is not None:
            try:
                # The counts come from the same segments as the rows, so they always agree.
                written = self._write_report(job, parse_bucket(report.bucket).bucket, claim, deadline)
            except ReportAbandonedError:
                log.warning("job %s: finalize claim lost while writing the report; stopped", job_id)
                return self._claim_lost(appid, job_id, claim)
            except (StoreError, JobStoreUnavailableError):
                # The ledger did not answer (a checkpoint not stored, segments not read): not a
                # reason to fail a job that did its work. Let the next finalize in and try again.
                claim.stop()
                claim.release()
                raise
            except Exception as exc:  # a report that cannot be written fails the job, visibly
                log.exception("job %s: report not written", job_id)
                failure = JobFailure(
                    "ReportNotWritten", f"The completion report could not be written: {exc}"[:256]
                )
                if final is JobStatus.COMPLETE:
                    final = JobStatus.FAILED
            else:
                if written is None:
                    # The deadline came first; the checkpoint is stored: let the next step in.
                    claim.stop()
                    claim.release()
                    return Finalized.MORE
                counts = written
        if not claim.held():
            return self._claim_lost(appid, job_id, claim)
        reason = {
            JobStatus.COMPLETE: "Job complete",
            JobStatus.FAILED: job.status_update_reason or "Job failed",
            JobStatus.CANCELLED: job.status_update_reason or "Job cancelled",
        }[final]
        try:
            if counts is None:  # no report, or one not written: the ledger's own count
                counts = self.ledger.progress(job_id)
            self.service.transition(appid, job_id, final, reason=reason, failure=failure, counts=counts)
        except JobStateError:
            return Finalized.DONE
        claim.stop()  # no renewal may put the claim back after the drop
        self.ledger.drop_chunks(job_id)
        return Finalized.DONE

    def _claim_lost(self, appid: str, job_id: str, claim: _FinalizeClaim) -> Finalized:
        """After losing the finalize claim: done if another finalizer ended the job, else not yet."""
        claim.stop()  # no renewal may follow the drop or the release below
        if is_terminal(self.service.get(appid, job_id).status):
            # The winner dropped the ledger; a renewal racing that drop may have put our claim
            # back, so drop again (it is idempotent).
            self.ledger.drop_chunks(job_id)
            return Finalized.DONE
        claim.release()
        return Finalized.BUSY

    def _write_report(
        self, job: Job, bucket: str, claim: _FinalizeClaim, deadline: float | None
    ) -> tuple[int, int] | None:
        """Write the report from its checkpoint on; the (succeeded, failed) counts of all its rows
        once it is whole, or None if it stopped at ``deadline`` with a checkpoint in the ledger.

        A step stops only after writing at least one segment, at a segment's start, so every step
        moves the report on. It completes every file it has open first, so the checkpoint needs
        no upload or MD5 state to cross into the next step.
        """
        report = job.spec.report
        s3 = self.clients.s3_for(job)
        steps = _ReportSteps(self, job, claim)
        at = steps.reached
        steps.abort_dead_uploads(s3, bucket)
        with ReportWriter(
            s3,
            bucket,
            report.prefix,
            job.job_id,
            report.format.value,
            failed_only=report.scope.value == "FailedTasksOnly",
            may_write=claim.held,
            written=at.files,
            on_upload=steps.started_upload,
        ) as writer:
            try:
                chunk_index, tasks = -1, []
                succeeded, failed = at.succeeded, at.failed
                wrote = False
                segments = self.ledger.segments(job.job_id, (at.next_index, at.next_start))
                try:
                    for segment, chunk in segments:
                        if wrote and deadline is not None and self.clock() >= deadline:
                            files = writer.complete_files()
                            # This step's own uploads are complete now; dead steps' are still owed an abort.
                            steps.store(
                                ReportCheckpoint(
                                    segment.index, segment.start, succeeded, failed, files, steps.unaborted
                                )
                            )
                            return None
                        if chunk.index != chunk_index:
                            chunk_index, tasks = chunk.index, decode_chunk(chunk.payload)
                        write_report_rows(writer, tasks, segment.start, segment.results)
                        succeeded += segment.succeeded
                        failed += segment.failed
                        wrote = True
                finally:
                    _close(segments)
                writer.finish()
            except (ReportAbandonedError, StoreError, JobStoreUnavailableError):
                # Another finalizer owns the report now, or a next one goes on from the checkpoint.
                raise
            except Exception:
                # Files of earlier steps are whole objects no manifest will list: remove them.
                self._discard(s3, bucket, job.job_id, [f.key for f in writer.written_files])
                raise
        return succeeded, failed

    def _discard(self, s3: S3Client, bucket: str, job_id: str, keys: list[str]) -> None:
        for start in range(0, len(keys), 1000):
            try:
                s3.delete_objects(
                    Bucket=bucket,
                    Delete={"Objects": [{"Key": key} for key in keys[start : start + 1000]], "Quiet": True},
                )
            except Exception:  # best effort: the report has failed already
                log.warning("job %s: results files of an unwritten report not deleted", job_id, exc_info=True)


def _close(iterator: object) -> None:
    """Close a generator left before its end (a ledger query or cursor it holds)."""
    close = getattr(iterator, "close", None)
    if close is not None:
        close()


class _ReportSteps:
    """A finalize step's view of the report checkpoint: where it starts, and its stores.

    Every store is compare-and-set on the step counter of the one read at the start, and made
    only while the finalize claim is held: a finalizer overtaken by another, or that lost its
    claim, stops (``ReportAbandonedError``) without moving the checkpoint. A multipart upload is
    recorded as soon as it is created, so that if this step dies the next one aborts it.
    """

    def __init__(self, engine: Engine, job: Job, claim: _FinalizeClaim) -> None:
        self.engine = engine
        self.job = job
        self.claim = claim
        self.stored = engine.ledger.finalize_checkpoint(job.job_id)
        self.reached = (
            REPORT_START
            if self.stored is None
            else decode_report_checkpoint(self.stored.state, job.spec.report.prefix, job.job_id)
        )
        self._uploads: list[PendingUpload] = list(self.reached.uploads)
        self.unaborted: tuple[PendingUpload, ...] = ()
        """Uploads of dead steps this step could not abort: every checkpoint it stores keeps them."""

    def abort_dead_uploads(self, s3: S3Client, bucket: str) -> None:
        """Abort the uploads a step that died left in progress (one that was completed meanwhile
        answers NoSuchUpload); those that could not be aborted stay recorded for the next step."""
        if not self._uploads:
            return
        if not self.claim.held():
            raise ReportAbandonedError(f"report of job {self.job.job_id}: told to stop writing")
        left = []
        for upload in self._uploads:
            key = results_key(self.job.spec.report.prefix, self.job.job_id, upload.status, upload.number)
            try:
                s3.abort_multipart_upload(Bucket=bucket, Key=key, UploadId=upload.upload_id)
            except Exception as exc:
                if getattr(exc, "response", {}).get("Error", {}).get("Code") != "NoSuchUpload":
                    log.warning("report upload %s of %s not aborted", upload.upload_id, key, exc_info=True)
                    left.append(upload)
        self._uploads = left
        self.unaborted = tuple(left)

    def started_upload(self, status: str, number: int, upload_id: str) -> None:
        self._uploads.append(PendingUpload(status, number, upload_id))
        at = self.reached
        self.store(
            ReportCheckpoint(
                at.next_index, at.next_start, at.succeeded, at.failed, at.files, tuple(self._uploads)
            ),
            moves=False,
        )

    def store(self, checkpoint: ReportCheckpoint, moves: bool = True) -> None:
        """Store ``checkpoint`` (``moves``: the report got there; else only uploads were added)."""
        if not self.claim.held():
            raise ReportAbandonedError(f"report of job {self.job.job_id}: told to stop writing")
        step = FinalizeCheckpoint(
            step=0 if self.stored is None else self.stored.step + 1,
            state=encode_report_checkpoint(checkpoint),
            updated=self.engine.clock(),
        )
        if not self.engine.ledger.advance_finalize(self.job.job_id, self.stored, step):
            raise ReportAbandonedError(f"report of job {self.job.job_id}: another finalizer moved on")
        self.stored = step
        if moves:
            self.reached = checkpoint


FINALIZE_CLAIM_LEASES = 5
"""A finalize claim lasts this many ``lease_seconds``, renewed every ``lease_seconds``."""


class _FinalizeClaim:
    """A finalizer's claim on its job, renewed while it writes the report.

    The sweeper sends ``finalize`` again for a job unchanged for ten minutes, and a report of
    millions of rows takes longer than that: renewing keeps that second finalizer out for as long
    as this one works. The claim is renewed every ``lease_seconds`` for ``FINALIZE_CLAIM_LEASES``
    of them (claiming again is renewing, for the same worker), and a renewal that finds the job
    no longer in the status it was finalizing (another finalizer ended it, or it was cancelled)
    counts as lost. ``held`` is what the report writer asks before each request: False once the
    claim is lost, and one beat before it would run out unrenewed (the store not answering), so
    that a write sent while held lands before another finalizer could take the job over.
    """

    def __init__(self, engine: Engine, job: Job, worker: str) -> None:
        self.engine = engine
        self.job = job
        self.worker = worker
        self.lease = engine.settings.lease_seconds
        self.length = self.lease * FINALIZE_CLAIM_LEASES
        self._until = 0.0
        self._lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="batchops-finalize-claim", daemon=True)

    def take(self) -> bool:
        now = self.engine.clock()
        if not self.engine.ledger.claim_finalize(self.job.job_id, self.worker, now, now + self.length):
            return False
        self._until = now + self.length
        return True

    def held(self) -> bool:
        return not self._lost.is_set() and self.engine.clock() < self._until - self.lease

    def release(self) -> None:
        """Let the next finalizer in now (the job changed under this one): a claim that ends now.

        Refused, harmlessly, if another finalizer holds the job already.
        """
        now = self.engine.clock()
        try:
            self.engine.ledger.claim_finalize(self.job.job_id, self.worker, now, now)
        except Exception:  # it runs out by itself
            log.warning("job %s: finalize claim not released", self.job.job_id)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        if self._thread.is_alive():
            self._thread.join()

    def _beat(self) -> None:
        job_id = self.job.job_id
        while not self._done.wait(self.lease):
            now = self.engine.clock()
            try:
                renewed = self.engine.ledger.claim_finalize(job_id, self.worker, now, now + self.length)
                current = (
                    renewed and self.engine.service.get(self.job.appid, job_id).status is self.job.status
                )
            except Exception:  # the store hiccuped: held() stops the writing if it lasts
                log.warning("job %s: finalize claim not renewed this time", job_id)
                continue
            if not current:
                self._lost.set()
                return
            self._until = now + self.length


class _ChunkRun:
    """A leased chunk being run: its tasks from the claim's start, its lease kept alive, its stop
    check; ``record`` its outcomes as a segment, then ``close`` it (the lease released)."""

    def __init__(  # noqa: PLR0917 - the run's parts, each its own
        self, engine: Engine, claim: ChunkClaim, worker: str, job: Job, s3: S3Client, deadline: float | None
    ) -> None:
        self.engine = engine
        self.claim = claim
        self.worker = worker
        self.job = job
        self.tasks = decode_chunk(claim.chunk.payload)[claim.start :]
        self.s3 = s3
        self.heartbeat = _Heartbeat(engine, claim, worker)
        self.stop = _StopCheck(engine, claim, self.heartbeat, deadline, job.chunk_count)
        self._closed = False
        self.heartbeat.start()

    def record(self, outcomes: list[TaskOutcome]) -> Segment | None:
        """Record the outcomes (a prefix of the tasks) as one segment; the one that stands."""
        if not outcomes:
            return None
        claim = self.claim
        succeeded = sum(o.succeeded for o in outcomes)
        return self.engine.ledger.record_segment(
            claim.job_id,
            Segment(
                index=claim.chunk.index,
                start=claim.start,
                end=claim.start + len(outcomes),
                succeeded=succeeded,
                failed=len(outcomes) - succeeded,
                results=encode_outcomes(outcomes),
            ),
        )

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.heartbeat.stop()
        self.engine.ledger.release_chunk(self.claim.job_id, self.claim.chunk.index, self.worker)


class _Heartbeat:
    """Keeps a running chunk's lease alive, however long one task takes (a multipart copy)."""

    def __init__(self, engine: Engine, claim: ChunkClaim, worker: str) -> None:
        self.engine = engine
        self.claim = claim
        self.worker = worker
        self.lost = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._beat, name="batchops-lease", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._done.set()
        self._thread.join()

    def _beat(self) -> None:
        lease = self.engine.settings.lease_seconds
        while not self._done.wait(lease / 3):
            try:
                held = self.engine.ledger.renew_lease(
                    self.claim.job_id, self.claim.chunk.index, self.worker, self.engine.clock() + lease
                )
            except Exception:  # the store hiccuped: the lease has two more beats before it expires
                log.warning(
                    "chunk %s/%s: lease not renewed this time", self.claim.job_id, self.claim.chunk.index
                )
                continue
            if not held:
                self.lost.set()
                return


class _StopCheck:
    """Tells a running chunk to stop: its job left Active, its deadline came, or its lease was lost.

    Looks at the job every ``status_poll_interval`` of the job's chunk count: every second while
    few chunks run at once, less often when so many do that their looks together would make the
    job item hot. The look is an eventually consistent read (half the price; a cancel seen one
    look late only runs a few more tasks, which are recorded and reported like any others); one
    that says stop is read again consistently, so a stale copy never stops a chunk of an Active
    job. A store that does not answer is not a reason to stop (the chunk's work would be thrown
    away), the next look decides.
    """

    def __init__(
        self,
        engine: Engine,
        claim: ChunkClaim,
        heartbeat: _Heartbeat,
        deadline: float | None,
        chunk_count: int,
    ) -> None:
        self.engine = engine
        self.claim = claim
        self.heartbeat = heartbeat
        self.deadline = deadline
        self.interval = engine.settings.status_poll_interval(chunk_count)
        self._next_look = engine.clock() + self.interval
        self._stopped = False

    def __call__(self) -> bool:
        if self._stopped:
            return True
        now = self.engine.clock()
        if (self.deadline is not None and now >= self.deadline) or self.heartbeat.lost.is_set():
            self._stopped = True
        elif now >= self._next_look:
            self._next_look = now + self.interval
            try:
                self._stopped = not self.engine.is_active(self.claim.appid, self.claim.job_id)
            except Exception:
                log.warning("job %s: status not read this time", self.claim.job_id)
                return False
        return self._stopped
