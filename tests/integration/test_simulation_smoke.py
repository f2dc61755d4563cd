"""The scale simulation (tests/bench/simulation.py) at a tiny size, and the counting it rests on.

The simulation's figures are only worth something if its job really ran the deployed way and
its write counts really come from the ledger's requests: so one tiny run (N = 1 and 2, a few
chunks) must end Complete with a report row per task and per-item write counts that add up, and
the parsing of DynamoDB write requests and the window count are pinned down on their own.
"""

from __future__ import annotations

from typing import Any

import pytest

from tests.bench import simulation
from tests.bench.simulation import Plan, item_writes, most_in_window

pytestmark = pytest.mark.integration


def test_a_tiny_simulation_drains_the_job_and_counts_writes_per_item() -> None:
    # GIVEN a job of 1,500 copies in chunks of 500, drained by 1 and then 2 worker processes
    plan = Plan("test", workers=(1, 2), tasks=1_500, larger=None, chunk_size=500, timeout=60.0)

    # WHEN the simulation runs it through run_job's handler, moto's SQS and DynamoDB, and the stub
    result = simulation.simulation(plan, out=None)

    # THEN each job ended Complete with one succeeded report row per task
    assert [r["workers"] for r in result["runs"]] == [1, 2]
    for run in result["runs"]:
        assert run["error"] is None, run
        assert run["status"] == "Complete"
        assert run["report_rows"] == 1_500
        assert run["messages"]["chunk"] == 3
        assert sum(run["chunks_per_worker"]) == 3
        assert run["tasks_per_s"] > 0
        # AND every write was counted per item: a chunk item is put by prepare and deleted by finalize
        writes = run["ledger_writes"]
        chunks = writes["kinds"]["LEDGER#<job>#n / CHUNK#n"]
        assert (chunks["items"], chunks["writes"]) == (3, 6)
        assert writes["kinds"]["LEDGER#<job>#n / SEG#n#n"]["items"] == 3
        assert sum(k["writes"] for k in writes["kinds"].values()) == writes["writes"]
        assert writes["job_item"]["writes"] >= 5  # New, Preparing, Ready, Active, Completing, Complete
        assert 0 < writes["run_hottest_item"]["max_per_s"] <= writes["hottest_item"]["max_per_s"]
        assert writes["condition_checks"] >= 3  # each segment's check on its chunk
    assert "Throughput" in simulation.markdown(result)


def test_each_kind_of_write_request_names_its_items() -> None:
    # GIVEN a request of each DynamoDB write operation
    key = {"pk": {"S": "P"}, "sk": {"S": "S"}}
    item = {**key, "x": {"N": "1"}}
    requests: dict[str, dict[str, Any]] = {
        "PutItem": {"Item": item},
        "UpdateItem": {"Key": key},
        "DeleteItem": {"Key": key},
        "BatchWriteItem": {
            "RequestItems": {"t": [{"PutRequest": {"Item": item}}, {"DeleteRequest": {"Key": key}}]}
        },
        "TransactWriteItems": {
            "TransactItems": [
                {"Put": {"Item": item}},
                {"ConditionCheck": {"Key": key}},
                {"Update": {"Key": key}},
                {"Delete": {"Key": key}},
            ]
        },
    }

    # WHEN their items are listed
    found = {
        operation: [action for action, _ in item_writes(operation, r)] for operation, r in requests.items()
    }

    # THEN each names every item it touches, a transaction's ConditionCheck marked as such
    assert found == {
        "PutItem": ["Put"],
        "UpdateItem": ["Update"],
        "DeleteItem": ["Delete"],
        "BatchWriteItem": ["Put", "Delete"],
        "TransactWriteItems": ["Put", "ConditionCheck", "Update", "Delete"],
    }


def test_the_rate_is_the_most_writes_in_any_one_second() -> None:
    # GIVEN writes at these times, three of them within one second
    times = [0.0, 2.0, 2.4, 2.9, 4.5, 10.0]

    # WHEN the most in any 1 s window is counted
    # THEN it is those three, in whatever order they come
    assert most_in_window(times) == 3
    assert most_in_window(reversed(times)) == 3
    assert most_in_window([]) == 0
