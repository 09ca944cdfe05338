"""Quiz 05 (decide and defend): valid, every kind of question, every common mistake of seed 003 and every
checkpoint of seed 000 covered, and the numbers it quotes (intervals, break-even) recomputed here."""

from types import SimpleNamespace

from ftcourse.classroom.quiz import grade, load_quiz, quiz_dir, validate_quiz_file
from ftcourse.cost import ownership_break_even
from ftcourse.stats import wilson_interval

# Seed 003's common mistakes: the choice that names each one in the matching question, and the
# questions of their own that go deeper (each must name seed 003 in its source).
SEED_003_MISTAKES = {
    "fine-tuning instead of a better prompt": ("Tuning instead of a better prompt", ["q05-ladder-by-measurement"]),
    "fine-tuning instead of RAG for knowledge": ("Tuning instead of retrieval for knowledge",
                                                 ["q05-ladder-by-measurement"]),
    "fine-tuning without evals": ("Tuning without evals", ["q05-no-evals"]),
    "tiny or dirty datasets": ("A tiny or dirty dataset", ["q05-dirty-data"]),
    "a company database that changes tomorrow": ("Baking in data that changes tomorrow", ["q05-changing-facts"]),
    "style, knowledge and policy in one stew": ("Style, knowledge and policy in one stew", ["q05-one-stew"]),
}
MISTAKES_MATCH = "q05-common-mistakes"

# Seed 000's four checkpoint questions and the question that asks each.
SEED_000_CHECKPOINTS = {
    "prompt context vs fine-tuned behaviour": "q05-context-vs-weights",
    "why fine-tuning stores changing facts badly": "q05-changing-facts",
    "two problems better solved with RAG or tools": "q05-rag-or-tools",
    "what to prove with an eval set before training": "q05-no-evals",
}


def _quiz():
    return load_quiz("05")


def _question(qid):
    return next(q for q in _quiz().questions if q.id == qid)


def _right_option(qid):
    (right,) = [o for o in _question(qid).options if o.correct]
    return right


def _about(successes, n):
    low, high = wilson_interval(successes, n)
    return f"about {low:.0%} to {high:.0%}".replace("%", " %")


def test_quiz_05_is_valid_and_mixes_the_kinds():
    assert validate_quiz_file(quiz_dir() / "05.yaml") == []
    quiz = _quiz()
    assert quiz.lesson == "05" and len(quiz.questions) >= 10
    assert {q.kind for q in quiz.questions} == {"single", "multi", "match"}
    assert all(q.source.startswith(("seed", "lesson 05")) for q in quiz.questions)


def test_every_question_has_a_right_answer_and_every_option_explains_itself():
    for q in _quiz().questions:
        if q.kind == "match":
            assert grade(q, [item.answer for item in q.items]).correct
            assert {item.answer for item in q.items} == set(q.choices), q.id  # every choice is used
        else:
            right = [i for i, o in enumerate(q.options) if o.correct]
            assert grade(q, right[0] if q.kind == "single" else right).correct
            assert sum(not o.correct for o in q.options) >= 2, q.id
        explains = [o.explain for o in q.options] + [i.explain for i in q.items]
        assert all(len(text.split()) >= 8 for text in explains), q.id


def test_every_common_mistake_of_seed_003_is_covered():
    match = _question(MISTAKES_MATCH)
    assert "seed 003" in match.source
    answers = [item.answer for item in match.items]
    assert sorted(answers) == sorted(choice for choice, _ in SEED_003_MISTAKES.values())  # one item each
    ids = {q.id for q in _quiz().questions}
    for mistake, (_, deeper) in SEED_003_MISTAKES.items():
        for qid in deeper:
            assert qid in ids, mistake
            assert "seed 003" in _question(qid).source, (mistake, qid)


def test_every_checkpoint_of_seed_000_is_asked():
    for checkpoint, qid in SEED_000_CHECKPOINTS.items():
        source = _question(qid).source
        assert "seed 000" in source and "Checkpoint" in source, checkpoint


def test_ab_win_rate_counts_decisive_pairs_and_quotes_their_interval():
    q = _question("q05-ab-win-rate")
    assert "27 times" in q.prompt and "18 times" in q.prompt and "15 pairs a tie" in q.prompt
    right = _right_option("q05-ab-win-rate")
    low, high = wilson_interval(27, 27 + 18)
    assert "27 of the 45 decisive pairs" in right.text and _about(27, 45).replace("about ", "") in right.text
    assert low < 0.5 < high and "includes 50 %" in right.text  # not shown: the interval holds a coin
    ties = _right_option("q05-ab-ties")
    assert "9 of 17 decisive pairs" in ties.text and _about(9, 17) in ties.text and "parity" in ties.text


def test_distillation_names_what_it_saves_and_its_ceiling():
    q = _question("q05-distillation")
    true_texts = " ".join(o.text for o in q.options if o.correct)
    assert "No one labels data by hand" in true_texts and "prompt's tokens" in true_texts
    assert "ceiling is the teacher" in true_texts
    ceiling = _right_option("q05-distill-ceiling")
    assert "toward the teacher, not past it" in ceiling.text
    assert _about(144, 200).replace("about ", "") in ceiling.explain  # 72 % of 200
    assert _about(138, 200).replace("about ", "") in ceiling.explain  # 69 % of 200


def test_monitoring_question_asks_for_a_signal_and_a_retraining_trigger():
    q = _question("q05-monitoring")
    true_texts = " ".join(o.text for o in q.options if o.correct)
    assert "signal" in true_texts and "retraining trigger" in true_texts and "quarterly" in true_texts
    assert any("training loss" in o.text and not o.correct for o in q.options)


def test_break_even_figures_follow_the_ownership_formula():
    saving = (1800 - 200) * 0.50 / 1e6
    assert round(saving, 6) == 0.0008
    costs = SimpleNamespace(one_time=6000.0, per_month=400.0)
    at_volume = ownership_break_even(costs, saving, 300_000)
    assert at_volume["months"] == float("inf") and round(at_volume["min_requests_per_month"]) == 500_000
    assert round(ownership_break_even(costs, saving, 2_000_000)["months"], 6) == 5
    right = _right_option("q05-break-even-prompt")
    assert right.text.startswith("Never at this volume") and "500,000" in right.text and "5 months" in right.text
    naive = [o for o in _question("q05-break-even-prompt").options if "7.5 million" in o.text]
    assert len(naive) == 1 and not naive[0].correct  # one-time cost / saving ignores the monthly bill


def test_progress_lists_lesson_05_as_not_started(tmp_path, monkeypatch):
    from ftcourse.classroom import progress

    monkeypatch.setenv("FTCOURSE_PROGRESS", str(tmp_path / "progress.json"))
    rows = {r.lesson: r for r in progress.summarize(progress.load_progress())}
    assert rows["05"].questions == len(_quiz().questions) and rows["05"].checks == 0
    assert progress.format_summary([rows["05"]]).splitlines()[-1].endswith("not started")
