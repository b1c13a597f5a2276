"""Who may vote: telling a brand-new cluster from a replica that lost its disk.

Pure logic, like ``replication.py``: the node asks every peer for its ``Status`` and feeds the
answers to ``decide``; the decision says whether this replica (whose directory was blank when it
started, so it is not a voter yet) may vote.

The rule (docs/design.md, "Lost and failing disks"):

* **A brand-new cluster** forms only when *every* configured replica has answered and none of
  them has history (no orders, never synced with a leader). Then nothing can be lost: no leader
  ever served. Every blank replica becomes a voter on its own.
* **Otherwise a blank directory is a lost one**: some peer has history, so this replica is a
  learner. It takes appends, and once it has synced with a leader (it holds the committed
  history) it is promoted, but only after it knows a *vote floor*: the highest term reported by
  enough voters that any election its lost disk voted in is at or below it (``floor_quorum``).
  It never votes at or below the floor, so it cannot vote twice in one term.

Why the floor needs ``n - q + 1`` voters besides this one: an election that won with this
replica's lost vote had ``q`` votes, so ``q - 1`` other voters have persisted its term; any
``n - q + 1`` of the other ``n - 1`` replicas include one of them. Learners do not count: a
blank directory remembers no term.

Losing a majority of disks: the survivors still have history, so every blank replica is a
learner, fewer than a majority can vote, and no leader is elected: the store refuses orders
rather than run on a truncated history. (If *every* disk is lost, nothing is left to tell.)
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class Status:
    """What a replica says of itself (``GET /raft/status``)."""

    replica_id: int
    incarnation: str
    cluster_id: str
    term: int
    vote_floor: int
    log_term: int
    last_index: int
    commit_index: int
    voter: bool

    @property
    def has_history(self) -> bool:
        return self.log_term > 0 or self.last_index >= 0


class Plan(StrEnum):
    WAIT = "wait"  # not enough answers to tell yet
    BOOTSTRAP = "bootstrap"  # a brand-new cluster: vote now
    LEARN = "learn"  # the cluster has history: sync first, vote once promoted


@dataclass(frozen=True)
class Decision:
    plan: Plan
    floor: int | None = None  # the vote floor, once enough voters answered


def floor_quorum(replica_count: int, quorum: int) -> int:
    """How many other voters must report their terms before a learner knows its floor."""
    return min(replica_count - 1, replica_count - quorum + 1)


def decide(own: Status, peer_count: int, quorum: int, answers: dict[int, Status]) -> Decision:
    """Whether a replica that is not a voter may vote, from the answers of its peers."""
    terms = [max(a.term, a.vote_floor) for a in answers.values()]
    if not own.has_history and not any(a.has_history for a in answers.values()):
        if len(answers) < peer_count:
            return Decision(Plan.WAIT)
        return Decision(Plan.BOOTSTRAP, max(terms, default=0))
    voters = [max(a.term, a.vote_floor) for a in answers.values() if a.voter]
    if len(voters) < floor_quorum(peer_count + 1, quorum):
        return Decision(Plan.LEARN)
    return Decision(Plan.LEARN, max(voters, default=0))
