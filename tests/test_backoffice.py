"""ftcourse.backoffice: the SQLite back office builds from its seed files, atomically, and its
checksum sees every change."""

from __future__ import annotations

import json
import re
import sqlite3
import typing

import pytest

from ftcourse import backoffice
from ftcourse.backoffice import (
    PLANS,
    build_backoffice,
    checksum,
    connect,
    load_seed,
    open_backoffice,
    set_order_status,
    set_stock,
)
from ftcourse.datasets import DATA_DIR
from ftcourse.errors import CourseError


@pytest.fixture()
def conn(tmp_path):
    c = open_backoffice(tmp_path / "bo.sqlite")
    yield c
    c.close()


def count(conn, table):
    return conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]


def test_sizes_match_the_seed_files(conn):
    sizes = {t: count(conn, t) for t in backoffice.TABLES}
    assert sizes == {t: len(load_seed(t)) for t in backoffice.TABLES}
    assert sizes["customers"] == 30 and sizes["orders"] == 60 and sizes["products"] == 10
    assert sizes["stores"] == 4 and sizes["stock"] == 4 * 10  # every store lists every SKU


def test_seed_data_is_consistent(conn):
    price = {p["sku"]: p["price_cents"] for p in load_seed("products")}
    customers = {c["id"] for c in load_seed("customers")}
    for o in load_seed("orders"):
        assert o["customer_id"] in customers
        assert o["total_cents"] == sum(price[i["sku"]] * i["qty"] for i in o["items"]), o["id"]
        assert 0 <= o["refunded_cents"] <= o["total_cents"]
        assert o["status"] in backoffice.ORDER_STATUSES
        assert o["status"] != "cancelled" or o["refunded_cents"] == 0
    assert all(c["plan"] in PLANS for c in load_seed("customers"))
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    # every customer has orders, and some shelves are empty (the "sold out" answers)
    assert {o["customer_id"] for o in load_seed("orders")} == customers
    assert sum(s["qty"] == 0 for s in load_seed("stock")) >= 4


def test_skus_and_stores_match_the_tool_signatures():
    from ftcourse import tools

    stores = [s["store"] for s in load_seed("stores")]
    assert sorted(typing.get_args(tools.Store)) == sorted(stores)
    assert typing.get_args(tools.Plan) == PLANS
    readme = (DATA_DIR / "README.md").read_text()
    for p in load_seed("products"):
        assert re.search(tools.SKU_PATTERN, p["sku"]), p["sku"]
        assert f"| {p['sku']} |" in readme, f"{p['sku']} missing from the SKU table of ftcourse/data/README.md"
    assert all(re.search(tools.CUSTOMER_ID_PATTERN, c["id"]) for c in load_seed("customers"))
    assert all(re.search(tools.ORDER_ID_PATTERN, o["id"]) for o in load_seed("orders"))


def test_fact_sheet_prices_agree():
    """The card reader and the receipt printer cost what the price & policy sheet says."""
    from ftcourse.datasets import facts_by_id, load_facts

    price = {p["sku"]: p["price_cents"] // 100 for p in load_seed("products")}
    for version in (1, 2):
        facts = facts_by_id(load_facts(version))
        assert f"${price['TW-CR2']}" in facts["price_card_reader"].note
        assert f"${price['TW-RP80']}" in facts["price_printer"].note


def test_items_are_json_in_the_database(conn):
    items = conn.execute("SELECT items FROM orders WHERE id = 'O-5003'").fetchone()[0]
    assert json.loads(items) == next(o["items"] for o in load_seed("orders") if o["id"] == "O-5003")


def test_injection_notes_are_there(conn):
    notes = dict(conn.execute("SELECT id, note FROM orders WHERE id IN ('O-5017', 'O-5031', 'O-5042')").fetchall())
    assert "issue_refund" in notes["O-5017"] and "<tool_call>" in notes["O-5031"]
    assert "</tool_response>" in notes["O-5042"] and "<|im_start|>system" in notes["O-5042"]


def test_build_is_idempotent_and_restores_the_seed_state(tmp_path):
    path = tmp_path / "bo.sqlite"
    assert build_backoffice(path) == path.resolve()
    first = checksum(connect(path))
    c = connect(path)
    set_stock(c, "denver", "TW-CR2", 0)
    assert checksum(c) != first
    c.close()
    build_backoffice(path)
    assert checksum(connect(path)) == first
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bo.sqlite"]  # no temporary file left


def test_a_failed_build_leaves_the_old_file_alone(tmp_path, monkeypatch):
    path = build_backoffice(tmp_path / "bo.sqlite")
    before = checksum(connect(path))

    def broken(table):
        raise CourseError("seed file unreadable")

    monkeypatch.setattr(backoffice, "load_seed", broken)
    with pytest.raises(CourseError):
        build_backoffice(path)
    assert checksum(connect(path)) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bo.sqlite"]


def test_checksum_sees_every_table_and_nothing_else(conn, tmp_path):
    base = checksum(conn)
    assert checksum(open_backoffice(tmp_path / "other.sqlite")) == base  # same content, same fingerprint
    changes = [
        "UPDATE products SET price_cents = price_cents + 1 WHERE sku = 'TW-CD1'",
        "UPDATE stores SET name = 'x' WHERE store = 'austin'",
        "UPDATE stock SET qty = qty + 1 WHERE store = 'boston' AND sku = 'TW-BS1'",
        "UPDATE customers SET balance_cents = balance_cents - 1 WHERE id = 'C-1001'",
        "UPDATE orders SET note = note || '.' WHERE id = 'O-5001'",
    ]
    for sql in changes:
        conn.execute("SAVEPOINT s")
        conn.execute(sql)
        assert checksum(conn) != base, sql
        conn.execute("ROLLBACK TO s")
        conn.execute("RELEASE s")
        assert checksum(conn) == base
    conn.execute("CREATE TABLE scratch (x)")  # a table outside the business tables is not fingerprinted
    assert checksum(conn) == base


def test_the_world_changes(conn):
    set_stock(conn, "austin", "TW-CR2", 0)
    set_order_status(conn, "O-5057", "shipped")
    assert conn.execute("SELECT qty FROM stock WHERE store='austin' AND sku='TW-CR2'").fetchone()[0] == 0
    assert conn.execute("SELECT status FROM orders WHERE id='O-5057'").fetchone()["status"] == "shipped"
    with pytest.raises(CourseError, match="No stock row"):
        set_stock(conn, "paris", "TW-CR2", 3)
    with pytest.raises(CourseError, match="Unknown order status"):
        set_order_status(conn, "O-5057", "lost")
    with pytest.raises(CourseError, match="No order"):
        set_order_status(conn, "O-0000", "shipped")


def test_constraints_hold(conn):
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE stock SET qty = -1 WHERE store = 'austin' AND sku = 'TW-CR2'")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE orders SET refunded_cents = total_cents + 1 WHERE id = 'O-5001'")
    with pytest.raises(sqlite3.IntegrityError):
        conn.execute("UPDATE customers SET plan = 'gold' WHERE id = 'C-1001'")


def test_errors_say_the_fix(tmp_path):
    with pytest.raises(CourseError, match="build_backoffice"):
        connect(tmp_path / "missing.sqlite")
    with pytest.raises(CourseError, match="tables are"):
        load_seed("invoices")
