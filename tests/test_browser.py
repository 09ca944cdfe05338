"""Every lesson's widgets, clicked in a real JupyterLab (headless Chromium through Playwright).

For each lessons/NN_*.ipynb the test writes a copy that keeps the lesson's own widget cells (its
quiz; lesson 00's progress table; lesson 01's decision tree and diagnosis matching) and none of its
model cells, and, for lesson 05, builds the blind A/B test, the decision record and the break-even
explorer from tiny fixed inputs (tests/browser_helpers.py). It opens the copy in JupyterLab, runs
it with Run > Run All Cells, then clicks: one quiz question of each kind (single, multi, match),
Check, the feedback and the score, and the check in the progress file; then each other widget.
One screenshot per lesson goes to a temporary folder whose path is printed.

Needs playwright (pinned in requirements-dev.txt) and a Chromium. A distribution's Chromium is
used when there is one (Debian: `apt-get install chromium`; `.ci/run` installs it in CI);
FTCOURSE_CHROMIUM=/path/to/chromium names another one. Without a browser the test is skipped
with the reason, except under CI=true, where that is a failure.

    pytest -m slow tests/test_browser.py
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import browser_helpers as bh
import pytest

try:
    from playwright.sync_api import Error as PlaywrightError
    from playwright.sync_api import expect, sync_playwright
except ImportError:  # the fixture skips (or fails in CI) with the fix
    sync_playwright = None
    PlaywrightError = Exception

TOKEN = "ftcourse-browser-test"
if sync_playwright is not None:
    expect.set_options(timeout=30_000)  # the kernel may share two cores with other work
LESSONS = bh.lesson_ids()
LAB_SETTINGS = {  # the test's own, next to the course's overrides: every cell stays in the page
    "@jupyterlab/notebook-extension:tracker": {"windowingMode": "none"},
}


def _missing(reason: str, fix: str):
    """Skip on a learner's machine; fail under CI=true, where the browser test must run."""
    if bh.in_ci():
        pytest.fail(f"{reason}. CI must run the browser test: {fix}.", pytrace=False)
    pytest.skip(f"{reason}: {fix}")


# --------------------------------------------------------------------------- fast checks of the notebook copies
@pytest.mark.parametrize("lesson", LESSONS)
def test_widget_notebook_keeps_the_widgets_and_no_model_cell(lesson, tmp_path):
    nb, kinds = bh.widget_notebook(lesson, tmp_path / "decision_record.md")
    sources = [c["source"] for c in nb["cells"]]
    assert kinds[0] == "imports" and len(kinds) == len(sources)
    assert kinds.count("quiz") == 1
    assert re.search(r"show_quiz\(\s*['\"]" + lesson, sources[kinds.index("quiz")])
    text = "\n".join(sources)
    for model_call in ("load_model", "generate", "train", "run_failure_cases", "fetch"):
        assert model_call + "(" not in text, f"lesson {lesson}'s copy would call {model_call}()"
    if lesson == "01":
        assert {"decision_tree", "diagnosis"} <= set(kinds)
    if lesson == "05":
        assert {"abtest", "record", "break_even"} <= set(kinds)
    for line in sources[0].splitlines()[1:]:  # the imports resolve without the model
        exec(line, {})


def test_lab_settings_turn_news_off(tmp_path):
    bh.write_lab_settings(tmp_path)
    notification = json.loads((tmp_path / "@jupyterlab/apputils-extension/notification.jupyterlab-settings")
                              .read_text())
    assert notification["fetchNews"] == "false" and notification["checkForUpdates"] is False


# --------------------------------------------------------------------------- JupyterLab and Chromium
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def chromium():
    """A headless Chromium: the distribution's where there is one, else playwright's own."""
    if sync_playwright is None:
        _missing("playwright is not installed", bh.PLAYWRIGHT_FIX)
    exe = bh.chromium_executable()
    with sync_playwright() as p:
        try:
            browser = p.chromium.launch(executable_path=exe, args=bh.CHROMIUM_FLAGS) if exe \
                else p.chromium.launch(args=bh.CHROMIUM_FLAGS)
        except PlaywrightError as exc:
            what = f"Chromium at {exe} did not start" if exe else "no Chromium found"
            _missing(f"{what} ({str(exc).strip().splitlines()[0]})", bh.CHROMIUM_FIX)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    """A JupyterLab on a free port with a token, its own settings, and a progress file in a temp dir."""
    root = tmp_path_factory.mktemp("lab")
    settings = root / ".config" / "lab" / "user-settings"
    bh.write_lab_settings(settings, LAB_SETTINGS)
    port = _free_port()
    env = {**os.environ, "FTCOURSE_PROGRESS": str(root / "progress.json"),
           "JUPYTER_RUNTIME_DIR": str(root / ".runtime"), "JUPYTER_CONFIG_DIR": str(root / ".config"),
           "JUPYTERLAB_SETTINGS_DIR": str(settings), "JUPYTERLAB_WORKSPACES_DIR": str(root / ".workspaces")}
    cmd = [sys.executable, "-m", "jupyter", "lab", "--no-browser", f"--port={port}", "--ip=127.0.0.1",
           f"--ServerApp.root_dir={root}", f"--IdentityProvider.token={TOKEN}",
           f"--LabApp.user_settings_dir={settings}", f"--LabApp.workspaces_dir={root / '.workspaces'}"]
    if hasattr(os, "geteuid") and os.geteuid() == 0:
        cmd.append("--allow-root")
    log_path = root / "lab.log"
    log = open(log_path, "w")  # noqa: SIM115 - closed in the teardown
    proc = subprocess.Popen(cmd, cwd=root, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(240):
            try:
                urllib.request.urlopen(f"{url}/api/status?token={TOKEN}", timeout=2)
                break
            except OSError:
                if proc.poll() is not None:
                    pytest.fail(f"JupyterLab exited:\n{log_path.read_text()[-2000:]}")
                time.sleep(0.25)
        else:
            pytest.fail(f"JupyterLab did not start within 60 s:\n{log_path.read_text()[-2000:]}")
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()


@pytest.fixture(scope="module")
def shots(tmp_path_factory):
    return tmp_path_factory.mktemp("browser-screenshots")


def _shut_down_kernel(url: str, notebook: str) -> None:
    """End the notebook's kernel (REST API), so the lessons do not pile up kernels."""
    try:
        with urllib.request.urlopen(f"{url}/api/sessions?token={TOKEN}", timeout=5) as r:
            sessions = json.load(r)
        for s in sessions:
            if s.get("path", "").endswith(notebook):
                req = urllib.request.Request(f"{url}/api/sessions/{s['id']}?token={TOKEN}", method="DELETE")
                urllib.request.urlopen(req, timeout=10).close()
    except OSError:
        pass


def _run_all(page, address: str) -> None:
    """Open the notebook, wait for its kernel, then Run > Run All Cells from the menu bar."""
    page.goto(address)
    page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=60_000)
    # the kernel is connected: the status bar names it and says Idle (the toolbar's indicator reads
    # "idle" before any kernel is there, and Run All then would ask which kernel to start)
    expect(page.locator(".jp-StatusBar-Widget", has_text=re.compile(r"Python.*\|\s*Idle"))).not_to_have_count(
        0, timeout=60_000)
    page.wait_for_selector(".jp-NotebookPanel .jp-Notebook-ExecutionIndicator[data-status='idle']",
                           timeout=60_000)
    page.locator("#jp-MainMenu .lm-MenuBar-itemLabel", has_text=re.compile(r"^Run$")).click()
    page.locator(".lm-Menu .lm-Menu-itemLabel", has_text=re.compile(r"^Run All Cells$")).click()


def _wait_recorded(progress: Path, lesson: str, expected: set[str], timeout: float = 15) -> list[dict]:
    """The progress file's checks of ``lesson``, once every question id in ``expected`` is among them."""
    deadline, checks = time.monotonic() + timeout, []
    while time.monotonic() < deadline:
        try:
            checks = [c for c in json.loads(progress.read_text())["checks"] if c["lesson"] == lesson]
        except (OSError, ValueError, KeyError):
            checks = []
        if expected <= {c["question"] for c in checks}:
            return checks
        time.sleep(0.2)
    pytest.fail(f"{progress} did not record the checks of {sorted(expected)} for lesson {lesson}; "
                f"it holds {checks}")


def _plain(text: str) -> str:
    """How the quiz's YAML text reads on screen: `code` and **bold** markers gone, spaces collapsed."""
    return " ".join(text.replace("**", "").replace("`", "").split())


def _snippet(text: str, n: int = 40) -> str:
    words, out = _plain(text).split(), ""
    for w in words:
        if len(out) + len(w) + 1 > n and out:
            break
        out = f"{out} {w}".strip()
    return out


# --------------------------------------------------------------------------- what each cell's widget must do
def _check_quiz(page, cell, lesson: str, progress: Path) -> dict:
    """One question of each kind answered right by clicks, Check, feedback, score, progress file."""
    quiz = bh.course_attr("load_quiz", "quiz", "quiz_files")(lesson)
    boxes = cell.locator(".quiz .quiz-question")
    expect(boxes).to_have_count(len(quiz.questions), timeout=120_000)
    firsts = {}
    for i, q in enumerate(quiz.questions):
        firsts.setdefault(q.kind, i)
    checked = []
    for kind, i in firsts.items():
        q, box = quiz.questions[i], boxes.nth(i)
        if kind == "single":
            radios = box.locator(".quiz-single-choice input[type='radio']")
            expect(radios).to_have_count(len(q.options))
            expect(box.locator("input[type='checkbox']")).to_have_count(0)
            right = next(j for j, o in enumerate(q.options) if o.correct)
            radios.nth(right).click()
            expect(radios.nth(right)).to_be_checked()
            explain = q.options[right].explain
        elif kind == "multi":
            ticks = box.locator(".quiz-option-box input[type='checkbox']")
            expect(ticks).to_have_count(len(q.options))
            rights = [j for j, o in enumerate(q.options) if o.correct]
            for j in rights:
                ticks.nth(j).click()
                expect(ticks.nth(j)).to_be_checked()
            explain = q.options[rights[0]].explain
        else:
            selects = box.locator(".quiz-match-choice select")
            expect(selects).to_have_count(len(q.items))
            for j, item in enumerate(q.items):
                selects.nth(j).select_option(label=item.answer)
            explain = q.items[0].explain
        box.locator(".quiz-check").click()
        expect(box).to_have_class(re.compile(r"\bquiz-correct\b"))
        expect(box.locator(".quiz-feedback .quiz-verdict")).to_contain_text("Right")
        expect(box.locator(".quiz-feedback")).to_contain_text(_snippet(explain))
        expect(box.locator(".quiz-retry")).to_be_enabled()
        checked.append(q.id)
        n = len(checked)
        expect(cell.locator(".quiz-score")).to_contain_text(
            f"Score: {n} of {len(quiz.questions)} right ({n} check{'s' if n != 1 else ''})")
    checks = _wait_recorded(progress, lesson, set(checked))
    for qid in checked:
        assert any(c["question"] == qid and c["correct"] is True and c["attempt"] == 1 for c in checks), qid
    return {"solved": len(checked), "questions": len(quiz.questions)}


def _check_progress_table(page, cell, lesson: str, progress: Path, solved: int, questions: int) -> None:
    """Run the lesson's show_progress() cell again: its table now counts the checks just made."""
    cell.locator(".jp-InputArea-editor").click()
    page.keyboard.press("Control+Enter")  # run in place
    row = cell.locator(".quiz-progress tbody tr").filter(has_text=re.compile(rf"^\s*{lesson}(?!\d)"))
    expect(row).to_contain_text(f"{solved}/{questions}", timeout=30_000)


def _check_decision_tree(page, cell) -> None:
    """Each "What is missing?" answer (and a tick) changes the recommendation to the tree's own."""
    recommend = bh.course_attr("recommend", "decide")
    out = cell.locator(".jp-OutputArea-output")
    expect(out).to_contain_text("What is missing?", timeout=120_000)
    expect(out).to_contain_text(recommend(None).label)
    steps = [("button", "Facts", recommend("facts").label),
             ("button", "Behaviour", recommend("behaviour").label),
             ("checkbox", "The team agrees on the desired behaviour, and it is stable",
              recommend("behaviour", stable=True).label)]
    shown = {recommend(None).label}
    for role, name, label in steps:
        assert label not in shown, f"the step {name!r} would not change the recommendation"
        cell.get_by_role(role, name=name, exact=True).click()
        expect(out).to_contain_text(label)
        shown.add(label)
    # every checkbox on show reads in full, not cut off with an ellipsis
    cut = cell.locator(".widget-checkbox").evaluate_all(
        "els => els.filter(e => e.offsetParent !== null).flatMap(e => [e, ...e.querySelectorAll('*')])"
        ".filter(e => e.scrollWidth > e.clientWidth + 1).map(e => e.textContent.trim())")
    assert not cut, f"checkbox descriptions cut short: {cut}"


def _check_diagnosis(page, cell, progress: Path) -> None:
    question = bh.course_attr("diagnosis_question", "diagnosis_quiz", "diagnosis")()
    box = cell.locator(".quiz-question")
    selects = box.locator(".quiz-match-choice select")
    expect(selects).to_have_count(len(question.items), timeout=120_000)
    for j, item in enumerate(question.items):
        selects.nth(j).select_option(label=item.answer)
    box.locator(".quiz-check").click()
    expect(box).to_have_class(re.compile(r"\bquiz-correct\b"))
    expect(box.locator(".quiz-feedback")).to_contain_text(_snippet(question.items[-1].explain))
    _wait_recorded(progress, "01", {question.id})


def _check_abtest(page, cell) -> None:
    """Pick an answer until every pair is judged: the sides are revealed with the decision."""
    widget = cell.locator(".abtest")
    expect(widget).to_be_visible(timeout=120_000)
    label = widget.locator(".abtest-progress")
    expect(label).to_contain_text("pair 1 of ")
    total = int(re.search(r"of (\d+)", label.inner_text()).group(1))
    expect(widget.locator(".abtest-result")).to_have_text("")
    for k in range(total):
        expect(label).to_contain_text(f"pair {k + 1} of {total}")
        widget.locator(".abtest-pick-left" if k % 2 == 0 else ".abtest-tie").click()
    expect(label).to_contain_text(f"all {total} pairs judged")
    expect(widget.locator(".abtest-result")).to_contain_text("Decision:")
    expect(widget.locator(".abtest-pick-left")).to_be_disabled()


def _check_record(page, cell, record_path: Path) -> None:
    widget = cell.locator(".decision-record")
    expect(widget).to_be_visible(timeout=120_000)
    widget.locator(".decision-record-write").click()
    expect(widget.locator(".decision-record-message")).to_contain_text("Written to")
    expect(widget.locator(".decision-record-output")).to_contain_text("Decision record:")
    assert record_path.exists(), f"the form said it wrote {record_path}, which is not there"
    assert record_path.read_text().startswith("# Decision record:")


def _check_break_even(page, cell) -> None:
    """Drag the requests-per-day slider: the break-even sentence changes."""
    widget = cell.locator(".break-even-explorer")
    summary = widget.locator(".break-even-summary")
    expect(summary).to_contain_text("Break-even", timeout=120_000)
    before = summary.inner_text()
    handle = widget.locator(".noUi-handle").nth(2)  # training cost, tokens saved, requests per day, price
    handle.scroll_into_view_if_needed()
    box = handle.bounding_box()
    x, y = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    page.mouse.move(x, y)
    page.mouse.down()
    page.mouse.move(x + 60, y, steps=6)
    page.mouse.up()
    expect(summary).not_to_have_text(before)


def _screenshot(page, path: Path) -> None:
    """The whole notebook in one picture: the window is made as tall as the notebook first."""
    height = page.evaluate("() => { const s = document.querySelector('.jp-NotebookPanel .jp-WindowedPanel-outer');"
                           " if (!s) return 0; s.scrollTop = 0; return s.scrollHeight; }")
    if height:
        page.set_viewport_size({"width": 1280, "height": min(16_000, int(height) + 250)})
        page.wait_for_timeout(300)  # one layout pass
    page.screenshot(path=str(path))


# --------------------------------------------------------------------------- the test, lesson by lesson
@pytest.mark.slow
@pytest.mark.parametrize("lesson", LESSONS)
def test_lesson_widgets_in_jupyterlab(chromium, lab, shots, lesson, record_property):
    url, root = lab
    progress = root / "progress.json"
    record_path = root / f"records-{lesson}" / "decision_record.md"
    nb, kinds = bh.widget_notebook(lesson, record_path)
    name = f"lesson{lesson}_widgets.ipynb"
    (root / name).write_text(json.dumps(nb, indent=1), encoding="utf-8")
    context = chromium.new_context(viewport={"width": 1280, "height": 1500})
    page = context.new_page()
    page.set_default_timeout(30_000)
    shot = shots / f"lesson-{lesson}.png"
    started = time.monotonic()
    try:
        # a workspace per lesson, so the page opens this notebook alone
        _run_all(page, f"{url}/lab/workspaces/lesson{lesson}/tree/{name}?token={TOKEN}")
        cells = page.locator(".jp-Notebook .jp-Cell")
        expect(cells).to_have_count(len(kinds), timeout=30_000)
        quiz_score = None
        for i, kind in enumerate(kinds):
            cell = cells.nth(i)
            if kind == "quiz":
                quiz_score = _check_quiz(page, cell, lesson, progress)
            elif kind == "progress":
                assert quiz_score is not None, "the progress cell is expected after the quiz"
                _check_progress_table(page, cell, lesson, progress, quiz_score["solved"], quiz_score["questions"])
            elif kind == "decision_tree":
                _check_decision_tree(page, cell)
            elif kind == "diagnosis":
                _check_diagnosis(page, cell, progress)
            elif kind == "abtest":
                _check_abtest(page, cell)
            elif kind == "record":
                _check_record(page, cell, record_path)
            elif kind == "break_even":
                _check_break_even(page, cell)
        stderr = page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.stderr']")
        for text in stderr.all_inner_texts():  # tracebacks; a warning or matplotlib's font cache note may pass
            assert not re.search(r"Traceback|\b\w+Error\b", text), f"a cell failed:\n{text[:3000]}"
        # the course's settings are in force: JupyterLab does not ask about its news
        assert page.get_by_text("official Jupyter news").count() == 0
    finally:
        try:
            _screenshot(page, shot)
        except PlaywrightError:
            pass
        context.close()
        _shut_down_kernel(url, name)
        # printed at the end of the run by conftest.py, also from a pytest-xdist worker
        record_property("screenshot", f"lesson {lesson}: {time.monotonic() - started:.0f} s in the browser; {shot}")
