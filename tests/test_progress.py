"""ftcourse.classroom.progress: atomic saves, damaged files moved aside with a warning, per-lesson summary."""

import json
import os
import threading
from argparse import Namespace
from datetime import datetime, timezone
from pathlib import Path

import pytest

from ftcourse.classroom import progress as P


@pytest.fixture
def pfile(tmp_path, monkeypatch):
    path = tmp_path / "sub" / "progress.json"
    monkeypatch.setenv("FTCOURSE_PROGRESS", str(path))
    return path


def test_path_from_env_and_default(pfile, monkeypatch, tmp_path):
    assert P.progress_path() == pfile
    assert P.progress_path(tmp_path / "x.json") == tmp_path / "x.json"
    monkeypatch.delenv("FTCOURSE_PROGRESS")
    monkeypatch.setenv("HOME", str(tmp_path))
    assert P.progress_path() == tmp_path / ".ftcourse" / "progress.json"


def test_record_appends_and_creates_folders(pfile):
    when = datetime(2025, 1, 31, 10, 2, 11, tzinfo=timezone.utc)
    assert P.record_check("01", "q01-a", False, 1, when=when)
    assert P.record_check("01", "q01-a", True, 2)
    data = json.loads(pfile.read_text())
    assert data["format"] == 1
    assert data["checks"][0] == {"lesson": "01", "question": "q01-a", "correct": False, "attempt": 1,
                                 "time": "2025-01-31T10:02:11+00:00"}
    assert [c["correct"] for c in P.load_progress()] == [False, True]
    leftovers = [p.name for p in pfile.parent.iterdir() if p.name.endswith(".tmp")]
    assert leftovers == []  # the temp file was renamed into place


def test_save_is_atomic_when_the_write_fails(pfile, monkeypatch):
    P.record_check("01", "q01-a", True, 1)
    before = pfile.read_text()

    def boom(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(P.os, "replace", boom)
    with pytest.warns(P.ProgressWarning, match="could not be saved.*disk full"):
        assert P.record_check("01", "q01-b", True, 1) is False
    assert pfile.read_text() == before  # the old file is intact
    assert not [p for p in pfile.parent.iterdir() if p.name.endswith(".tmp")]


def test_corrupt_file_is_moved_aside_with_a_warning(pfile):
    pfile.parent.mkdir(parents=True)
    pfile.write_text('{"format": 1, "checks": [{"lesson": "01", ')  # truncated
    with pytest.warns(P.ProgressWarning, match="could not be read.*moved to"):
        assert P.record_check("02", "q02-a", True, 1)
    aside = list(pfile.parent.glob("progress.json.corrupt-*"))
    assert len(aside) == 1 and aside[0].read_text().startswith('{"format": 1, "checks": [{"lesson": "01", ')
    assert [c["question"] for c in P.load_progress()] == ["q02-a"]


@pytest.mark.parametrize("content", ["[1, 2, 3]", "\xff\xfe garbage", '{"checks": "nope"}', ""])
def test_any_unreadable_content_is_moved_aside(pfile, content):
    pfile.parent.mkdir(parents=True)
    pfile.write_bytes(content.encode("latin-1"))
    with pytest.warns(P.ProgressWarning):
        assert P.load_progress() == []
    assert not pfile.exists() and len(list(pfile.parent.glob("progress.json.corrupt-*"))) == 1


def test_malformed_records_are_dropped_but_kept_in_a_copy(pfile):
    pfile.parent.mkdir(parents=True)
    good = {"lesson": "01", "question": "q01-a", "correct": True, "attempt": 1, "time": "t"}
    pfile.write_text(json.dumps({"format": 1, "checks": [good, {"lesson": "01"}, dict(good, attempt=True)]}))
    with pytest.warns(P.ProgressWarning, match="2 malformed record"):
        assert P.load_progress() == [good]
    (copy,) = pfile.parent.glob("progress.json.corrupt-*")
    assert len(json.loads(copy.read_text())["checks"]) == 3


def test_unwritable_location_warns_instead_of_raising(tmp_path, monkeypatch):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    monkeypatch.setenv("FTCOURSE_PROGRESS", str(blocker / "progress.json"))
    with pytest.warns(P.ProgressWarning, match="FTCOURSE_PROGRESS"):
        assert P.record_check("01", "q01-a", True, 1) is False


def test_concurrent_saves_lose_nothing(pfile):
    threads = [threading.Thread(target=P.record_check, args=("01", f"q01-{i}", True, 1)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(c["question"] for c in P.load_progress()) == sorted(f"q01-{i}" for i in range(20))


def _rec(lesson, question, correct, time="2025-02-01T09:00:00+00:00"):
    return {"lesson": lesson, "question": question, "correct": correct, "attempt": 1, "time": time}


def test_summarize_counts_per_lesson():
    checks = [_rec("01", "a", False), _rec("01", "a", True), _rec("01", "b", True, "2025-02-02T08:00:00+00:00"),
              _rec("03", "z", False)]
    catalogue = {"00": ("Setup", {"x"}), "01": ("Prompt vs weights", {"a", "b", "c"})}
    rows = {r.lesson: r for r in P.summarize(checks, catalogue)}
    assert list(rows) == ["00", "01", "03"]
    assert (rows["00"].answered, rows["00"].checks, rows["00"].questions) == (0, 0, 1)
    one = rows["01"]
    assert (one.questions, one.answered, one.solved, one.first_try, one.checks) == (3, 2, 2, 1, 3)
    assert one.last == "2025-02-02T08:00:00+00:00"
    assert rows["03"].questions is None and rows["03"].solved == 0
    text = P.format_summary(list(rows.values()))
    assert "2/3" in text and "0/?" in text and "2025-02-02 08:00" in text


def _questions_in(lesson: str) -> int:
    from ftcourse.classroom.quiz import load_quiz

    return len(load_quiz(lesson).questions)


def test_cli_progress_prints_the_summary(pfile, capsys):
    assert P.cli_progress(Namespace(file=None)) == 0
    out = capsys.readouterr().out
    assert "No answers recorded yet" in out and str(pfile) in out
    P.record_check("00", "q00-first-move", True, 1)
    other = pfile.parent / "other.json"
    assert P.cli_progress(Namespace(file=str(other))) == 0
    assert str(other) in capsys.readouterr().out
    assert P.cli_progress(Namespace(file=None)) == 0
    out = capsys.readouterr().out
    assert "00" in out and f"1/{_questions_in('00')}" in out and "No answers" not in out


def test_cli_progress_survives_a_corrupt_file(pfile, capsys):
    pfile.parent.mkdir(parents=True)
    pfile.write_text("{{{")
    with pytest.warns(P.ProgressWarning):
        assert P.cli_progress(Namespace(file=None)) == 0
    assert "No answers recorded yet" in capsys.readouterr().out


def test_show_progress_prints_outside_ipython(pfile, capsys):
    P.record_check("00", "q00-first-move", False, 1)
    assert P.show_progress() is None
    assert "0/1" in capsys.readouterr().out


def test_show_progress_displays_html_in_ipython(pfile, monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.get_ipython", lambda: object())
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    P.record_check("00", "q00-first-move", True, 1)
    P.show_progress()
    (html,) = shown
    assert 'class="quiz-progress"' in html.data and f"<td>1/{_questions_in('00')}</td>" in html.data


def test_module_never_writes_without_a_check(pfile):
    P.load_progress()
    assert not pfile.exists()
    assert os.path.isdir(pfile.parent)


def test_lessons_without_checks_are_listed_as_not_started(pfile):
    P.record_check("01", "q01-quick-check", True, 1)
    rows = {r.lesson: r for r in P.summarize(P.load_progress())}
    lessons = sorted(p.stem for p in (Path(P.__file__).parents[1] / "data" / "quizzes").glob("*.yaml"))
    assert list(rows) == lessons and {"00", "05"} <= set(rows)  # every quiz lesson, checked or not
    text = P.format_summary(list(rows.values()))
    by_lesson = {line.split()[0]: line for line in text.splitlines()[2:]}
    assert by_lesson["00"].endswith("not started") and not by_lesson["01"].endswith("not started")
