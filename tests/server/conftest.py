"""In-process server fixtures: the app on port 0 in the test's loop, with the test handlers loaded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from gameserver.app import App
from tests.fixtures.modules import PATH as FIXTURE_MODULES


@pytest.fixture
async def gate_app(app_factory: Callable[..., Any]) -> App:
    """An app with ``testkit.*`` (tests/fixtures/modules) next to the built-in functions."""
    app: App = await app_factory(modules={"paths": [FIXTURE_MODULES]})
    return app
