"""The course's JupyterLab settings: news and update checks are off, in a form JupyterLab accepts and reads.

``jupyter/overrides.json`` is installed by ``scripts/lab_settings.sh`` (``make lab``, Binder's
``postBuild``) as ``<app dir>/settings/overrides.d/ftcourse.json``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
OVERRIDES = ROOT / "jupyter" / "overrides.json"
SCRIPT = ROOT / "scripts" / "lab_settings.sh"
NOTIFICATION = "@jupyterlab/apputils-extension:notification"


def _schema(plugin: str) -> dict:
    """The settings schema of ``plugin`` in the installed JupyterLab (skips when there is none)."""
    pytest.importorskip("jupyterlab")
    from jupyterlab.commands import get_app_dir

    package, name = plugin.split(":")
    path = Path(get_app_dir()) / "schemas" / package / f"{name}.json"
    if not path.is_file():
        pytest.skip(f"no settings schema {path}: JupyterLab's application files are not installed here")
    return json.loads(path.read_text(encoding="utf-8"))


def test_overrides_turn_news_and_update_checks_off():
    overrides = json.loads(OVERRIDES.read_text(encoding="utf-8"))
    news = overrides[NOTIFICATION]
    assert news["fetchNews"] == "false"  # a string: "Never" in the schema's choices, not the boolean
    assert news["checkForUpdates"] is False


@pytest.mark.parametrize("plugin", sorted(json.loads(OVERRIDES.read_text(encoding="utf-8"))))
def test_overrides_are_valid_for_the_installed_jupyterlab(plugin):
    from jsonschema import Draft7Validator

    schema = _schema(plugin)
    settings = json.loads(OVERRIDES.read_text(encoding="utf-8"))[plugin]
    errors = [f"{'/'.join(map(str, e.path))}: {e.message}" for e in Draft7Validator(schema).iter_errors(settings)]
    assert not errors, f"{OVERRIDES} sets {plugin} to values its schema refuses: {errors}"
    assert set(settings) <= set(schema["properties"])  # no key JupyterLab would ignore


def _install(app_dir: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "JUPYTERLAB_DIR": str(app_dir)}
    return subprocess.run(["bash", str(SCRIPT), sys.executable], env=env, capture_output=True, text=True,
                          check=True)


def test_script_installs_where_jupyterlab_reads_it_and_is_idempotent(tmp_path):
    pytest.importorskip("jupyterlab_server")
    from jupyterlab_server.settings_utils import _get_overrides

    app_dir = tmp_path / "lab"
    (app_dir / "settings").mkdir(parents=True)
    mine = {"@jupyterlab/apputils-extension:themes": {"theme": "JupyterLab Dark"}}
    (app_dir / "settings" / "overrides.json").write_text(json.dumps(mine))  # a learner's own overrides

    first = _install(app_dir)
    installed = app_dir / "settings" / "overrides.d" / "ftcourse.json"
    assert "installed" in first.stdout and installed.read_text() == OVERRIDES.read_text()
    read, error = _get_overrides(str(app_dir / "settings"))
    assert not error
    assert read[NOTIFICATION] == json.loads(OVERRIDES.read_text())[NOTIFICATION]
    assert read["@jupyterlab/apputils-extension:themes"] == mine["@jupyterlab/apputils-extension:themes"]

    stamp = installed.stat().st_mtime_ns
    again = _install(app_dir)
    assert again.stdout == "" and installed.stat().st_mtime_ns == stamp
    assert sorted(p.name for p in installed.parent.iterdir()) == ["ftcourse.json"]  # no temp file left


def test_script_finds_the_app_dir_jupyterlab_uses(monkeypatch):
    """Without JUPYTERLAB_DIR the script installs under sys.prefix: the app dir JupyterLab itself uses."""
    pytest.importorskip("jupyterlab")
    from jupyterlab.commands import get_app_dir

    monkeypatch.delenv("JUPYTERLAB_DIR", raising=False)
    assert Path(get_app_dir()).resolve() == Path(sys.prefix, "share", "jupyter", "lab").resolve()


def test_make_lab_and_binder_install_the_settings():
    makefile = (ROOT / "Makefile").read_text(encoding="utf-8")
    lab_recipe = makefile.split("\nlab:", 1)[1].split("\n\n", 1)[0]
    assert "scripts/lab_settings.sh" in lab_recipe
    assert "scripts/lab_settings.sh" in (ROOT / "postBuild").read_text(encoding="utf-8")
