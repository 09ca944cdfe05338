"""Quiz 02 holds what issue 11 asks for: a match question on where each fact belongs (weights,
retrieval, database, tool), seed 000's "whole handbook" and "facts that change daily", and questions
on the lesson's measurements, each option with its own explanation."""

import re

from ftcourse.classroom.quiz import grade, load_quiz, validate_quiz_file


def _question(qid):
    return next(q for q in load_quiz("02").questions if q.id == qid)


def test_quiz_02_is_valid_and_covers_the_lesson():
    quiz = load_quiz("02")
    assert validate_quiz_file(quiz.path) == []
    assert len(quiz.questions) >= 8
    assert {q.kind for q in quiz.questions} == {"single", "multi", "match"}
    ids = {q.id for q in quiz.questions}
    assert {"q02-where-facts-belong", "q02-whole-handbook", "q02-daily-facts", "q02-retrieval-metrics",
            "q02-threshold-split", "q02-conflict"} <= ids
    assert all(q.source.startswith(("lesson 02", "seed")) for q in quiz.questions)


def test_where_facts_belong_matches_four_places_and_uses_each():
    q = _question("q02-where-facts-belong")
    assert q.kind == "match"
    places = ("weights", "retrieval", "database", "tool")
    assert len(q.choices) == 4 and all(any(p in c.lower() for c in q.choices) for p in places)
    answers = [item.answer for item in q.items]
    assert set(answers) == set(q.choices)  # every place is the answer to something
    assert grade(q, answers).correct
    for choice in q.choices:  # no single place passes
        assert not grade(q, [choice] * len(q.items)).correct
    texts = " ".join(item.text.lower() for item in q.items)
    assert "whole handbook" in texts and "changes daily" in texts  # seed 000's quick check


def test_seed_000_items_are_asked_on_their_own_too():
    handbook, daily = _question("q02-whole-handbook"), _question("q02-daily-facts")
    assert "whole handbook" in handbook.prompt and "changes daily" in daily.prompt
    assert "whole handbook" in handbook.source and "changes daily" in daily.source


def test_every_question_has_a_right_answer_and_explained_wrong_ones():
    for q in load_quiz("02").questions:
        if q.kind == "match":
            assert grade(q, [item.answer for item in q.items]).correct
            explains = [item.explain for item in q.items]
        else:
            right = [i for i, o in enumerate(q.options) if o.correct]
            assert grade(q, right[0] if q.kind == "single" else right).correct
            assert sum(not o.correct for o in q.options) >= 2
            explains = [o.explain for o in q.options]
        assert all(len(text.split()) >= 8 for text in explains), q.id


def test_mrr_question_is_computed_right():
    q = _question("q02-retrieval-metrics")
    (right,) = [o for o in q.options if o.correct]
    mrr = (1 + 1 / 2 + 0) / 3
    assert f"= {mrr:g}" in right.text and "hit@1 = 1/3" in right.text and "hit@5 = 2/3" in right.text


def test_quiz_quotes_papers_not_this_runs_numbers():
    # measured numbers change with the model and device; only the papers' figures are quoted
    for q in load_quiz("02").questions:
        for text in [o.explain for o in q.options] + [o.text for o in q.options] + [i.explain for i in q.items]:
            for number in re.findall(r"\d+ ?%", text):
                assert number.replace(" ", "") in {"10%", "96%"}, (q.id, number)
