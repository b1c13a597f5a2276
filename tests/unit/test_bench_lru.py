"""The exact LRU the Zipf benchmark compares Redis with (app/bench/lru.py)."""

from __future__ import annotations

import random

from app.bench.lru import ideal_lru_hits


def test_hand_counted_sequences():
    assert ideal_lru_hits("abab", 2) == 2
    assert ideal_lru_hits("abcabc", 2) == 0  # each key evicted just before it returns
    assert ideal_lru_hits("abacab", 2) == 2  # a hits twice; b was evicted by c
    assert ideal_lru_hits("aaaa", 1) == 3


def test_no_room_no_hits_and_room_for_all_leaves_only_first_misses():
    picks = random.Random(1).choices("abcdefghij", k=500)
    assert ideal_lru_hits(picks, 0) == 0
    assert ideal_lru_hits(picks, 10) == ideal_lru_hits(picks, 1000) == 500 - len(set(picks))


def test_more_room_never_means_fewer_hits():
    picks = random.Random(2).choices(range(200), weights=[1 / (r + 1) for r in range(200)], k=3000)
    names = [str(p) for p in picks]
    hits = [ideal_lru_hits(names, size) for size in (1, 5, 20, 50, 100, 200)]
    assert hits == sorted(hits) and hits[0] < hits[-1]
