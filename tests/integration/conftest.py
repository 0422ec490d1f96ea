"""Everything under tests/integration starts real processes (Redis, the daemon, workers, PostgreSQL): mark it `integration`.

The server fixtures themselves live in tests/conftest.py, so tests/faults
shares them; this file only applies the marker, so `pytest -m "not integration"`
leaves these tests out.
"""

from __future__ import annotations

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    # Hooks of a conftest see every collected item, not only this folder's: filter by path.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
