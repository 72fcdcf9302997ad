"""Fixtures of the browser suite: a temporary lab, one JupyterLab server, one Chromium.

The suite runs only when selected with ``-m e2e`` (``make test-e2e``); a plain
``pytest`` (``make test``) reports it as skipped. Everything it starts is stopped at the
end, on success and on failure, and the session fails if a process was left behind.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from e2e_lab import (
    CHROMIUM,
    CHROMIUM_ARGS,
    MARK,
    NOTEBOOKS,
    SHOTS,
    LabServer,
    kill_marked,
    prepare_lab,
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Skip e2e tests unless the run selects them with a ``-m`` expression naming e2e."""
    if "e2e" in (config.getoption("markexpr") or ""):
        return
    skip = pytest.mark.skip(reason="browser end-to-end tests: run `make test-e2e`")
    for item in items:
        if "e2e" in item.keywords:
            item.add_marker(skip)


@dataclass
class Lab:
    """The running lab of the session."""

    root: Path  # LABKIT_HOME; notebooks in root/notebooks
    mark: str  # LABKIT_E2E_RUN of the server and everything it starts
    server: LabServer
    context: Any  # playwright BrowserContext


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Lab]:
    """Tiny-preset copies of the notebooks, ``jupyter lab`` on them, headless Chromium."""
    if not os.access(CHROMIUM, os.X_OK):
        pytest.fail(f"{CHROMIUM} is missing: `make test-e2e` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    root = tmp_path_factory.mktemp("lab")
    prepare_lab(NOTEBOOKS, root)
    SHOTS.mkdir(parents=True, exist_ok=True)
    for old in SHOTS.glob("*.png"):  # only this run's pictures (failures included) stay
        old.unlink()
    mark = uuid.uuid4().hex
    server = LabServer(root, mark)
    pw = browser = None
    try:
        server.start()
        pw = sync_playwright().start()
        browser = pw.chromium.launch(executable_path=CHROMIUM, headless=True,
                                     args=CHROMIUM_ARGS,
                                     env={**os.environ, MARK: f"{mark}-browser"})
        context = browser.new_context(viewport={"width": 1400, "height": 1000})
        yield Lab(root=root, mark=mark, server=server, context=context)
    finally:
        if browser is not None:
            browser.close()
        if pw is not None:
            pw.stop()
        server.stop()
        if server.log_path.is_file():
            shutil.copy2(server.log_path, SHOTS / "jupyter-server.log")
        left = kill_marked(mark) + kill_marked(f"{mark}-browser")
    assert not left, f"processes left after the suite (now killed): {left}"


@pytest.fixture
def page(lab: Lab) -> Iterator[Any]:
    """A fresh browser tab; closed afterwards."""
    tab = lab.context.new_page()
    try:
        yield tab
    finally:
        tab.close()
