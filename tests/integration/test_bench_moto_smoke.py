"""The moto smoke benchmark runs both peers end to end and only counts runs whose work checks out."""

from __future__ import annotations

import json
from pathlib import Path

from tests.bench import moto_smoke


def test_the_moto_smoke_copies_with_both_peers_and_computes_r3(tmp_path: Path) -> None:
    # GIVEN a handful of objects (the figure itself needs thousands; this checks the machinery)
    # WHEN the smoke benchmark runs once
    exit_code = moto_smoke.main(["--quick", "--objects", "20", "--out", str(tmp_path)])
    # THEN both peers' runs counted (boto3's copies all landed, batchops' job and report check out)
    figures = json.loads((tmp_path / "moto_smoke.json").read_text())
    assert exit_code == 0, figures["errors"]
    assert figures["errors"] == []
    assert set(figures["tasks_per_s"]) == {"boto3 ThreadPool 32", "batchops"}
    assert figures["r3"] == figures["tasks_per_s"]["batchops"] / figures["tasks_per_s"]["boto3 ThreadPool 32"]
