"""The catalog store on real SQLite files."""

from __future__ import annotations

import random
import threading

import pytest

from app.catalog.catalog_data import Toy, generate_catalog, load_toys, write_catalog
from app.catalog.store import (
    AttemptAbandoned,
    CatalogStore,
    Fenced,
    KeyConflict,
    OutOfStock,
    UnknownToy,
)

PRICES = {
    "Tux": 15.99,
    "Whale": 25.99,
    "Fox": 12.99,
    "Python": 20.99,
    "Barbie": 55.99,
    "Lego": 45.99,
    "Monopoly": 10.99,
    "Frisbee": 5.99,
    "Marbles": 7.99,
    "Giraffe": 75.99,
}


@pytest.fixture
def changes():
    return []


@pytest.fixture
def store(tmp_path, changes):
    store = CatalogStore(
        tmp_path / "catalog.sqlite3", on_change=lambda *change: changes.append(change)
    )
    store.load_if_empty(load_toys())
    yield store
    store.close()


def assert_ledger_balanced(store: CatalogStore) -> None:
    for row in store.ledger():
        assert row.initial + row.restocked - row.sold == row.quantity, row


def test_builtin_catalog_has_the_named_toys_and_classics():
    toys = {toy.name: toy for toy in load_toys()}
    assert len(toys) >= 15
    for name, price in PRICES.items():
        assert toys[name].price == price
    assert all(toy.quantity == 100 for toy in toys.values())
    classics = {"Slinky", "Yo-Yo", "Etch A Sketch", "Jump Rope", "Kite", "Teddy Bear", "Crayons"}
    assert len(classics & toys.keys()) >= 5


def test_purchase_decrements_and_bumps_version(store, changes):
    result = store.purchase("k1", "Tux", 3, term=1, attempt=0)
    assert (result.name, result.quantity, result.remaining, result.version) == ("Tux", 3, 97, 2)
    product = store.get("Tux")
    assert (product.quantity, product.version, product.price) == (97, 2, 15.99)
    assert changes == [("Tux", 2, "purchase")]
    assert_ledger_balanced(store)


def test_purchase_refusals_change_nothing(store, changes):
    with pytest.raises(UnknownToy):
        store.purchase("k1", "Unicorn", 1, term=1, attempt=0)
    with pytest.raises(OutOfStock):
        store.purchase("k2", "Tux", 101, term=1, attempt=0)
    store.purchase("k3", "Tux", 100, term=1, attempt=0)
    with pytest.raises(OutOfStock):
        store.purchase("k4", "Tux", 1, term=1, attempt=0)
    with pytest.raises(ValueError):
        store.purchase("k5", "Tux", 0, term=1, attempt=0)
    assert store.get("Tux").quantity == 0
    assert len(changes) == 1
    # Refused keys were not recorded: they can still buy something else.
    assert store.purchase("k2", "Fox", 1, term=1, attempt=0).remaining == 99


def test_concurrent_purchases_never_oversell(store):
    results: list[int] = []
    lock = threading.Lock()
    barrier = threading.Barrier(50)

    def buy(i: int) -> None:
        barrier.wait()
        try:
            result = store.purchase(f"key-{i}", "Whale", 3, term=1, attempt=0)
        except OutOfStock:
            return
        with lock:
            results.append(result.remaining)

    threads = [threading.Thread(target=buy, args=(i,)) for i in range(50)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    final = store.get("Whale").quantity
    assert len(results) == 33  # 33 * 3 = 99 of 100
    assert final == 100 - 3 * len(results) == 1
    # Each success saw a distinct stock level: the check-and-decrement was atomic.
    assert sorted(results) == list(range(1, 100, 3))
    assert_ledger_balanced(store)


def test_same_key_returns_first_result_and_buys_nothing(store, changes):
    first = store.purchase("k1", "Fox", 2, term=1, attempt=0)
    store.purchase("other", "Fox", 1, term=1, attempt=0)
    again = store.purchase("k1", "Fox", 2, term=1, attempt=0)
    assert again == first
    assert store.get("Fox").quantity == 97
    assert len(changes) == 2


def test_same_key_for_another_toy_or_quantity_is_a_conflict(store):
    store.purchase("k1", "Fox", 2, term=1, attempt=0)
    with pytest.raises(KeyConflict):
        store.purchase("k1", "Fox", 3, term=1, attempt=0)
    with pytest.raises(KeyConflict):
        store.purchase("k1", "Tux", 2, term=1, attempt=0)
    assert store.get("Fox").quantity == 98
    assert store.get("Tux").quantity == 100


def test_retry_in_a_higher_term_re_owns_the_purchase(store):
    store.purchase("k1", "Lego", 1, term=1, attempt=0)
    store.purchase("k1", "Lego", 1, term=2, attempt=0)
    assert store.get("Lego").quantity == 99
    # Owned by term 2 now: a new leader in term 2 does not see it as an orphan of term 1.
    assert store.reconcile(2) == (2, [])
    assert store.reconcile(3) == (3, [{"key": "k1", "term": 2, "attempt": 0}])


def test_undo_rules(store, changes):
    store.purchase("k1", "Kite", 5, term=3, attempt=0)
    assert store.undo("unknown", term=9, attempt=0) is False
    assert store.undo("k1", term=2, attempt=0) is False  # a lower term cannot undo it
    assert store.get("Kite").quantity == 95
    assert store.undo("k1", term=3, attempt=0) is True
    assert store.get("Kite").quantity == 100
    assert store.undo("k1", term=3, attempt=0) is False  # already undone
    assert changes[-1] == ("Kite", 3, "undo")
    # An undone key buys again (a retried order).
    result = store.purchase("k1", "Kite", 5, term=4, attempt=0)
    assert result.remaining == 95
    assert store.get("Kite").quantity == 95
    assert_ledger_balanced(store)


def test_settled_purchase_is_never_undone(store):
    store.purchase("k1", "Kite", 5, term=1, attempt=0)
    assert store.settle(["k1"]) == 1
    assert store.undo("k1", term=5, attempt=0) is False
    assert store.get("Kite").quantity == 95


def test_reconcile_raises_the_fence_and_lists_unsettled_orphans(store):
    store.purchase("a", "Tux", 1, term=1, attempt=0)
    store.purchase("b", "Tux", 1, term=1, attempt=0)
    store.purchase("c", "Tux", 1, term=2, attempt=0)
    store.purchase("d", "Tux", 1, term=1, attempt=0)
    store.undo("d", term=1, attempt=0)
    assert store.settle(["a", "d", "never-bought"]) == 1
    fence, pending = store.reconcile(2)
    assert fence == 2
    assert pending == [{"key": "b", "term": 1, "attempt": 0}]
    with pytest.raises(Fenced):
        store.purchase("e", "Tux", 1, term=1, attempt=0)
    # A retry by a deposed leader is fenced too, even for a key it already bought.
    with pytest.raises(Fenced):
        store.purchase("b", "Tux", 1, term=1, attempt=0)
    # The fence never goes down.
    assert store.reconcile(1) == (2, [])
    assert store.fence() == 2
    assert store.purchase("e", "Tux", 1, term=2, attempt=0).remaining == 96


def test_restock_refills_only_empty_toys(store, changes):
    store.purchase("k1", "Frisbee", 100, term=1, attempt=0)
    store.purchase("k2", "Marbles", 99, term=1, attempt=0)
    changed = store.restock(100)
    assert changed == [("Frisbee", 3)]
    assert store.get("Frisbee").quantity == 100
    assert store.get("Marbles").quantity == 1
    assert changes[-1] == ("Frisbee", 3, "restock")
    assert store.restock(100) == []
    ledger = {row.name: row for row in store.ledger()}
    assert ledger["Frisbee"].restocked == 100
    assert ledger["Frisbee"].sold == 100
    assert_ledger_balanced(store)


def test_ledger_conserves_stock_through_everything(store):
    rng = random.Random(7)
    bought: list[str] = []
    for i in range(300):
        action = rng.random()
        if action < 0.7:
            try:
                store.purchase(f"p{i}", rng.choice(["Slinky", "Yo-Yo"]), rng.randint(1, 30), 1, 0)
                bought.append(f"p{i}")
            except OutOfStock:
                pass
        elif action < 0.9 and bought:
            store.undo(rng.choice(bought), term=1, attempt=0)
        else:
            store.restock(100)
    ledger = {row.name: row for row in store.ledger()}
    assert ledger["Slinky"].restocked > 0 and ledger["Slinky"].sold > 100
    assert_ledger_balanced(store)


def test_purchases_survive_close_and_reopen(tmp_path):
    path = tmp_path / "catalog.sqlite3"
    store = CatalogStore(path)
    store.load_if_empty(load_toys())
    store.purchase("k1", "Giraffe", 4, term=1, attempt=0)
    store.reconcile(7)
    store.close()

    reopened = CatalogStore(path)
    try:
        assert reopened.load_if_empty(load_toys()) is False
        assert reopened.get("Giraffe").quantity == 96
        assert reopened.fence() == 7
        assert reopened.purchase("k1", "Giraffe", 4, term=7, attempt=0).remaining == 96
        assert reopened.get("Giraffe").quantity == 96
    finally:
        reopened.close()


def test_list_keeps_file_order(store):
    names = [product.name for product in store.list_products()]
    assert names == [toy.name for toy in load_toys()]
    assert store.count() == len(names)
    assert store.get("Unicorn") is None


def test_generated_catalog_of_ten_thousand_toys_loads(tmp_path):
    path = tmp_path / "big.json"
    assert write_catalog(path, 10_000) == 10_000
    toys = load_toys(path)
    assert len({toy.name for toy in toys}) == 10_000
    assert toys[: len(PRICES)] == load_toys()[: len(PRICES)]
    assert generate_catalog(10_000) == toys  # deterministic
    store = CatalogStore(tmp_path / "big.sqlite3", synchronous="NORMAL")
    try:
        assert store.load_if_empty(toys)
        assert store.count() == 10_000
        last = toys[-1]
        assert store.get(last.name).quantity == 100
        assert store.purchase("k", last.name, 1, term=0, attempt=0).remaining == 99
    finally:
        store.close()


@pytest.mark.parametrize(
    "content",
    [
        "not json",
        "{}",
        "[]",
        '[{"name": "A", "price": 1}]',
        '[{"name": "", "price": 1, "quantity": 1}]',
        '[{"name": "A", "price": "1", "quantity": 1}]',
        '[{"name": "A", "price": 0, "quantity": 1}]',
        '[{"name": "A", "price": 1, "quantity": -1}]',
        '[{"name": "A", "price": 1, "quantity": true}]',
        '[{"name": "A", "price": 1, "quantity": 1}, {"name": "A", "price": 2, "quantity": 1}]',
    ],
)
def test_bad_catalog_files_are_refused(tmp_path, content):
    path = tmp_path / "bad.json"
    path.write_text(content)
    with pytest.raises(ValueError):
        load_toys(path)


def test_toy_names_over_the_limit_are_refused(tmp_path):
    path = tmp_path / "long.json"
    path.write_text('[{"name": "' + "x" * 65 + '", "price": 1, "quantity": 1}]')
    with pytest.raises(ValueError):
        load_toys(path)
    assert load_toys(path, max_name_length=65) == [Toy("x" * 65, 1.0, 1)]


# Attempts: a late purchase or a late undo never moves stock it does not own.


def test_a_purchase_landing_after_its_undo_is_refused(store):
    assert store.undo("k1", term=2, attempt=5) is False  # nothing landed yet
    with pytest.raises(AttemptAbandoned):
        store.purchase("k1", "Tux", 1, term=2, attempt=5)
    with pytest.raises(AttemptAbandoned):
        store.purchase("k1", "Tux", 1, term=1, attempt=9)
    assert store.purchase("k1", "Tux", 1, term=2, attempt=6).remaining == 99  # a retry buys
    assert_ledger_balanced(store)


def test_an_undo_leaves_a_later_attempt_alone(store):
    store.purchase("k1", "Tux", 2, term=2, attempt=1)
    store.purchase("k1", "Tux", 2, term=2, attempt=3)  # a retry takes the purchase over
    assert store.undo("k1", term=2, attempt=1) is False
    assert store.get("Tux").quantity == 98
    with pytest.raises(AttemptAbandoned):  # the first attempt's buy, resent late
        store.purchase("k1", "Tux", 2, term=2, attempt=1)
    assert store.undo("k1", term=2, attempt=3) is True
    assert store.get("Tux").quantity == 100
    [tux] = [row for row in store.ledger() if row.name == "Tux"]
    assert (tux.held, tux.settled, tux.undone, tux.held_keys) == (0, 0, 2, ())


def test_ledger_splits_held_from_settled(store):
    store.purchase("a", "Fox", 1, term=1, attempt=0)
    store.purchase("b", "Fox", 2, term=1, attempt=0)
    store.settle(["b"])
    [fox] = [row for row in store.ledger() if row.name == "Fox"]
    assert (fox.held, fox.settled, fox.sold, fox.held_keys) == (1, 2, 3, ("a",))
    assert fox.balanced
