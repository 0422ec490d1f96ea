"""demo.etl writes only under the worker's demo folder: its schema refuses other names (on RE2), and the steps check again."""

from __future__ import annotations

from pathlib import Path

import pytest

from pausable.config import get_settings
from pausable.server import schemas
from pausable.workers.examples import demo

GOOD = ["trace", "trace.txt", "runs/a/trace-1.txt", ".hidden", "a_b-c.d"]
BAD = ["/etc/passwd", "../x", "a/../../x", "..", ".", "a/./b", "a//b", "a/", "", "..hidden", "a\\b", "C:\\x", "x" * 300]


@pytest.mark.parametrize("name", GOOD)
def test_the_schema_takes_relative_names(name: str) -> None:
    schemas.check_schema("demo.etl", demo.INPUT_SCHEMA)  # RE2 compiles the pattern
    assert schemas.first_error(demo.INPUT_SCHEMA, {"trace_file": name, "output_dir": name}) is None


@pytest.mark.parametrize("name", BAD)
def test_the_schema_refuses_absolute_paths_and_dot_dot(name: str) -> None:
    assert schemas.first_error(demo.INPUT_SCHEMA, {"trace_file": name}) is not None
    assert schemas.first_error(demo.INPUT_SCHEMA, {"output_dir": name}) is not None


def test_the_step_checks_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAUSABLE_DEMO_DIR", str(tmp_path / "demo"))
    get_settings.cache_clear()
    try:
        assert demo.demo_path("runs/trace") == (tmp_path / "demo" / "runs" / "trace").resolve()
        for name in ["/etc/passwd", "../x", "a/../../x", ""]:
            with pytest.raises(demo.OutsideDemoDir):
                demo.demo_path(name)
        (tmp_path / "demo" / "out").symlink_to(tmp_path)  # a link leading out of the folder
        with pytest.raises(demo.OutsideDemoDir):
            demo.demo_path("out/x")
    finally:
        get_settings.cache_clear()
