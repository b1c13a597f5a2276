"""The toys the catalog starts with: the built-in file, or a generated large catalog.

A catalog file is a JSON list of ``{"name": str, "price": number, "quantity": int}``.
"""

from __future__ import annotations

import json
import math
import random
from dataclasses import dataclass
from pathlib import Path

from app.common.config import Settings

DEFAULT_CATALOG = Path(__file__).resolve().parent / "data" / "toys.json"

_ADJECTIVES = (
    "Red",
    "Blue",
    "Green",
    "Golden",
    "Tiny",
    "Giant",
    "Wooden",
    "Magic",
    "Flying",
    "Singing",
    "Spinning",
    "Glowing",
    "Fuzzy",
    "Robot",
    "Rocket",
    "Pocket",
    "Jumbo",
    "Silly",
    "Bouncy",
    "Shiny",
)
_NOUNS = (
    "Bear",
    "Dragon",
    "Train",
    "Truck",
    "Puzzle",
    "Drum",
    "Boat",
    "Castle",
    "Doll",
    "Ball",
    "Top",
    "Robot",
    "Dinosaur",
    "Horse",
    "Plane",
    "Owl",
    "Penguin",
    "Kite",
    "Yo-Yo",
    "Blocks",
)


@dataclass(frozen=True)
class Toy:
    name: str
    price: float
    quantity: int

    def as_dict(self) -> dict[str, object]:
        return {"name": self.name, "price": self.price, "quantity": self.quantity}


def _parse_toy(entry: object, where: str, max_name_length: int) -> Toy:
    if not isinstance(entry, dict) or set(entry) != {"name", "price", "quantity"}:
        raise ValueError(f"{where}: expected an object with name, price and quantity")
    name, price, quantity = entry["name"], entry["price"], entry["quantity"]
    if not isinstance(name, str) or not 0 < len(name) <= max_name_length or not name.isprintable():
        raise ValueError(f"{where}: the name must be 1 to {max_name_length} printable characters")
    if isinstance(price, bool) or not isinstance(price, int | float) or not math.isfinite(price):
        raise ValueError(f"{where}: the price of {name!r} must be a number")
    if price <= 0:
        raise ValueError(f"{where}: the price of {name!r} must be positive")
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
        raise ValueError(f"{where}: the quantity of {name!r} must be a non-negative integer")
    return Toy(name, float(price), quantity)


def load_toys(
    path: str | Path = DEFAULT_CATALOG, max_name_length: int = Settings.max_name_length
) -> list[Toy]:
    """Read and check a catalog file; raises ValueError on anything the store cannot hold."""
    path = Path(path)
    try:
        entries = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ValueError(f"cannot read the catalog file {path}: {exc}") from exc
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: expected a non-empty JSON list of toys")
    toys = [
        _parse_toy(entry, f"{path} entry {i}", max_name_length) for i, entry in enumerate(entries)
    ]
    names = [toy.name for toy in toys]
    if len(set(names)) != len(names):
        raise ValueError(f"{path}: toy names must be unique")
    return toys


def generate_catalog(count: int, seed: int = 0) -> list[Toy]:
    """The built-in toys followed by generated ones, ``count`` toys in all (at least the
    built-in ones). Deterministic for a given seed, so benchmarks are repeatable."""
    toys = load_toys(DEFAULT_CATALOG)
    rng = random.Random(seed)
    # The serial number keeps generated names unique and apart from the built-in ones.
    for serial in range(1, count - len(toys) + 1):
        name = f"{rng.choice(_ADJECTIVES)} {rng.choice(_NOUNS)} {serial}"
        toys.append(Toy(name, round(rng.uniform(1.0, 99.0), 2), 100))
    return toys


def write_catalog(path: str | Path, count: int) -> int:
    """Write a generated catalog of ``count`` toys to ``path``; returns how many were written.
    Load it with ``CATALOG_DATA=<path>``."""
    toys = generate_catalog(count)
    Path(path).write_text(
        json.dumps([toy.as_dict() for toy in toys], indent=0) + "\n", encoding="utf-8"
    )
    return len(toys)
