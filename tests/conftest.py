"""Shared test fixtures."""

from __future__ import annotations

import shutil

import pytest

# Notebooks under tests/fixtures are inputs to the grading tests, not notebooks to run.
collect_ignore_glob = ["fixtures/*"]

# The longest files first (measured with --durations), so that with two xdist workers (make test) no
# worker is left running a long notebook alone at the end (the Makefile passes --no-loadscope-reorder,
# so that xdist keeps this order). Within a file the order stays as collected. Lesson 05 reads the
# break-even figures lesson 04 saves, and uses the reference run's figures while there are none yet.
HEAVIEST_FIRST = ("lessons/04_", "tests/test_exercises.py", "lessons/05_", "lessons/02_", "lessons/03_",
                  "tests/test_grading.py", "tests/test_nbgrader.py", "lessons/01_", "tests/test_browser.py")


def pytest_collection_modifyitems(items):
    def rank(item):
        return next((i for i, prefix in enumerate(HEAVIEST_FIRST) if item.nodeid.startswith(prefix)),
                    len(HEAVIEST_FIRST))

    items.sort(key=rank)  # a stable sort


_screenshots: list[str] = []


def pytest_runtest_logreport(report):
    """Collect the screenshot paths the browser test records (they travel back from xdist workers)."""
    if report.when == "call":
        _screenshots.extend(value for key, value in report.user_properties if key == "screenshot")


def pytest_terminal_summary(terminalreporter):
    if _screenshots:
        terminalreporter.section("browser screenshots")
        for line in sorted(_screenshots):
            terminalreporter.write_line(line)


@pytest.fixture(scope="session")
def course_model():
    """The real course model (provisioned offline from the PyPI wheel on first use)."""
    from ftcourse.models import load_model

    return load_model(verbose=False)


@pytest.fixture(scope="module")
def package_copy(tmp_path_factory):
    """Grade with a copy of the ftcourse package as the one the runs must not change.

    The grading run hashes its package before and after every notebook; with the live package, an
    edit saved in the checkout while the tests run would read as tampering. Grading test modules
    use it for every test (``pytestmark = pytest.mark.usefixtures("package_copy")``).
    """
    from ftcourse.classroom import grading

    copy = tmp_path_factory.mktemp("package") / "ftcourse"
    shutil.copytree(grading.PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(grading, "PACKAGE", copy)
        yield copy
