"""Lesson 05's capstone: small tasks from other trades, each decided by measurement.

Every task lives in ``ftcourse/data/capstone/<name>/``: a ``task.json`` (the situation, what it lacks,
the target accuracy and the daily volume, stated before anything is measured) and a ``cases.jsonl``
(inputs with their gold answers and a split). Open them; they are short.

The ladder is the course's: a vague request, a clear prompt, worked examples (fixed, or the nearest
labelled ones retrieved for each input), retrieval of notes for facts, a tool for actions, and a LoRA
adapter last. :func:`climb` scores the rungs on the same eval cases; :func:`decide` picks the cheapest
rung whose accuracy meets the target and says why, whichever way the numbers fell.

>>> task = load_task("reviews")
>>> reports = climb(model, tok, task)            # {"vague": RungReport, "clear": RungReport}
>>> decide(task, reports).sentence
"""

from __future__ import annotations

import json
import re
import sqlite3
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import date
from functools import cached_property
from pathlib import Path

from .errors import CourseError
from .stats import Rate

DATA = Path(__file__).parent / "data" / "capstone"
SCENARIOS = ("reviews", "hr_policy", "bookings", "clauses")  # the lesson's four, in its order
EXERCISE = "library"  # the graded capstone's task: no lesson shows it

RUNG_NAMES = {"constant": "constant answer", "vague": "vague request", "clear": "clear prompt",
              "few_shot": "few-shot (fixed examples)", "retrieved": "few-shot (nearest examples retrieved)",
              "wordy": "clear but wordy prompt", "rag": "clear prompt + retrieved notes",
              "quote": "retrieved note, quoted (no model)", "tool": "few-shot router + a tool", "fine_tune": "LoRA adapter",
              "student": "distilled student (LoRA)", "nearest": "nearest labelled example (no LLM)"}
NO_MODEL_RUNGS = ("quote", "nearest")  # answered by a lookup, with no language model at all
# Which rungs a task climbs by default, cheapest first, by what it lacks.
DEFAULT_RUNGS = {"instructions": ("vague", "clear", "few_shot"),
                 "behaviour": ("clear", "few_shot", "retrieved", "nearest"),
                 "facts": ("clear", "rag", "quote"), "actions": ("clear", "tool")}
SHORT_SYSTEM = "{title}. Reply with the label only."  # what a tuned model serves with
PRICE_PER_M_INPUT = 0.50  # assumption, as in lesson 04: dollars per million prompt tokens on a hosted small model


# --------------------------------------------------------------------------------------------- data
@dataclass(frozen=True)
class Case:
    """One input with its gold answer (``label``; None where nobody labelled it)."""

    id: str
    input: str
    label: str | None
    split: str
    extra: dict = field(default_factory=dict, compare=False, repr=False)


@dataclass(frozen=True)
class Task:
    """A scenario: who needs what, what it lacks, the target and the volume, and its cases."""

    name: str
    title: str
    domain: str
    situation: str
    missing: str
    target: float
    target_why: str
    volume_per_day: int
    labels: tuple[str, ...] | None
    prompts: dict
    definitions: dict | None
    folder: Path

    @cached_property
    def cases(self) -> list[Case]:
        rows = _read_jsonl(self.folder / "cases.jsonl")
        keys = {"id", "input", "label", "split"}
        return [Case(str(r["id"]), r["input"], r.get("label"), r.get("split", "eval"),
                     {k: v for k, v in r.items() if k not in keys}) for r in rows]

    def split(self, name: str) -> list[Case]:
        """The cases of one split (``eval``, ``pool``, ``train``, ``unlabelled``)."""
        found = [c for c in self.cases if c.split == name]
        if not found:
            have = sorted({c.split for c in self.cases})
            raise CourseError(f"Task {self.name!r} has no {name!r} cases; its splits are {', '.join(have)}.")
        return found

    @property
    def examples(self) -> list[Case]:
        """The labelled cases a prompt may show or a LoRA may train on: ``pool``, else ``train``."""
        splits = {c.split for c in self.cases}
        return self.split("pool" if "pool" in splits else "train")

    @property
    def instructions(self) -> str:
        """The clear prompt, with the house definitions of the labels where the task has them."""
        text = self.prompts["clear"]
        if self.definitions:
            text += "\n" + "\n".join(f"{code}: {meaning}" for code, meaning in self.definitions.items())
        return text

    @property
    def short_system(self) -> str:
        return SHORT_SYSTEM.format(title=self.title.rstrip("."))

    def notes(self, version: int = 1) -> list:
        """The policy notes of a facts task, as ``ftcourse.rag.Note`` (version 1 or 2)."""
        from .rag import Note

        path = self.folder / f"notes_v{version}.jsonl"
        if not path.is_file():
            raise CourseError(f"Task {self.name!r} has no notes version {version} ({path.name}).")
        return [Note(id=r["id"], text=r["text"], topic=r.get("title", "")) for r in _read_jsonl(path)]

    def changed_notes(self) -> list[str]:
        """Ids of the notes the v2 update changed."""
        return [r["id"] for r in _read_jsonl(self.folder / "notes_v2.jsonl") if r.get("changed")]

    def bookings(self) -> list[dict]:
        return _read_jsonl(self.folder / "bookings.jsonl")


def _read_jsonl(path: Path) -> list[dict]:
    from .datasets import load_jsonl

    return load_jsonl(path)


def available_tasks() -> list[str]:
    return sorted(p.name for p in DATA.iterdir() if (p / "task.json").is_file()) if DATA.is_dir() else []


def load_task(name: str) -> Task:
    """A capstone task by name (``available_tasks()`` lists them)."""
    folder = DATA / name
    if not (folder / "task.json").is_file():
        raise CourseError(f"No capstone task {name!r}; the tasks are {', '.join(available_tasks())}.")
    spec = json.loads((folder / "task.json").read_text(encoding="utf-8"))
    labels = spec.get("labels")
    return Task(name=spec["name"], title=spec["title"], domain=spec["domain"], situation=spec["situation"],
                missing=spec["missing"], target=float(spec["target"]), target_why=spec.get("target_why", ""),
                volume_per_day=int(spec["volume_per_day"]), labels=tuple(labels) if labels else None,
                prompts=dict(spec["prompts"]), definitions=spec.get("definitions"), folder=folder)


# ------------------------------------------------------------------------------------------ scoring
_EDGES = " \t\n\"'`*.,:;!()[]"


def parse_label(text: str, labels: Sequence[str]) -> str | None:
    """The label an answer gives, or None: the first line, stripped of quotes and punctuation, must be
    exactly one of ``labels`` (any case). "Positive." counts; "The review is positive" does not, since
    a program downstream could not read it."""
    first = (text or "").strip().split("\n", 1)[0].strip(_EDGES).lower()
    for label in labels:
        if first == label.lower():
            return label
    return None


def keywords_found(answer: str, keywords: Sequence[str]) -> bool:
    """True if any of ``keywords`` appears in ``answer`` as a whole token (numbers normalised)."""
    from .evals import _keyword_found, normalise_text

    text = normalise_text(answer or "")
    return any(_keyword_found(k, text) for k in keywords)


# ------------------------------------------------------------------------------------------ prompts
def _turns(system: str, shots: Sequence[Case], text: str) -> list[dict]:
    messages = [{"role": "system", "content": system}]
    for shot in shots:
        messages += [{"role": "user", "content": shot.input}, {"role": "assistant", "content": shot.label}]
    return messages + [{"role": "user", "content": text}]


def fixed_shots(task: Task, per_label: int = 1) -> list[Case]:
    """``per_label`` examples of every label from the task's examples, labels interleaved."""
    by_label: dict[str, list[Case]] = {}
    for case in task.examples:
        by_label.setdefault(case.label, []).append(case)
    return [by_label[label][i] for i in range(per_label) for label in task.labels or () if len(by_label.get(label, [])) > i]


class ExampleIndex:
    """The labelled examples of a task, embedded once: ``nearest(text, k)`` for a retrieved few-shot."""

    def __init__(self, examples: Sequence[Case], embedder=None):
        from .rag import load_embedder

        self.examples = list(examples)
        self.embedder = embedder or load_embedder()
        self._matrix = self.embedder.encode([c.input for c in self.examples], normalize_embeddings=True,
                                            show_progress_bar=False)

    def nearest(self, texts: Sequence[str], k: int = 4) -> list[list[Case]]:
        """The ``k`` most similar examples for each text, the most similar *last* (closest to the input)."""
        q = self.embedder.encode(list(texts), normalize_embeddings=True, show_progress_bar=False)
        sims = q @ self._matrix.T
        return [[self.examples[j] for j in row.argsort()[::-1][:k][::-1]] for row in sims]

    def nearest_label_baseline(self, cases: Sequence[Case]) -> list[str]:
        """The label of the single nearest example, with no language model at all."""
        return [shots[-1].label for shots in self.nearest([c.input for c in cases], k=1)]


def build_prompts(task: Task, rung: str, cases: Sequence[Case], k: int = 4, index: ExampleIndex | None = None,
                  retriever=None) -> list[list[dict]]:
    """The messages each case is sent with, on one rung."""
    texts = [c.input for c in cases]
    if rung == "vague":
        return [[{"role": "user", "content": f"{task.prompts['vague']}\n\n{t}"}] for t in texts]
    if rung == "clear" or (rung in task.prompts and rung not in ("vague", "rag")):
        # at 135M the instruction works next to the input, not in a system turn
        text = task.instructions if rung == "clear" else task.prompts[rung]
        return [[{"role": "user", "content": f"{text}\n\n{t}"}] for t in texts]
    if rung in ("few_shot", "tool"):  # the tool's router picks the action from worked examples
        shots = fixed_shots(task)
        return [_turns(task.instructions, shots, t) for t in texts]
    if rung == "retrieved":
        index = index or ExampleIndex(task.examples)
        return [_turns(task.instructions, shots, t) for shots, t in zip(index.nearest(texts, k), texts, strict=True)]
    if rung in ("fine_tune", "student"):
        return [[{"role": "system", "content": task.short_system}, {"role": "user", "content": t}] for t in texts]
    if rung == "rag":
        from .rag import rag_prompt

        if retriever is None:
            raise CourseError("The rag rung needs a retriever over the task's notes: "
                              "retriever=HybridRetriever(DocumentStore(task.notes(1))).")
        instruction = task.prompts.get("rag", task.instructions)
        return [rag_prompt(t, retriever.search(t, k=2), instruction=instruction) for t in texts]
    raise CourseError(f"Unknown rung {rung!r}; use one of {', '.join(RUNG_NAMES)}.")


# ------------------------------------------------------------------------------------------ the desk
class BookingDesk:
    """The reservations of the bookings task in a real SQLite file, and the three actions on them.

    ``check``, ``change`` and ``cancel`` are the only things the assistant can do; an unknown reference
    or a bad date is refused with a message, never guessed. ``trial()`` runs actions in a transaction
    that is rolled back, so every eval case starts from the same reservations.
    """

    ACTIONS = ("check", "change", "cancel")
    REF = re.compile(r"\bGH-\d{5}\b")

    def __init__(self, path: str | Path, rows: Sequence[dict] | None = None):
        from .sqlite_files import write_sqlite_atomically

        self.path = Path(path)
        if rows is not None:
            def fill(conn):
                conn.execute("CREATE TABLE bookings (ref TEXT PRIMARY KEY, guest TEXT NOT NULL, "
                             "arrival TEXT NOT NULL, nights INTEGER NOT NULL, status TEXT NOT NULL)")
                conn.executemany("INSERT INTO bookings VALUES (:ref, :guest, :arrival, :nights, :status)", rows)
                conn.commit()

            write_sqlite_atomically(self.path, fill)
        if not self.path.is_file():
            raise CourseError(f"No bookings database at {self.path}; create it with BookingDesk(path, rows).")
        self.conn = sqlite3.connect(self.path, isolation_level=None)

    def row(self, ref: str) -> dict:
        cur = self.conn.execute("SELECT ref, guest, arrival, nights, status FROM bookings WHERE ref = ?", (ref,))
        found = cur.fetchone()
        if found is None:
            raise CourseError(f"No reservation {ref!r}: ask the guest to check the reference (GH- and five digits).")
        return dict(zip(("ref", "guest", "arrival", "nights", "status"), found, strict=True))

    def check(self, ref: str) -> str:
        r = self.row(ref)
        return f"Reservation {ref} for {r['guest']}: {r['status']}, arriving {r['arrival']} for {r['nights']} nights."

    def change(self, ref: str, new_arrival: str | None) -> str:
        r = self.row(ref)
        if r["status"] == "cancelled":
            raise CourseError(f"Reservation {ref} is cancelled; it cannot be moved.")
        try:
            date.fromisoformat(str(new_arrival))
        except ValueError:
            raise CourseError(f"Cannot move {ref}: no valid new arrival date was found in the request.") from None
        self.conn.execute("UPDATE bookings SET arrival = ? WHERE ref = ?", (new_arrival, ref))
        return f"Reservation {ref} now arrives on {new_arrival}."

    def cancel(self, ref: str) -> str:
        self.row(ref)
        self.conn.execute("UPDATE bookings SET status = 'cancelled' WHERE ref = ?", (ref,))
        return f"Reservation {ref} is cancelled."

    def act(self, action: str | None, text: str) -> str:
        """Run ``action`` for the request ``text``; the reference and date come from the text, by code."""
        if action not in self.ACTIONS:
            raise CourseError(f"Unknown action {action!r}; the desk can {', '.join(self.ACTIONS)}.")
        refs = self.REF.findall(text)
        if len(refs) != 1:
            raise CourseError("The request must name exactly one reservation (GH- and five digits).")
        if action == "change":
            return self.change(refs[0], parse_date(text))
        return getattr(self, action)(refs[0])

    @contextmanager
    def trial(self):
        """Actions inside are undone on exit: ``with desk.trial(): desk.cancel(ref)``."""
        self.conn.execute("BEGIN")
        try:
            yield self
        finally:
            self.conn.execute("ROLLBACK")

    def close(self) -> None:
        self.conn.close()


_MONTHS = {m: i for i, m in enumerate(("january", "february", "march", "april", "may", "june", "july", "august",
                                        "september", "october", "november", "december"), 1)}
_DAY_MONTH = re.compile(r"\b(\d{1,2})(?:st|nd|rd|th)?(?:\s+of)?\s+(" + "|".join(_MONTHS) + r")\b", re.I)
_MONTH_DAY = re.compile(r"\b(" + "|".join(_MONTHS) + r")\s+(\d{1,2})(?:st|nd|rd|th)?\b", re.I)


def parse_date(text: str, year: int = 2027) -> str | None:
    """The first date a request names ("14 March", "March 14th", "the 2nd of May"), as ISO, or None."""
    found = [(m.start(), m.group(1), m.group(2)) for m in _DAY_MONTH.finditer(text)]
    found += [(m.start(), m.group(2), m.group(1)) for m in _MONTH_DAY.finditer(text)]
    if not found:
        return None
    _, day, month = min(found)
    try:
        return date(year, _MONTHS[month.lower()], int(day)).isoformat()
    except ValueError:
        return None


_CLAIM = re.compile(r"\b(cancel+ed|have cancel+ed|moved|changed|rescheduled|updated|confirmed|is confirmed|"
                    r"has been|i have|i've)\b", re.I)


def claims_action(reply: str) -> bool:
    """Whether a text reply says something was done or found (it cannot have been, without a tool)."""
    return bool(_CLAIM.search(reply or ""))


def _booking_outcome(desk: BookingDesk, case: Case, action: str | None) -> tuple[bool, str]:
    """Run ``action`` for ``case`` in a trial and say whether the end state is what the guest asked for."""
    ref = case.extra["ref"]
    with desk.trial():
        before = desk.row(ref)
        try:
            said = desk.act(action, case.input)
        except CourseError as exc:
            said = f"refused: {exc}"
        after = desk.row(ref)
    if case.label == "check":
        ok = action == "check" and after == before
    elif case.label == "change":
        ok = after["arrival"] == case.extra.get("new_arrival") and after["status"] == before["status"]
    else:
        ok = after["status"] == "cancelled" and after["arrival"] == before["arrival"]
    return ok, said


# ------------------------------------------------------------------------------------------ measuring
@dataclass
class RungReport:
    """One rung on one task: the answers, which were right, and what a request cost."""

    task: str
    rung: str
    outputs: list[str]
    flags: list[bool]
    prompt_tokens: float
    output_tokens: float
    seconds_per_request: float
    extra: dict = field(default_factory=dict)

    @property
    def n(self) -> int:
        return len(self.flags)

    @property
    def correct(self) -> int:
        return sum(self.flags)

    @property
    def accuracy(self) -> float:
        return self.correct / self.n if self.n else 0.0

    @property
    def rate(self) -> Rate:
        return Rate.from_flags(self.flags)

    def meets(self, target: float) -> bool:
        return self.accuracy >= target

    def row(self) -> dict:
        r = self.rate
        return {"rung": RUNG_NAMES.get(self.rung, self.rung), "n": self.n, "accuracy": f"{r.value:.0%}",
                "95% CI": f"{r.low:.0%}-{r.high:.0%}", "prompt tokens": round(self.prompt_tokens),
                "s / request": round(self.seconds_per_request, 3)}


def score(task: Task, rung: str, cases: Sequence[Case], outputs: Sequence[str], version: int = 1,
          desk: BookingDesk | None = None) -> tuple[list[bool], dict]:
    """Right or wrong for every answer, and anything else worth keeping (actions taken, claims)."""
    extra: dict = {}
    if task.missing == "facts":
        key = f"answer_v{version}"
        return [keywords_found(o, c.extra[key]) for o, c in zip(outputs, cases, strict=True)], extra
    if task.missing == "actions":
        if desk is None:
            raise CourseError("Scoring the bookings task needs the desk: score(..., desk=BookingDesk(path, rows)).")
        if rung == "tool":
            actions = [parse_label(o, task.labels) for o in outputs]
            results = [_booking_outcome(desk, c, a) for c, a in zip(cases, actions, strict=True)]
            extra["actions"] = actions
            extra["results"] = [said for _, said in results]
            extra["wrong_actions"] = sum(1 for c, a in zip(cases, actions, strict=True)
                                         if a in ("change", "cancel") and a != c.label)
            return [ok for ok, _ in results], extra
        # a text reply changes nothing: a check is right only if it states the true status
        flags = []
        for o, c in zip(outputs, cases, strict=True):
            status = desk.row(c.extra["ref"])["status"]
            flags.append(c.label == "check" and status in (o or "").lower())
        extra["claims"] = sum(claims_action(o) for o in outputs)
        return flags, extra
    answers = [parse_label(o, task.labels) for o in outputs]
    extra["answers"] = answers
    return [a == c.label for a, c in zip(answers, cases, strict=True)], extra


def run_rung(model, tok, task: Task, rung: str, cases: Sequence[Case] | None = None, *, k: int = 4,
             index: ExampleIndex | None = None, retriever=None, desk: BookingDesk | None = None, version: int = 1,
             max_new_tokens: int | None = None, progress: bool | str = False) -> RungReport:
    """Send every case on one rung (greedy decoding) and score the answers."""
    from .chat import count_tokens, generate_batch

    cases = list(cases if cases is not None else task.split("eval"))
    if rung in NO_MODEL_RUNGS:
        return lookup_rung(task, rung, cases, index=index, retriever=retriever, version=version)
    prompts = build_prompts(task, rung, cases, k=k, index=index, retriever=retriever)
    if max_new_tokens is None:
        max_new_tokens = 40 if (task.missing == "facts" or (task.missing == "actions" and rung == "clear")) else 6
    t0 = time.perf_counter()
    outputs = generate_batch(model, tok, prompts, max_new_tokens=max_new_tokens, progress=progress)
    seconds = time.perf_counter() - t0
    flags, extra = score(task, rung, cases, outputs, version=version, desk=desk)
    n = max(len(cases), 1)
    return RungReport(task.name, rung, outputs, flags,
                      prompt_tokens=sum(count_tokens(tok, p) for p in prompts) / n,
                      output_tokens=sum(len(tok(o, add_special_tokens=False).input_ids) for o in outputs) / n,
                      seconds_per_request=seconds / n, extra=extra)


def lookup_rung(task: Task, rung: str, cases: Sequence[Case], index: ExampleIndex | None = None, retriever=None,
                version: int = 1) -> RungReport:
    """A rung with no language model: ``quote`` answers with the best retrieved note itself (a search
    box over the policy), ``nearest`` with the label of the most similar labelled example."""
    t0 = time.perf_counter()
    if rung == "quote":
        if retriever is None:
            raise CourseError("The quote rung needs a retriever over the task's notes.")
        outputs = [(retriever.search(c.input, k=1) or [(None, 0)])[0][0] for c in cases]
        outputs = [note.text if note is not None else "" for note in outputs]
    elif rung == "nearest":
        outputs = (index or ExampleIndex(task.examples)).nearest_label_baseline(cases)
    else:
        raise CourseError(f"{rung!r} is not a lookup rung; those are {', '.join(NO_MODEL_RUNGS)}.")
    seconds = (time.perf_counter() - t0) / max(len(cases), 1)
    flags, extra = score(task, rung, cases, outputs, version=version)
    return RungReport(task.name, rung, outputs, flags, 0.0, 0.0, seconds, extra)


def climb(model, tok, task: Task, rungs: Sequence[str] | None = None, cases: Sequence[Case] | None = None,
          progress: bool = True, **kwargs) -> dict[str, RungReport]:
    """Score the rungs in order on the same cases: ``{rung: RungReport}``."""
    from tqdm.auto import tqdm

    rungs = tuple(rungs or DEFAULT_RUNGS[task.missing])
    reports = {}
    for rung in tqdm(rungs, desc=f"{task.name}: rungs", unit="rung", disable=not progress):
        reports[rung] = run_rung(model, tok, task, rung, cases, **kwargs)
    return reports


def constant_baseline(task: Task, cases: Sequence[Case] | None = None) -> RungReport:
    """The trivial answer every rung must beat: always the most common label among the task's labelled
    examples (for facts: always the most common gold answer; for actions: always the commonest intent)."""
    cases = list(cases if cases is not None else task.split("eval"))
    if task.missing == "facts":
        common = Counter(c.extra["answer_v1"][0] for c in cases).most_common(1)[0][0]
        flags = [keywords_found(common, c.extra["answer_v1"]) for c in cases]
    else:
        source = [c for c in task.cases if c.split in ("pool", "train")] or cases
        common = Counter(c.label for c in source).most_common(1)[0][0]
        flags = [c.label == common for c in cases]
    return RungReport(task.name, "constant", [common] * len(cases), flags, 0.0, 0.0, 0.0, {"answer": common})


# ------------------------------------------------------------------------------------------ deciding
@dataclass(frozen=True)
class Decision:
    """The cheapest rung that meets the target, or why none does."""

    task: str
    rung: str | None
    accuracy: float
    rate: Rate | None
    target: float
    fine_tune: bool
    sentence: str

    @property
    def label(self) -> str:
        return RUNG_NAMES.get(self.rung, "no rung yet") if self.rung else "no rung meets the target"


def decide(task: Task, reports: Mapping[str, RungReport], baseline: RungReport | None = None) -> Decision:
    """The first rung (in ladder order, cheapest first) whose accuracy reaches the target.

    The decision names the rung and its evidence; when no rung gets there, it says which rung came
    closest, and for a behaviour that the prompt rungs miss, that a fine-tune is the next rung to
    measure. It never picks a rung that does not beat the constant baseline beyond the noise.
    """
    target = task.target
    for rung, r in reports.items():
        if not r.meets(target):
            continue
        if baseline is not None and not r.rate.beats(baseline.rate):
            continue
        rate = r.rate
        sure = ("" if rate.low >= target else
                f" Its interval reaches down to {rate.low:.0%}, so keep measuring as real traffic arrives.")
        trained = rung in ("fine_tune", "student")
        verdict = ("Fine-tune: the cheaper rungs were measured and fell short." if trained else
                   "Do not fine-tune: a cheaper rung already does the job.")
        return Decision(task.name, rung, r.accuracy, rate, target, trained,
                        f"{task.title}: the cheapest rung that meets the {target:.0%} target is the "
                        f"{RUNG_NAMES.get(rung, rung)}, at {rate}. {verdict}{sure}")
    best = max(reports, key=lambda k: reports[k].accuracy)
    r = reports[best]
    nxt = ("A fine-tune is the next rung to measure: the gap is a repeated behaviour the prompts did not teach."
           if task.missing == "behaviour" and "fine_tune" not in reports else
           "No rung meets it: change the design (a stronger model, a tool, a human in the loop) or the target.")
    return Decision(task.name, None, r.accuracy, r.rate, target, False,
                    f"{task.title}: no rung meets the {target:.0%} target; the best is the "
                    f"{RUNG_NAMES.get(best, best)} at {r.rate}. {nxt}")


def cost_per_day(report: RungReport, volume_per_day: int, price_per_m: float = PRICE_PER_M_INPUT) -> float:
    """Dollars a day for the prompt tokens of ``volume_per_day`` requests on this rung."""
    return report.prompt_tokens * volume_per_day * price_per_m / 1e6


def ladder_rows(task: Task, reports: Mapping[str, RungReport], baseline: RungReport | None = None) -> list[dict]:
    """One row per rung (the baseline first): accuracy with n and 95 % CI, tokens, seconds, dollars a day,
    and whether it meets the target."""
    rows = []
    for r in ([baseline] if baseline is not None else []) + list(reports.values()):
        row = r.row()
        row["$ / day"] = round(cost_per_day(r, task.volume_per_day), 2)
        row["meets target"] = "yes" if r.meets(task.target) else "no"
        rows.append(row)
    return rows


def plot_scenarios(results: Mapping[str, tuple[Task, Mapping[str, RungReport], RungReport]]):
    """One panel per task: accuracy per rung with 95 % error bars, the constant baseline (dashed) and
    the target (dotted); the bar of the decided rung is dark."""
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results), figsize=(3.6 * len(results), 3.3), squeeze=False)
    for ax, (task, reports, baseline) in zip(axes[0], results.values(), strict=True):
        decision = decide(task, reports, baseline)
        names = [RUNG_NAMES.get(k, k).split(" (")[0] for k in reports]
        rates = [r.rate for r in reports.values()]
        values = [q.value for q in rates]
        err = [[v - q.low for v, q in zip(values, rates, strict=True)],
               [q.high - v for v, q in zip(values, rates, strict=True)]]
        colours = ["#1e3a8a" if k == decision.rung else "#93c5fd" for k in reports]
        bars = ax.bar(range(len(names)), values, color=colours, yerr=err, capsize=3, error_kw={"lw": 1})
        ax.bar_label(bars, [f"{v:.0%}" for v in values], fontsize=8, padding=2)
        ax.axhline(baseline.accuracy, ls="--", color="#dc2626", lw=1.1, label=f"constant {baseline.accuracy:.0%}")
        ax.axhline(task.target, ls=":", color="#111827", lw=1.3, label=f"target {task.target:.0%}")
        ax.set_xticks(range(len(names)), names, rotation=25, ha="right", fontsize=8)
        ax.set_ylim(0, 1.12)
        ax.set_title(f"{task.name} ({task.missing})", fontsize=10)
        ax.legend(fontsize=7, loc="upper left")
        ax.spines[["top", "right"]].set_visible(False)
    axes[0][0].set_ylabel("accuracy on the eval set")
    fig.tight_layout()
    return fig


# ------------------------------------------------------------------------------------------ training
def training_examples(task: Task, cases: Sequence[Case], labels: Sequence[str] | None = None) -> list[dict]:
    """Chat examples with the short prompt a tuned model serves with; ``labels`` overrides the gold
    ones (a teacher's answers, for distillation). Cases whose label is None are skipped."""
    labels = list(labels) if labels is not None else [c.label for c in cases]
    if len(labels) != len(cases):
        raise CourseError(f"{len(cases)} cases but {len(labels)} labels; give one label per case.")
    return [{"messages": [{"role": "system", "content": task.short_system}, {"role": "user", "content": c.input},
                          {"role": "assistant", "content": label}]}
            for c, label in zip(cases, labels, strict=True) if label is not None]


def label_metric(tok, task: Task, cases: Sequence[Case], rung: str = "fine_tune"):
    """A function ``model -> accuracy`` on ``cases`` with the short prompt, for ``train_lora``'s checks."""
    cases = list(cases)

    def metric(model) -> float:
        return run_rung(model, tok, task, rung, cases).accuracy

    metric.__name__ = "validation accuracy"
    return metric


def agreement(a: Sequence[str | None], b: Sequence[str | None]) -> Rate:
    """How often two models give the same readable label on the same inputs."""
    if len(a) != len(b):
        raise CourseError(f"Agreement needs the same inputs: {len(a)} answers against {len(b)}.")
    return Rate.from_flags(x is not None and x == y for x, y in zip(a, b, strict=True))


def distillation_rows(teacher: RungReport, student: RungReport, volume_per_day: int | None = None) -> list[dict]:
    """Teacher against student on the same held-out cases: accuracy, tokens and seconds a request."""
    rows = []
    for name, r in (("teacher (long prompt, base model)", teacher), ("student (short prompt, LoRA)", student)):
        row = {"model": name, **{k: v for k, v in r.row().items() if k != "rung"}}
        if volume_per_day:
            row["$ / day"] = round(cost_per_day(r, volume_per_day), 2)
        rows.append(row)
    return rows


__all__ = ["SCENARIOS", "EXERCISE", "RUNG_NAMES", "DEFAULT_RUNGS", "PRICE_PER_M_INPUT", "Case", "Task", "load_task",
           "available_tasks", "parse_label", "keywords_found", "fixed_shots", "ExampleIndex", "build_prompts",
           "BookingDesk", "parse_date", "claims_action", "RungReport", "score", "run_rung", "climb",
           "constant_baseline", "Decision", "decide", "cost_per_day", "ladder_rows", "plot_scenarios",
           "training_examples", "label_metric", "agreement", "distillation_rows"]
