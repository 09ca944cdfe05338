"""The course's data: Tillwise support tickets, general chat, and the price & policy sheet.

Everything lives as JSONL in ``ftcourse/data/`` (one record a line, chat format: system / user /
assistant messages). This module only *reads* it and hands it back as small dataclasses:

>>> from ftcourse.datasets import load_tickets
>>> train = load_tickets("train")
>>> train[0].text, train[0].expected          # the ticket and the gold JSON answer

The ticket taxonomy (``TAXONOMY``) is the stable house behaviour the course fine-tunes; the fact
sheets (``load_facts(1)``, ``load_facts(2)``) are the changing knowledge it does *not* fine-tune.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import CourseError

DATA_DIR = Path(__file__).resolve().parent / "data"

TAXONOMY: dict[str, list[str]] = {
    "category": ["billing", "payments", "hardware", "account", "inventory", "how_to", "feature_request"],
    "urgency": ["urgent", "high", "normal", "low"],
}

CATEGORY_DEFINITIONS: dict[str, str] = {
    "billing": "what Tillwise charges the shop: subscription charges, invoices, refunds, plan changes",
    "payments": "card transactions declined or failing, and payouts of card takings to the shop",
    "hardware": "card reader, receipt printer, cash drawer or barcode scanner devices",
    "account": "login, password, two-factor codes, staff users and permissions",
    "inventory": "products, stock counts, catalogue import, item sync between devices or stores",
    "how_to": "a question on how to use a feature; nothing is broken",
    "feature_request": "asks for something the product does not do today",
}

URGENCY_DEFINITIONS: dict[str, str] = {
    "urgent": "the shop cannot take payments or trade right now",
    "high": "money or data at risk, or many staff blocked, but the shop can still trade",
    "normal": "something is broken but there is a workaround",
    "low": "questions, requests, cosmetic issues",
}

SPLITS = ("train", "val", "test")


def ticket_json(category: str, urgency: str) -> str:
    """The one correct answer shape: ``{"category": "...", "urgency": "..."}`` (keys in this order)."""
    return json.dumps({"category": category, "urgency": urgency})


@dataclass
class Ticket:
    id: str
    text: str
    category: str
    urgency: str
    messages: list[dict] = field(default_factory=list, repr=False)

    @property
    def expected(self) -> str:
        """The gold answer, exactly as the model should write it."""
        return ticket_json(self.category, self.urgency)

    @property
    def labels(self) -> dict:
        return {"category": self.category, "urgency": self.urgency}


@dataclass
class Fact:
    id: str
    topic: str
    note: str
    answer: str
    keywords: list[str]


@dataclass
class FactQuestion:
    id: str
    fact_id: str | None
    kind: str  # "trained" | "paraphrase" | "untaught"
    question: str


# --------------------------------------------------------------------------- raw files
def data_path(name: str) -> Path:
    """``"tickets_train"`` or ``"tickets_train.jsonl"`` -> the file in ``ftcourse/data/``."""
    p = Path(name)
    if p.is_absolute() or p.exists() and p.suffix == ".jsonl":
        return p
    if not name.endswith(".jsonl"):
        name += ".jsonl"
    return DATA_DIR / name


def load_jsonl(name: str | Path) -> list[dict]:
    """Read one JSONL file (a name in ``ftcourse/data/`` or a path); one dict per non-empty line."""
    path = data_path(str(name))
    if not path.is_file():
        available = sorted(f.stem for f in DATA_DIR.glob("*.jsonl"))
        raise CourseError(f"No data file {path}. Available: {', '.join(available)}.")
    rows = []
    with open(path, encoding="utf-8") as f:
        for n, line in enumerate(f, 1):
            if line.strip():
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise CourseError(f"{path}:{n} is not valid JSON ({exc}).") from None
    return rows


def write_jsonl(rows, path: str | Path) -> Path:
    """Write dicts as JSONL (UTF-8, one record a line). Used to save training sets you build."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False) + "\n")
    return path


# --------------------------------------------------------------------------- tickets
def _ticket_from_row(row: dict) -> Ticket:
    user = next(m["content"] for m in row["messages"] if m["role"] == "user")
    return Ticket(id=row["id"], text=user, category=row["category"], urgency=row["urgency"],
                  messages=row["messages"])


def load_tickets(split: str = "train") -> list[Ticket]:
    """The labelled tickets of one split: ``"train"`` (~260), ``"val"`` (~30) or ``"test"`` (~60)."""
    if split not in SPLITS:
        raise CourseError(f"Unknown ticket split {split!r}; use one of {', '.join(SPLITS)}.")
    return [_ticket_from_row(r) for r in load_jsonl(f"tickets_{split}")]


# --------------------------------------------------------------------------- general chat
def load_general(kind: str = "mix") -> list[dict]:
    """General (non-ticket) chat: ``"mix"`` has answers (to mix into training), ``"probe"`` only
    user turns (held out, to check the tuned model still answers ordinary questions)."""
    if kind not in ("mix", "probe"):
        raise CourseError(f"Unknown general set {kind!r}; use 'mix' or 'probe'.")
    return load_jsonl(f"general_{kind}")


# --------------------------------------------------------------------------- facts
def load_facts(version: int = 1) -> list[Fact]:
    """The price & policy sheet, version 1 (old) or 2 (after the update)."""
    if version not in (1, 2):
        raise CourseError(f"There is no fact sheet version {version!r}; use 1 or 2.")
    return [Fact(id=r["id"], topic=r["topic"], note=r["note"], answer=r["answer"],
                 keywords=list(r["keywords"])) for r in load_jsonl(f"facts_v{version}")]


def facts_by_id(facts: list[Fact]) -> dict[str, Fact]:
    return {f.id: f for f in facts}


def changed_fact_ids() -> list[str]:
    """Ids of the facts whose answer differs between sheet v1 and v2."""
    v1, v2 = facts_by_id(load_facts(1)), facts_by_id(load_facts(2))
    return [i for i in v1 if i in v2 and v1[i].answer != v2[i].answer]


FACT_QUESTION_KINDS = ("trained", "paraphrase", "untaught")


def load_fact_questions(kind: str | None = None) -> list[FactQuestion]:
    """Questions about the fact sheet; ``kind`` keeps only ``trained`` / ``paraphrase`` / ``untaught``."""
    if kind is not None and kind not in FACT_QUESTION_KINDS:
        raise CourseError(f"Unknown question kind {kind!r}; use one of {', '.join(FACT_QUESTION_KINDS)}.")
    rows = load_jsonl("fact_questions")
    qs = [FactQuestion(id=r["id"], fact_id=r.get("fact_id"), kind=r["kind"], question=r["question"])
          for r in rows]
    return [q for q in qs if kind is None or q.kind == kind]


def load_fact_training() -> list[dict]:
    """Chat examples (``{"id", "fact_id", "messages"}``) that teach the v1 facts, for the
    "facts in the weights" LoRA of lesson 02."""
    return load_jsonl("facts_train_v1")
