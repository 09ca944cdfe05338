"""Shared test fixtures."""

from __future__ import annotations

import pytest

# Notebooks under tests/fixtures are inputs to the grading tests, not notebooks to run.
collect_ignore_glob = ["fixtures/*"]


@pytest.fixture(scope="session")
def course_model():
    """The real course model (provisioned offline from the PyPI wheel on first use)."""
    from ftcourse.models import load_model

    return load_model(verbose=False)
