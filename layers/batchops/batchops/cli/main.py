"""The `batchops` command: `serve`, `jobs ...` and `demo`.

Exit status: 0 on success, 1 when the service answered with an error, 2 for bad usage or
settings, 3 when the service could not be reached.
"""

from __future__ import annotations

import argparse
import json
import logging
import multiprocessing
import multiprocessing.connection
import os
import signal
import sys
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from types import FrameType
from typing import Any

from batchops.api.auth import Credentials, Principal, SignatureVerifier
from batchops.api.credentials import CredentialsSecret, configured_credentials
from batchops.api.routes import JobsApi
from batchops.cli import tables
from batchops.cli.client import ApiCallError, ApiReply, JobsClient, ServiceUnreachableError
from batchops.cli.server import make_server
from batchops.clients import s3_client, secretsmanager_client
from batchops.engine.embedded import (
    EmbeddedDispatcher,
    IdleCounters,
    drop_ledger_when_ended_early,
    process_idle_counters,
)
from batchops.engine.phases import Engine
from batchops.jobs.service import JobService
from batchops.settings import LocalSettings, SettingsError, SubmitSettings
from batchops.store.sqlite import SQLiteJobStore
from batchops.submit.service import Submission
from batchops.submit.targets import SubmitError
from batchops.submit.triggers import EventError, parse_event
from batchops.submit.wiring import submitter_from_settings

EXIT_API_ERROR = 1
EXIT_USAGE = 2
EXIT_UNREACHABLE = 3


def local_api(
    db_path: Path,
    max_active_jobs: int,
    credentials: Mapping[str, str | Principal] | Credentials | None = None,
) -> tuple[JobsApi, SQLiteJobStore]:
    """The jobs API on the embedded SQLite store; with credentials, every request must be signed."""
    store = SQLiteJobStore(db_path)
    verifier = SignatureVerifier(credentials) if credentials else None
    return JobsApi(local_service(store, max_active_jobs), verifier=verifier), store


def local_service(store: SQLiteJobStore, max_active_jobs: int) -> JobService:
    return JobService(
        store,
        max_active_jobs=max_active_jobs,
        live_progress=store.progress,
        on_change=drop_ledger_when_ended_early(store),
    )


def local_dispatcher(
    store: SQLiteJobStore, settings: LocalSettings, *, lead: bool = True
) -> EmbeddedDispatcher:
    """In-process workers on the SQLite store, acting on the S3 endpoint boto3 is configured for
    (``lead``: see EmbeddedDispatcher)."""
    s3 = s3_client(settings.engine.s3_connections, settings.s3_addressing_style)
    engine = Engine(local_service(store, settings.max_active_jobs), store, s3, settings.engine)
    return EmbeddedDispatcher(engine, store, lead=lead)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        settings = LocalSettings.from_env(os.environ)
    except SettingsError as exc:
        print(f"batchops: {exc}", file=sys.stderr)
        return EXIT_USAGE
    args = _parser(settings).parse_args(argv)
    logging.basicConfig(
        level=logging.INFO if getattr(args, "verbose", False) else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    command: Callable[[argparse.Namespace, LocalSettings], int] = args.run
    try:
        return command(args, settings)
    except ApiCallError as exc:
        if getattr(args, "xml", False) is True:
            sys.stdout.write(exc.body.decode("utf-8", "replace") + "\n")
        print(
            f"error: {exc.code} (HTTP {exc.status}): {exc.message}"
            + (f" [{exc.resource}]" if exc.resource else "")
            + (f" RequestId {exc.request_id}" if exc.request_id else ""),
            file=sys.stderr,
        )
        return EXIT_API_ERROR
    except ServiceUnreachableError as exc:
        print(f"error: {exc}. Is `batchops serve` running?", file=sys.stderr)
        return EXIT_UNREACHABLE


def _parser(settings: LocalSettings) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="batchops", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)

    serve = commands.add_parser("serve", help="serve the jobs API over HTTP on the embedded SQLite store")
    serve.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    serve.add_argument("--port", type=int, default=8080, help="port to listen on (default 8080)")
    _add_db_argument(serve, settings)
    serve.add_argument("--no-workers", action="store_true", help="serve the API only; run jobs elsewhere")
    serve.add_argument(
        "--credentials-secret",
        metavar="ARN",
        default=settings.credentials_secret,
        help="accept only requests signed with a key of this Secrets Manager secret "
        "(BATCHOPS_CREDENTIALS_SECRET; re-read every BATCHOPS_CREDENTIALS_SECRET_MAX_AGE seconds)",
    )
    serve.add_argument("-v", "--verbose", action="store_true", help="log every request")
    serve.set_defaults(run=_serve)

    run = commands.add_parser("run", help="run jobs with in-process workers, without the HTTP server")
    _add_db_argument(run, settings)
    run.add_argument("--until-idle", action="store_true", help="stop when no job has work left to do now")
    run.add_argument(
        "--processes",
        type=_positive,
        default=settings.processes,
        metavar="N",
        help="worker processes, each with BATCHOPS_WORKERS workers (BATCHOPS_PROCESSES, default 1): "
        "one process runs Python on one core at a time",
    )
    run.add_argument("-v", "--verbose", action="store_true", help="log what the workers do")
    run.set_defaults(run=_run)

    _add_jobs_commands(commands, settings)

    submit = commands.add_parser(
        "submit", help="submit jobs for a trigger event, as functions/submit_job does (its CLI twin)"
    )
    submit.add_argument(
        "--event", type=Path, required=True, metavar="FILE", help="an event such as events/submit_job/*.json"
    )
    submit.add_argument(
        "--endpoint",
        default=settings.endpoint,
        help=f"jobs API URL (BATCHOPS_ENDPOINT, default {settings.endpoint})",
    )
    submit.set_defaults(run=_submit)

    demo = commands.add_parser("demo", help="run the demo on a temporary embedded service")
    demo.set_defaults(run=_demo)
    return parser


def _add_db_argument(parser: argparse.ArgumentParser, settings: LocalSettings) -> None:
    parser.add_argument(
        "--db",
        type=Path,
        default=settings.db_path,
        help=f"SQLite file (BATCHOPS_DB, default {settings.db_path})",
    )


def _add_jobs_commands(commands: Any, settings: LocalSettings) -> None:
    """`batchops jobs ...`: a client of the jobs API."""
    client = argparse.ArgumentParser(add_help=False)
    client.add_argument(
        "--endpoint",
        default=settings.endpoint,
        help=f"jobs API URL (BATCHOPS_ENDPOINT, default {settings.endpoint})",
    )
    client.add_argument(
        "--appid",
        default=settings.appid,
        help=f"x-cos-appid to send (BATCHOPS_APPID, default {settings.appid})",
    )
    raw = argparse.ArgumentParser(add_help=False, parents=[client])
    raw.add_argument("--xml", action="store_true", help="print the raw XML answer")

    jobs = commands.add_parser("jobs", help="call the jobs API").add_subparsers(
        dest="jobs_command", required=True
    )
    create = jobs.add_parser(
        "create", parents=[client], help="CreateJob from a CreateJobRequest XML file; prints the JobId"
    )
    create.add_argument(
        "--xml", dest="request_file", type=Path, required=True, metavar="FILE", help="CreateJobRequest XML"
    )
    create.set_defaults(run=_create)
    describe = jobs.add_parser("describe", parents=[raw], help="DescribeJob")
    describe.add_argument("job_id")
    describe.set_defaults(run=_describe)
    listing = jobs.add_parser("list", parents=[raw], help="ListJobs, newest first")
    listing.add_argument(
        "--status",
        action="append",
        dest="statuses",
        metavar="STATUS",
        help="only jobs in STATUS (repeatable)",
    )
    listing.add_argument("--max-results", type=int, help="page size, 1-1000 (default 1000)")
    listing.add_argument("--next-token", help="continue after this JobId")
    listing.set_defaults(run=_list)
    confirm = jobs.add_parser("confirm", parents=[raw], help="UpdateJobStatus Ready: run a Suspended job")
    confirm.add_argument("job_id")
    confirm.add_argument("--reason", help="statusUpdateReason")
    confirm.set_defaults(run=_status, requested="Ready")
    cancel = jobs.add_parser("cancel", parents=[raw], help="UpdateJobStatus Cancelled")
    cancel.add_argument("job_id")
    cancel.add_argument("--reason", help="statusUpdateReason")
    cancel.set_defaults(run=_status, requested="Cancelled")
    priority = jobs.add_parser("priority", parents=[raw], help="UpdateJobPriority")
    priority.add_argument("job_id")
    priority.add_argument("priority", type=int)
    priority.set_defaults(run=_priority)
    delete = jobs.add_parser("delete", parents=[client], help="delete a Complete, Failed or Cancelled job")
    delete.add_argument("job_id")
    delete.set_defaults(run=_delete)


def _serve(args: argparse.Namespace, settings: LocalSettings) -> int:
    secret = None
    if args.credentials_secret:
        if settings.credentials:
            print("batchops: --credentials-secret and BATCHOPS_CREDENTIALS are alternatives", file=sys.stderr)
            return EXIT_USAGE
        secret = CredentialsSecret(args.credentials_secret, settings.credentials_secret_max_age)
    credentials = configured_credentials(settings.credentials, secret, secretsmanager_client)
    api, store = local_api(args.db, settings.max_active_jobs, credentials)
    server = make_server(api, args.host, args.port)
    dispatcher = None if args.no_workers else local_dispatcher(store, settings)
    _Interrupt().install()
    workers = "no workers" if dispatcher is None else f"{settings.engine.workers} workers"
    if secret is not None:
        workers += f", signed requests only (keys from secret {secret.secret_id})"
    elif settings.credentials:
        workers += ", signed requests only"
    print(f"batchops: jobs API on {server.url} (store {store.path}, {workers})", file=sys.stderr, flush=True)
    try:
        if dispatcher is not None:
            dispatcher.start()
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if dispatcher is not None:
            dispatcher.stop()
            dispatcher.engine.close()
        store.close()
    return 0


def _run(args: argparse.Namespace, settings: LocalSettings) -> int:
    if args.processes <= 1:
        return _run_here(args, settings)
    # Worker processes on the one store (leases keep their chunks apart), forked before anything
    # here opens a connection or starts a thread. The first also prepares and finalizes jobs (no
    # two processes must finalize one job at once). With --until-idle they wait for each other:
    # none stops while another is still at work, since that work can make more (a next chunk, a
    # report). One failing stops the others: run the command again (leases make that safe).
    context = multiprocessing.get_context("fork")
    workers = args.processes * settings.engine.workers
    shared = process_idle_counters(context, workers) if args.until_idle else None
    children = [
        context.Process(target=_run_child, args=(args, settings, shared, n == 0), name=f"batchops-run-{n}")
        for n in range(args.processes)
    ]
    # Signals wait (blocked) until each process has its own handler: none is stopped half-started.
    signal.pthread_sigmask(signal.SIG_BLOCK, _STOP_SIGNALS)
    for child in children:
        child.start()
    stopping = False

    def stop_children(signum: int, frame: FrameType | None) -> None:
        # Once: Ctrl-C has reached every process already, and a second signal while a child
        # cleans up is ignored there anyway.
        nonlocal stopping
        if stopping:
            return
        stopping = True
        if shared is not None:
            # Workers waiting for a dead process's steps would wait for ever: tell them to stop.
            # A plain write to shared memory, with no lock the dead process may still hold.
            shared.failed = True
        for child in children:
            if child.pid is not None and child.is_alive():
                os.kill(child.pid, signal.SIGTERM)

    for signum in _STOP_SIGNALS:
        signal.signal(signum, stop_children)
    signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)
    running = list(children)
    while running:
        multiprocessing.connection.wait([child.sentinel for child in running])
        for child in [c for c in running if not c.is_alive()]:
            child.join()
            running.remove(child)
            if child.exitcode != 0:
                stop_children(signal.SIGTERM, None)
    for child in children:
        child.join()
    return 0 if all(child.exitcode == 0 for child in children) else 1


def _run_child(
    args: argparse.Namespace, settings: LocalSettings, shared: IdleCounters | None, lead: bool
) -> None:
    sys.exit(_run_here(args, settings, shared, lead=lead))


def _run_here(
    args: argparse.Namespace,
    settings: LocalSettings,
    shared: IdleCounters | None = None,
    *,
    lead: bool = True,
) -> int:
    store = SQLiteJobStore(args.db)
    dispatcher = local_dispatcher(store, settings, lead=lead)
    _Interrupt().install()
    try:
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _STOP_SIGNALS)  # blocked by a parent of processes
        if args.until_idle:
            dispatcher.run_until_idle(shared)
        else:
            dispatcher.start()
            while True:
                signal.pause()
    except KeyboardInterrupt:
        pass
    finally:
        dispatcher.stop()
        dispatcher.engine.close()
        store.close()
    return 0


def _positive(text: str) -> int:
    try:
        number = int(text)
    except ValueError:
        number = 0
    if number < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return number


_STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


class _Interrupt:
    """SIGTERM and SIGINT stop the command (KeyboardInterrupt) once: a signal that comes while it
    cleans up is ignored, so it cannot cut that short (with ``run --processes`` Ctrl-C reaches
    every process, and then the parent tells each to stop too). SIGKILL stops it at once."""

    def __init__(self) -> None:
        self.raised = False

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.raised:
            return
        self.raised = True
        raise KeyboardInterrupt

    def install(self) -> None:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self)


def _client(args: argparse.Namespace, settings: LocalSettings) -> JobsClient:
    credentials = (
        None
        if settings.secret_id is None or settings.secret_key is None
        else (settings.secret_id, settings.secret_key)
    )
    return JobsClient(args.endpoint, args.appid, credentials=credentials)


def _print(args: argparse.Namespace, reply: ApiReply, table: Callable[..., str]) -> int:
    if args.xml:
        sys.stdout.write(reply.body.decode("utf-8") + "\n")
    else:
        print(table(reply.root))
    return 0


def _create(args: argparse.Namespace, settings: LocalSettings) -> int:
    try:
        body = args.request_file.read_bytes()
    except OSError as exc:
        print(f"error: cannot read {args.request_file}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    print(tables.job_id(_client(args, settings).create_job(body).root))
    return 0


def _describe(args: argparse.Namespace, settings: LocalSettings) -> int:
    return _print(args, _client(args, settings).describe_job(args.job_id), tables.describe)


def _list(args: argparse.Namespace, settings: LocalSettings) -> int:
    reply = _client(args, settings).list_jobs(args.statuses, args.max_results, args.next_token)
    return _print(args, reply, tables.job_list)


def _status(args: argparse.Namespace, settings: LocalSettings) -> int:
    return _print(
        args, _client(args, settings).update_status(args.job_id, args.requested, args.reason), tables.status
    )


def _priority(args: argparse.Namespace, settings: LocalSettings) -> int:
    return _print(args, _client(args, settings).update_priority(args.job_id, args.priority), tables.priority)


def _delete(args: argparse.Namespace, settings: LocalSettings) -> int:
    _client(args, settings).delete_job(args.job_id)
    print(f"{args.job_id}  deleted")
    return 0


def _submit(args: argparse.Namespace, settings: LocalSettings) -> int:
    try:
        event = json.loads(args.event.read_text())
        submit_settings = SubmitSettings.from_env(
            {**os.environ, "BATCHOPS_ENDPOINT": args.endpoint}, default_target="http"
        )
    except OSError as exc:
        print(f"error: cannot read {args.event}: {exc.strerror}", file=sys.stderr)
        return EXIT_USAGE
    except (json.JSONDecodeError, SettingsError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    s3 = s3_client(8, settings.s3_addressing_style)
    try:
        outcomes = submitter_from_settings(submit_settings, s3).handle(parse_event(event))
    except (EventError, SubmitError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_API_ERROR
    for outcome in outcomes:
        if isinstance(outcome, Submission):
            state = "already submitted" if outcome.duplicate else "submitted"
            print(f"{outcome.job_id}  {state}  rule {outcome.rule}  s3://{outcome.manifest}")
        else:
            print(f"skipped  {outcome.key or '(event)'}: {outcome.reason}")
    return 0


def _demo(args: argparse.Namespace, settings: LocalSettings) -> int:
    from batchops.cli.demo import run_demo  # noqa: PLC0415 - only the demo needs it

    return run_demo()


if __name__ == "__main__":
    sys.exit(main())
