"""demo.fanout: a map stage over extract's files, its members' results summed by merge (the functions, no worker)."""

from __future__ import annotations

from pausable.server import schemas
from pausable.workers import registered
from pausable.workers.examples import demo


def test_the_plan_maps_process_file_over_the_files_four_at_a_time() -> None:
    flow = next(w for w in registered() if w.name == "demo.fanout")
    assert [entry["task"] for entry in flow.plan] == ["demo.fanout.extract", "each(process_file)", "demo.fanout.merge"]
    stage = flow.plan[1]["stage"]
    assert (stage["over"], stage["max_parallel"]) == ("files", 4)
    assert [entry["task"] for entry in stage["each"]] == ["demo.fanout.process_file"]


def test_extract_process_and_merge_sum_the_rows() -> None:
    files = demo.fanout_extract.run({"files": 3, "file_seconds": 0})["files"]
    assert [f["name"] for f in files] == ["part-001.csv", "part-002.csv", "part-003.csv"]
    results = [demo.process_file.run(f) for f in files]
    assert results[1] == {"name": "part-002.csv", "rows": 200, "total": sum(range(200))}
    assert demo.fanout_merge.run(results) == {
        "files": 3,
        "rows": 600,
        "total": sum(range(100)) + sum(range(200)) + sum(range(300)),
    }
    assert len(demo.fanout_extract.run(None)["files"]) == 20


def test_the_input_schema() -> None:
    schemas.check_schema("demo.fanout", demo.FANOUT_SCHEMA)
    assert schemas.first_error(demo.FANOUT_SCHEMA, {"files": 5, "file_seconds": 0.1}) is None
    assert schemas.first_error(demo.FANOUT_SCHEMA, None) is None
    assert schemas.first_error(demo.FANOUT_SCHEMA, {"files": 0}) is not None
    assert schemas.first_error(demo.FANOUT_SCHEMA, {"rows": 5}) is not None
