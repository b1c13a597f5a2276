"""The front-end's choice of leader (app/frontend/leader_choice.py): health replies in."""

from __future__ import annotations

from app.frontend.leader_choice import choose


def health(role: str, term: int, ready: bool = True) -> dict:
    return {"role": role, "term": term, "ready": ready}


def test_the_replica_that_leads_and_is_ready_is_chosen():
    assert choose({3: health("follower", 4), 2: health("leader", 4), 1: None}) == (2, 4)


def test_no_leader_while_the_replicas_elect_one():
    assert choose({3: health("candidate", 5), 2: health("follower", 4), 1: None}) is None
    assert choose({3: None, 2: None, 1: None}) is None


def test_a_leader_still_getting_its_log_onto_a_majority_is_not_used_yet():
    assert choose({3: health("leader", 5, ready=False), 2: health("follower", 5)}) is None


def test_an_old_leader_behind_a_newer_term_is_not_used():
    """Cut off from its peers it may not have noticed yet; orders sent to it cannot commit."""
    assert (
        choose({3: health("leader", 4), 2: health("follower", 5), 1: health("follower", 5)}) is None
    )
    assert choose({3: health("leader", 4), 2: health("leader", 5)}) == (2, 5)


def test_garbage_terms_count_as_zero():
    assert choose({1: {"role": "leader", "term": True, "ready": True}}) == (1, 0)
    assert (
        choose({1: {"role": "leader", "term": "7", "ready": True}, 2: health("follower", 1)})
        is None
    )
