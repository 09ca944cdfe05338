"""The decision record of lesson 05: what you decided, on which measurements, and what it will cost.

A ``DecisionRecord`` holds one decision about one scenario: what is missing, the target, the rates
each rung measured, the rung chosen and the evidence for it, the checklist answers, the minimum proof
before training, the costs of owning a fine-tune (seed 001: data cost, staleness, eval burden), the
risks, and how the choice will be watched in production and when it is redone (seed 002).

``record.save()`` writes it as markdown, atomically; ``record.validate()`` lists what is still
missing. ``show_decision_record(prefill)`` is the form the learner fills in the notebook.
"""

from __future__ import annotations

import html
import os
from dataclasses import dataclass, field, fields
from datetime import date as _date
from pathlib import Path

from .decide import CHECKLIST, MISSING, RUNGS
from .sqlite_files import write_text_atomically

# The checklist questions. Seed 004 promises a five-question checklist ("yes to all five: fine-tuning is
# likely the right tool; no to any: address it first") but its text does not list the questions. The
# course already answers that with its own list, ``ftcourse.decide.CHECKLIST`` (six questions, used in
# lesson 01), so the record reuses it instead of keeping a second list: the same all-yes rule applies.
FIVE_QUESTIONS = CHECKLIST

# What must be shown before any training run (seed 000), in the course's words.
MINIMUM_PROOF = (
    "An eval set of 50-200 representative cases, each with its expected answer or a grading rubric",
    "The base model measured on that eval set with the best prompt you could write: the baseline to beat",
    "The best prompt fails in a repeated, nameable way, not in scattered one-off mistakes",
    "The behaviour is worth owning as a model artifact that must be versioned, re-evaluated and refreshed",
    "Enough clean, consistent training examples can be collected, kept apart from the eval set",
    "Cases that check the tuned model did not get worse at the other behaviour that matters",
)

COST_KEYS = {
    "data_cost": "Data cost: who builds and cleans the training examples, and how long it takes",
    "staleness": "Staleness: what goes out of date (facts, rules, a newer base model) and how often",
    "eval_burden": "Eval burden: the held-out eval you keep alive to prove the gain and catch regressions",
}

_PLAIN = {
    "scenario": "the scenario (what the team wants, in one or two sentences)",
    "target": "the target (the rate that would count as good enough, e.g. 90 %)",
    "gap": "the gap (how far the best measured rung is from the target)",
    "rung_chosen": "the rung you chose",
    "risks": "the risks (what could go wrong with this choice)",
    "monitoring_signal": "the monitoring signal (what you will watch in production)",
    "retraining_trigger": "the retraining trigger (what makes you redo the work, e.g. a drop, a new base model, "
                          "a quarter passing)",
    "author": "the author (who owns this decision)",
    "date": "the date",
}


def is_fine_tune(rung: str) -> bool:
    """Whether a rung name means changing the weights (``fine_tune``, "fine-tune", "LoRA", ...)."""
    key = str(rung).strip().lower().replace("-", "_").replace(" ", "_")
    return key == "fine_tune" or "fine_tun" in key or "lora" in key or "adapter" in key


def _cell(value) -> str:
    """Text safe inside a markdown table cell."""
    return str(value).replace("|", "\\|").replace("\r", "").replace("\n", "<br>").strip()


def _format_target(target) -> str:
    if isinstance(target, bool):
        return str(target)
    if isinstance(target, (int, float)):
        return f"{target:.0%}" if 0 <= target <= 1 else f"{target:g}"
    return str(target).strip()


def _yes_no(answer) -> str:
    return "yes" if answer is True else "no" if answer is False else "not answered"


@dataclass
class DecisionRecord:
    """One decision, defended. Every field is plain text or plain containers (easy to prefill)."""

    scenario: str = ""
    missing: str = ""  # one of decide.MISSING: instructions, facts, actions, behaviour
    target: str | float = ""
    measured: dict[str, str] = field(default_factory=dict)  # rung -> "41 % (28-55 %), n=40"
    gap: str = ""
    rung_chosen: str = ""
    evidence: list[str] = field(default_factory=list)
    checklist: list[tuple[str, bool | None, str]] = field(default_factory=list)  # (question, yes?, note)
    minimum_proof: list[tuple[str, bool]] = field(default_factory=list)
    costs: dict[str, str] = field(default_factory=lambda: dict.fromkeys(COST_KEYS, ""))
    risks: str = ""
    monitoring_signal: str = ""
    retraining_trigger: str = ""
    author: str = ""
    date: str = field(default_factory=lambda: _date.today().isoformat())

    # -- checking
    def validate(self) -> list[str]:
        """What is still missing or inconsistent, one plain sentence each (empty when complete)."""
        problems = []
        if not str(self.scenario).strip():
            problems.append(f"Write {_PLAIN['scenario']}.")
        if str(self.missing).strip().lower() not in MISSING:
            problems.append(f"Say what is missing: one of {', '.join(MISSING)}"
                            + (f" (got {self.missing!r})." if str(self.missing).strip() else "."))
        if not _format_target(self.target):
            problems.append(f"Write {_PLAIN['target']}.")
        if not self.measured:
            problems.append("Add the measured rates of the rungs you tried (rung -> rate with its n and interval).")
        for name in ("gap", "rung_chosen"):
            if not str(getattr(self, name)).strip():
                problems.append(f"Write {_PLAIN[name]}.")
        if not [e for e in self.evidence if str(e).strip()]:
            problems.append("Add at least one piece of evidence for the rung you chose.")
        if not self.checklist:
            problems.append("Answer the checklist questions.")
        else:
            unanswered = [str(i + 1) for i, (_q, yes, _n) in enumerate(self.checklist) if not isinstance(yes, bool)]
            if unanswered:
                problems.append(f"Answer checklist question{'s' if len(unanswered) > 1 else ''} "
                                f"{', '.join(unanswered)} with yes or no.")
        for key, label in COST_KEYS.items():
            if not str(self.costs.get(key, "")).strip():
                problems.append(f"Write the {label[0].lower() + label[1:]}.")
        for name in ("risks", "monitoring_signal", "retraining_trigger", "author", "date"):
            if not str(getattr(self, name)).strip():
                problems.append(f"Write {_PLAIN[name]}.")
        if is_fine_tune(self.rung_chosen):
            noes = [str(i + 1) for i, (_q, yes, _n) in enumerate(self.checklist) if yes is False]
            if noes:
                problems.append(f"You chose to fine-tune but answered no to checklist question"
                                f"{'s' if len(noes) > 1 else ''} {', '.join(noes)}: deal with "
                                f"{'them' if len(noes) > 1 else 'it'} first, or choose another rung.")
            unproven = [str(i + 1) for i, (_item, done) in enumerate(self.minimum_proof) if not done]
            if not self.minimum_proof or unproven:
                which = f"item{'s' if len(unproven) > 1 else ''} {', '.join(unproven)}" if unproven else "its items"
                problems.append(f"You chose to fine-tune but the minimum proof before training is not complete "
                                f"({which} not ticked).")
        return problems

    # -- writing
    def to_markdown(self) -> str:
        """The record as headed markdown: tables for the rates and the checklist, lists for the rest."""
        def text(value, empty="*(not written yet)*"):
            value = str(value).strip()
            return value if value else empty

        rung = str(self.rung_chosen).strip()
        rung_label = RUNGS.get(rung, rung)
        title = str(self.scenario).strip().splitlines()[0] if str(self.scenario).strip() else "untitled"
        title = title if len(title) <= 80 else title[:77].rstrip() + "..."
        out = [f"# Decision record: {title}",
               "", f"*Author:* {text(self.author, '-')}  ", f"*Date:* {text(self.date, '-')}", "",
               "## Scenario", "", text(self.scenario), "",
               "## What is missing", "", text(self.missing), "",
               "## Target", "", text(_format_target(self.target)), "",
               "## Measured", ""]
        if self.measured:
            out += ["| rung | measured rate |", "|---|---|"]
            out += [f"| {_cell(k)} | {_cell(v)} |" for k, v in self.measured.items()]
        else:
            out.append("*(nothing measured yet)*")
        out += ["", "## Gap", "", text(self.gap), "",
                "## Decision", "", f"**{text(rung_label)}**", "",
                "### Evidence", ""]
        evidence = [e for e in self.evidence if str(e).strip()]
        out += [f"- {str(e).strip()}" for e in evidence] or ["*(none yet)*"]
        out += ["", "## Checklist", ""]
        if self.checklist:
            out += ["| # | question | answer | note |", "|---|---|---|---|"]
            out += [f"| {i + 1} | {_cell(q)} | {_yes_no(yes)} | {_cell(note)} |"
                    for i, (q, yes, note) in enumerate(self.checklist)]
            answers = [yes for _q, yes, _n in self.checklist]
            if all(isinstance(a, bool) for a in answers):
                yes_count = sum(answers)
                out += ["", f"{yes_count} yes out of {len(answers)}"
                        + (": every answer is yes." if yes_count == len(answers)
                           else ": each no is something to deal with before training.")]
        else:
            out.append("*(not answered yet)*")
        out += ["", "## Minimum proof before training", ""]
        out += [f"- [{'x' if done else ' '}] {str(item).strip()}" for item, done in self.minimum_proof] \
            or ["*(not checked yet)*"]
        out += ["", "## Costs of owning it", ""]
        for key, label in COST_KEYS.items():
            out.append(f"- **{label.split(':')[0]}:** {text(self.costs.get(key, ''))}")
        out += ["", "## Risks", "", text(self.risks), "",
                "## Monitoring and retraining", "",
                f"- **Signal to watch:** {text(self.monitoring_signal)}",
                f"- **Retraining trigger:** {text(self.retraining_trigger)}", ""]
        return "\n".join(out)

    def save(self, path: str | os.PathLike = "decision_record.md") -> Path:
        """Write :meth:`to_markdown` to ``path`` atomically (temp file, then ``os.replace``)."""
        return write_text_atomically(path, self.to_markdown())


FIELDS = tuple(f.name for f in fields(DecisionRecord))
SUMMARY_FIELDS = ("measured", "gap", "rung_chosen", "evidence")  # prefilled from the notebook, read-only


# --------------------------------------------------------------------------- the form
def _normal_checklist(value) -> list[tuple[bool | None, str]]:
    """Prefilled checklist as (answer, note) per CHECKLIST question: accepts bools or (q, yes, note) tuples."""
    rows = list(value)
    if len(rows) != len(CHECKLIST):
        raise ValueError(f"prefill['checklist'] needs one entry per checklist question ({len(CHECKLIST)}), "
                         f"got {len(rows)}")
    out = []
    for row in rows:
        if isinstance(row, (tuple, list)):
            yes, note = (row[1], row[2] if len(row) > 2 else "") if len(row) >= 2 else (row[0], "")
            out.append((yes, str(note)))
        else:
            out.append((row, ""))
    return out


def _normal_proof(value) -> list[bool]:
    rows = list(value)
    if len(rows) != len(MINIMUM_PROOF):
        raise ValueError(f"prefill['minimum_proof'] needs one entry per item ({len(MINIMUM_PROOF)}), got {len(rows)}")
    return [bool(r[1]) if isinstance(r, (tuple, list)) else bool(r) for r in rows]


def _parse_lines(text: str) -> list[str]:
    return [line.strip().lstrip("-* ").strip() for line in str(text).splitlines() if line.strip()]


def _parse_measured(text: str) -> dict[str, str]:
    out = {}
    for line in _parse_lines(text):
        rung, sep, rate = line.partition(":")
        if sep:
            out[rung.strip()] = rate.strip()
        else:
            out[line] = ""
    return out


class DecisionRecordForm:
    """The widgets of the decision record. ``.widget`` to display, ``.record()`` for the record so far.

    Drive it in tests: set ``form.scenario.value``, ``form.checklist[i][0].value = "Yes"``,
    ``form.proof[i].value = True`` ..., then ``form.write_button.click()`` and read ``form.message``,
    ``form.markdown`` and ``form.written_path``.
    """

    def __init__(self, prefill: dict | None = None, path: str | os.PathLike = "decision_record.md"):
        import ipywidgets as w

        prefill = dict(prefill or {})
        unknown = sorted(set(prefill) - set(FIELDS))
        if unknown:
            raise ValueError(f"unknown prefill key(s) {', '.join(unknown)}; use the DecisionRecord fields: "
                             f"{', '.join(FIELDS)}")
        self.path = Path(path)
        self.prefill = prefill
        self.markdown: str | None = None
        self.written_path: Path | None = None
        style, wide = {"description_width": "initial"}, w.Layout(width="95%")

        def area(value="", placeholder="", rows=2):
            return w.Textarea(value=str(value), placeholder=placeholder, rows=rows, layout=wide)

        def heading(text):
            return w.HTML(f"<h4 style='margin:10px 0 2px 0'>{html.escape(text)}</h4>")

        # 1. the scenario and what is missing
        self.scenario = area(prefill.get("scenario", ""), "What does the team want the model to do?", 3)
        missing = str(prefill.get("missing", "")).strip().lower()
        self.missing = w.ToggleButtons(options=[("Not sure yet", ""), *((m.capitalize(), m) for m in MISSING)],
                                       value=missing if missing in MISSING else "", style=style)
        self._target_prefill = prefill.get("target", "")
        self.target = w.Text(value=_format_target(self._target_prefill), placeholder="e.g. 90 % valid JSON",
                             description="Target:", style=style)

        # 2. what was measured: a read-only summary where the notebook prefilled it, text boxes otherwise
        self.summary = w.HTML(self._summary_html())
        self.summary.add_class("decision-record-summary")
        self.editable = {}
        if "measured" not in prefill:
            self.editable["measured"] = area("", "one rung a line, e.g. few-shot: 41 % (28-55 %), n=40", 3)
        if "gap" not in prefill:
            self.editable["gap"] = area("", "How far is the best rung from the target?")
        if "rung_chosen" not in prefill:
            self.editable["rung_chosen"] = w.Dropdown(options=[("choose\u2026", ""), *((v, k) for k, v in RUNGS.items())],
                                                      value="", description="Rung chosen:", style=style)
        if "evidence" not in prefill:
            self.editable["evidence"] = area("", "one piece of evidence a line", 3)

        # 3. the checklist: Yes/No and a note a question
        answers = _normal_checklist(prefill["checklist"]) if "checklist" in prefill else [(None, "")] * len(CHECKLIST)
        self.checklist = []
        rows = []
        for i, (question, (yes, note)) in enumerate(zip(CHECKLIST, answers, strict=True)):
            toggle = w.ToggleButtons(options=["Yes", "No"], value=None if yes is None else ("Yes" if yes else "No"),
                                     style={"button_width": "60px"})
            note_box = w.Text(value=note, placeholder="note: the evidence, or what is still to do", layout=wide)
            self.checklist.append((toggle, note_box))
            rows.append(w.VBox([w.HTML(f"<b>{i + 1}.</b> {html.escape(question)}"), w.HBox([toggle]), note_box]))

        # 4. the minimum proof before training
        ticks = _normal_proof(prefill["minimum_proof"]) if "minimum_proof" in prefill else [False] * len(MINIMUM_PROOF)
        self.proof = [w.Checkbox(value=t, description=item, indent=False, layout=wide)
                      for item, t in zip(MINIMUM_PROOF, ticks, strict=True)]

        # 5. costs, risks, monitoring
        costs = dict(prefill.get("costs") or {})
        self.costs = {key: area(costs.get(key, ""), label) for key, label in COST_KEYS.items()}
        self.risks = area(prefill.get("risks", ""), "What could go wrong with this choice, and for whom?")
        self.monitoring_signal = area(prefill.get("monitoring_signal", ""),
                                      "e.g. share of replies that parse as valid JSON, sampled daily")
        self.retraining_trigger = area(prefill.get("retraining_trigger", ""),
                                       "e.g. the signal drops below target for a week, a new base model, "
                                       "or every quarter")
        self.author = w.Text(value=str(prefill.get("author", "")), description="Author:", style=style)
        self.date = w.Text(value=str(prefill.get("date", _date.today().isoformat())), description="Date:",
                           style=style)

        # 6. write
        self.write_button = w.Button(description="Write the record", button_style="primary", icon="save")
        self.write_button.add_class("decision-record-write")
        self.write_button.on_click(lambda _b: self.write())
        self.message_box = w.HTML("")
        self.message_box.add_class("decision-record-message")
        self.message = ""
        self.output = w.Output()
        self.output.add_class("decision-record-output")

        edit_labels = {"measured": "Measured rates", "gap": "Gap", "rung_chosen": "Rung chosen",
                       "evidence": "Evidence"}
        self.widget = w.VBox([
            heading("1. The scenario"), self.scenario,
            heading("2. What is missing?"), self.missing, self.target,
            heading("3. What you measured"), self.summary,
            *(item for k, box in self.editable.items() for item in (w.Label(edit_labels[k]), box)),
            heading("4. The checklist"), *rows,
            heading("5. The minimum proof before training"), *self.proof,
            heading("6. The costs of owning it"),
            *(item for key, box in self.costs.items() for item in (w.Label(COST_KEYS[key].split(":")[0]), box)),
            w.Label("Risks"), self.risks,
            heading("7. Monitoring and retraining"), w.Label("Signal to watch"), self.monitoring_signal,
            w.Label("Retraining trigger"), self.retraining_trigger,
            w.HBox([self.author, self.date]),
            self.write_button, self.message_box, self.output,
        ])
        self.widget.add_class("decision-record")

    def _summary_html(self) -> str:
        p, esc = self.prefill, html.escape
        if not any(k in p for k in SUMMARY_FIELDS):
            return "<i>Nothing prefilled: write your measurements below.</i>"
        parts = []
        if "measured" in p:
            rows = "".join(f"<tr><td>{esc(str(k))}</td><td>{esc(str(v))}</td></tr>" for k, v in p["measured"].items())
            parts.append(f"<table><tr><th>rung</th><th>measured rate</th></tr>{rows}</table>")
        if "gap" in p:
            parts.append(f"<p><b>Gap:</b> {esc(str(p['gap']))}</p>")
        if "rung_chosen" in p:
            rung = str(p["rung_chosen"])
            parts.append(f"<p><b>Rung chosen:</b> {esc(RUNGS.get(rung, rung))}</p>")
        if "evidence" in p:
            items = "".join(f"<li>{esc(str(e))}</li>" for e in p["evidence"])
            parts.append(f"<p><b>Evidence:</b></p><ul>{items}</ul>")
        return "".join(parts)

    def _value(self, name: str):
        if name in self.prefill:
            value = self.prefill[name]
            return dict(value) if name == "measured" else list(value) if name == "evidence" else str(value)
        box = self.editable[name].value
        return _parse_measured(box) if name == "measured" else _parse_lines(box) if name == "evidence" else box

    def record(self) -> DecisionRecord:
        """The :class:`DecisionRecord` of the fields as they are now."""
        target = self.target.value.strip()
        if target == _format_target(self._target_prefill):
            target = self._target_prefill
        checklist = [(q, None if t.value is None else t.value == "Yes", note.value.strip())
                     for q, (t, note) in zip(CHECKLIST, self.checklist, strict=True)]
        return DecisionRecord(
            scenario=self.scenario.value.strip(), missing=self.missing.value, target=target,
            measured=self._value("measured"), gap=self._value("gap").strip(),
            rung_chosen=self._value("rung_chosen").strip(), evidence=self._value("evidence"),
            checklist=checklist, minimum_proof=[(item, box.value) for item, box in zip(MINIMUM_PROOF, self.proof,
                                                                                     strict=True)],
            costs={key: box.value.strip() for key, box in self.costs.items()},
            risks=self.risks.value.strip(), monitoring_signal=self.monitoring_signal.value.strip(),
            retraining_trigger=self.retraining_trigger.value.strip(), author=self.author.value.strip(),
            date=self.date.value.strip())

    def write(self) -> Path | None:
        """Validate; if complete, save the markdown atomically and show it. Returns the path (None if not written)."""
        rec = self.record()
        problems = rec.validate()
        if problems:
            self.message = "Not written yet. Still missing:\n" + "\n".join(f"- {p}" for p in problems)
            items = "".join(f"<li>{html.escape(p)}</li>" for p in problems)
            self.message_box.value = (f"<div style='border-left:4px solid #b45309;padding:6px'><b>Not written yet."
                                      f" Still missing ({len(problems)}):</b><ul>{items}</ul></div>")
            return None
        try:
            path = rec.save(self.path)
        except OSError as exc:
            self.message = f"Could not write {self.path}: {exc}. Pick another path: show_decision_record(path=...)."
            self.message_box.value = f"<div style='border-left:4px solid #b91c1c;padding:6px'>{html.escape(self.message)}</div>"
            return None
        self.markdown, self.written_path = rec.to_markdown(), path
        self.message = f"Written to {path.resolve()}"
        self.message_box.value = (f"<div style='border-left:4px solid #166534;padding:6px'>Written to "
                                  f"<code>{html.escape(str(path.resolve()))}</code></div>")
        from IPython.display import Markdown, display

        self.output.clear_output()
        with self.output:
            display(Markdown(self.markdown))
        return path


def show_decision_record(prefill: dict | None = None, path: str | os.PathLike = "decision_record.md",
                         show: bool = True) -> DecisionRecordForm:
    """The decision-record form, prefilled from the notebook's numbers; returns the form object.

    ``prefill`` takes :class:`DecisionRecord` field names; ``measured``, ``gap``, ``rung_chosen`` and
    ``evidence`` given there are shown as a read-only summary, the rest fill the editable fields.
    """
    form = DecisionRecordForm(prefill, path=path)
    if show:
        from IPython.display import display

        display(form.widget)
    return form


__all__ = ["DecisionRecord", "MINIMUM_PROOF", "FIVE_QUESTIONS", "COST_KEYS", "is_fine_tune",
           "DecisionRecordForm", "show_decision_record"]
