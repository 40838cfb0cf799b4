"""The play-test console in a real headless Chromium, in one page load: the function list, a call through the form,
registering, and chat.

The screenshot is kept as a CI artifact: artifacts/console.png.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.browser import Chromium, chromium_path

ARTIFACTS = Path(__file__).resolve().parents[2] / "artifacts"


@pytest.mark.timeout(660)  # covers installing chromium with apt when it is missing (CI as root)
async def test_console_lists_functions_and_calls_echo_over_the_gate(
    app_factory: Callable[..., Any], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    executable = chromium_path()
    caplog.set_level(logging.INFO)  # what `gameserver run` logs by default, for the console's log tail
    app = await app_factory()
    async with await Chromium.launch(executable, tmp_path / "chromium") as browser:
        page = await browser.new_page()
        await page.goto(f"http://127.0.0.1:{app.ports['http']}/")

        await page.wait_for("""document.querySelector('#functions li[data-fn="sys.echo"]')""")
        listed = await page.evaluate("[...document.querySelectorAll('#functions li')].map((li) => li.dataset.fn)")
        assert sorted(listed) == sorted(app.table)
        await page.wait_for("document.getElementById('gate-state').textContent === 'gate: connected'")

        await page.evaluate("""document.querySelector('#functions li[data-fn="sys.echo"]').click()""")
        assert await page.evaluate("document.getElementById('call-fn').value") == "sys.echo"
        args = {"hello": "browser", "n": [1, 2]}
        await page.evaluate(f"document.getElementById('call-args').value = {json.dumps(json.dumps(args))}")
        await page.evaluate("document.getElementById('call-send').click()")
        reply = await page.wait_for(
            "[...document.querySelectorAll('#replies .entry.ok')].map((e) => e.textContent).join('\\n')"
        )
        assert "sys.echo ok" in reply
        assert json.dumps(args, indent=2) in reply

        # Register through the form (HTTP /auth/register), then call as that player and chat in the world.
        await page.evaluate(
            "document.getElementById('auth-user').value = 'ada_console';"
            "document.getElementById('auth-pass').value = 'correct-horse-battery';"
            "document.getElementById('auth-register').click()"
        )
        await page.wait_for("document.getElementById('who').textContent.startsWith('uid ')")
        assert "registered as ada_console" in await page.evaluate("document.getElementById('auth-result').textContent")
        await page.evaluate("document.getElementById('chat-connect').click()")
        await page.wait_for("document.getElementById('chat-state').textContent === 'online'")
        await page.evaluate(
            "document.getElementById('chat-text').value = 'hello from the console';"
            "document.getElementById('chat-send').click()"
        )
        line = await page.wait_for(
            "[...document.querySelectorAll('#chat .entry')].map((e) => e.textContent).find((t) => t.includes('hello'))"
        )
        assert "[public] ada_console: hello from the console" in line

        # The status panel refreshes itself: it comes to count the calls above.
        await page.wait_for(
            "Number([...document.querySelectorAll('#status dt')].find((dt) => dt.textContent === 'requests')"
            "?.nextElementSibling.textContent) >= 2"
        )
        await page.wait_for("document.querySelectorAll('#logs .entry').length > 0")
        await page.screenshot(ARTIFACTS / "console.png")
        assert browser.errors == []
