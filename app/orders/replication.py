"""The order log's replication protocol as pure logic: messages in, state and messages out.

No sockets, threads or clocks here (etcd's raft package is the model): the node in ``node.py``
carries messages over HTTP and serialises calls with a lock; the tests in
``tests/unit/test_replication.py`` drive several replicas over a simulated network that loses,
duplicates and reorders messages and crashes replicas.

The protocol is Raft's log replication with one change, made because entry *i* must be order
number *i* (no room for Raft's no-op entry that a new leader commits to settle older ones):

* Elections are started by the front-end on the replica it wants; a replica grants one vote per
  term, only for a term above any it has seen, and answers with a summary of its log and the
  entries the candidate may lack. The candidate adopts the most up-to-date log among the
  majority that voted for it.
* "Most up-to-date" compares ``(log_term, last_index)``, where ``log_term`` is the term of the
  leader whose whole log this replica is known to hold a prefix of (Viewstamped Replication's
  "view of the last normal log"). A replica's ``log_term`` becomes T only when leader T has
  sent it everything up to the leader's end; the leader counts a follower towards commit only
  from then on. Any two replicas with the same ``log_term`` therefore hold prefixes of one log,
  and a committed entry is held by every replica with the highest ``log_term`` that is long
  enough, so the winner of any later election holds it.
* A leader never loses a committed entry and never commits with a stale term: every message
  carries the term, and a replica that saw a higher term refuses the old leader.

Two rules keep those promises when disks fail (docs/design.md, "Lost and failing disks"):

* A replica whose directory was blank at start is not a *voter*: it grants no vote and starts
  no election until ``membership.py`` has decided it may (a brand-new cluster, or a learner that
  has synced with a leader and knows the terms its lost disk may have voted in). It still takes
  appends, and counts towards commit once it holds the leader's whole log, like any follower.
* A write that fails (disk full, read-only, I/O error, failed fsync) leaves memory as it was,
  makes a leader step aside at once and the replica refuse everything that writes until
  ``reload`` finds the disk working again. Nothing at or below the commit index is ever
  truncated: ``_save`` refuses such a write outright.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import Protocol

from app.orders.elections import PreVoteReply, PreVoteRequest
from app.orders.membership import Status

NO_INDEX = -1  # the index "before" the first entry; the log starts at index 0
# Terms grow by one an election. A message whose term leaps further above ours is refused
# whole: one absurd term (2**53 - 1 from a buggy peer) would otherwise be adopted by everyone
# and leave no term for the next election, stopping the cluster for good.
MAX_TERM_LEAP = 1_000_000


class Role(StrEnum):
    FOLLOWER = "follower"
    CANDIDATE = "candidate"
    LEADER = "leader"


@dataclass(frozen=True)
class Entry:
    index: int
    term: int
    name: str
    quantity: int
    key: str
    created: int = 0  # unix ms on the leader that appended it (0: unknown); see keys.py


@dataclass(frozen=True)
class Meta:
    current_term: int = 0
    voted_for: int | None = None
    log_term: int = 0
    commit_index: int = NO_INDEX
    cluster_id: str = ""  # set by the cluster's first leader; "" until this replica synced
    incarnation: str = ""  # made when this replica's directory was created
    voter: bool = True  # False for a directory that was blank at start, until promoted
    vote_floor: int = 0  # never vote in a term at or below this (a lost disk's votes)


@dataclass
class Write:
    """One atomic change to a replica's disk: new meta, a truncation, appended entries."""

    meta: Meta
    truncate_after: int | None = None  # drop every entry with a larger index
    entries: list[Entry] = field(default_factory=list)
    applied_from: int | None = None  # entries [applied_from, meta.commit_index] became orders


class StorageError(Exception):
    """The disk refused a write (full, read-only, I/O error, failed fsync): nothing changed."""


class SafetyViolation(RuntimeError):
    """A write that would break a protocol invariant; refused before it reaches the disk."""


class Storage(Protocol):
    def load(self) -> tuple[Meta, list[Entry]]: ...

    def write(self, write: Write) -> None:
        """Apply ``write`` atomically and durably, or raise StorageError having changed nothing."""


# Messages ------------------------------------------------------------------------------


@dataclass(frozen=True)
class VoteRequest:
    term: int
    candidate_id: int
    commit_index: int


@dataclass(frozen=True)
class VoteReply:
    term: int
    granted: bool
    log_term: int = 0
    last_index: int = NO_INDEX
    entries: tuple[Entry, ...] = ()  # the voter's entries after the candidate's commit index
    cluster_id: str = ""


@dataclass(frozen=True)
class AppendRequest:
    term: int
    leader_id: int
    prev_index: int
    prev_term: int
    entries: tuple[Entry, ...]
    commit_index: int
    to_end: bool  # the entries reach the leader's last index
    cluster_id: str = ""
    round: int = 0  # the leader's count of messages sent this term, echoed by the reply


@dataclass(frozen=True)
class AppendReply:
    term: int
    success: bool
    last_index: int  # on success the matched index; on failure where the leader should back up to
    synced: bool = False  # the follower now holds a prefix of this leader's log
    incarnation: str = ""  # a new one means the follower lost its disk: start it over
    foreign: bool = False  # the follower belongs to another cluster and refuses this one
    round: int = 0  # the request's round


class TermTooLow(Exception):
    def __init__(self, current_term: int) -> None:
        super().__init__(f"term must be above {current_term}")
        self.current_term = current_term


class ImplausibleTerm(ValueError):
    def __init__(self, term: int, current_term: int) -> None:
        super().__init__(
            f"term {term} leaps more than {MAX_TERM_LEAP} above this replica's {current_term}"
        )


class NotVoter(Exception):
    """A learner (its disk was blank) or a replica whose disk fails cannot stand for election."""


# The replica ---------------------------------------------------------------------------


@dataclass
class Progress:
    """The leader's view of one follower."""

    next_index: int
    match_index: int = NO_INDEX
    synced: bool = False  # holds a prefix of this leader's log (counts towards commit)
    sent_index: int = NO_INDEX  # highest index ever sent: the follower may hold up to here
    sent_before: int = NO_INDEX  # sent_index before the message in flight (one at a time)
    reachable: bool = True
    incarnation: str | None = None  # the follower's, as of its first reply this term
    acked_round: int = 0  # the newest round it accepted this leader's term in
    heard_at: float = float("-inf")  # when its latest reply of this term came


class Replica:
    def __init__(self, replica_id: int, peer_ids: list[int], quorum: int, storage: Storage):
        self.id = replica_id
        self.peer_ids = sorted(peer_ids)
        self.quorum = quorum
        self.storage = storage
        self.meta, entries = storage.load()
        self.log: list[Entry] = list(entries)
        self.by_key = {entry.key: entry.index for entry in self.log}
        self.role = Role.FOLLOWER
        self.leader_id: int | None = None
        self.progress: dict[int, Progress] = {}
        self.term_start = NO_INDEX  # last index inherited when this replica became leader
        self.disk_failed = False  # a write failed; nothing that writes is done until reload
        self.learned_floor: int | None = None  # a learner's vote floor, once membership knows it
        self.rounds = 0  # messages sent as leader this term (read-index rounds)
        self.wanted_round = 0  # a read waits for a quorum to accept this round
        self.led_since = float("-inf")

    def reload(self) -> None:
        """Start over from what the disk holds (after it failed and works again)."""
        self.meta, entries = self.storage.load()
        self.log = list(entries)
        self.by_key = {entry.key: entry.index for entry in self.log}
        self.role = Role.FOLLOWER
        self.leader_id = None
        self.progress = {}
        self.disk_failed = False

    # Read-only views -----------------------------------------------------------------

    @property
    def term(self) -> int:
        return self.meta.current_term

    @property
    def commit_index(self) -> int:
        return self.meta.commit_index

    @property
    def last_index(self) -> int:
        return len(self.log) - 1

    def term_at(self, index: int) -> int:
        return self.log[index].term if 0 <= index < len(self.log) else 0

    @property
    def ready(self) -> bool:
        """A leader serves once a quorum holds its log and everything inherited is committed."""
        if self.role != Role.LEADER:
            return False
        synced = 1 + sum(p.synced for p in self.progress.values())
        return synced >= self.quorum and self.commit_index >= self.term_start

    def status(self) -> Status:
        m = self.meta
        return Status(
            self.id, m.incarnation, m.cluster_id, m.current_term, m.vote_floor, m.log_term,
            self.last_index, m.commit_index, m.voter,
        )  # fmt: skip

    @property
    def has_history(self) -> bool:
        """Holds orders, or has synced with a leader: the cluster has formed."""
        return self.meta.log_term > 0 or self.last_index >= 0

    @property
    def voter(self) -> bool:
        return self.meta.voter

    @property
    def can_lead(self) -> bool:
        return self.meta.voter and not self.disk_failed

    def has_quorum_reachable(self) -> bool:
        return 1 + sum(p.reachable for p in self.progress.values()) >= self.quorum

    def entry_for_key(self, key: str) -> Entry | None:
        index = self.by_key.get(key)
        return None if index is None else self.log[index]

    def committed(self, index: int) -> Entry | None:
        return self.log[index] if 0 <= index <= self.commit_index else None

    def committed_after(self, index: int, limit: int) -> list[Entry]:
        start = max(index + 1, 0)
        return self.log[start : min(self.commit_index + 1, start + limit)]

    # Persistence -----------------------------------------------------------------------

    def _plausible(self, term: int) -> bool:
        return term <= self.term + MAX_TERM_LEAP

    def _require_plausible(self, term: int) -> None:
        if not self._plausible(term):
            raise ImplausibleTerm(term, self.term)

    def _require_disk(self) -> None:
        if self.disk_failed:
            raise StorageError("the disk failed earlier and has not been reloaded")

    def _save(self, meta: Meta, truncate_after: int | None = None, entries=()) -> None:
        """Persist first, then change memory: a crash in between leaves the old state, and so
        does a failed write, after which this replica steps aside (see ``disk_failed``)."""
        self._require_disk()
        if truncate_after is not None and truncate_after < self.meta.commit_index:
            raise SafetyViolation(
                f"truncating after {truncate_after} would drop committed entries"
                f" (commit index {self.meta.commit_index})"
            )
        if meta.commit_index < self.meta.commit_index:
            raise SafetyViolation(
                f"commit index {self.meta.commit_index} cannot go back to {meta.commit_index}"
            )
        applied_from = None
        if meta.commit_index > self.meta.commit_index:
            applied_from = self.meta.commit_index + 1
        try:
            self.storage.write(Write(meta, truncate_after, list(entries), applied_from))
        except StorageError:
            self.disk_failed = True
            self.role = Role.FOLLOWER
            self.progress = {}
            raise
        self.meta = meta
        if truncate_after is not None and truncate_after < self.last_index:
            for entry in self.log[truncate_after + 1 :]:
                self.by_key.pop(entry.key, None)
            del self.log[truncate_after + 1 :]
        for entry in entries:
            self.log.append(entry)
            self.by_key[entry.key] = entry.index

    def _become_follower(self, term: int, leader_id: int | None, voted_for: int | None = None):
        """Follow at ``term`` (at least ours): a newer leader or candidate exists."""
        if term > self.term or voted_for is not None:
            self._save(replace(self.meta, current_term=term, voted_for=voted_for))
        self.role = Role.FOLLOWER
        self.leader_id = leader_id
        self.progress = {}

    def _merge(self, entries) -> tuple[int | None, list[Entry]]:
        """What to truncate and append so our log holds ``entries`` (consecutive) at their
        indices: matching entries are kept, the first conflict drops our suffix from there."""
        truncate_after: int | None = None
        new_entries: list[Entry] = []
        for entry in entries:
            if new_entries or entry.index > self.last_index:
                new_entries.append(entry)
            elif self.term_at(entry.index) != entry.term:
                truncate_after = entry.index - 1
                new_entries.append(entry)
        return truncate_after, new_entries

    # Elections -------------------------------------------------------------------------

    def start_election(self, term: int) -> VoteRequest:
        if not self.can_lead:
            raise NotVoter()
        self._require_plausible(term)
        if term <= max(self.term, self.meta.vote_floor):
            raise TermTooLow(max(self.term, self.meta.vote_floor))
        self._save(replace(self.meta, current_term=term, voted_for=self.id))
        self.role = Role.CANDIDATE
        self.leader_id = None
        self.progress = {}
        return VoteRequest(term, self.id, self.commit_index)

    def handle_pre_vote(self, request: PreVoteRequest, leader_silent: bool) -> PreVoteReply:
        """Would this replica vote for the candidate in ``request.term``? Changes nothing.
        ``leader_silent``: no leader heard for an election timeout (elections.py, rule 2)."""
        granted = (
            self.voter
            and not self.disk_failed
            and self.role != Role.LEADER
            and leader_silent
            and self._plausible(request.term)
            and request.term > max(self.term, self.meta.vote_floor)
        )
        return PreVoteReply(self.term, granted=granted, can_lead=self.can_lead)

    def handle_vote(self, request: VoteRequest) -> VoteReply:
        self._require_disk()
        self._require_plausible(request.term)
        if not self.voter or request.term <= max(self.term, self.meta.vote_floor):
            return VoteReply(self.term, granted=False)
        self._become_follower(request.term, leader_id=None, voted_for=request.candidate_id)
        return VoteReply(
            self.term,
            granted=True,
            log_term=self.meta.log_term,
            last_index=self.last_index,
            entries=tuple(self.log[request.commit_index + 1 :]),
            cluster_id=self.meta.cluster_id,
        )

    def finish_election(self, term: int, replies: dict[int, VoteReply], now: float) -> bool:
        """Count the votes; on a quorum adopt the best log and lead. True if now leader."""
        if self.role != Role.CANDIDATE or self.term != term:
            return False
        replies = {pid: r for pid, r in replies.items() if self._plausible(r.term)}
        higher = max((r.term for r in replies.values()), default=0)
        if higher > term:
            self._become_follower(higher, leader_id=None)
            return False
        voters = {
            pid: r
            for pid, r in replies.items()
            if r.granted and r.term == term and not self._foreign(r.cluster_id)
        }
        if 1 + len(voters) < self.quorum:
            return False
        best = max(voters.values(), key=lambda r: (r.log_term, r.last_index), default=None)
        adopt = best is not None and (best.log_term, best.last_index) > (
            self.meta.log_term,
            self.last_index,
        )
        # The cluster's identity follows the log: the adopted one's, else ours, else made now
        # by the cluster's first leader.
        cluster_id = (adopt and best.cluster_id) or self.meta.cluster_id
        new_meta = replace(self.meta, log_term=term, cluster_id=cluster_id or self._new_id(term))
        if adopt:
            # Our committed prefix is in every log; the rest comes from the best voter, whose
            # entries start right after the commit index we sent it.
            truncate_after, new_entries = self._merge(best.entries)
            if truncate_after is None and not new_entries and self.last_index > best.last_index:
                truncate_after = best.last_index
            self._save(new_meta, truncate_after, new_entries)
        else:
            self._save(new_meta)
        self.role = Role.LEADER
        self.leader_id = self.id
        self.term_start = self.last_index
        self.led_since = now
        self.rounds = self.wanted_round = 0
        self.progress = {
            pid: Progress(next_index=self.last_index + 1, sent_index=self.last_index)
            for pid in self.peer_ids
        }
        self._advance_commit()
        return True

    def _new_id(self, term: int) -> str:
        return f"{self.meta.incarnation or f'replica-{self.id}'}.{term}"

    def _foreign(self, cluster_id: str) -> bool:
        """Another cluster's replica: we hold committed orders of ours, and it of its own (an
        identity only becomes binding with the first committed order)."""
        mine = self.meta.cluster_id
        return bool(mine and cluster_id and cluster_id != mine and self.commit_index >= 0)

    def handle_leader_notice(self, leader_id: int, term: int) -> None:
        self._require_plausible(term)
        if term > self.term:
            self._become_follower(term, leader_id)
        elif term == self.term and self.role != Role.LEADER:
            self.leader_id = leader_id

    # Replication: leader side --------------------------------------------------------

    def append_local(self, name: str, quantity: int, key: str, created: int = 0) -> Entry:
        """Append a new order at the leader (the caller checked role and key); ``created``
        is the leader's wall clock in unix ms."""
        entry = Entry(self.last_index + 1, self.term, name, quantity, key, created)
        self._save(self.meta, entries=[entry])
        self._advance_commit()
        return entry

    def make_append(self, peer_id: int, batch: int) -> AppendRequest:
        progress = self.progress[peer_id]
        prev = progress.next_index - 1
        entries = tuple(self.log[prev + 1 : prev + 1 + batch])
        last_sent = prev + len(entries)
        progress.sent_before = progress.sent_index
        progress.sent_index = max(progress.sent_index, last_sent)
        self.rounds += 1
        return AppendRequest(
            round=self.rounds,
            term=self.term,
            leader_id=self.id,
            prev_index=prev,
            prev_term=self.term_at(prev),
            entries=entries,
            commit_index=self.commit_index,
            to_end=last_sent == self.last_index,
            cluster_id=self.meta.cluster_id,
        )

    def has_pending(self, peer_id: int) -> bool:
        progress = self.progress.get(peer_id)
        return progress is not None and (
            progress.next_index <= self.last_index
            or not progress.synced
            or progress.acked_round < self.wanted_round
        )

    # Linearizable reads (read-index) and check-quorum -----------------------------------

    def read_round(self) -> int:
        """A read arrived: the round a quorum must accept before it may be answered. Every
        message sent from now on carries this round or a later one, so a quorum accepting it
        shows that this replica still led after the read arrived (no newer leader had
        committed anything the read could miss)."""
        self.wanted_round = self.rounds + 1
        return self.wanted_round

    def confirmed(self, round_: int) -> bool:
        """A quorum (this leader included) accepted ``round_`` or a later one, this term."""
        if self.role != Role.LEADER:
            return False
        acked = sorted((p.acked_round for p in self.progress.values()), reverse=True)
        return self.quorum == 1 or (
            len(acked) >= self.quorum - 1 and acked[self.quorum - 2] >= round_
        )

    def check_quorum(self, now: float, timeout: float) -> bool:
        """A leader that has not heard from a quorum (itself included) within ``timeout``
        steps down: it may be cut off, and must stop acting as leader before a new one is
        elected on the other side. True if it stepped down."""
        if self.role != Role.LEADER or now - self.led_since < timeout:
            return False
        heard = 1 + sum(now - p.heard_at <= timeout for p in self.progress.values())
        if heard >= self.quorum:
            return False
        self.role = Role.FOLLOWER
        self.leader_id = None
        self.progress = {}
        return True

    def on_append_reply(
        self, peer_id: int, request: AppendRequest, reply: AppendReply, now: float
    ) -> None:
        if not self._plausible(reply.term):
            return  # as if it never came
        if reply.term > self.term:
            self._become_follower(reply.term, leader_id=None)
            return
        progress = self.progress.get(peer_id)
        if self.role != Role.LEADER or request.term != self.term or progress is None:
            return  # a reply to an earlier term's message
        progress.reachable = True
        if reply.incarnation != progress.incarnation:
            if progress.incarnation is not None:
                # The follower's directory was replaced: whatever it held is gone. (It may hold
                # what was sent since, so sent_index stays.)
                progress.next_index = self.last_index + 1
                progress.match_index = NO_INDEX
                progress.synced = False
            progress.incarnation = reply.incarnation
        if reply.foreign:
            return  # never counted, never sent entries it would refuse anyway
        progress.heard_at = now
        progress.acked_round = max(progress.acked_round, reply.round)
        if reply.success:
            progress.match_index = max(progress.match_index, reply.last_index)
            progress.next_index = max(progress.next_index, progress.match_index + 1)
            progress.synced = progress.synced or reply.synced
            self._advance_commit()
        else:
            # Back up at least one entry, straight to the follower's end when it is shorter.
            progress.next_index = max(
                progress.match_index + 1, min(reply.last_index + 1, request.prev_index)
            )

    def on_unreachable(self, peer_id: int, request: AppendRequest, delivered: bool) -> None:
        """The message got no reply. If it certainly never arrived (connection refused), the
        follower cannot hold its entries, so they stay abandonable."""
        progress = self.progress.get(peer_id)
        if progress is None or request.term != self.term:
            return
        progress.reachable = False
        if not delivered:
            progress.sent_index = progress.sent_before

    def _advance_commit(self) -> None:
        if self.role != Role.LEADER:
            return
        matches = sorted(
            [self.last_index] + [p.match_index for p in self.progress.values() if p.synced],
            reverse=True,
        )
        if len(matches) < self.quorum:
            return
        candidate = matches[self.quorum - 1]
        if candidate > self.commit_index:
            self._save(replace(self.meta, commit_index=candidate))

    def abandon(self, index: int) -> list[Entry]:
        """Drop uncommitted entries from ``index`` on if no follower can hold them.

        Used when an order cannot commit in time: if no message carrying ``index`` ever left
        this leader (followers were unreachable), the entries exist only here, so removing
        them means they can never commit and their purchases may be undone. Otherwise nothing
        changes and the outcome stays open (a later leader decides it).
        """
        if self.role != Role.LEADER or index <= max(self.commit_index, self.term_start):
            return []
        if index > self.last_index:
            return []
        if any(p.sent_index >= index for p in self.progress.values()):
            return []
        removed = self.log[index:]
        self._save(self.meta, truncate_after=index - 1)
        for progress in self.progress.values():
            progress.next_index = min(progress.next_index, index)
        return removed

    # Replication: follower side ------------------------------------------------------

    def _reply(self, success: bool, last_index: int, **kwargs) -> AppendReply:
        return AppendReply(
            self.term, success, last_index, incarnation=self.meta.incarnation, **kwargs
        )

    def handle_append(self, request: AppendRequest) -> AppendReply:
        self._require_disk()  # a replica whose disk fails acknowledges nothing
        self._require_plausible(request.term)
        if request.term < self.term:
            return self._reply(False, self.last_index)
        if self._foreign(request.cluster_id):
            return self._reply(False, self.last_index, foreign=True)
        if request.term > self.term or self.role != Role.FOLLOWER:
            self._become_follower(request.term, request.leader_id)
        self.leader_id = request.leader_id
        prev = request.prev_index
        if prev > self.last_index or (prev >= 0 and self.term_at(prev) != request.prev_term):
            # A mismatch still accepts this leader's term: it counts for the read round.
            return self._reply(False, min(self.last_index, prev - 1), round=request.round)

        truncate_after, new_entries = self._merge(request.entries)
        matched = prev + len(request.entries)
        meta = self.meta
        if request.to_end and meta.log_term < request.term:
            # First full sync with this leader. Past its end (as of sending) we may hold
            # entries of its own term from later messages that arrived first: those are in
            # its log. Anything of an older term there is not, and goes.
            if truncate_after is None:
                end = matched
                while end < self.last_index and self.log[end + 1].term == request.term:
                    end += 1
                if end < self.last_index:
                    truncate_after = end
            meta = replace(meta, log_term=request.term)
        commit = max(meta.commit_index, min(request.commit_index, matched))
        # Not foreign (checked above), so the leader's identity is ours from now on.
        meta = replace(meta, commit_index=commit, cluster_id=request.cluster_id or meta.cluster_id)
        meta = self._promoted(meta)
        if meta != self.meta or truncate_after is not None or new_entries:
            self._save(meta, truncate_after, new_entries)
        return self._reply(
            True, matched, synced=self.meta.log_term == self.term, round=request.round
        )

    # Membership: when a learner may vote ---------------------------------------------

    def _promoted(self, meta: Meta) -> Meta:
        """A learner becomes a voter once it has synced with a leader (it holds the cluster's
        committed history) and knows the floor under which its lost disk may have voted."""
        if meta.voter or meta.log_term == 0 or self.learned_floor is None:
            return meta
        return replace(meta, voter=True, vote_floor=max(meta.vote_floor, self.learned_floor))

    def learn_floor(self, floor: int) -> bool:
        """Membership found the vote floor of this learner; promotes it now if it has already
        synced. True if it is a voter now."""
        if self.voter:
            return True
        self.learned_floor = floor
        promoted = self._promoted(self.meta)
        if promoted != self.meta:
            self._save(promoted)
        return self.voter

    def bootstrap(self, floor: int) -> None:
        """Become a voter of a brand-new cluster (membership saw no history anywhere)."""
        if not self.voter and not self.has_history:
            self._save(replace(self.meta, voter=True, vote_floor=max(self.meta.vote_floor, floor)))

    def install_committed(self, entries: list[Entry], commit_index: int, cluster_id: str) -> int:
        """Catch-up after a restart: take committed entries another replica holds.

        Only extends our log where it agrees with theirs (committed entries are the same
        everywhere); a conflicting uncommitted tail is left for the leader to repair.
        Returns how many entries were added.
        """
        if self._foreign(cluster_id) or self.disk_failed:
            return 0
        new_entries: list[Entry] = []
        for entry in entries:
            if entry.index > commit_index:
                break
            if entry.index <= self.last_index:
                if self.term_at(entry.index) != entry.term:
                    return 0
                continue
            if entry.index != self.last_index + 1 + len(new_entries):
                return 0
            new_entries.append(entry)
        last = self.last_index + len(new_entries)
        commit = max(self.commit_index, min(commit_index, last))
        if not new_entries and commit == self.commit_index:
            return 0
        cluster_id = cluster_id or self.meta.cluster_id
        meta = replace(self.meta, commit_index=commit, cluster_id=cluster_id)
        self._save(meta, entries=new_entries)
        return len(new_entries)
