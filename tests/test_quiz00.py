"""Quiz 00 tests what lesson 00 teaches: greedy decoding, what the model reads (tokens), what a request costs."""

from ftcourse.classroom.quiz import grade, load_quiz


def test_quiz_00_covers_the_lesson():
    quiz = load_quiz("00")
    assert len(quiz.questions) >= 4
    ids = {q.id for q in quiz.questions}
    assert {"q00-greedy", "q00-what-the-model-reads", "q00-what-costs", "q00-batching"} <= ids
    assert {q.kind for q in quiz.questions} >= {"single", "match"}
    assert all(q.source.startswith(("lesson 00", "seed")) for q in quiz.questions)


def test_every_question_has_a_right_answer_and_wrong_ones_that_explain_themselves():
    for q in load_quiz("00").questions:
        if q.kind == "match":
            assert grade(q, [item.answer for item in q.items]).correct
            assert len(set(item.answer for item in q.items)) == len(q.choices)  # every choice is used
        else:
            right = [i for i, o in enumerate(q.options) if o.correct]
            assert grade(q, right[0] if q.kind == "single" else right).correct
            assert sum(not o.correct for o in q.options) >= 2
        assert all(len(text.split()) >= 8 for text in [o.explain for o in q.options] + [i.explain for i in q.items])


def test_cost_question_separates_prompt_answer_and_one_time_costs():
    q = next(q for q in load_quiz("00").questions if q.id == "q00-what-costs")
    by_answer = {}
    for item in q.items:
        by_answer.setdefault(item.answer, []).append(item.text)
    assert any("system turn" in t for t in by_answer["Every request: prompt tokens read"])
    assert any("Loading the model" in t for t in by_answer["Once, before any request"])
