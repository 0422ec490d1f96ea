"""The fault tests' rig: its own Redis and daemon (3 s step lease, 2 s outbox grace) on the store under test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fault_rig import Rig


@pytest.fixture
def rig(tmp_path: Path, make_database: Callable[[Path], str]) -> Iterator[Rig]:
    rig = Rig.start(tmp_path / "rig", make_database(tmp_path))
    yield rig
    rig.stop()
