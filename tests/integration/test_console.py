"""The web console (server/console/) in a real browser: headless Chromium (Debian's package) driven by Playwright,
against a real daemon serving its HTTP gateway (setting http_port) and a real Celery worker.

The operations are `gated.mark` runs (tests/workflows_gated.py): step 1 reports progress 0.5, then waits until the
file `<dir>/<gate>` exists, so what the page shows at each moment is decided by the test, not by timing. Every wait
is Playwright's auto-waiting `expect(...)` with a timeout. Each test saves a screenshot in the artifacts folder
(PAUSABLE_TEST_ARTIFACTS, else a pytest temporary folder).
"""

from __future__ import annotations

import json
import os
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect
from support.http import call
from support.stack import Stack, history, state_is, wait_event

from pausable.cli.launch import DaemonProcess, RedisServer, WorkerProcess, free_port
from pausable.clients import Client, InvalidArgument
from pausable.config import EXAMPLES_MODULE
from pausable.v1 import operation_pb2 as pb

TESTS = Path(__file__).resolve().parent.parent  # tests/: workflows_gated.py
TIMEOUT = 60.0
UI_TIMEOUT_MS = 30_000


@dataclass
class Console:
    """A daemon with its HTTP gateway on `http_port`, one worker, and where the screenshots go."""

    stack: Stack
    base_url: str
    artifacts: Path

    def client(self) -> Client:
        return self.stack.client()


def wait_http(base_url: str, process: DaemonProcess, timeout: float = 30.0) -> None:
    """Until the gateway answers GET /v1/workflows (the gRPC port serving does not mean the HTTP one does yet)."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with urllib.request.urlopen(f"{base_url}/v1/workflows", timeout=2) as reply:
                if reply.status == 200:
                    return
        except (OSError, urllib.error.URLError):
            pass
        if process.process is not None and process.process.poll() is not None:
            raise RuntimeError(f"the daemon exited; see {process.log_path}")
        if time.monotonic() > deadline:
            raise TimeoutError(f"no HTTP gateway at {base_url} after {timeout}s; see {process.log_path}")
        time.sleep(0.05)


@pytest.fixture(scope="module")
def console(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Console]:
    folder = tmp_path_factory.mktemp("console")
    artifacts = Path(os.environ.get("PAUSABLE_TEST_ARTIFACTS") or tmp_path_factory.mktemp("console-artifacts"))
    artifacts.mkdir(parents=True, exist_ok=True)
    http_port = free_port()
    base_url = f"http://127.0.0.1:{http_port}"
    with RedisServer(folder / "redis") as redis:
        daemon = DaemonProcess(
            f"sqlite+aiosqlite:///{folder / 'pausable.db'}", redis.url, folder / "daemon.log", http_port=str(http_port)
        ).start()
        path = os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")]))
        worker = WorkerProcess(
            daemon.target, redis.url, folder / "worker.log", [EXAMPLES_MODULE, "workflows_gated"], env={"PYTHONPATH": path}
        )
        stack = Stack(redis, daemon, worker.start(), folder)
        try:
            stack.wait_for_workflows({"demo.etl", "gated.mark"}, timeout=TIMEOUT)
            wait_http(base_url, daemon)
            yield Console(stack, base_url, artifacts)
        finally:
            stack.stop()


@pytest.fixture
def page(browser: Browser, console: Console, request: pytest.FixtureRequest) -> Iterator[Page]:
    """A fresh browser context per test (its own sessionStorage); a screenshot of where it ended is kept."""
    context = browser.new_context(viewport={"width": 1366, "height": 860})
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    yield page
    page.screenshot(path=str(console.artifacts / f"{request.node.name}.png"), full_page=True)
    context.close()
    assert not errors, f"uncaught errors in the page: {errors}"


def gated(tmp_path: Path, gate: str = "go") -> dict[str, str]:
    """The input of a gated.mark run whose first step waits for `open_gate(tmp_path, gate)`."""
    return {"dir": str(tmp_path), "gate": gate}


def open_gate(tmp_path: Path, gate: str = "go") -> None:
    (tmp_path / gate).touch()


def test_the_list_shows_started_operations_and_follows_them_live(console: Console, page: Page, tmp_path: Path) -> None:
    label = f"list-{uuid.uuid4().hex[:8]}"
    page.goto(f"{console.base_url}/console/#/operations?labels[test]={label}")
    expect(page.get_by_test_id("no-operations")).to_be_visible(timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("live-status")).to_have_attribute("data-status", "live", timeout=UI_TIMEOUT_MS)

    with console.client() as client:
        runs = client.start("gated.mark", gated(tmp_path, "a"), labels={"test": label, "team": "data"}, requester="alice")
        row = page.locator(f"[data-testid=operation-row][data-id='{runs.id}']")
        expect(row.get_by_test_id("progress")).to_have_attribute("value", "0.5", timeout=UI_TIMEOUT_MS)
        expect(row.get_by_test_id("state")).to_have_text("RUNNING")
        expect(row.get_by_test_id("step")).to_have_text("1/3")
        expect(row.get_by_test_id("progress-message")).to_have_text("waiting for the gate")
        expect(row.get_by_test_id("requester")).to_have_text("alice")
        expect(row.get_by_test_id("labels")).to_contain_text(f"test={label}")

        # Another client pauses a second run: its row, inserted above, follows the pause without a reload.
        paused = client.start("gated.mark", gated(tmp_path, "b"), labels={"test": label}, requester="bob")
        other = page.locator(f"[data-testid=operation-row][data-id='{paused.id}']")
        expect(other.get_by_test_id("progress")).to_have_attribute("value", "0.5", timeout=UI_TIMEOUT_MS)
        client.pause(paused.id)
        expect(other.get_by_test_id("state")).to_have_text("PAUSE_REQUESTED", timeout=UI_TIMEOUT_MS)
        expect(page.get_by_test_id("operation-row").first).to_have_attribute("data-id", paused.id)
        page.screenshot(path=str(console.artifacts / "operations-live.png"))

        open_gate(tmp_path, "a")
        open_gate(tmp_path, "b")
        expect(row.get_by_test_id("state")).to_have_text("SUCCEEDED", timeout=UI_TIMEOUT_MS)
        expect(row.get_by_test_id("step")).to_have_text("3/3")
        expect(other.get_by_test_id("state")).to_have_text("PAUSED", timeout=UI_TIMEOUT_MS)
        expect(other.get_by_test_id("step")).to_have_text("2/3")
        client.cancel(paused.id)
        expect(other.get_by_test_id("state")).to_have_text("CANCELLED", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("operation-row")).to_have_count(2)


# Pause, Resume and Cancel take a reason once the proto has it (the `reason` branch); until then the console sends
# none and these tests check the rest.
REASONS = "reason" in pb.PauseRequest.DESCRIPTOR.fields_by_name


def test_pause_with_a_reason_then_resume(console: Console, page: Page, tmp_path: Path) -> None:
    with console.client() as client:
        operation = client.start("gated.mark", gated(tmp_path))
        page.goto(f"{console.base_url}/console/#/operations/{operation.id}")
        state = page.get_by_test_id("operation-state")
        expect(page.get_by_test_id("operation-progress-message")).to_have_text("waiting for the gate", timeout=UI_TIMEOUT_MS)
        expect(page.get_by_test_id("action-resume")).to_be_disabled()

        page.get_by_test_id("action-pause").click()
        expect(page.get_by_test_id("reason-dialog")).to_be_visible()
        if REASONS:
            page.get_by_test_id("reason-input").fill("disk maintenance")
        page.get_by_test_id("reason-confirm").click()
        expect(state).to_have_text("PAUSE_REQUESTED", timeout=UI_TIMEOUT_MS)
        open_gate(tmp_path)  # step 1 ends: the pause takes effect at the boundary
        expect(state).to_have_text("PAUSED", timeout=UI_TIMEOUT_MS)
        expect(page.get_by_test_id("operation-step")).to_have_text("2/3")
        expect(page.get_by_test_id("action-pause")).to_be_disabled()
        requested = page.locator("[data-testid=event][data-type=PAUSE_REQUESTED]")
        expect(requested.get_by_test_id("event-actor")).to_have_text("by anonymous")
        if REASONS:
            expect(requested.get_by_test_id("event-reason")).to_have_text("reason: disk maintenance")
        page.screenshot(path=str(console.artifacts / "operation-paused.png"), full_page=True)

        over_http = call(console.base_url, "GET", f"/v1/operations/{operation.id}")
        assert over_http.body["operation"]["state"] == "OPERATION_STATE_PAUSED"
        assert client.get(operation.id).state == "PAUSED"
        if REASONS:
            requests = [e for e in history_until_now(client, operation.id) if e.type == pb.EVENT_TYPE_PAUSE_REQUESTED]
            assert [e.reason for e in requests] == ["disk maintenance"]

        page.get_by_test_id("action-resume").click()
        if REASONS:
            page.get_by_test_id("reason-input").fill("maintenance over")
        page.get_by_test_id("reason-confirm").click()
        expect(state).to_have_text("SUCCEEDED", timeout=UI_TIMEOUT_MS)
        if REASONS:
            resumed = page.locator("[data-testid=event][data-type=RESUMED]")
            expect(resumed.get_by_test_id("event-reason")).to_have_text("reason: maintenance over")
        expect(page.locator("[data-testid=step-item][data-status=done]")).to_have_count(3)
        for button in ("pause", "resume", "cancel"):
            expect(page.get_by_test_id(f"action-{button}")).to_be_disabled()


def history_until_now(client: Client, operation_id: str) -> list[pb.OperationEvent]:
    """The events recorded so far of an operation that has not ended (Watch would wait for more)."""
    last_seq = client.get(operation_id).last_seq
    events: list[pb.OperationEvent] = []
    for response in client.stub.Watch(pb.WatchRequest(operation_id=operation_id), timeout=TIMEOUT):
        events.append(response.event)
        if response.event.seq >= last_seq:
            break
    return events


def test_a_failed_operation_shows_its_step_and_error(console: Console, page: Page) -> None:
    with console.client() as client:
        operation = client.start("demo.etl", {"rows": 3, "step_seconds": 0, "fail_at_step": 2})
        wait_event(client, operation.id, state_is(pb.OPERATION_STATE_FAILED), timeout=TIMEOUT)
    page.goto(f"{console.base_url}/console/#/operations/{operation.id}")
    expect(page.get_by_test_id("operation-state")).to_have_text("FAILED", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("error-code")).to_have_text("StepFailed")
    expect(page.get_by_test_id("error-step")).to_have_text("at step 2/5 (demo.etl.t2_transform)")
    expect(page.get_by_test_id("error-message")).to_contain_text("failed on purpose (fail_at_step=2)")
    page.get_by_test_id("error-box").get_by_text("Traceback", exact=True).click()
    expect(page.get_by_test_id("error-traceback")).to_be_visible()
    expect(page.get_by_test_id("error-traceback")).to_contain_text("StepFailed: T2 transform failed on purpose")
    expect(page.locator("[data-testid=step-item]").nth(1)).to_have_attribute("data-status", "failed")
    expect(page.locator("[data-testid=event][data-type=FAILED]")).to_have_count(1)
    expect(page.get_by_test_id("timeline-status")).to_have_attribute("data-status", "ended")


def test_the_start_form_shows_the_servers_refusal_and_opens_a_started_operation(console: Console, page: Page) -> None:
    bad_input = {"rows": "many"}
    with console.client() as client, pytest.raises(InvalidArgument) as refused:
        client.start("demo.etl", bad_input)
    server_message = refused.value.message
    assert "rows" in server_message

    page.goto(f"{console.base_url}/console/#/workflows")
    card = page.locator("[data-testid=workflow][data-name='demo.etl']")
    expect(card.get_by_test_id("workflow-steps").locator("li")).to_have_count(5, timeout=UI_TIMEOUT_MS)
    card.get_by_test_id("start-input").fill(json.dumps(bad_input))
    card.get_by_test_id("start-submit").click()
    expect(card.get_by_test_id("start-error")).to_have_text(server_message, timeout=UI_TIMEOUT_MS)
    page.screenshot(path=str(console.artifacts / "workflows-refused.png"), full_page=True)

    card.get_by_test_id("start-input").fill('{"rows": 2, "step_seconds": 0}')
    card.get_by_test_id("start-submit").click()
    operation_url = re.compile(re.escape(f"{console.base_url}/console/#/operations/") + "[0-9a-f]{32}$")
    expect(page).to_have_url(operation_url, timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("operation-state")).to_have_text("SUCCEEDED", timeout=UI_TIMEOUT_MS)
    expect(page.get_by_test_id("operation-workflow")).to_have_text("demo.etl")


def test_the_timeline_reconnects_after_a_daemon_restart_without_losing_an_event(
    console: Console, page: Page, tmp_path: Path
) -> None:
    """The daemon stops while the page follows an operation; the gate opens while it is down (the worker keeps its
    reports until a daemon answers); a new daemon on the same port and store serves the page again, which reconnects
    with Last-Event-ID and shows every seq from 1 to the last, once each."""
    with console.client() as client:
        operation = client.start("gated.mark", gated(tmp_path))
    page.goto(f"{console.base_url}/console/#/operations/{operation.id}")
    status = page.get_by_test_id("timeline-status")
    expect(page.locator("[data-testid=event][data-type=PROGRESS]")).to_have_count(1, timeout=UI_TIMEOUT_MS)
    expect(status).to_have_attribute("data-status", "live")

    daemon = console.stack.daemon
    daemon.stop()
    expect(status).to_have_attribute("data-status", "reconnecting", timeout=UI_TIMEOUT_MS)
    open_gate(tmp_path)
    daemon.start()
    wait_http(console.base_url, daemon)

    expect(page.get_by_test_id("operation-state")).to_have_text("SUCCEEDED", timeout=UI_TIMEOUT_MS)
    expect(status).to_have_attribute("data-status", "ended", timeout=UI_TIMEOUT_MS)
    with console.client() as client:
        last_seq = client.get(operation.id).last_seq
        assert [e.seq for e in history(client, operation.id)] == list(range(1, last_seq + 1))
    seqs = [int(seq) for seq in page.locator("[data-testid=event]").evaluate_all("items => items.map(i => i.dataset.seq)")]
    assert seqs == list(range(1, last_seq + 1)), "every event once, in order, none lost across the restart"
    page.screenshot(path=str(console.artifacts / "operation-after-restart.png"), full_page=True)

    page.get_by_test_id("nav-operations").click()  # every test's operations, for the README's picture
    expect(page.locator(f"[data-testid=operation-row][data-id='{operation.id}'] [data-testid=state]")).to_have_text("SUCCEEDED")
    page.screenshot(path=str(console.artifacts / "operations-all.png"))
