"""The quiz renders in a real JupyterLab (headless Chromium through Playwright).

Skipped, with the reason, when Playwright or a Chromium is not installed. To run it:

    pip install playwright && python -m playwright install --with-deps chromium
    pytest -m slow tests/test_browser.py

A distribution's Chromium works too (Debian: `apt-get install chromium`, then only
`pip install playwright`); `FTCOURSE_CHROMIUM=/path/to/chromium` names another one.
"""

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

pytest.importorskip(
    "playwright.sync_api",
    reason="playwright is not installed (pip install playwright && python -m playwright install chromium)",
)
from playwright.sync_api import Error as PlaywrightError  # noqa: E402
from playwright.sync_api import sync_playwright  # noqa: E402

from ftcourse.quiz import load_quiz  # noqa: E402

pytestmark = pytest.mark.slow
TOKEN = "ftcourse-browser-test"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    root = tmp_path_factory.mktemp("lab")
    nb = {"cells": [{"cell_type": "code", "execution_count": None, "id": "0", "metadata": {}, "outputs": [],
                     "source": 'from ftcourse.quiz import show_quiz\n\nshow_quiz("00")'}],
          "metadata": {"kernelspec": {"display_name": "Python 3", "language": "python", "name": "python3"}},
          "nbformat": 4, "nbformat_minor": 5}
    (root / "quiz.ipynb").write_text(json.dumps(nb))
    port = _free_port()
    env = {**os.environ, "FTCOURSE_PROGRESS": str(root / "progress.json"),
           "JUPYTER_RUNTIME_DIR": str(root / ".runtime"), "JUPYTER_CONFIG_DIR": str(root / ".config")}
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={TOKEN}",
           f"--LabApp.workspaces_dir={root / '.workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log = open(root / "lab.log", "w")  # noqa: SIM115 - closed in the teardown
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"JupyterLab exited:\n{Path(log.name).read_text()[-2000:]}")
                time.sleep(0.5)
        else:
            pytest.fail("JupyterLab did not start within 60 s")
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


def _system_chromium() -> dict:
    """Use a distribution's Chromium (e.g. Debian's `chromium` package) when playwright has none."""
    exe = os.environ.get("FTCOURSE_CHROMIUM") or next(
        (p for p in ("/usr/bin/chromium", "/usr/bin/chromium-browser") if Path(p).exists()), None)
    if not exe:
        return {}
    flags = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
             "--disable-sync", "--no-first-run", "--disable-quic"]
    return {"executable_path": exe, "args": flags}


def test_quiz_renders_and_checks_in_jupyterlab(lab):
    quiz = load_quiz("00")
    question = quiz.questions[0]
    right = next(i for i, o in enumerate(question.options) if o.correct)
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(**_system_chromium())
        except PlaywrightError as exc:
            pytest.skip(f"Chromium for playwright is missing ({str(exc).splitlines()[0]}); "
                        "run: python -m playwright install --with-deps chromium")
        try:
            page = browser.new_page()
            page.goto(f"{lab}/lab/tree/quiz.ipynb?token={TOKEN}")
            page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
            page.locator(".jp-Cell .jp-InputArea-editor").first.click()
            page.keyboard.press("Shift+Enter")
            page.wait_for_selector(".quiz-question", timeout=120_000)
            assert page.locator(".quiz-question").count() == len(quiz.questions)
            assert page.locator(".quiz-check").count() == len(quiz.questions)
            assert page.locator(".quiz-score").count() == 1
            page.locator(".quiz-question .quiz-single-choice input[type='radio']").nth(right).check()
            page.locator(".quiz-check").first.click()
            page.wait_for_selector(".quiz-question.quiz-correct", timeout=30_000)
            feedback = page.locator(".quiz-feedback").first.inner_text()
            assert question.options[right].explain.split()[0] in feedback
            assert "1 of 1 right" in page.locator(".quiz-score").inner_text()
            if os.environ.get("FTCOURSE_SCREENSHOT"):  # to look at the quiz: a PNG of the page
                page.screenshot(path=os.environ["FTCOURSE_SCREENSHOT"], full_page=True)
        finally:
            browser.close()
