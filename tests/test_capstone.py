"""ftcourse.capstone without the model: tasks, scoring, the booking desk, the decision rule."""

import matplotlib
import pytest

from ftcourse import capstone as cap
from ftcourse.errors import CourseError
from ftcourse.rag import DocumentStore, KeywordRetriever

matplotlib.use("Agg")


def _report(rung, right, n, tokens=100.0, task="t"):
    return cap.RungReport(task, rung, ["x"] * n, [True] * right + [False] * (n - right), tokens, 1.0, 0.1)


# --------------------------------------------------------------------------- tasks
@pytest.mark.parametrize("name", [*cap.SCENARIOS, cap.EXERCISE])
def test_every_task_loads_with_its_eval_split(name):
    task = cap.load_task(name)
    assert task.name == name and 0 < task.target < 1 and task.volume_per_day > 0
    assert task.split("eval") and task.missing in cap.DEFAULT_RUNGS


def test_unknown_task_and_split_say_what_exists():
    with pytest.raises(CourseError, match="reviews"):
        cap.load_task("nope")
    with pytest.raises(CourseError, match="eval"):
        cap.load_task("reviews").split("train")


def test_examples_come_from_pool_or_train():
    assert {c.split for c in cap.load_task("reviews").examples} == {"pool"}
    assert {c.split for c in cap.load_task("clauses").examples} == {"train"}


# --------------------------------------------------------------------------- scoring
@pytest.mark.parametrize("text, expected", [
    ("Positive.", "positive"), ("  negative\nbecause", "negative"), ('"positive"', "positive"),
    ("The review is positive", None), ("", None), ("positive or negative", None),
])
def test_parse_label_is_strict(text, expected):
    assert cap.parse_label(text, ("positive", "negative")) == expected


def test_keywords_found_matches_whole_numbers():
    assert cap.keywords_found("You get 25 days a year.", ["25 days", "25"])
    assert not cap.keywords_found("You get 125 days.", ["25"])


@pytest.mark.parametrize("text, expected", [
    ("please move it to 14 March", "2027-03-14"), ("can we come March 3rd instead", "2027-03-03"),
    ("the 2nd of May works", "2027-05-02"), ("31 February please", None), ("next week", None),
])
def test_parse_date(text, expected):
    assert cap.parse_date(text) == expected


def test_claims_action():
    assert cap.claims_action("I have cancelled your stay.")
    assert not cap.claims_action("Please contact the front desk.")


# --------------------------------------------------------------------------- the desk
@pytest.fixture()
def desk(tmp_path):
    task = cap.load_task("bookings")
    d = cap.BookingDesk(tmp_path / "bookings.sqlite", task.bookings())
    yield d
    d.close()


def test_desk_acts_and_refuses(desk):
    live = next(b for b in cap.load_task("bookings").bookings() if b["status"] != "cancelled")
    ref = live["ref"]
    assert live["status"] in desk.check(ref)
    with desk.trial():
        desk.act("cancel", f"Please cancel {ref}")
        assert desk.row(ref)["status"] == "cancelled"
    assert desk.row(ref)["status"] == live["status"]          # the trial was rolled back
    with pytest.raises(CourseError, match="No reservation"):
        desk.check("GH-00000")
    with pytest.raises(CourseError, match="Unknown action"):
        desk.act("delete", f"{ref}")
    with pytest.raises(CourseError, match="no valid new arrival"):
        desk.act("change", f"move {ref} to sometime later")
    with pytest.raises(CourseError, match="exactly one"):
        desk.act("check", "my booking please")


def test_right_intents_solve_every_booking_request(desk):
    task = cap.load_task("bookings")
    cases = task.split("eval")
    flags, extra = cap.score(task, "tool", cases, [c.label for c in cases], desk=desk)
    assert all(flags) and extra["wrong_actions"] == 0
    wrong = ["cancel" if c.label != "cancel" else "check" for c in cases]
    flags, extra = cap.score(task, "tool", cases, wrong, desk=desk)
    assert not any(flags) and extra["wrong_actions"] > 0


def test_text_replies_never_act(desk):
    task = cap.load_task("bookings")
    cases = [c for c in task.split("eval") if c.label != "check"]
    flags, extra = cap.score(task, "clear", cases, ["Done, I have cancelled it."] * len(cases), desk=desk)
    assert not any(flags) and extra["claims"] == len(cases)


def test_gold_answers_score_and_quoted_notes_answer():
    task = cap.load_task("hr_policy")
    cases = task.split("eval")
    flags, _ = cap.score(task, "rag", cases, [" or ".join(c.extra["answer_v1"]) for c in cases])
    assert all(flags)
    retriever = KeywordRetriever(DocumentStore(task.notes(1)))
    quoted = cap.lookup_rung(task, "quote", cases, retriever=retriever)
    assert quoted.n == len(cases) and quoted.prompt_tokens == 0 and quoted.correct > 0
    assert set(task.changed_notes()) <= {n.id for n in task.notes(2)} and len(task.changed_notes()) == 4


# --------------------------------------------------------------------------- prompts and training data
def test_prompts_per_rung():
    task = cap.load_task("reviews")
    cases = task.split("eval")[:2]
    clear = cap.build_prompts(task, "clear", cases)
    assert clear[0] == [{"role": "user", "content": f"{task.instructions}\n\n{cases[0].input}"}]
    few = cap.build_prompts(task, "few_shot", cases)[0]
    assert few[0]["role"] == "system" and [m["role"] for m in few[1:5]] == ["user", "assistant"] * 2
    assert {m["content"] for m in few if m["role"] == "assistant"} == set(task.labels)
    tuned = cap.build_prompts(task, "fine_tune", cases)[0]
    assert tuned[0]["content"] == task.short_system and tuned[-1]["content"] == cases[0].input
    with pytest.raises(CourseError, match="retriever"):
        cap.build_prompts(cap.load_task("hr_policy"), "rag", cases)
    with pytest.raises(CourseError, match="Unknown rung"):
        cap.build_prompts(task, "magic", cases)


def test_training_examples_skip_unreadable_teacher_answers():
    task = cap.load_task("clauses")
    cases = task.split("unlabelled")[:3]
    rows = cap.training_examples(task, cases, ["PAY", None, "TERM"])
    assert len(rows) == 2 and rows[0]["messages"][-1] == {"role": "assistant", "content": "PAY"}
    with pytest.raises(CourseError, match="one label per case"):
        cap.training_examples(task, cases, ["PAY"])


def test_agreement_counts_only_equal_readable_labels():
    rate = cap.agreement(["PAY", None, "TERM", "CONF"], ["PAY", None, "LIAB", "CONF"])
    assert (rate.successes, rate.n) == (2, 4)


# --------------------------------------------------------------------------- deciding
def test_decide_takes_the_cheapest_rung_that_meets_the_target():
    task = cap.load_task("reviews")                       # target 80 %
    baseline = _report("constant", 25, 50)
    reports = {"vague": _report("vague", 0, 50), "clear": _report("clear", 42, 50), "few_shot": _report("few_shot", 48, 50)}
    d = cap.decide(task, reports, baseline)
    assert d.rung == "clear" and not d.fine_tune and "Do not fine-tune" in d.sentence


def test_decide_never_picks_a_rung_within_the_noise_of_the_baseline():
    task = cap.load_task("reviews")
    reports = {"clear": _report("clear", 9, 10)}
    assert cap.decide(task, reports, _report("constant", 8, 10)).rung is None


def test_decide_points_a_behaviour_gap_to_fine_tuning_and_can_choose_it():
    task = cap.load_task("clauses")                       # a behaviour, target 80 %
    reports = {"clear": _report("clear", 0, 60), "retrieved": _report("retrieved", 40, 60)}
    d = cap.decide(task, reports, _report("constant", 12, 60))
    assert d.rung is None and "fine-tune is the next rung" in d.sentence
    reports["fine_tune"] = _report("fine_tune", 55, 60)
    d = cap.decide(task, reports, _report("constant", 12, 60))
    assert d.rung == "fine_tune" and d.fine_tune


def test_constant_baseline_and_tables():
    task = cap.load_task("reviews")
    baseline = cap.constant_baseline(task)
    assert baseline.n == len(task.split("eval")) and 0.3 < baseline.accuracy < 0.7
    reports = {"clear": _report("clear", 40, 52, tokens=77)}
    rows = cap.ladder_rows(task, reports, baseline)
    assert [r["rung"] for r in rows] == ["constant answer", "clear prompt"]
    assert rows[1]["$ / day"] == round(77 * task.volume_per_day * cap.PRICE_PER_M_INPUT / 1e6, 2)
    fig = cap.plot_scenarios({"reviews": (task, reports, baseline)})
    assert len(fig.axes) == 1
