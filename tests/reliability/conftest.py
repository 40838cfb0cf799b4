"""The reliability suite (marker ``reliability``): real `gameserver run` processes on private MariaDB and Redis
instances, faults injected under load, every write checked. Outside CI it skips without ``mariadbd`` and
``redis-server``; in CI (``CI=true``) their absence fails. At the end of the run it prints its table (faults and
what the server did) and writes it to ``$RELIABILITY_TABLE`` if set; README.md shows one."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from _pytest.terminal import TerminalReporter

from tests.conftest import IN_CI
from tests.reliability.harness import ROWS, table

SERVICES = {"mariadbd": "mariadb-server", "redis-server": "redis-server"}


@pytest.fixture(autouse=True)
def services_installed() -> None:
    for binary, package in SERVICES.items():
        if shutil.which(binary, path=os.environ.get("PATH", "") + ":/usr/sbin:/usr/local/sbin") is None:
            message = f"{binary} is not installed (apt-get install {package}): the reliability suite starts its own"
            if IN_CI:
                pytest.fail(message)
            pytest.skip(message)


def pytest_terminal_summary(terminalreporter: TerminalReporter) -> None:
    if not ROWS:
        return
    text = table(ROWS)
    terminalreporter.write_sep("=", "reliability")
    terminalreporter.write_line(text)
    if target := os.environ.get("RELIABILITY_TABLE"):
        Path(target).write_text(text + "\n")
