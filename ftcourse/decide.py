"""The decision tree of lesson 01: name what is missing, then pick the smallest tool that fixes it.

``recommend(...)`` is a pure function (no model, no I/O): it takes what is missing and a few facts
about the situation and returns the rung to try next with the reason. ``show_decision_tree()`` is a
small ipywidgets front end on top of it.

The tree, in order:

1. Missing **instructions** -> write a clearer prompt (task, output format, constraints).
2. Missing **facts** -> retrieval or a database lookup; never the weights, least of all facts that
   change, because every update would need another training run.
3. Missing **actions** -> give the model a tool; a model trained to pretend it checked the account
   is worse than one that calls the account service.
4. Missing **behaviour** (format, style, labels, task reflexes) -> fine-tuning *may* fit, but only
   when the behaviour is repeated and stable, the cheaper rungs were measured and fell short, an
   eval set exists to measure the result, and the base model can already do the task when shown
   worked examples in its context.
"""

from __future__ import annotations

from dataclasses import dataclass

MISSING = ("instructions", "facts", "actions", "behaviour")

# Every value ``Recommendation.rung`` can take, with the label shown to the learner.
RUNGS = {
    "clear_prompt": "Write a clearer prompt",
    "few_shot": "Add 2-3 few-shot examples",
    "rag": "Retrieval (RAG) or a database lookup",
    "tools": "Give the model a tool",
    "fine_tune": "Fine-tune (e.g. a LoRA adapter)",
    "diagnose": "Diagnose first: collect failing cases",
    "define_behaviour": "Settle the desired behaviour first",
    "build_eval": "Build an eval set first",
    "stronger_model": "Use a stronger base model (or a tool)",
}

# The cheap rungs of the ladder; fine-tuning only comes after them.
LADDER = ("clear_prompt", "few_shot", "rag", "fine_tune")

_ALIASES = {
    "instruction": "instructions", "prompt": "instructions",
    "fact": "facts", "knowledge": "facts", "information": "facts", "context": "facts",
    "action": "actions", "tool": "actions",
    "behavior": "behaviour", "format": "behaviour", "style": "behaviour",
    "unknown": None, "": None, "?": None,
}


@dataclass(frozen=True)
class Recommendation:
    """What to try next, why, and whether it means touching the weights."""

    rung: str
    reason: str

    @property
    def label(self) -> str:
        return RUNGS[self.rung]

    @property
    def changes_weights(self) -> bool:
        return self.rung == "fine_tune"

    def __str__(self) -> str:
        return f"{self.label}: {self.reason}"


def normalise_missing(missing: str | None) -> str | None:
    """Map the learner's word for what is missing onto one of ``MISSING`` (or None when unknown)."""
    if missing is None:
        return None
    key = str(missing).strip().lower()
    if key in MISSING:
        return key
    if key in _ALIASES:
        return _ALIASES[key]
    raise ValueError(f"missing={missing!r}: use one of {', '.join(MISSING)} (or None if you do not know yet)")


def recommend(
    missing: str | None,
    *,
    repeated: bool = False,
    stable: bool = False,
    facts_change_often: bool = False,
    tried_clear_prompt: bool = False,
    tried_few_shot: bool = False,
    has_eval: bool = False,
    works_in_context: bool = True,
) -> Recommendation:
    """Recommend the smallest tool that fixes what is missing.

    missing: ``"instructions"``, ``"facts"``, ``"actions"`` or ``"behaviour"`` (None: not diagnosed yet).
    repeated: the behaviour is needed again and again (many requests), not once.
    stable: the team agrees on the desired behaviour and it will not change next month.
    facts_change_often: the information involved (prices, stock, policies) changes often.
    tried_clear_prompt / tried_few_shot: that rung was measured on an eval set and still fell short.
    has_eval: there is an eval set (50-200 representative cases with expected answers).
    works_in_context: the base model gets the task right when worked examples sit in its prompt.
    """
    what = normalise_missing(missing)
    if what is None:
        return Recommendation(
            "diagnose",
            "'The model answered wrong' is not a diagnosis. Collect the failing cases and name the cause "
            "of each: missing context, a missing tool, an ambiguous instruction, a weak base model, or a "
            "behaviour the team has not settled.",
        )
    if what == "instructions":
        if not tried_clear_prompt:
            return Recommendation(
                "clear_prompt",
                "The model was never told precisely what to do. State the task, the exact output format "
                "and the constraints; a model tuned on vague examples stays vague for good.",
            )
        if tried_few_shot:
            return Recommendation(
                "diagnose",
                "The instructions are already clear and shown by example, so the gap is no longer missing "
                "instructions. Look again: is it a behaviour the model keeps drifting from, missing facts, "
                "or a weak base model?",
            )
        return Recommendation(
            "few_shot",
            "The clear prompt still leaves room for doubt. Two or three worked examples pin down the "
            "format and the edge cases that prose does not.",
        )
    if what == "facts":
        if facts_change_often:
            return Recommendation(
                "rag",
                "These facts change often. Keep them in a store you can update and retrieve them at call "
                "time; facts in the weights go stale and would need a training run for every change.",
            )
        return Recommendation(
            "rag",
            "The model lacks information, not a habit. Put the documents in front of it at call time "
            "(retrieval or a database lookup); training on documents teaches their style more reliably "
            "than their content.",
        )
    if what == "actions":
        return Recommendation(
            "tools",
            "The answer depends on live state (an account, a stock count) or must do something. Let the "
            "model call the service; a model trained to pretend it looked is worse than one that looks.",
        )
    # what == "behaviour"
    if not stable:
        return Recommendation(
            "define_behaviour",
            "The desired behaviour is not settled: people disagree on the right answer or the rule is "
            "about to change. Write the rule down and label consistent examples first; training on a "
            "moving target bakes the noise into the weights.",
        )
    if not repeated:
        return Recommendation(
            "clear_prompt" if not tried_clear_prompt else "few_shot",
            "A one-off behaviour belongs in the prompt of the request that needs it; a model artifact "
            "you must version, evaluate and refresh does not pay off for it.",
        )
    if not has_eval:
        return Recommendation(
            "build_eval",
            "Without 50-200 representative cases with expected answers you cannot tell which rung you "
            "are on, whether training helped, or whether it broke something else.",
        )
    if not tried_clear_prompt:
        return Recommendation(
            "clear_prompt",
            "Climb the ladder in order: measure a clear prompt (task, format, constraints) on the eval "
            "set before paying for training.",
        )
    if not tried_few_shot:
        return Recommendation(
            "few_shot",
            "The clear prompt left a gap; measure two or three worked examples in the prompt before "
            "fine-tuning.",
        )
    if not works_in_context:
        return Recommendation(
            "stronger_model",
            "The base model fails even with good examples in its context. A small fine-tune steers an "
            "ability the model already has; it rarely creates a missing one.",
        )
    return Recommendation(
        "fine_tune",
        "A repeated, stable behaviour that the measured prompt rungs still miss: a fine-tuning target. "
        "Train an adapter and compare it on the held-out eval with the best prompt, checking for "
        "regressions.",
    )


# ----------------------------------------------------------------------------------------- scenarios
@dataclass(frozen=True)
class Scenario:
    """A Tillwise situation and the inputs of the decision tree that describe it."""

    name: str
    situation: str
    inputs: dict

    def recommendation(self) -> Recommendation:
        return recommend(**self.inputs)


_ALL_TRIED = dict(repeated=True, stable=True, tried_clear_prompt=True, tried_few_shot=True, has_eval=True)

SCENARIOS = [
    Scenario("whole_handbook", "Make the assistant know Tillwise's whole support handbook",
             dict(missing="facts")),
    Scenario("daily_facts", "Answer from prices and promotions that change every day",
             dict(missing="facts", facts_change_often=True)),
    Scenario("account_balance", "Tell a shop the live balance of its Tillwise account",
             dict(missing="actions")),
    Scenario("vague_prompt", "The reply ignores the format because the prompt only says 'help with this ticket'",
             dict(missing="instructions")),
    Scenario("strict_json", "Every ticket must get one strict JSON object with the house labels; measured, "
             "few-shot gets the shape but its labels are no better than a constant answer", dict(missing="behaviour",
                                                                                                **_ALL_TRIED)),
    Scenario("shorter_prompt", "A 3,000-token prompt only reminds the model of the house format, on "
             "50,000 tickets a day (prompt rungs measured)", dict(missing="behaviour", **_ALL_TRIED)),
    Scenario("json_untried", "The strict JSON shape drifts, but nobody has tried a clear prompt yet",
             dict(missing="behaviour", repeated=True, stable=True, has_eval=True)),
    Scenario("no_eval", "The JSON shape drifts and the team wants to train, but there is no eval set",
             dict(missing="behaviour", repeated=True, stable=True)),
    Scenario("unstable_rules", "The support leads still argue about what counts as 'urgent'",
             dict(missing="behaviour", repeated=True, stable=False, has_eval=True)),
    Scenario("weak_base", "The model cannot total a multi-line invoice even with worked examples in context",
             dict(missing="behaviour", **_ALL_TRIED, works_in_context=False)),
    Scenario("one_off", "One manager wants this week's report written as a limerick",
             dict(missing="behaviour", repeated=False, stable=True)),
]


def scenario_table(scenarios=None) -> list[dict]:
    """One row per scenario: the situation, the recommended rung and whether weights change."""
    rows = []
    for s in scenarios or SCENARIOS:
        rec = s.recommendation()
        rows.append({"situation": s.situation, "recommendation": rec.label,
                     "changes weights": "yes" if rec.changes_weights else "no"})
    return rows


# ----------------------------------------------------------------------------------------- widget
def show_decision_tree():
    """An interactive front end to ``recommend``: answer the questions, read the recommendation."""
    import ipywidgets as w

    style = {"description_width": "initial"}
    missing = w.ToggleButtons(
        options=[("Not sure yet", None), ("Instructions", "instructions"), ("Facts", "facts"),
                 ("Actions", "actions"), ("Behaviour", "behaviour")],
        value=None, description="What is missing?", style=style,
    )
    boxes = {
        "facts_change_often": w.Checkbox(description="The facts change often", style=style),
        "repeated": w.Checkbox(description="The behaviour is needed on many requests", style=style),
        "stable": w.Checkbox(description="The team agrees on the desired behaviour, and it is stable",
                             style=style),
        "has_eval": w.Checkbox(description="There is an eval set (50-200 cases)", style=style),
        "tried_clear_prompt": w.Checkbox(description="A clear prompt was measured and falls short", style=style),
        "tried_few_shot": w.Checkbox(description="Few-shot examples were measured and fall short", style=style),
        "works_in_context": w.Checkbox(value=True, description="The model can do it with examples in context",
                                       style=style),
    }
    for box in boxes.values():  # a checkbox is 300px wide by default, which cuts its description short
        box.layout.width = "auto"
    relevant = {
        None: [],
        "instructions": ["tried_clear_prompt", "tried_few_shot"],
        "facts": ["facts_change_often"],
        "actions": [],
        "behaviour": ["repeated", "stable", "has_eval", "tried_clear_prompt", "tried_few_shot",
                      "works_in_context"],
    }
    answer = w.HTML()

    def update(_change=None):
        for name, box in boxes.items():
            box.layout.display = "" if name in relevant[missing.value] else "none"
        args = {name: box.value for name, box in boxes.items() if name in relevant[missing.value]}
        rec = recommend(missing.value, **args)
        colour = "#b45309" if rec.changes_weights else "#166534"
        answer.value = (f"<div style='padding:6px;border-left:4px solid {colour}'>"
                        f"<b>{rec.label}</b><br>{rec.reason}</div>")

    missing.observe(update, names="value")
    for box in boxes.values():
        box.observe(update, names="value")
    update()
    return w.VBox([missing, *boxes.values(), answer])


# ----------------------------------------------------------------------------------------- checklist
# The questions to answer "yes" to before fine-tuning. Seed 004 names a five-question checklist without
# listing it; these are the course's own questions, with seed 000's capability question as the second.
CHECKLIST = (
    "Is the gap about behaviour (format, style, labels, task reflexes), not missing facts or actions?",
    "Does the model show the behaviour when worked examples are in its context, so there is a capability to steer?",
    "Were a clear prompt, few-shot examples and, for knowledge, retrieval measured, and does the best of them "
    "miss the target by more than the noise?",
    "Can you collect enough clean, consistent examples of the behaviour (and some negative ones)?",
    "Do you have an eval set that measures the gain against the best prompt and catches regressions?",
    "Is the volume high enough to pay for owning the model: training, versioning, re-evaluating, refreshing?",
)


def checklist_verdict(answers) -> str:
    """One sentence from the yes/no answers to ``CHECKLIST`` (in order)."""
    answers = [bool(a) for a in answers]
    if len(answers) != len(CHECKLIST):
        raise ValueError(f"answer all {len(CHECKLIST)} questions of the checklist, in order")
    missing = [i + 1 for i, a in enumerate(answers) if not a]
    if not missing:
        return (f"{len(CHECKLIST)} yes out of {len(CHECKLIST)}: fine-tuning is likely the right tool. Train, then "
                "compare with the best prompt on the same eval set.")
    which = ", ".join(str(i) for i in missing)
    return f"Not yet: deal with question{'s' if len(missing) > 1 else ''} {which} first."


__all__ = ["MISSING", "RUNGS", "LADDER", "Recommendation", "recommend", "normalise_missing", "Scenario",
           "SCENARIOS", "scenario_table", "show_decision_tree",
           "CHECKLIST", "checklist_verdict"]
