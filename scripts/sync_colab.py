"""Write the course's "Open in Colab" links and Colab setup cells from one URL.

The repository's address lives only in pyproject.toml (``[project.urls] Repository``). This script
copies it into:

- every ``lessons/NN_*.ipynb``: an "Open In Colab" badge as the last line of the title cell, and a
  code cell tagged ``colab-setup`` right after the title that, in Colab only, clones the course,
  installs its pinned packages and fetches the model (anywhere else it does nothing);
- README.md: a badge after the notebook's name in each row of the lessons table, and a
  "Google Colab" item in the list of other ways to run the course.

    python scripts/sync_colab.py              # update the files in place
    python scripts/sync_colab.py --check      # change nothing; exit 1 and name the stale files
    python scripts/sync_colab.py --root DIR   # work on another copy of the course

Running it twice changes nothing; after the URL changes, one run moves every link to the new address.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
from pathlib import Path

import nbformat

try:
    import tomllib
except ModuleNotFoundError:   # Python 3.10: the same parser, from PyPI
    import tomli as tomllib

BRANCH = "main"
SETUP_TAG = "colab-setup"
SETUP_ID = "colab-setup"
BADGE_IMAGE = "https://colab.research.google.com/assets/colab-badge.svg"
LESSON_GLOB = "[0-9][0-9]_*.ipynb"

README_BULLET_START = "- **Google Colab"
README_SECTION = "### conda, Binder"   # the README section that lists the other ways to run the course
README_BULLET = """\
- **Google Colab (self-paced, with a GPU):** press *Open In Colab* next to a lesson in the table above
  (or at the top of the lesson), pick a GPU under *Runtime > Change runtime type*, and run the cells in
  order. The lesson's first code cell clones this repository into `/content`, installs
  `requirements.txt` and the package, and fetches the model; anywhere but Colab it does nothing. The
  first run in a session takes a few minutes (torch alone is a large download). If pip asks you to
  restart the session, restart and run that cell again: it skips the clone. The course then uses the
  GPU by itself. Quiz progress and trained adapters live in the session and are gone when it ends."""

_GITHUB = re.compile(
    r"^https://github\.com/(?P<owner>[A-Za-z0-9][A-Za-z0-9-]*)/(?P<name>[A-Za-z0-9._-]+?)(?:\.git)?/?$")
_BADGE = r"\[!\[Open In Colab\]\([^)\s]*\)\]\([^)\s]*\)"
_ROW = re.compile(
    r"^\| (?P<name>\[`(?P<linked>\d\d_[A-Za-z0-9_]+)`\]\(lessons/(?P=linked)\.ipynb\)|`(?P<plain>\d\d_[A-Za-z0-9_]+)`)"
    rf"(?: {_BADGE})* \|",
    re.IGNORECASE,
)


def repository(root: Path) -> tuple[str, str, str]:
    """``(url, owner, name)`` of ``[project.urls] Repository`` in ``root/pyproject.toml``."""
    pyproject = root / "pyproject.toml"
    with open(pyproject, "rb") as f:
        url = tomllib.load(f).get("project", {}).get("urls", {}).get("Repository")
    if not url:
        raise ValueError(f"{pyproject} has no [project.urls] Repository: "
                         'add Repository = "https://github.com/OWNER/REPO".')
    match = _GITHUB.match(url.strip())
    if not match:
        raise ValueError(f"Repository = {url!r} in {pyproject} is not a GitHub address: "
                         "write it as https://github.com/OWNER/REPO (Colab opens notebooks from GitHub).")
    return f"https://github.com/{match['owner']}/{match['name']}", match["owner"], match["name"]


def colab_url(owner: str, name: str, notebook: str) -> str:
    """The address that opens ``lessons/<notebook>`` of the GitHub repository in Colab."""
    return f"https://colab.research.google.com/github/{owner}/{name}/blob/{BRANCH}/lessons/{notebook}"


def badge(url: str) -> str:
    """Markdown for the "Open In Colab" badge linking to ``url``."""
    return f"[![Open In Colab]({BADGE_IMAGE})]({url})"


def setup_cell_source(repo_url: str, name: str) -> str:
    """The lesson's first code cell: in Colab, install the course and fetch the model; elsewhere nothing."""
    return "\n".join([
        "# In Colab only: clone the course, install its pinned packages and fetch the model. Elsewhere: nothing.",
        "import os",
        "import subprocess",
        "import sys",
        "",
        'if "google.colab" in sys.modules:',
        f'    home, repo = "/content/{name}", "{repo_url}"',
        "    if not os.path.isdir(home):",
        '        subprocess.run(["git", "clone", "--depth", "1", repo, home], check=True)',
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-r", "requirements.txt"], '
        'cwd=home, check=True)',
        '    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "-e", "."], cwd=home, check=True)',
        '    subprocess.run([sys.executable, "-m", "ftcourse", "fetch-model"], cwd=home, check=True)',
        "    sys.path.insert(0, home)   # the running kernel sees the package without a restart",
        '    os.chdir(f"{home}/lessons")',
        '    print(f"Colab: course installed in {home}, model fetched; the lesson uses the GPU by itself.")',
    ])


def _with_badge(title: str, line: str) -> str:
    """The title cell's text with ``line`` as its only Colab badge: replaced in place, or appended."""
    lines = title.split("\n")
    found = [i for i, text in enumerate(lines) if "colab.research.google.com/" in text]
    if found:
        lines[found[0]] = line
        lines = [text for i, text in enumerate(lines) if i not in found[1:]]
        return "\n".join(lines)
    return title.rstrip() + "\n\n" + line


def _write_atomically(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", newline="") as f:
            f.write(text)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _sync_text(path: Path, new: str, check: bool) -> bool:
    """Write ``new`` to ``path`` unless it is there already (or ``check``); True when it differed."""
    if path.read_text(encoding="utf-8") == new:
        return False
    if not check:
        _write_atomically(path, new)
    return True


def sync_notebook(path: Path, repo_url: str, owner: str, name: str, check: bool = False) -> bool:
    """Give one lesson its badge and its setup cell; True when the file changed (or would, with ``check``)."""
    nb = nbformat.read(path, as_version=4)
    title = nb.cells[0] if nb.cells else None
    if title is None or title.cell_type != "markdown" or not title.source.lstrip().startswith("# "):
        raise ValueError(f"{path}: the first cell must be the lesson's markdown title (# ...); "
                         "put the title first, then run this script again.")
    title.source = _with_badge(title.source, badge(colab_url(owner, name, path.name)))
    cells = [c for c in nb.cells if SETUP_TAG not in c.get("metadata", {}).get("tags", [])]
    cell = nbformat.v4.new_code_cell(setup_cell_source(repo_url, name), metadata={"tags": [SETUP_TAG]})
    cell.id = SETUP_ID
    if any(c.get("id") == SETUP_ID for c in cells):
        raise ValueError(f"{path}: another cell already has the id {SETUP_ID!r}; give that cell a different id.")
    nb.cells = [cells[0], cell, *cells[1:]]
    nbformat.validate(nb)
    text = nbformat.writes(nb)
    return _sync_text(path, text if text.endswith("\n") else text + "\n", check)


def readme_text(text: str, lessons: Path, owner: str, name: str) -> str:
    """README text with a Colab badge in each lesson row and the Colab item in the run-it-elsewhere list."""
    def row(match: re.Match) -> str:
        stem = match["linked"] or match["plain"]
        if not (lessons / f"{stem}.ipynb").exists():
            return match[0]
        return f"| {match['name']} {badge(colab_url(owner, name, stem + '.ipynb'))} |"

    lines = [_ROW.sub(row, line) for line in text.split("\n")]
    start = next((i for i, line in enumerate(lines) if line.startswith(README_BULLET_START)), None)
    if start is not None:                          # replace the item and its indented continuation lines
        end = start + 1
        while end < len(lines) and lines[end].startswith("  "):
            end += 1
        lines[start:end] = README_BULLET.split("\n")
    else:
        heading = next((i for i, line in enumerate(lines) if line.startswith(README_SECTION)), None)
        if heading is None:
            raise ValueError(f"README.md has no section starting {README_SECTION!r} to hold the Colab item; "
                             "add the item by hand or set README_SECTION in scripts/sync_colab.py.")
        i = heading + 1
        while i < len(lines) and not lines[i].startswith("- "):   # the list's first item
            i += 1
        while i < len(lines) and (lines[i].startswith("- ") or lines[i].startswith("  ")):
            i += 1
        lines[i:i] = README_BULLET.split("\n")
    return "\n".join(lines)


def sync(root: Path, check: bool = False) -> list[Path]:
    """Bring every lesson and README.md under ``root`` in line with pyproject's Repository; the changed files."""
    repo_url, owner, name = repository(root)
    lessons = root / "lessons"
    notebooks = sorted(lessons.glob(LESSON_GLOB))
    if not notebooks:
        raise ValueError(f"no lessons matching {LESSON_GLOB} in {lessons}: pass --root with the course folder.")
    changed = [p for p in notebooks if sync_notebook(p, repo_url, owner, name, check)]
    readme = root / "README.md"
    if _sync_text(readme, readme_text(readme.read_text(encoding="utf-8"), lessons, owner, name), check):
        changed.append(readme)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1],
                        help="the course folder (default: this script's repository)")
    parser.add_argument("--check", action="store_true", help="change nothing; exit 1 when a file is out of date")
    args = parser.parse_args(argv)
    try:
        changed = sync(args.root, check=args.check)
    except (ValueError, OSError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    url = repository(args.root)[0]
    for path in changed:
        print(f"{'out of date' if args.check else 'updated'}: {path.relative_to(args.root)}")
    if not changed:
        print(f"Colab links and setup cells already point at {url}")
    return 1 if args.check and changed else 0


if __name__ == "__main__":
    sys.exit(main())
