"""`batchops run --until-idle`, then this process's peak RSS (VmHWM, KiB) on stderr's last line.

(Not ru_maxrss from the parent: Linux carries the forked parent's RSS into the child's figure.)
Usage: python -m tests.integration.measured_run   (environment as for `batchops run`)
"""

from __future__ import annotations

import sys
from pathlib import Path

from batchops.cli.main import main

if __name__ == "__main__":
    code = main(["run", "--until-idle"])
    peak = next(
        line for line in Path("/proc/self/status").read_text().splitlines() if line.startswith("VmHWM:")
    )
    print(f"peak-rss-kib {peak.split()[1]}", file=sys.stderr)
    sys.exit(code)
