"""Quiz 01 holds what the issue asks for: the seed's quick check (six situations) and its checkpoint."""

from ftcourse.quiz import grade, load_quiz, validate_quiz_file


def test_quiz_01_is_valid_and_complete():
    quiz = load_quiz("01")
    assert validate_quiz_file(quiz.path) == []
    assert len(quiz.questions) >= 8
    ids = {q.id for q in quiz.questions}
    assert {"q01-quick-check", "q01-checkpoint-context-vs-weights", "q01-checkpoint-changing-facts",
            "q01-checkpoint-rag-or-tools", "q01-checkpoint-eval-proof"} <= ids


def test_quick_check_matches_six_situations_and_only_behaviour_is_fine_tuning():
    q = next(q for q in load_quiz("01").questions if q.id == "q01-quick-check")
    assert q.kind == "match" and len(q.items) == 6
    answers = [item.answer for item in q.items]
    assert answers.count("Fine-tuning") == 2
    assert {"RAG / database", "Tools", "Not a fine-tuning target"} <= set(answers)
    assert grade(q, answers).correct
    assert not grade(q, ["Fine-tuning"] * 6).correct
