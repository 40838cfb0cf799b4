"""The play-test console in a real headless Chromium, in one page load: the function list, a call through the form,
registering, and chat.

Driven by Selenium through Debian's ``chromium`` and ``chromium-driver`` (``/usr/bin/chromium``,
``/usr/bin/chromedriver``), named explicitly so Selenium Manager never downloads anything. Selenium blocks, so the
browser work runs in a thread (``asyncio.to_thread``) while the app keeps serving in the test's event loop.

The screenshot is kept as a CI artifact: artifacts/console.png.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from selenium import webdriver
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.chrome.options import Options
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.support.wait import WebDriverWait

from tests.clients import http_url
from tests.conftest import IN_CI
from tests.fixtures.modules import PATH as FIXTURE_MODULES

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"
CHROMIUM = "/usr/bin/chromium"
CHROMEDRIVER = "/usr/bin/chromedriver"
FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
)
INSTALL = "apt-get update && apt-get install -y --no-install-recommends chromium chromium-driver"
INSTALL_TIMEOUT = 600


def _installed() -> bool:
    return all(os.access(path, os.X_OK) for path in (CHROMIUM, CHROMEDRIVER))


def require_chromium() -> None:
    """Chromium and its driver, installed with apt if missing and possible; fails in CI, skips elsewhere."""
    if _installed():
        return
    why = f"chromium and chromium-driver are not both installed ({INSTALL})"
    if shutil.which("apt-get") and os.geteuid() == 0:
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        result = subprocess.run(["sh", "-c", INSTALL], env=env, capture_output=True, text=True, timeout=INSTALL_TIMEOUT)
        if _installed():
            return
        why += f"; installing them failed: {result.stderr.strip()[-500:]}"
    if IN_CI:
        pytest.fail(why)
    pytest.skip(why)


@contextmanager
def chromium(profile_dir: Path) -> Iterator[Any]:
    """A headless Chromium under chromedriver with a fresh profile; nothing is looked up or downloaded."""
    options = Options()
    options.binary_location = CHROMIUM
    for flag in FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={profile_dir}")
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})  # console errors and uncaught exceptions
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        yield driver
    finally:
        driver.quit()


def page_errors(driver: Any) -> list[str]:
    """Uncaught page exceptions and console.error calls so far (not failed resource loads)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and entry.get("source") in ("javascript", "console-api")
    ]


def wait_for(driver: Any, condition: str, timeout: float = 10.0) -> Any:
    """Wait until the JavaScript expression ``condition`` is truthy in the page and return its value.

    On timeout the error shows the page's errors and text.
    """
    script = f"try {{ return ({condition}); }} catch (e) {{ return null; }}"
    try:
        return WebDriverWait(driver, timeout, poll_frequency=0.025).until(lambda d: d.execute_script(script))
    except TimeoutException:
        text = driver.execute_script("return document.body ? document.body.innerText : ''")
        raise AssertionError(
            f"timed out after {timeout}s waiting for {condition}\npage errors: {page_errors(driver)}\n"
            f"page text:\n{text}"
        ) from None


def evaluate(driver: Any, expression: str) -> Any:
    return driver.execute_script(f"return ({expression});")


def screenshot(driver: Any, path: Path) -> None:
    """The whole page, beyond the viewport too (Chromium's DevTools command through chromedriver)."""
    data = driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(base64.b64decode(data["data"]))


def drive_console(url: str, functions: list[str], profile_dir: Path) -> None:
    """The whole browser session; blocking, so the test runs it in a thread."""
    with chromium(profile_dir) as driver:
        driver.get(url)

        wait_for(driver, """document.querySelector('#functions li[data-fn="sys.echo"]')""")
        listed = evaluate(driver, "[...document.querySelectorAll('#functions li')].map((li) => li.dataset.fn)")
        assert sorted(listed) == sorted(functions)
        wait_for(driver, "document.getElementById('gate-state').textContent === 'gate: connected'")

        driver.execute_script("""document.querySelector('#functions li[data-fn="sys.echo"]').click()""")
        assert evaluate(driver, "document.getElementById('call-fn').value") == "sys.echo"
        args = {"hello": "browser", "n": [1, 2]}
        driver.execute_script(f"document.getElementById('call-args').value = {json.dumps(json.dumps(args))}")
        driver.execute_script("document.getElementById('call-send').click()")
        reply = wait_for(
            driver, "[...document.querySelectorAll('#replies .entry.ok')].map((e) => e.textContent).join('\\n')"
        )
        assert "sys.echo ok" in reply
        assert json.dumps(args, indent=2) in reply

        # A crash answers with the correlation id of its log line, and the reply links to that line.
        driver.execute_script(
            "document.getElementById('call-fn').value = 'testkit.crash';"
            "document.getElementById('call-args').value = '{}';"
            "document.getElementById('call-send').click()"
        )
        cid = wait_for(driver, "document.querySelector('#replies .entry.err .log-link')?.dataset.cid")
        driver.execute_script("document.querySelector('#replies .entry.err .log-link').click()")
        found = wait_for(driver, "document.querySelector('#logs .entry.found')?.textContent")
        assert f"internal error in testkit.crash (correlation id {cid}" in found and "Traceback" in found

        # Register through the form (HTTP /auth/register), then call as that player and chat in the world.
        driver.execute_script(
            "document.getElementById('auth-user').value = 'ada_console';"
            "document.getElementById('auth-pass').value = 'correct-horse-battery';"
            "document.getElementById('auth-register').click()"
        )
        wait_for(driver, "document.getElementById('who').textContent.startsWith('uid ')")
        assert "registered as ada_console" in evaluate(driver, "document.getElementById('auth-result').textContent")
        driver.execute_script("document.getElementById('chat-connect').click()")
        wait_for(driver, "document.getElementById('chat-state').textContent === 'online'")
        driver.execute_script(
            "document.getElementById('chat-text').value = 'hello from the console';"
            "document.getElementById('chat-send').click()"
        )
        line = wait_for(
            driver,
            "[...document.querySelectorAll('#chat .entry')].map((e) => e.textContent).find((t) => t.includes('hello'))",
        )
        assert "[public] ada_console: hello from the console" in line

        # The status panel refreshes itself: it comes to count the calls above.
        wait_for(
            driver,
            "Number([...document.querySelectorAll('#status dt')].find((dt) => dt.textContent === 'requests')"
            "?.nextElementSibling.textContent) >= 2",
        )
        wait_for(driver, "document.querySelectorAll('#logs .entry').length > 0")
        screenshot(driver, ARTIFACTS / "console.png")
        assert page_errors(driver) == []


@pytest.mark.timeout(660)  # covers installing chromium with apt when it is missing (CI as root)
async def test_console_lists_functions_and_calls_echo_over_the_gate(
    app_factory: Callable[..., Any],
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    require_chromium()
    monkeypatch.setenv("SE_OFFLINE", "true")  # Selenium Manager: never look anything up or download
    caplog.set_level(logging.INFO)  # what `gameserver run` logs by default, for the console's log tail
    app = await app_factory(modules={"paths": [FIXTURE_MODULES]})  # testkit.crash
    url = http_url(app, "/")
    await asyncio.to_thread(drive_console, url, list(app.table), tmp_path / "chromium")
