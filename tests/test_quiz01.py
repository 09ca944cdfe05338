"""Quiz 01 holds what the issues ask for: the seed's quick check with disjoint choices, its checkpoint,
and a checklist that says where its questions come from."""

from ftcourse.classroom.quiz import grade, load_quiz, validate_quiz_file
from ftcourse.decide import CHECKLIST


def _question(qid):
    return next(q for q in load_quiz("01").questions if q.id == qid)


def test_quiz_01_is_valid_and_complete():
    quiz = load_quiz("01")
    assert validate_quiz_file(quiz.path) == []
    assert len(quiz.questions) >= 8
    ids = {q.id for q in quiz.questions}
    assert {"q01-quick-check", "q01-checkpoint-context-vs-weights", "q01-checkpoint-changing-facts",
            "q01-checkpoint-rag-or-tools", "q01-checkpoint-eval-proof", "q01-checklist"} <= ids


def test_quick_check_choices_are_the_four_disjoint_tools_and_each_is_used():
    q = _question("q01-quick-check")
    assert q.kind == "match"
    # one tool per choice: no verdict such as "Not a fine-tuning target" that overlaps RAG and tools
    assert set(q.choices) == {"Prompting", "RAG / database", "Tools", "Fine-tuning"}
    answers = [item.answer for item in q.items]
    assert set(answers) == set(q.choices)
    assert answers.count("Fine-tuning") == 2  # only the repeated, stable behaviours
    assert grade(q, answers).correct
    for choice in q.choices:  # no single verdict passes
        assert not grade(q, [choice] * len(q.items)).correct


def test_quick_check_items_point_to_the_tool_they_are_keyed_to():
    q = _question("q01-quick-check")
    words = {"RAG / database": ("retriev", "store", "lookup", "look them up", "database"), "Tools": ("tool",),
             "Prompting": ("prompt", "instruction"), "Fine-tuning": ("weights", "fine-tun")}
    for item in q.items:
        assert any(w in item.explain.lower() for w in words[item.answer]), item.text


def test_switching_behaviour_per_request_is_not_explained_away():
    q = _question("q01-checkpoint-context-vs-weights")
    (right,) = [o for o in q.options if o.correct]
    assert "every call" in right.text
    switching = [o for o in q.options if "per request" in o.text]
    assert len(switching) == 1 and not switching[0].correct
    # the explanation must agree with per-request adapter switching (peft, multi-LoRA serving)
    assert "set_adapter" in switching[0].explain and "Both can be chosen per request" in switching[0].explain


def test_checklist_says_the_course_wrote_it_and_has_the_capability_question():
    q = _question("q01-checklist")
    assert "does not print its questions" in q.source and "course wrote its own" in q.source
    assert "five" not in q.prompt.lower()  # the course's list is not seed 004's (unlisted) five
    correct = [o.text for o in q.options if o.correct]
    assert len(correct) == len(CHECKLIST)  # one right option per question of the lesson's checklist
    assert any("examples are in its context" in text for text in correct)  # seed 000's capability test
    assert any("in its context" in question for question in CHECKLIST)
    assert not any("GPU" in o.text for o in q.options)  # the too-easy distractor is gone
    wrong = [o for o in q.options if not o.correct]
    assert len(wrong) >= 2
    assert not grade(q, range(len(q.options))).correct  # ticking everything fails
    assert grade(q, [i for i, o in enumerate(q.options) if o.correct]).correct
