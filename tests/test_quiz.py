"""ftcourse.classroom.quiz: every quiz file is valid, grading is right for all three kinds, widgets work headless."""

import json
import textwrap
from pathlib import Path

import pytest

from ftcourse.classroom import quiz as Q
from ftcourse.classroom import quiz_files

QUIZ_FILES = sorted((Path(Q.__file__).parents[1] / "data" / "quizzes").glob("*.yaml"))

SAMPLE = textwrap.dedent("""\
    lesson: "07"
    title: Sample quiz
    questions:
      - id: q07-single
        kind: single
        prompt: "Prices change weekly. Where do they live?"
        source: "seed 000, Bad fine-tuning targets"
        options:
          - {text: "In the weights", correct: false, explain: "Stale after the next price change."}
          - {text: "In a document store", correct: true, explain: "Update the row, done."}
          - {text: "In the prompt, typed by hand", correct: false, explain: "Someone must retype it."}
      - id: q07-multi
        kind: multi
        prompt: "Which are stable behaviours?"
        source: "lesson 07, section 2"
        options:
          - {text: "A strict JSON shape", correct: true, explain: "Same every time: trainable."}
          - {text: "Today's card-reader price", correct: false, explain: "A fact that changes."}
          - {text: "A house tone", correct: true, explain: "Repeated on every answer."}
      - id: q07-match
        kind: match
        prompt: "Match each situation with a tool."
        source: "seed 000, Quick check"
        choices: ["Prompting", "RAG / database", "Tools", "Fine-tuning"]
        items:
          - {text: "A balance check", answer: "Tools", explain: "A live action."}
          - {text: "Facts that change daily", answer: "RAG / database", explain: "Look them up."}
          - {text: "A repeated format", answer: "Fine-tuning", explain: "A stable behaviour."}
""")


@pytest.fixture
def sample_file(tmp_path):
    path = tmp_path / "07.yaml"
    path.write_text(SAMPLE)
    return path


@pytest.fixture
def progress_file(tmp_path, monkeypatch):
    path = tmp_path / "progress.json"
    monkeypatch.setenv("FTCOURSE_PROGRESS", str(path))
    return path


# --------------------------------------------------------------------------- the course's quiz files
def test_there_are_quiz_files():
    assert any(p.name == "00.yaml" for p in QUIZ_FILES)


@pytest.mark.parametrize("path", QUIZ_FILES, ids=[p.name for p in QUIZ_FILES])
def test_quiz_file_is_valid(path):
    problems = Q.validate_quiz_file(path)
    assert problems == [], "\n".join(problems)
    quiz = Q.load_quiz(path.stem)
    assert quiz.lesson == path.stem and quiz.questions
    for q in quiz.questions:  # the invariants, restated on the loaded objects
        assert q.source.strip()
        if q.kind == "single":
            assert sum(o.correct for o in q.options) == 1
        elif q.kind == "multi":
            assert any(o.correct for o in q.options)
        else:
            assert all(item.answer in q.choices for item in q.items)
        assert all(o.explain.strip() for o in q.options) and all(i.explain.strip() for i in q.items)


@pytest.mark.parametrize("path", QUIZ_FILES, ids=[p.name for p in QUIZ_FILES])
def test_quiz_file_builds_widgets(path, progress_file):
    view = Q.build_quiz(path.stem)
    assert len(view.questions) == len(Q.load_quiz(path.stem).questions)


def test_question_ids_are_unique_across_all_quiz_files():
    assert Q.validate_all_quizzes() == []
    ids = [q.id for p in QUIZ_FILES for q in Q.load_quiz(p).questions]
    assert len(ids) == len(set(ids))


def test_validate_all_finds_an_id_used_in_two_files(tmp_path, sample_file):
    other = tmp_path / "08.yaml"
    other.write_text(SAMPLE.replace('lesson: "07"', 'lesson: "08"').replace("q07-multi", "q08-multi"))
    problems = Q.validate_all_quizzes([sample_file, other])
    assert len(problems) == 2 and all("already used in" in p for p in problems)


# --------------------------------------------------------------------------- validation catches each mistake
BROKEN = [
    ("q07-multi", "q07-single", "is used twice"),
    ('{text: "In the weights", correct: false', '{text: "In the weights", correct: true', "exactly one correct"),
    ('explain: "Stale after the next price change."', 'explanation: "Stale."', "needs an 'explain'"),
    ('source: "lesson 07, section 2"', 'source: ""', "non-empty 'source'"),
    ('answer: "Tools"', 'answer: "Tool"', "is not one of the choices"),
    ("kind: multi", "kind: multiple", "kind must be one of"),
    ('lesson: "07"', "lesson: 7", "quoted string"),
    ('lesson: "07"', 'lesson: "08"', "does not match the file name"),
    ("correct: true, explain: \"Update", "correct: yes-ish, explain: \"Update", "must be true or false"),
    ("id: q07-match", "id: Q07 Match", "'id' must be"),
    ('    prompt: "Which are stable behaviours?"\n', "", "non-empty 'prompt'"),
    ("{text: \"A strict JSON shape\", correct: true", "{text: \"A strict JSON shape\", correct: false", ""),
]


@pytest.mark.parametrize("old, new, expected", BROKEN)
def test_validation_reports_each_mistake(tmp_path, old, new, expected):
    assert old in SAMPLE
    text = SAMPLE.replace(old, new)
    if not expected:  # multi with no correct option left
        text = text.replace('{text: "A house tone", correct: true', '{text: "A house tone", correct: false')
        expected = "at least one correct option"
    path = tmp_path / "07.yaml"
    path.write_text(text)
    problems = Q.validate_quiz_file(path)
    assert any(expected in p for p in problems), problems
    with pytest.raises(Q.QuizFileError, match="not a valid quiz"):
        Q.load_quiz(path)


def test_validation_reports_yaml_syntax_errors(tmp_path):
    path = tmp_path / "07.yaml"
    path.write_text("lesson: \"07\"\nquestions: [unclosed\n")
    (problem,) = Q.validate_quiz_file(path)
    assert "not valid YAML" in problem and "line" in problem


def test_validation_of_the_sample_passes(sample_file):
    assert Q.validate_quiz_file(sample_file) == []


def test_missing_quiz_names_the_lessons_that_have_one():
    with pytest.raises(Q.QuizFileError, match="Lessons with a quiz: .*00"):
        Q.load_quiz("99")


def test_lesson_names_resolve():
    assert quiz_files._resolve("00_setup").name == "00.yaml"
    assert quiz_files._resolve(0).name == "00.yaml"
    assert Q.load_quiz(0).lesson == "00"


def test_cli_validates(sample_file, capsys, tmp_path):
    assert Q.main([str(sample_file)]) == 0
    assert "OK" in capsys.readouterr().out
    bad = tmp_path / "09.yaml"
    bad.write_text(SAMPLE)  # lesson "07" in a file named 09.yaml
    assert Q.main([str(bad)]) == 1
    assert "does not match the file name" in capsys.readouterr().out


# --------------------------------------------------------------------------- grading: plain functions
@pytest.fixture
def sample(sample_file):
    return {q.kind: q for q in Q.load_quiz(sample_file).questions}


def test_grade_single(sample):
    q = sample["single"]
    right = Q.grade(q, 1)
    assert right.correct and right.score == 1.0
    assert right.feedback[0].explain == "Update the row, done."
    wrong = Q.grade(q, 0)
    assert not wrong.correct and wrong.score == 0.0
    assert wrong.feedback[0].explain == "Stale after the next price change."  # a wrong answer teaches too
    with pytest.raises(Q.NoAnswer):
        Q.grade(q, None)
    with pytest.raises(ValueError, match="does not exist"):
        Q.grade(q, 3)


def test_grade_multi(sample):
    q = sample["multi"]
    assert Q.grade(q, [0, 2]).correct
    partial = Q.grade(q, [0])
    assert not partial.correct and partial.missed == 1
    assert partial.score == pytest.approx(2 / 3)
    assert "1 option that applies is not ticked" in partial.summary
    assert [f.text for f in partial.feedback] == ["A strict JSON shape"]  # missed ones are not revealed
    over = Q.grade(q, [0, 1, 2])
    assert not over.correct and "1 ticked option does not apply" in over.summary
    assert [f.right for f in over.feedback] == [True, False, True]
    with pytest.raises(Q.NoAnswer):
        Q.grade(q, [])


def test_grade_match(sample):
    q = sample["match"]
    good = ["Tools", "RAG / database", "Fine-tuning"]
    assert Q.grade(q, good).correct
    assert Q.grade(q, dict(enumerate(good))).correct
    half = Q.grade(q, ["Tools", "Fine-tuning", "Fine-tuning"])
    assert not half.correct and half.score == pytest.approx(2 / 3)
    assert [f.right for f in half.feedback] == [True, False, True]
    assert all(f.explain for f in half.feedback)
    assert "2 of 3 pairs match" in half.summary
    with pytest.raises(Q.NoAnswer):
        Q.grade(q, ["Tools", None, "Fine-tuning"])
    with pytest.raises(ValueError, match="not among the choices"):
        Q.grade(q, ["Tools", "Magic", "Fine-tuning"])


# --------------------------------------------------------------------------- widgets, driven without a frontend
def _classes(widget):
    return set(widget._dom_classes)


def test_widget_css_classes(sample_file, progress_file):
    view = Q.build_quiz(sample_file)
    assert "quiz" in _classes(view.box)
    assert "quiz-score" in _classes(view.score)
    for v in view.questions:
        assert {"quiz-question", f"quiz-kind-{v.question.kind}"} <= _classes(v.box)
        assert "quiz-check" in _classes(v.check_button)
        assert "quiz-retry" in _classes(v.retry_button)
        assert "quiz-feedback" in _classes(v.feedback)


def test_single_widget_check_and_retry(sample_file, progress_file):
    view = Q.build_quiz(sample_file)
    single = view.questions[0]
    single.selector.value = 0
    single.check_button.click()
    assert "Stale after the next price change." in single.feedback.value
    assert "quiz-incorrect" in _classes(single.box)
    assert single.selector.disabled and all(w.disabled for w in single.inputs)
    assert single.check_button.disabled and not single.retry_button.disabled
    assert "0 of 3 right" in view.score.value and "(1 check)" in view.score.value
    single.retry_button.click()
    assert single.answer() is None and single.feedback.value == "" and not single.selector.disabled
    single.selector.value = 1
    single.check_button.click()
    assert "Update the row, done." in single.feedback.value and "quiz-correct" in _classes(single.box)
    assert "1 of 3 right" in view.score.value and "(2 checks)" in view.score.value


def test_single_choice_keeps_one_tick(sample_file, progress_file):
    import ipywidgets as w

    single = Q.build_quiz(sample_file).questions[0]
    # radio buttons: one control whose value is one option, so a second pick replaces the first
    assert isinstance(single.selector, w.RadioButtons) and single.inputs == [single.selector]
    assert Q.SINGLE_CHOICE_CLASS in _classes(single.selector)
    assert single.selector.options == (("In the weights", 0), ("In a document store", 1),
                                       ("In the prompt, typed by hand", 2))
    assert single.selector.value is None and single.answer() is None
    single.selector.value = 0
    single.selector.value = 2
    assert single.selector.value == 2 and single.selector.label == "In the prompt, typed by hand"
    assert single.answer() == 2
    single.select(1)
    assert single.answer() == 1 and single.selector.index == 1


def test_single_choice_labels_wrap(sample_file, progress_file):
    """Long radio labels wrap: the question carries a style that frees the labels' one-line height."""
    single = Q.build_quiz(sample_file).questions[0]
    styles = [c for c in single.box.children[2].children if "quiz-style" in _classes(c)]
    assert len(styles) == 1 and styles[0].value == Q.QUIZ_STYLE
    rule = Q.QUIZ_STYLE.split(".quiz-single-choice .widget-radio-box label", 1)[1].split("}", 1)[0]
    assert "white-space:normal" in rule and "height:auto" in rule
    multi = Q.build_quiz(sample_file).questions[1]
    assert all("quiz-option-box" in _classes(box) for box in multi.selector)


def test_single_choice_labels_are_plain_text():
    assert Q._plain("Use **one** `tools=` list") == "Use one `tools=` list"


def test_check_without_an_answer_asks_for_one(sample_file, progress_file):
    view = Q.build_quiz(sample_file)
    single = view.questions[0]
    single.check_button.click()
    assert "Pick an option first" in single.feedback.value
    assert single.attempts == 0 and not progress_file.exists()
    assert not single.check_button.disabled


def test_multi_and_match_widgets(sample_file, progress_file):
    view = Q.build_quiz(sample_file)
    multi, match = view.questions[1], view.questions[2]
    multi.selector[0].value = True
    multi.selector[2].value = True
    multi.check_button.click()
    assert multi.last.correct and "Same every time" in multi.feedback.value
    for dd, choice in zip(match.selector, ["Tools", "Prompting", "Fine-tuning"], strict=True):
        dd.value = choice
    match.check_button.click()
    assert not match.last.correct
    assert "you picked: Prompting" in match.feedback.value and "Look them up." in match.feedback.value
    match.retry_button.click()
    assert all(dd.value is None for dd in match.selector)
    match.select(["Tools", "RAG / database", "Fine-tuning"])
    match.check_button.click()
    assert match.last.correct and match.attempts == 2
    assert "2 of 3 right" in view.score.value


def test_every_check_is_recorded(sample_file, progress_file):
    view = Q.build_quiz(sample_file)
    single = view.questions[0]
    for pick in (0, 1):
        single.select(pick)
        single.check_button.click()
        single.retry_button.click()
    checks = json.loads(progress_file.read_text())["checks"]
    assert [(c["lesson"], c["question"], c["correct"], c["attempt"]) for c in checks] == [
        ("07", "q07-single", False, 1), ("07", "q07-single", True, 2)]
    assert all(c["time"] for c in checks)


def test_record_false_writes_nothing(sample_file, progress_file):
    view = Q.build_quiz(sample_file, record=False)
    view.questions[0].select(1)
    view.questions[0].check_button.click()
    assert view.questions[0].last.correct and not progress_file.exists()


def test_text_is_escaped_and_inline_code_kept():
    assert Q._inline("<b>x</b> `y`") == "&lt;b&gt;x&lt;/b&gt; <code>y</code>"


def test_show_quiz_displays_the_widget(monkeypatch, progress_file):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda obj: shown.append(obj))
    assert Q.show_quiz("00") is None
    (box,) = shown
    assert "quiz" in _classes(box)
