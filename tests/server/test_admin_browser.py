"""The operations console in a real headless Chromium (as test_console_browser.py drives the play-test console).

One app in the test's loop and a second ``gameserver run`` process share a real Redis: the admin logs in, finds a
player, gives them an item, sends a gift, kicks them, retries a dead job, reads a log line the second process
shipped, and sees the metrics graphs; a change without the CSRF token is refused; then a viewer logs in and can change
nothing. The screenshot is kept as a CI artifact: artifacts/admin-console.png.
"""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from gameserver.app import App
from gameserver.features.admin.accounts import Role
from gameserver.features.jobs import Jobs
from tests.clients import WsClient, http_url
from tests.conftest import delete_prefixed, new_prefix
from tests.server.admin_kit import DONE, FLAKY, PASSWORD, add_admin, admin_kit, register_player
from tests.server.test_console_browser import (
    ARTIFACTS,
    chromium,
    evaluate,
    page_errors,
    require_chromium,
    screenshot,
    wait_for,
)

SECOND_NODE = "second"
SECOND_STARTED = f"node {SECOND_NODE} started"
STOP_TIMEOUT = 60  # seconds for its graceful stop (server.shutdown_grace is 10) on a loaded machine


@pytest.fixture
async def prefix(redis_url: str) -> AsyncIterator[str]:
    chosen = new_prefix()
    yield chosen
    await delete_prefixed(redis_url, chosen)


@pytest.fixture
def second_process(tmp_path: Path, redis_url: str, prefix: str) -> Iterator[subprocess.Popen[bytes]]:
    """``gameserver run`` with the auth role on free ports, shipping its logs to the same Redis; stopped by PID."""
    command = [
        sys.executable, "-m", "gameserver", "run", "--roles", "auth", "--data-dir", str(tmp_path / "second"),
        "--http-port", "0", "--gate-port", "0", "--ws-port", "0", "--chat-port", "0",
        "--set", f"server.node_id={SECOND_NODE}", "--set", f"redis.url={redis_url}", "--set", f"redis.prefix={prefix}",
        "--set", "auth.hash_memory_kib=8", "--set", "auth.hash_time_cost=1",
    ]  # fmt: skip
    log_file = tmp_path / "second.log"
    with log_file.open("wb") as output:
        process = subprocess.Popen(command, stdout=output, stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
            pytest.fail(f"the second process ignored SIGTERM; its log:\n{log_file.read_text()[-3000:]}")


def click(driver: Any, selector: str) -> None:
    driver.execute_script("document.querySelector(arguments[0]).click()", selector)


def fill(driver: Any, element_id: str, value: str) -> None:
    driver.execute_script("document.getElementById(arguments[0]).value = arguments[1]", element_id, value)


def post_status(driver: Any, path: str, *, csrf: bool) -> int:
    """The HTTP status of a POST the page's own script could make, with or without the login's CSRF token."""
    script = """
        const [path, withToken, done] = arguments;
        const headers = {"Content-Type": "application/json"};
        if (withToken) headers["X-CSRF-Token"] = state.csrf;
        fetch("/admin/api/" + path, {method: "POST", headers, body: "{}", credentials: "same-origin"})
            .then((response) => done(response.status), () => done(-1));
    """
    return int(driver.execute_async_script(script, path, csrf))


def log_in(driver: Any, name: str) -> None:
    wait_for(driver, "!document.getElementById('login-view').hidden")
    fill(driver, "login-name", name)
    fill(driver, "login-pass", PASSWORD)
    click(driver, "#login-submit")
    wait_for(driver, f"document.getElementById('who').textContent.startsWith('{name} ')")


def action_result(driver: Any, expected: str) -> None:
    wait_for(driver, f"document.getElementById('action-result').textContent === {expected!r}")


def drive(url: str, uid: int, job: str, profile_dir: Path) -> None:
    with chromium(profile_dir) as driver:
        driver.set_script_timeout(10)
        driver.get(url)
        log_in(driver, "root")

        # Find the player and open them.
        fill(driver, "player-q", "browser_player")
        click(driver, "#player-search")
        wait_for(driver, f"document.querySelector('#player-results li[data-uid=\"{uid}\"]')")
        click(driver, f'#player-results li[data-uid="{uid}"]')
        wait_for(driver, "document.getElementById('player-title').textContent.includes('browser_player')")

        # Give them an item (through the inventory module), then a gift (through the mailbox).
        driver.execute_script("document.getElementById('inv-item').value = '1'")
        fill(driver, "inv-delta", "3")
        click(driver, "#inv-apply")
        action_result(driver, "inventory: ok")
        wait_for(driver, "[...document.querySelectorAll('#player-inventory td')].some((td) => td.textContent === '3')")
        fill(driver, "gift-subject", "Welcome back")
        driver.execute_script("document.getElementById('gift-item').value = '1'")
        fill(driver, "gift-count", "2")
        click(driver, "#gift-send")
        action_result(driver, "gift: ok")
        wait_for(driver, "document.getElementById('player-mailbox').textContent.includes('Welcome back')")

        # Kick them (the test's loop sees their connection close).
        click(driver, "#kick")
        action_result(driver, "kick: ok")

        # A change without the CSRF token is refused, even from the page with the session cookie.
        assert post_status(driver, f"players/{uid}/kick", csrf=False) == 403

        # Retry the dead job.
        click(driver, '#tabs button[data-tab="jobs"]')
        wait_for(driver, f'document.querySelector(\'#dead-letters button[data-id="{job}"][data-change="retry"]\')')
        click(driver, f'#dead-letters button[data-id="{job}"][data-change="retry"]')
        action_result(driver, f"retry {job}: ok")
        wait_for(driver, "document.getElementById('job-counts').textContent.includes('dead 0')")

        # A log line shipped by the second process, found by its node: the page shows that node's lines only (once
        # the answer for the filter has replaced the unfiltered view the tab opened with).
        click(driver, '#tabs button[data-tab="logs"]')
        fill(driver, "log-node", SECOND_NODE)
        click(driver, "#log-apply")
        wait_for(
            driver,
            "((lines) => lines.length > 0"
            f" && lines.every((line) => line.dataset.node === {SECOND_NODE!r})"
            f" && lines.some((line) => line.textContent.includes({SECOND_STARTED!r})))"
            "([...document.querySelectorAll('#log-lines .log')])",
            timeout=60,  # the second process's start-up
        )

        # The metrics graphs of this node.
        click(driver, '#tabs button[data-tab="metrics"]')
        wait_for(driver, "document.querySelectorAll('#metrics [data-node=\"test\"] .graph polyline').length === 5")
        wait_for(
            driver,
            "document.querySelector('#metrics [data-node=\"test\"] polyline').getAttribute('points').includes(' ')",
        )
        screenshot(driver, ARTIFACTS / "admin-console.png")
        assert page_errors(driver) == []

        # A viewer sees no actions and the server refuses them anyway, with a valid token.
        click(driver, "#logout")
        log_in(driver, "watcher")
        fill(driver, "player-q", str(uid))
        click(driver, "#player-search")
        wait_for(driver, f"document.querySelector('#player-results li[data-uid=\"{uid}\"]')")
        click(driver, f'#player-results li[data-uid="{uid}"]')
        wait_for(driver, "document.getElementById('player-title').textContent.includes('browser_player')")
        assert evaluate(driver, "document.querySelector('.actions').hidden") is True
        for path in (f"players/{uid}/inventory", f"players/{uid}/gift", f"players/{uid}/kick", f"jobs/dead/{job}/drop"):
            assert post_status(driver, path, csrf=True) == 403, path
        click(driver, '#tabs button[data-tab="audit"]')
        wait_for(driver, "document.getElementById('audit').textContent.includes('jobs.retry')")
        assert page_errors(driver) == []


@pytest.mark.timeout(660)  # covers installing chromium with apt when it is missing (CI as root)
async def test_the_operations_console_in_chromium(
    app_factory: Callable[..., Any],
    tmp_path: Path,
    redis_url: str,
    prefix: str,
    second_process: subprocess.Popen[bytes],
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_chromium()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: never look anything up or download
    caplog.set_level(logging.INFO)
    FLAKY["fail"] = True
    app: App = await app_factory(
        redis={"url": redis_url, "prefix": prefix},
        modules={"paths": [admin_kit(tmp_path / "mods")]},
        jobs={"poll": 0.02, "concurrency": 2},
        admin={"metrics_interval": 0.2},
    )
    await add_admin(app, "root", Role.ADMIN)
    await add_admin(app, "watcher", Role.VIEWER)
    uid, token = await register_player(app, "browser_player")
    player = await WsClient.open(app.ports["ws"])
    assert (await player.call("session.bind", {"token": token}))["ok"]
    kicked = asyncio.create_task(player.close_code(timeout=120))

    jobs: Jobs = app.resources.extra["jobs"]
    job = await jobs.enqueue("admkit.flaky", "from the browser test")
    assert job is not None
    async with asyncio.timeout(10):
        while not await jobs.dead():
            await asyncio.sleep(0.01)
    FLAKY["fail"] = False  # the retry will succeed

    await asyncio.to_thread(drive, http_url(app, "/admin/"), uid, job, tmp_path / "chromium")
    assert await kicked == 1000
    assert "from the browser test" in DONE
    assert second_process.poll() is None  # it ran all along
