"""Tillwise's back office: a small SQLite database you can open, query and change.

Lesson 03 asks questions about *live state* (how many card readers the Denver store has, whether an
order has shipped, which plan a shop is on) and requests *actions* (change a plan, refund an order).
No model can know live state from its weights; the answers live here. The database is built at run
time from the JSONL files in ``ftcourse/data/backoffice/``:

>>> from ftcourse.backoffice import build_backoffice, connect, checksum
>>> path = build_backoffice("backoffice.sqlite")      # a file: open it with any SQLite tool
>>> conn = connect(path)
>>> conn.execute("SELECT qty FROM stock WHERE store = 'denver' AND sku = 'TW-CR2'").fetchone()[0]
35
>>> before = checksum(conn)                            # a fingerprint of every business table

Tables (money is kept in whole cents, so no rounding error creeps into a balance):

* ``products``  (sku, name, kind, price_cents): the hardware Tillwise sells;
* ``stores``    (store, city, name): the four Tillwise hardware stores;
* ``stock``     (store, sku, qty): units on the shelf, one row per store and SKU;
* ``customers`` (id, name, plan, balance_cents): the shops; ``balance_cents`` is what the shop owes
  Tillwise now (negative: a credit);
* ``orders``    (id, customer_id, placed, status, items, total_cents, refunded_cents, note): hardware
  orders; ``items`` is JSON text, ``note`` is free text the shop typed (and so untrusted).

``set_stock`` and ``set_order_status`` change the world the way a day of trading would (an item
sells out, an order ships). They are *not* tools: the model never gets them.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from pathlib import Path

from .datasets import DATA_DIR
from .errors import CourseError
from .sqlite_files import write_sqlite_atomically

BACKOFFICE_DIR = DATA_DIR / "backoffice"

PLANS = ("starter", "pro", "business")
ORDER_STATUSES = ("processing", "shipped", "delivered", "cancelled")

SCHEMA = """
CREATE TABLE products (
    sku         TEXT PRIMARY KEY,
    name        TEXT NOT NULL,
    kind        TEXT NOT NULL,
    price_cents INTEGER NOT NULL CHECK (price_cents > 0)
);
CREATE TABLE stores (
    store TEXT PRIMARY KEY,
    city  TEXT NOT NULL,
    name  TEXT NOT NULL
);
CREATE TABLE stock (
    store TEXT NOT NULL REFERENCES stores(store),
    sku   TEXT NOT NULL REFERENCES products(sku),
    qty   INTEGER NOT NULL CHECK (qty >= 0),
    PRIMARY KEY (store, sku)
);
CREATE TABLE customers (
    id            TEXT PRIMARY KEY,
    name          TEXT NOT NULL,
    plan          TEXT NOT NULL CHECK (plan IN ('starter', 'pro', 'business')),
    balance_cents INTEGER NOT NULL
);
CREATE TABLE orders (
    id             TEXT PRIMARY KEY,
    customer_id    TEXT NOT NULL REFERENCES customers(id),
    placed         TEXT NOT NULL,
    status         TEXT NOT NULL CHECK (status IN ('processing', 'shipped', 'delivered', 'cancelled')),
    items          TEXT NOT NULL,
    total_cents    INTEGER NOT NULL CHECK (total_cents > 0),
    refunded_cents INTEGER NOT NULL DEFAULT 0 CHECK (refunded_cents >= 0 AND refunded_cents <= total_cents),
    note           TEXT NOT NULL DEFAULT ''
);
"""

# table -> (columns in file order, primary key columns); the order in which they are filled and hashed
TABLES: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "products": (("sku", "name", "kind", "price_cents"), ("sku",)),
    "stores": (("store", "city", "name"), ("store",)),
    "stock": (("store", "sku", "qty"), ("store", "sku")),
    "customers": (("id", "name", "plan", "balance_cents"), ("id",)),
    "orders": (("id", "customer_id", "placed", "status", "items", "total_cents", "refunded_cents", "note"),
               ("id",)),
}


# --------------------------------------------------------------------------- seed data
def load_seed(table: str) -> list[dict]:
    """The rows of one table as shipped in ``ftcourse/data/backoffice/<table>.jsonl``."""
    if table not in TABLES:
        raise CourseError(f"There is no back-office table {table!r}; the tables are {', '.join(TABLES)}.")
    path = BACKOFFICE_DIR / f"{table}.jsonl"
    if not path.is_file():
        raise CourseError(f"The seed file {path} is missing. Reinstall the course package (pip install -e .).")
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _fill(conn: sqlite3.Connection) -> None:
    conn.executescript(SCHEMA)
    for table, (columns, _) in TABLES.items():
        rows = []
        for row in load_seed(table):
            values = [row[c] for c in columns]
            if table == "orders":  # items stay JSON text in the database: one column, readable in any tool
                values[columns.index("items")] = json.dumps(row["items"])
            rows.append(values)
        marks = ", ".join("?" * len(columns))
        conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({marks})", rows)


# --------------------------------------------------------------------------- build and open
def build_backoffice(path: str | Path = "backoffice.sqlite") -> Path:
    """Build a fresh back office at ``path`` from the seed files and return the path.

    Safe to run again: the database is written to a temporary file next to ``path`` and renamed
    over it only when complete, so you get either the old file or a whole new one, never half of
    one. Running it again also undoes every change made since (refunds, plan changes, stock).
    """
    def fill(conn: sqlite3.Connection) -> None:
        conn.execute("PRAGMA foreign_keys = ON")
        with conn:
            _fill(conn)
        problems = conn.execute("PRAGMA foreign_key_check").fetchall()
        if problems:
            raise CourseError(f"The back-office seed files disagree with each other: {problems[:3]}. "
                              "Every order's customer and every stock row's store and SKU must exist.")

    return write_sqlite_atomically(path, fill)


def connect(path: str | Path = "backoffice.sqlite") -> sqlite3.Connection:
    """Open a back office built by ``build_backoffice``: rows come back as ``sqlite3.Row`` (use
    ``row["qty"]``), and foreign keys are enforced."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise CourseError(f"No back office at {path}. Build it first: build_backoffice({str(path)!r}).")
    conn = sqlite3.connect(path)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA foreign_keys = ON")
    return conn


def open_backoffice(path: str | Path = "backoffice.sqlite") -> sqlite3.Connection:
    """Build a fresh back office at ``path`` and open it: ``build_backoffice`` then ``connect``."""
    return connect(build_backoffice(path))


# --------------------------------------------------------------------------- fingerprint
def table_rows(conn: sqlite3.Connection, table: str) -> list[tuple]:
    """Every row of ``table``, ordered by its primary key (so the order never depends on history)."""
    if table not in TABLES:
        raise CourseError(f"There is no back-office table {table!r}; the tables are {', '.join(TABLES)}.")
    columns, key = TABLES[table]
    return [tuple(r) for r in conn.execute(f"SELECT {', '.join(columns)} FROM {table} ORDER BY {', '.join(key)}")]


def checksum(conn: sqlite3.Connection) -> str:
    """A SHA-256 fingerprint of every business table's contents.

    Equal fingerprints before and after a batch of calls mean that no row was added, removed or
    changed: the security checks of lesson 03 rest on this.
    """
    h = hashlib.sha256()
    for table in TABLES:
        h.update(table.encode() + b"\0")
        for row in table_rows(conn, table):
            h.update(json.dumps(row, ensure_ascii=False).encode() + b"\n")
    return h.hexdigest()


# --------------------------------------------------------------------------- the world changes
def set_stock(conn: sqlite3.Connection, store: str, sku: str, qty: int) -> None:
    """Set the units of ``sku`` in ``store`` (``qty=0``: it sold out). Not a tool: the world changing."""
    with conn:
        cur = conn.execute("UPDATE stock SET qty = ? WHERE store = ? AND sku = ?", (int(qty), store, sku))
    if cur.rowcount != 1:
        raise CourseError(f"No stock row for store {store!r} and SKU {sku!r}.")


def set_order_status(conn: sqlite3.Connection, order_id: str, status: str) -> None:
    """Move an order to ``status`` (e.g. it ships). Not a tool: the world changing."""
    if status not in ORDER_STATUSES:
        raise CourseError(f"Unknown order status {status!r}; use one of {', '.join(ORDER_STATUSES)}.")
    with conn:
        cur = conn.execute("UPDATE orders SET status = ? WHERE id = ?", (status, order_id))
    if cur.rowcount != 1:
        raise CourseError(f"No order {order_id!r}.")


def dollars(cents: int) -> float:
    """Whole cents as dollars, for display and for tool results: ``4900`` -> ``49.0``."""
    return round(cents / 100, 2)
