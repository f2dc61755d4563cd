"""A `batchops run --until-idle` worker that dies by SIGKILL at its Nth ledger write: after that
chunk's S3 calls are made and before what they did is recorded, the one moment a crash could
lose or double a task. Built as `batchops run` builds its worker; only the ledger is wrapped.

Usage: python -m tests.integration.dying_worker N   (environment as for `batchops run`)
"""

from __future__ import annotations

import os
import signal
import sys
from typing import Any

from batchops.cli.main import local_service
from batchops.clients import s3_client
from batchops.engine.embedded import EmbeddedDispatcher
from batchops.engine.phases import Engine
from batchops.settings import LocalSettings
from batchops.store.base import Segment
from batchops.store.sqlite import SQLiteJobStore


class DyingLedger:
    def __init__(self, store: SQLiteJobStore, die_at: int) -> None:
        self._store = store
        self._die_at = die_at
        self._writes = 0

    def record_segment(self, job_id: str, segment: Segment) -> Segment | None:
        self._writes += 1
        if self._writes == self._die_at:
            os.kill(os.getpid(), signal.SIGKILL)
        return self._store.record_segment(job_id, segment)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._store, name)


def main() -> None:
    settings = LocalSettings.from_env(os.environ)
    store = SQLiteJobStore(settings.db_path)
    ledger: Any = DyingLedger(store, int(sys.argv[1]))
    s3 = s3_client(settings.engine.s3_connections, settings.s3_addressing_style)
    engine = Engine(local_service(store, settings.max_active_jobs), ledger, s3, settings.engine)
    EmbeddedDispatcher(engine, ledger).run_until_idle()


if __name__ == "__main__":
    main()
