"""Who stands for election, and when: the replicas choose their leader themselves, as pure
logic (time comes in as ``now``; ``node.py`` does the I/O, ``tests/unit/test_elections.py``
drives it over a simulated network). docs/design.md, "Elections", says why.

The contract stays the original design's: when the leader stops answering, the highest-id
replica that answers and wins a majority's votes leads, and a healthy leader is never
replaced. It is kept by four rules:

1. **Silence.** A replica that may lead (a voter with a working disk) and has heard no leader
   for ``timeout`` (ELECTION_TIMEOUT) runs a *pre-vote*: it asks its peers whether they would
   vote for it in the next term. Nothing changes on anyone's disk, its own term included.
2. **Stickiness.** A peer grants a pre-vote only if it, too, has heard no leader for
   ``timeout``, is not the leader itself, and the term offered is above its own
   (``Replica.handle_pre_vote``). A replica back from a partition therefore cannot raise the
   cluster's term and depose a healthy leader: its pre-vote fails and it waits.
3. **Priority.** With a quorum of pre-votes the replica stands, unless a peer that granted
   one (so it is leaderless too) has a higher id and may lead: that peer is standing as well,
   so this one defers, once, for ``timeout``. If still no leader after that, it stands all the
   same, so a higher replica that cannot win (cut from the rest) never stops the cluster.
4. **Patience.** After a lost election the next try waits ``timeout``; after a pre-vote
   without a quorum, a quarter of it (the peers' timers run a little apart, so one that was
   not silent yet soon is; a pre-vote changes nothing, so trying often costs nothing).

So after a leader goes silent the first election starts ``timeout`` later (one per cluster,
from the highest replica that can win), not one per front-end worker after a request timeout.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


@dataclass(frozen=True)
class PreVoteRequest:
    term: int  # the term the candidate would stand in
    candidate_id: int


@dataclass(frozen=True)
class PreVoteReply:
    term: int
    granted: bool
    can_lead: bool  # the peer may stand itself (a voter with a working disk)


class Verdict(StrEnum):
    WAIT = "wait"  # too few pre-votes: a leader is alive somewhere, or no majority answers
    DEFER = "defer"  # a higher replica is leaderless too and standing
    STAND = "stand"


@dataclass
class Candidacy:
    """One replica's election timer and the outcome of its pre-votes."""

    replica_id: int
    quorum: int
    timeout: float
    next_try: float = float("-inf")
    deferred: bool = False  # deferred once during this silence

    def due(self, now: float, silent_for: float, leading: bool) -> bool:
        """Time for a pre-vote: not leading, no leader heard for ``timeout``, not backing off."""
        if leading or silent_for < self.timeout:
            self.deferred = False  # a leader was heard (or we lead): a new silence starts over
            return False
        return now >= self.next_try

    def decide(self, replies: dict[int, PreVoteReply], now: float) -> Verdict:
        granted = [pid for pid, reply in replies.items() if reply.granted]
        if 1 + len(granted) < self.quorum:
            self.next_try = now + self.timeout / 4
            return Verdict.WAIT
        higher = any(pid > self.replica_id and replies[pid].can_lead for pid in granted)
        if higher and not self.deferred:
            self.deferred = True
            self.next_try = now + self.timeout
            return Verdict.DEFER
        return Verdict.STAND

    def lost(self, now: float) -> None:
        """The election did not make this replica leader: wait before trying again."""
        self.next_try = now + self.timeout
