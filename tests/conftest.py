"""Shared test fixtures."""

from __future__ import annotations

import shutil

import pytest

# Notebooks under tests/fixtures are inputs to the grading tests, not notebooks to run.
collect_ignore_glob = ["fixtures/*"]

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
