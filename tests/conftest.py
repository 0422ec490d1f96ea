"""Fixtures shared by every test folder: tests/unit, tests/integration, tests/faults.

The server fixtures (`redis_server`, `stack`, `private_stack`, `client`,
`postgres`, `make_database`, `backend`, and `browser` for the web console's
tests) are defined here, at the top, so any
folder under tests/ gets them without importing anything; they import the
launchers (pausable.cli.launch, support.stack, support.servers) only when a
test asks for one, so `pytest tests/unit` never loads them.

Helpers for tests that use a stack: `from support.stack import Stack,
start_stack, wait_event, history, step_completed, state_is` (tests/ is on
sys.path: pytest puts the folder of this rootless conftest there).
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

if TYPE_CHECKING:
    from playwright.sync_api import Browser
    from support.servers import PostgresServer
    from support.stack import Stack

    from pausable.cli.launch import RedisServer
    from pausable.clients import Client

BACKENDS = ["sqlite", "postgres"]


@pytest.fixture(scope="session")
def postgres() -> Iterator[PostgresServer]:
    from support.servers import PostgresServer

    with PostgresServer() as server:
        yield server


@pytest.fixture(scope="session", params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture(scope="session")
def make_database(backend: str, request: pytest.FixtureRequest) -> Callable[[Path], str]:
    """A fresh, empty store on the backend under test: SQLite in `folder`, or a new Postgres database."""
    names = itertools.count()

    def make(folder: Path) -> str:
        if backend == "sqlite":
            return f"sqlite+aiosqlite:///{folder / 'pausable.db'}"
        postgres: PostgresServer = request.getfixturevalue("postgres")
        return postgres.create_database(f"pausable_{next(names)}")

    return make


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RedisServer]:
    from pausable.cli.launch import RedisServer

    with RedisServer(tmp_path_factory.mktemp("redis")) as server:
        yield server


@pytest.fixture(scope="session")
def stack(
    tmp_path_factory: pytest.TempPathFactory, redis_server: RedisServer, make_database: Callable[[Path], str]
) -> Iterator[Stack]:
    """Shared by the tests that do not restart anything; one per backend."""
    from support.stack import start_stack

    folder = tmp_path_factory.mktemp("stack")
    stack = start_stack(folder, redis_server, make_database(folder))
    yield stack
    stack.stop()


@pytest.fixture
def private_stack(tmp_path: Path, make_database: Callable[[Path], str]) -> Iterator[Stack]:
    """A stack of its own (Redis included), for tests that kill or restart the daemon."""
    from support.stack import start_stack

    from pausable.cli.launch import RedisServer

    redis = RedisServer(tmp_path / "redis").start()
    stack = start_stack(tmp_path / "stack", redis, make_database(tmp_path))
    yield stack
    stack.stop()
    redis.stop()


@pytest.fixture
def client(stack: Stack) -> Iterator[Client]:
    with stack.client() as client:
        yield client


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Headless Chromium (Debian's package, see support/browser.py), closed after the module: Playwright's sync API
    keeps an event loop running in the main thread while it is open, where later tests' asyncio.run would fail."""
    from support.browser import CHROMIUM_ARGS, chromium_path

    executable = chromium_path()
    if executable is None:
        # A failure, not a skip: CI must run these. PAUSABLE_SKIP_BROWSER=1 leaves them out on purpose.
        why = "no Chromium: scripts/test installs Debian's chromium package (as root), or set PAUSABLE_CHROMIUM"
        if os.environ.get("PAUSABLE_SKIP_BROWSER") == "1":
            pytest.skip(why)
        pytest.fail(why)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(executable), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


UNIT_TESTS = Path(__file__).parent / "unit"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Everything outside tests/unit (integration/, faults/) starts real processes: mark it `integration`,
    so `pytest -m "not integration"` (or `pytest tests/unit`) runs only the quick unit tests."""
    for item in items:
        if not item.path.is_relative_to(UNIT_TESTS):
            item.add_marker(pytest.mark.integration)
