"""The structured Tillwise facts in SQLite: a file you can open, query, and update with one statement.

Some facts are a table, not prose: a plan's price, its register limit, the support hours. They
belong in a database you query at call time. The lookup returns the row, the row goes into the
prompt, and a price change is one ``UPDATE``: no re-index, no retraining.

The database is built at run time from ``ftcourse/data/plans.jsonl`` (the plans) and
``facts_v1.jsonl`` / ``facts_v2.jsonl`` (the rest of the price & policy sheet):

>>> from ftcourse.factsdb import open_facts_db, lookup, row_note, update_facts_db
>>> conn = open_facts_db("tillwise_facts.sqlite")        # a file: open it with any SQLite tool
>>> conn.execute("SELECT monthly_price_usd FROM plans WHERE plan = 'pro'").fetchone()[0]
49
>>> [row_note(r) for r in lookup(conn, "How much is the Pro plan?")]    # what goes into the prompt
['Pro plan: $49 per month; up to 3 registers per store; up to 15 staff accounts; ...']
>>> update_facts_db(conn, version=2)                     # sheet v2: one UPDATE per changed value
["UPDATE plans SET monthly_price_usd = 25 WHERE plan = 'starter'", ...]

Tables:

* ``plans`` (plan, name, monthly_price_usd, registers_per_store, staff_accounts, stock_alerts,
  loyalty, api_access): one row per plan; ``NULL`` in a limit means "no limit", features are 0 / 1.
* ``facts`` (id, topic, value, note): every fact of the price & policy sheet that is not a plan
  column (support hours, refund window, card fee, hardware prices...), with the sheet's ids.

``PRAGMA user_version`` holds the sheet version the file is at (1 or 2).
"""

from __future__ import annotations

import re
import sqlite3
from pathlib import Path

from .datasets import load_facts, load_jsonl
from .errors import CourseError
from .sqlite_files import write_sqlite_atomically

DEFAULT_PATH = "tillwise_facts.sqlite"

SCHEMA = """
CREATE TABLE plans (
    plan                TEXT PRIMARY KEY,
    name                TEXT NOT NULL,
    monthly_price_usd   INTEGER NOT NULL CHECK (monthly_price_usd > 0),
    registers_per_store INTEGER CHECK (registers_per_store IS NULL OR registers_per_store > 0),
    staff_accounts      INTEGER CHECK (staff_accounts IS NULL OR staff_accounts > 0),
    stock_alerts        INTEGER NOT NULL CHECK (stock_alerts IN (0, 1)),
    loyalty             INTEGER NOT NULL CHECK (loyalty IN (0, 1)),
    api_access          INTEGER NOT NULL CHECK (api_access IN (0, 1))
);
CREATE TABLE facts (
    id    TEXT PRIMARY KEY,
    topic TEXT NOT NULL,
    value TEXT NOT NULL,
    note  TEXT NOT NULL
);
"""

PLAN_COLUMNS = ("plan", "name", "monthly_price_usd", "registers_per_store", "staff_accounts",
                "stock_alerts", "loyalty", "api_access")
FACT_COLUMNS = ("id", "topic", "value", "note")

# Facts of the sheet that are columns of ``plans`` (so they are not repeated in ``facts``).
PLAN_FACTS: dict[str, tuple[str, str]] = {
    "price_starter": ("starter", "monthly_price_usd"),
    "price_pro": ("pro", "monthly_price_usd"),
    "price_business": ("business", "monthly_price_usd"),
    "registers_per_store": ("pro", "registers_per_store"),
}


# --------------------------------------------------------------------------- source rows
def plan_rows(version: int = 1) -> list[dict]:
    """The plans as ``plans.jsonl`` lists them for sheet ``version`` (1 or 2)."""
    _check_version(version)
    rows = [r for r in load_jsonl("plans") if r["version"] == version]
    if not rows:
        raise CourseError(f"plans.jsonl has no rows for version {version}.")
    return [{c: (int(r[c]) if isinstance(r[c], bool) else r[c]) for c in PLAN_COLUMNS} for r in rows]


def fact_rows(version: int = 1) -> list[dict]:
    """The sheet's facts that are not plan columns, as rows of the ``facts`` table."""
    _check_version(version)
    return [{"id": f.id, "topic": f.topic, "value": f.answer, "note": f.note}
            for f in load_facts(version) if f.id not in PLAN_FACTS]


def _check_version(version: int) -> None:
    if version not in (1, 2):
        raise CourseError(f"There is no sheet version {version!r}; use 1 or 2.")


# --------------------------------------------------------------------------- build and open
def build_facts_db(path: str | Path = DEFAULT_PATH, version: int = 1) -> Path:
    """Write a fresh facts database for sheet ``version`` at ``path`` and return the path.

    Safe to run again: the file is built next to ``path`` and renamed over it only when complete,
    so you get either the old file or a whole new one. Running it again undoes every change.
    """
    plans, facts = plan_rows(version), fact_rows(version)  # read (and check) the data before touching files
    def fill(conn: sqlite3.Connection) -> None:
        with conn:
            conn.executescript(SCHEMA)
            for table, columns, rows in (("plans", PLAN_COLUMNS, plans), ("facts", FACT_COLUMNS, facts)):
                conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) "
                                 f"VALUES ({', '.join('?' * len(columns))})",
                                 [[r[c] for c in columns] for r in rows])
            conn.execute(f"PRAGMA user_version = {int(version)}")

    return write_sqlite_atomically(path, fill)


def connect(path: str | Path = DEFAULT_PATH) -> sqlite3.Connection:
    """Open a facts database built by ``build_facts_db``; rows come back as ``sqlite3.Row``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CourseError(f"No facts database at {path}. Build it first: build_facts_db({str(path)!r}).")
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    return conn


def open_facts_db(path: str | Path = DEFAULT_PATH, version: int = 1) -> sqlite3.Connection:
    """Build a fresh facts database for sheet ``version`` at ``path`` and open it."""
    return connect(build_facts_db(path, version))


def facts_db_version(conn: sqlite3.Connection) -> int:
    """The sheet version the database is at (1 or 2)."""
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


# --------------------------------------------------------------------------- the update
def _sql_literal(value) -> str:
    if value is None:
        return "NULL"
    if isinstance(value, (int, float)):
        return repr(value)
    return "'" + str(value).replace("'", "''") + "'"


def update_statements(version: int = 2, from_version: int = 1) -> list[tuple[str, tuple]]:
    """The ``UPDATE`` statements that move the database from ``from_version`` to ``version``,
    worked out from the data: one statement per changed plan value or sheet fact, as
    ``(sql with ? placeholders, parameters)``."""
    _check_version(version)
    _check_version(from_version)
    statements = []
    old_plans = {r["plan"]: r for r in plan_rows(from_version)}
    for new in plan_rows(version):
        old = old_plans.get(new["plan"])
        if old is None:
            raise CourseError(f"Plan {new['plan']!r} is new in version {version}; "
                              "the update only changes rows.")
        for column in PLAN_COLUMNS[1:]:
            if new[column] != old[column]:
                statements.append((f"UPDATE plans SET {column} = ? WHERE plan = ?",
                                   (new[column], new["plan"])))
    old_facts = {r["id"]: r for r in fact_rows(from_version)}
    for new in fact_rows(version):
        old = old_facts.get(new["id"])
        if old is None:
            raise CourseError(f"Fact {new['id']!r} is new in version {version}; "
                              "the update only changes rows.")
        if (new["value"], new["note"]) != (old["value"], old["note"]):
            statements.append(("UPDATE facts SET value = ?, note = ? WHERE id = ?",
                               (new["value"], new["note"], new["id"])))
    return statements


def readable_sql(sql: str, params: tuple) -> str:
    """A statement with its parameters written in, for printing (run the ``?`` form, not this)."""
    parts = sql.split("?")
    if len(parts) != len(params) + 1:
        raise CourseError(f"{len(params)} parameters for {len(parts) - 1} placeholders in {sql!r}.")
    return "".join(p + (_sql_literal(v) if i < len(params) else "") for i, (p, v) in
                   enumerate(zip(parts, list(params) + [None], strict=True)))


def update_facts_db(conn: sqlite3.Connection, version: int = 2) -> list[str]:
    """Apply the sheet ``version`` to an open database: each changed value is one ``UPDATE``, all of
    them in one transaction (every change lands, or none). Returns the statements, readable."""
    current = facts_db_version(conn)
    if current == version:
        return []
    statements = update_statements(version, from_version=current)
    with conn:
        for sql, params in statements:
            cur = conn.execute(sql, params)
            if cur.rowcount != 1:
                raise CourseError(f"{readable_sql(sql, params)} changed {cur.rowcount} rows, not 1; "
                                  "rebuild the file with build_facts_db.")
        conn.execute(f"PRAGMA user_version = {int(version)}")
    return [readable_sql(sql, params) for sql, params in statements]


# --------------------------------------------------------------------------- lookup
_PLAN_NAMES = {"starter": "starter", "pro": "pro", "business": "business"}
_PLAN_WORDS = ("price", "cost", "costs", "fee", "fees", "charge", "pay", "month", "monthly", "subscription",
               "register", "registers", "till", "tills", "staff", "employee", "employees", "login", "logins",
               "account", "accounts", "plan", "plans", "tier", "loyalty", "api", "stock alert",
               "stock alerts")
_FACT_WORDS: dict[str, tuple[str, ...]] = {
    "support_hours": ("phone support", "support hours", "call", "phone", "helpline", "support open"),
    "refund_window": ("refund", "refunded", "money back"),
    "offline_limit": ("offline",),
    "export_retention": ("export", "exports"),
    "payout_time": ("payout", "payouts", "paid out", "takings"),
    "card_fee": ("card fee", "transaction fee", "processing fee", "card transaction", "each card payment"),
    "hardware_warranty": ("warranty", "guarantee"),
    "free_trial": ("trial",),
    "price_card_reader": ("card reader", "tw-cr2"),
    "price_printer": ("receipt printer", "tw-rp80"),
}
_NUMBER = re.compile(r"(?<![\w.])\d+(?:\.\d+)?")


def _has(text: str, phrase: str) -> bool:
    return re.search(r"(?<![\w-])" + re.escape(phrase) + r"(?![\w-])", text) is not None


def lookup(conn: sqlite3.Connection, question: str) -> list[dict]:
    """The database rows that can answer ``question``, to put in the prompt (``[]``: nothing fits).

    A small rule-based router, so that the lesson measures the database and not a clever parser:

    * a plan named in the question (Starter, Pro, Business) brings that plan's row;
    * words of a sheet fact (refund, payout, warranty...) bring that fact's row;
    * a number in the question brings every row holding that value ("which plan costs $99?");
    * a plan question that names no plan (price, registers, staff...) brings every plan row.

    Each row is a dict with ``"table"`` and its columns; ``row_note`` writes it as a sentence.
    """
    text = " ".join(question.lower().split())
    plan_sql = f"SELECT {', '.join(PLAN_COLUMNS)} FROM plans ORDER BY rowid"
    fact_sql = f"SELECT {', '.join(FACT_COLUMNS)} FROM facts ORDER BY rowid"
    plans = {r["plan"]: dict(r) for r in conn.execute(plan_sql)}
    facts = {r["id"]: dict(r) for r in conn.execute(fact_sql)}
    plan_hits = [p for word, p in _PLAN_NAMES.items() if p in plans and _has(text, word)]
    fact_hits = [f for f, words in _FACT_WORDS.items() if f in facts and any(_has(text, w) for w in words)]
    for number in _NUMBER.findall(text.replace(",", "")):
        value = float(number)
        plan_hits += [p for p, row in plans.items()
                      if any(isinstance(row[c], (int, float)) and float(row[c]) == value
                             for c in ("monthly_price_usd", "registers_per_store", "staff_accounts"))]
        fact_hits += [f for f, row in facts.items() if _NUMBER.search(row["value"]) and
                      any(float(n) == value for n in _NUMBER.findall(row["value"].replace(",", "")))]
    if not plan_hits and not fact_hits and any(_has(text, w) for w in _PLAN_WORDS):
        plan_hits = list(plans)
    rows = [{"table": "plans", **plans[p]} for p in dict.fromkeys(plan_hits)]
    rows += [{"table": "facts", **facts[f]} for f in dict.fromkeys(fact_hits)]
    return rows


def _limit(value, unit: str) -> str:
    return f"no limit on {unit}" if value is None else f"up to {value} {unit}"


def row_note(row) -> str:
    """One database row as a sentence for the prompt (a ``lookup`` row, or a ``sqlite3.Row``)."""
    row = dict(row)
    if "plan" in row:
        def yes(column: str) -> str:
            return "yes" if row[column] else "no"

        return (f"{row['name']} plan: ${row['monthly_price_usd']} per month; "
                f"{_limit(row['registers_per_store'], 'registers per store')}; "
                f"{_limit(row['staff_accounts'], 'staff accounts')}; stock alerts: {yes('stock_alerts')}; "
                f"loyalty programme: {yes('loyalty')}; API access: {yes('api_access')}.")
    if "note" in row:
        return f"{row['topic']}: {row['note']}" if row.get("topic") else row["note"]
    raise CourseError(f"Not a row of the facts database: {sorted(row)}.")


def lookup_notes(conn: sqlite3.Connection, question: str) -> list[str]:
    """``lookup`` written as sentences: pass them to ``ftcourse.rag.rag_prompt`` as the notes."""
    return [row_note(r) for r in lookup(conn, question)]
