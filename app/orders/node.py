"""One order replica at run time: the protocol (replication.py) and the purchase saga
(saga.py) behind a lock, its disk (log.py), its peers (peers.py) and the catalog
(purchases.py).

For orders this module only carries out what the saga decides: it runs each order's saga by
executing its commands (a catalog call, an append or abandon under the lock, a wait for the
commit) and feeding back what happened.

Threads: one replicator per peer (sends appends while this replica leads, heartbeats when
idle, so group commit falls out naturally: whatever queued during a round goes in the next),
one catch-up pass at start, a settler that tells the catalog which purchases are final, an
undo sender that drains the saga's outbox with backoff until the catalog answers, and a
caretaker that asks the peers whether this replica may vote (membership.py) while it may not,
and reopens the disk after a failed write until it works again.
No network call is made while holding ``self.lock``; every ``self.storage`` call is made
holding it.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections.abc import Iterator
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import as_completed
from contextlib import contextmanager
from dataclasses import asdict

from app.common.config import ConfigError, Settings
from app.common.errors import ApiError
from app.common.http import ServiceUnavailable
from app.common.logs import log_event
from app.common.pools import ContextPool
from app.orders import keys, metrics, saga
from app.orders.elections import Candidacy, PreVoteReply, PreVoteRequest, Verdict
from app.orders.log import LOG_FILE, SqliteLog
from app.orders.membership import Plan, Status, decide
from app.orders.peers import Peers
from app.orders.purchases import CatalogLink
from app.orders.replication import (
    NO_INDEX,
    Entry,
    ImplausibleTerm,
    NotVoter,
    Replica,
    Role,
    SafetyViolation,
    StorageError,
    TermTooLow,
    VoteReply,
)
from app.orders.saga import Attempt, Order, OrderSaga

log = logging.getLogger(__name__)

CATCH_UP_PAGE = 2000
SETTLE_INTERVAL = 1.0
CARETAKER_INTERVAL = 0.2  # between membership probes, and between tries of a failed disk


class OrderNode:
    def __init__(self, settings: Settings) -> None:
        if settings.replica_id not in settings.replicas:
            raise ConfigError(
                f"REPLICA_ID {settings.replica_id} is not in ORDER_REPLICAS "
                f"({sorted(settings.replicas)})"
            )
        self.settings = settings
        self.id = settings.replica_id
        token = settings.require_internal_token()
        self.peers = Peers(
            {pid: url for pid, url in settings.replicas.items() if pid != self.id},
            settings.http_timeout,
            token,
        )
        self.catalog = CatalogLink(settings.catalog_url, settings.http_timeout, token)
        self.storage = SqliteLog(settings.data_dir / LOG_FILE, settings.sqlite_synchronous)
        self.sagas = saga.SagaBook()
        self.outbox = saga.Outbox(settings.undo_retry_first, settings.undo_retry_max)
        for attempt in self.storage.pending_undos():  # left by an earlier run of this replica
            self.outbox.add(attempt, time.monotonic())
        self.replica = Replica(self.id, self.peers.ids, settings.quorum_size, self.storage)
        self.disk_error = ""  # the last write error, while the disk fails
        self.leader_contact = float("-inf")  # when an append of the current leader last came
        # When the election timer last started over: a leader's append, or a vote granted.
        # Never, at start: a replica that has heard no leader may run a pre-vote at once (if a
        # leader is alive, its peers refuse; a new cluster elects without waiting).
        self.quiet_since = float("-inf")
        self.candidacy = Candidacy(self.id, settings.quorum_size, settings.election_timeout)
        self.lock = threading.Lock()
        # Two conditions on the one lock, so that a new entry wakes only the replicators and a
        # commit wakes only the orders waiting for it (one wake-up per order per round instead
        # of every waiter on every change).
        self.commits = threading.Condition(self.lock)  # commit index, role, term, readiness
        self.appends = threading.Condition(self.lock)  # new entries to send, role, term
        self.undos = threading.Condition(self.lock)  # the outbox has something new
        self.stopping = threading.Event()
        # Votes asked for an election a request started (POST /election) carry its id.
        self.voters = ContextPool(max_workers=max(1, len(self.peers.ids)))
        self.settled_upto = NO_INDEX
        self.threads: list[threading.Thread] = []

    # Life cycle ----------------------------------------------------------------------

    def start(self) -> None:
        log_event(
            log,
            "replica started",
            replica=self.id,
            term=self.replica.term,
            last_index=self.replica.last_index,
            commit_index=self.replica.commit_index,
            quorum=self.settings.quorum_size,
            voter=self.replica.voter,
            incarnation=self.replica.meta.incarnation,
            new_directory=self.storage.created,
            pending_undos=len(self.outbox),
        )
        targets = [
            (self._catch_up, "catch-up"),
            (self._settle_loop, "settler"),
            (self._send_undos, "undo-sender"),
            (self._caretaker, "caretaker"),
        ]
        targets += [
            (lambda p=pid: self._replicate(p), f"replicator-{pid}") for pid in self.peers.ids
        ]
        for target, name in targets:
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self.threads.append(thread)

    def stop(self) -> None:
        self.stopping.set()
        with self.lock:
            self.commits.notify_all()
            self.appends.notify_all()
            self.undos.notify_all()
        for thread in self.threads:
            thread.join(timeout=2)
        self.voters.shutdown(wait=False)
        self.storage.close()

    @contextmanager
    def _locked(self) -> Iterator[Replica]:
        """The replica under the lock; logs role changes and wakes waiters afterwards.

        A failed write (the replica has stepped aside) and a refused unsafe write both become
        a 503 / 409 for the caller, never a 500."""
        with self.lock:
            r = self.replica
            role, term, commit, last, ready = r.role, r.term, r.commit_index, r.last_index, r.ready
            voter = r.voter
            try:
                yield r
            except StorageError as exc:
                if not self.disk_error:
                    log_event(
                        log, "disk failed; stepping aside", level=logging.ERROR,
                        replica=self.id, error=str(exc), was_leader=role == Role.LEADER,
                    )  # fmt: skip
                self.disk_error = str(exc)
                raise ApiError(503, f"Replica {self.id} cannot write to its disk.") from exc
            except SafetyViolation as exc:
                log_event(log, "refused an unsafe write", level=logging.ERROR, error=str(exc))
                raise ApiError(409, f"Refused: {exc}.") from exc
            except ImplausibleTerm as exc:
                log_event(log, "refused an implausible term", level=logging.WARNING, error=str(exc))
                raise ApiError(400, f"Refused: {exc}.") from exc
            finally:
                if r.voter and not voter:
                    log_event(log, "promoted to voter", replica=self.id, term=r.term)
                leadership = (r.role, r.term) != (role, term)
                if leadership or r.last_index > last:
                    self.appends.notify_all()
                # A shorter log means abandoned entries: their waiters must see them gone.
                shorter = r.last_index < last
                if leadership or shorter or (r.commit_index, r.ready) != (commit, ready):
                    self.commits.notify_all()
                if role == Role.LEADER and r.role != Role.LEADER:
                    log_event(log, "stepped down", replica=self.id, term=r.term)

    # Status --------------------------------------------------------------------------

    def health(self) -> dict:
        with self.lock:
            r = self.replica
            return {
                "id": self.id,
                "role": r.role.value,
                "term": r.term,
                "leader_id": r.leader_id,
                "ready": r.ready,
                "commit_index": r.commit_index,
                "last_index": r.last_index,
                "voter": r.voter,
                "disk": "failed" if r.disk_failed else "ok",
                "can_lead": r.can_lead,
                "pending_undos": len(self.outbox),
            }

    def replication_lag(self) -> dict[int, int]:
        """Per follower, the orders of the leader's log it does not hold (all 0 unless this
        replica leads)."""
        with self.lock:
            r = self.replica
            leading = r.role == Role.LEADER
            return {
                pid: (r.last_index - r.progress[pid].match_index)
                if leading and pid in r.progress
                else 0
                for pid in r.peer_ids
            }

    def readiness_problems(self) -> list[str]:
        """Why this replica cannot do its part in a quorum right now (empty: it can)."""
        with self.lock:
            r = self.replica
            if r.disk_failed:
                return ["its disk is failing"]
            if r.role == Role.LEADER:
                problems = [] if r.ready else ["it is still taking over as leader"]
                if not r.has_quorum_reachable():
                    problems.append("too few replicas answer for a quorum")
                return problems
            silent = time.monotonic() - self.leader_contact
            if r.leader_id is None or silent > self.settings.election_timeout:
                return [f"no leader heard from in {self.settings.election_timeout:g} s"]
            if r.meta.log_term != r.term:
                return ["it does not hold the leader's log yet"]
            return []

    def status(self) -> Status:
        with self.lock:
            return self.replica.status()

    def _require_leader(self, replica: Replica) -> None:
        if replica.role != Role.LEADER:
            raise ApiError(421, f"Replica {self.id} is not the leader.")
        if not replica.ready:
            raise ApiError(503, "The leader is still taking over; retry shortly.")

    # Orders --------------------------------------------------------------------------

    def place_order(self, name: str, quantity: int, key: str) -> saga.Done:
        """The committed order: its number, whether it was in the log before this call, and
        the toy's version after its purchase when this call made (or replayed) it at the
        catalog (None when the order was already in the log)."""
        with self._locked() as replica:
            self._require_leader(replica)
            log_key, existing = keys.live_key(
                key, replica.entry_for_key, _now_ms(), int(self.settings.idempotency_key_ttl * 1000)
            )
            order = Order(name, quantity, log_key)
            if existing is None and not replica.has_quorum_reachable():
                raise ApiError(503, "Too few order replicas are reachable to commit an order.")
            if existing is not None:
                _same_order(existing, name, quantity)
            try:
                running = self.sagas.begin(order, replica.term, existing)
            except saga.Busy:
                raise ApiError(503, saga.BUSY) from None
            commands = running.start()
        try:
            return self._run(running, commands)
        finally:
            with self.lock:
                self.sagas.end(running)

    def _run(self, running: OrderSaga, commands: list[saga.Command]) -> saga.Done:
        """Carry out the saga's commands until it ends."""
        while True:
            *undos, step = commands
            for undo in undos:
                self._queue_undo(undo.attempt)
            match step:
                case saga.Done() as done:
                    return done
                case saga.Fail(status, message):
                    raise ApiError(status, message)
                case saga.Buy(order, attempt):
                    event = self.catalog.buy(order, attempt)
                case saga.Append(order, term):
                    event = self._append(order, term)
                case saga.AwaitCommit(index, term):
                    event = self._await_commit(running.order.key, index, term)
                case saga.Abandon(index):
                    event = self._abandon(index, running.term)
                case _:
                    raise ValueError(f"unexpected command {step!r}")
            with self.lock:  # the saga book's attempt numbers are shared
                commands = running.on(event)

    def _append(self, order: Order, term: int) -> saga.Event:
        try:
            with self._locked() as replica:
                if replica.role != Role.LEADER or replica.term != term:
                    return saga.NotLeading()
                entry = replica.append_local(order.name, order.quantity, order.key, _now_ms())
                return saga.Appended(entry.index)
        except ApiError:
            # The disk refused a write and this replica stepped aside. The entry is written
            # before the commit index moves: if it is there, it is awaited like any other.
            with self.lock:
                entry = self.replica.entry_for_key(order.key)
            return saga.AppendFailed() if entry is None else saga.Appended(entry.index)

    def _await_commit(self, key: str, index: int, term: int) -> saga.Event:
        start = time.monotonic()
        event = self._commit_of(key, index, term)
        if isinstance(event, saga.Committed):
            metrics.COMMIT_SECONDS.observe(time.monotonic() - start)
        return event

    def _commit_of(self, key: str, index: int, term: int) -> saga.Event:
        deadline = time.monotonic() + self.settings.commit_timeout
        with self.lock:
            while True:
                replica = self.replica
                current = replica.entry_for_key(key)
                if current is None or current.index != index:
                    return saga.EntryGone()
                if replica.commit_index >= index:
                    return saga.Committed()
                if replica.role != Role.LEADER or replica.term != term:
                    return saga.LeadershipLost()
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return saga.TimedOut()
                self.commits.wait(remaining)

    def _abandon(self, index: int, term: int) -> saga.Event:
        with self._locked() as replica:
            removed = replica.abandon(index) if replica.term == term else []
        if removed:
            log_event(
                log, "abandoned uncommitted orders", level=logging.WARNING, count=len(removed)
            )
        return saga.Abandoned(tuple(removed))

    # The outbox of undos -------------------------------------------------------------

    def _queue_undo(self, attempt: Attempt) -> None:
        with self.lock:
            self._queue_undo_locked(attempt)

    def _queue_undo_locked(self, attempt: Attempt) -> None:
        self.outbox.add(attempt, time.monotonic())
        self.undos.notify_all()
        try:
            self.storage.add_undo(attempt)
        except StorageError as exc:
            # Retried from memory all the same; if this replica dies first, the next leader's
            # reconciliation undoes the purchase (it is in no log).
            log_event(
                log,
                "undo not saved; retrying from memory",
                level=logging.ERROR,
                key=attempt.key,
                error=str(exc),
            )

    def _send_undos(self) -> None:
        while not self.stopping.is_set():
            with self.lock:
                now = time.monotonic()
                due = self.outbox.due(now)
                if not due:
                    wake = self.outbox.next_due()
                    self.undos.wait(None if wake is None else max(wake - now, 0.0))
                    continue
            for attempt in due:
                if self.stopping.is_set():
                    return
                try:
                    undone = self.catalog.undo(attempt)
                except ServiceUnavailable as exc:
                    with self.lock:
                        self.outbox.failed(attempt, time.monotonic())
                    log_event(
                        log,
                        "undo failed; will retry",
                        level=logging.WARNING,
                        key=attempt.key,
                        term=attempt.term,
                        attempt=attempt.seq,
                        error=exc.reason,
                    )
                    continue
                with self.lock:
                    self.outbox.acked(attempt)
                    try:
                        self.storage.remove_undo(attempt)
                    except StorageError as exc:  # sent again after a restart: harmless
                        log_event(log, "undo not cleared", level=logging.ERROR, error=str(exc))
                log_event(
                    log,
                    "undo delivered",
                    key=attempt.key,
                    term=attempt.term,
                    attempt=attempt.seq,
                    undone=undone,
                )

    def get_order(self, number: int) -> dict:
        """A committed order, read linearizably: only after a quorum has accepted this leader's
        term in a round sent after the read arrived (read-index), so a deposed leader that has
        not noticed yet cannot answer from a stale log."""
        deadline = time.monotonic() + self.settings.election_timeout
        with self.lock:
            replica = self.replica
            self._require_leader(replica)
            term, round_ = replica.term, replica.read_round()
            self.appends.notify_all()  # the round goes out now, not at the next heartbeat
            while not replica.confirmed(round_):
                remaining = deadline - time.monotonic()
                if replica.role != Role.LEADER or replica.term != term:
                    raise ApiError(421, f"Replica {self.id} stopped leading during the read.")
                if remaining <= 0:
                    raise ApiError(503, "This leader could not confirm it still leads; retry.")
                self.commits.wait(remaining)
            entry = replica.committed(number)
        if entry is None:
            raise ApiError(404, f"There is no order number {number}.")
        return {"number": entry.index, "name": entry.name, "quantity": entry.quantity}

    # Elections -----------------------------------------------------------------------

    def elect(self, term: int) -> dict:
        self._join_if_not_voter()  # a brand-new cluster may be forming right now
        with self._locked() as replica:
            if replica.role == Role.LEADER and replica.term >= term:
                return {"leader_id": self.id, "term": replica.term}
            try:
                request = replica.start_election(term)
            except TermTooLow as exc:
                raise ApiError(409, f"The term must be above {exc.current_term}.") from exc
            except NotVoter as exc:
                raise ApiError(503, f"Replica {self.id} cannot stand for election now.") from exc
        log_event(log, "election started", replica=self.id, term=term)
        replies = self._collect_votes(request)
        with self._locked() as replica:
            won = replica.finish_election(term, replies, time.monotonic())
            inherited = replica.last_index
        if not won:
            log_event(log, "election lost", level=logging.WARNING, term=term, votes=len(replies))
            raise ApiError(503, "This replica could not collect a majority of votes.")
        log_event(log, "became leader", replica=self.id, term=term, last_index=inherited)
        self._wait_ready(term)
        self._reconcile(term)
        return {"leader_id": self.id, "term": term}

    def _collect_votes(self, request) -> dict[int, VoteReply]:
        """Ask every peer; stop waiting once a quorum granted (a stopped peer costs nothing)."""
        futures = {self.voters.submit(self.peers.vote, pid, request): pid for pid in self.peers.ids}
        replies: dict[int, VoteReply] = {}
        try:
            for future in as_completed(futures, timeout=self.settings.http_timeout + 0.5):
                try:
                    replies[futures[future]] = future.result()
                except ServiceUnavailable:
                    continue
                granted = 1 + sum(r.granted for r in replies.values())
                if granted >= self.settings.quorum_size and len(replies) >= 1:
                    break
        except FutureTimeout:
            pass
        return replies

    def _wait_ready(self, term: int) -> None:
        deadline = time.monotonic() + self.settings.commit_timeout
        with self.lock:
            replica = self.replica
            while not replica.ready:
                remaining = deadline - time.monotonic()
                if replica.role != Role.LEADER or replica.term != term or remaining <= 0:
                    raise ApiError(503, "This replica could not get its log onto a majority.")
                self.commits.wait(remaining)
            self.settled_upto = replica.commit_index

    def _reconcile(self, term: int) -> None:
        """Settle or undo the unsettled purchases of earlier terms (saga.reconcile).

        Raising the catalog's fence first means no earlier leader can buy any more, so the
        list it returns is final.
        """
        try:
            pending = self.catalog.reconcile(term)
            with self.lock:
                replica = self.replica
                verdict = saga.reconcile(pending, replica.entry_for_key, replica.commit_index)
                for attempt in verdict.undo:
                    self._queue_undo_locked(attempt)
            self.catalog.settle(verdict.settle)
        except ServiceUnavailable:
            log_event(log, "reconcile failed; will retry", level=logging.WARNING, term=term)
            threading.Timer(1.0, self._retry_reconcile, args=(term,)).start()
            return
        log_event(
            log,
            "reconciled purchases",
            term=term,
            settled=len(verdict.settle),
            undoing=len(verdict.undo),
        )

    def _retry_reconcile(self, term: int) -> None:
        with self.lock:
            still = self.replica.role == Role.LEADER and self.replica.term == term
        if still and not self.stopping.is_set():
            self._reconcile(term)

    def notice_leader(self, leader_id: int, term: int) -> None:
        with self._locked() as replica:
            replica.handle_leader_notice(leader_id, term)

    # Replication ---------------------------------------------------------------------

    def _replicate(self, peer_id: int) -> None:
        interval = self.settings.heartbeat_interval
        last_sent = 0.0
        while not self.stopping.is_set():
            with self.lock:
                replica = self.replica
                due = time.monotonic() - last_sent >= interval
                if replica.role != Role.LEADER or not (due or replica.has_pending(peer_id)):
                    self.appends.wait(interval)
                    continue
                request = replica.make_append(peer_id, self.settings.replication_batch)
            last_sent = time.monotonic()
            try:
                reply = self.peers.append(peer_id, request)
            except ServiceUnavailable as exc:
                with self._locked() as replica:
                    replica.on_unreachable(peer_id, request, delivered=exc.maybe_delivered)
                self.stopping.wait(interval)
                continue
            # A failed write while counting the reply has made this replica step aside.
            with contextlib.suppress(ApiError), self._locked() as replica:
                replica.on_append_reply(peer_id, request, reply, time.monotonic())
                if replica.wanted_round:
                    self.commits.notify_all()  # a read may wait for this round

    def handle_vote(self, request) -> VoteReply:
        self._join_if_not_voter()  # a peer's first election may come before our first probe
        with self._locked() as replica:
            reply = replica.handle_vote(request)
            if reply.granted:
                self.quiet_since = time.monotonic()
            return reply

    def handle_pre_vote(self, request: PreVoteRequest) -> PreVoteReply:
        with self.lock:
            silent = time.monotonic() - self.quiet_since >= self.settings.election_timeout
            return self.replica.handle_pre_vote(request, leader_silent=silent)

    def handle_append(self, request):
        with self._locked() as replica:
            reply = replica.handle_append(request)
            if reply.term == request.term:  # the leader of our term
                self.leader_contact = self.quiet_since = time.monotonic()
            return reply

    def committed_after(self, index: int) -> dict:
        with self.lock:
            entries = self.replica.committed_after(index, CATCH_UP_PAGE)
            return {
                "commit_index": self.replica.commit_index,
                "cluster_id": self.replica.meta.cluster_id,
                "entries": [asdict(entry) for entry in entries],
            }

    def _catch_up(self) -> None:
        """At start, fetch the committed orders we missed from whichever peer has most."""
        start = self.replica.commit_index
        for peer_id in self.peers.ids:
            try:
                while True:
                    with self.lock:
                        after = self.replica.commit_index
                    their_commit, cluster_id, entries = self.peers.committed_after(peer_id, after)
                    with self._locked() as replica:
                        replica.install_committed(entries, their_commit, cluster_id)
                        now = replica.commit_index
                    # Page on while each page moves us forward and the peer has more.
                    if now <= after or now >= their_commit:
                        break
            except (ServiceUnavailable, ApiError):
                continue
        with self.lock:
            end = self.replica.commit_index
        if end > start:
            log_event(log, "caught up", replica=self.id, from_index=start, to_index=end)

    # Membership and the disk ---------------------------------------------------------

    def _caretaker(self) -> None:
        """While this replica may not vote, ask the peers whether it may (membership.py);
        while its disk fails, try it again; while it leads, step down if it has not heard from
        a quorum within ELECTION_TIMEOUT (check-quorum); while no leader is heard, stand for
        election when elections.py says so."""
        plan = None
        interval = min(CARETAKER_INTERVAL, self.settings.election_timeout / 4)
        while not self.stopping.is_set():
            with self._locked() as replica:
                voter, failed = replica.voter, replica.disk_failed
                if replica.check_quorum(time.monotonic(), self.settings.election_timeout):
                    log_event(log, "lost the quorum", level=logging.WARNING, term=replica.term)
            if failed:
                self._try_disk()
            elif not voter:
                plan = self._join(plan)
            else:
                self._maybe_stand()
            self.stopping.wait(interval)

    def _maybe_stand(self) -> None:
        with self.lock:
            replica, now = self.replica, time.monotonic()
            leading = replica.role == Role.LEADER
            if not replica.can_lead or not self.candidacy.due(now, now - self.quiet_since, leading):
                return
            request = PreVoteRequest(max(replica.term, replica.meta.vote_floor) + 1, self.id)
        replies = self._collect_pre_votes(request)
        with self.lock:
            verdict = self.candidacy.decide(replies, time.monotonic())
        if verdict == Verdict.DEFER:
            log_event(log, "election deferred to a higher replica", term=request.term)
        if verdict != Verdict.STAND:
            return
        try:
            self.elect(request.term)
        except ApiError:
            with self.lock:
                self.candidacy.lost(time.monotonic())

    def _collect_pre_votes(self, request: PreVoteRequest) -> dict[int, PreVoteReply]:
        """Every peer's answer within half an election timeout (a silent peer grants nothing;
        an answer takes milliseconds, and a frozen higher peer must not delay the election)."""
        timeout = self.settings.election_timeout / 2
        futures = {
            pid: self.voters.submit(self.peers.pre_vote, pid, request, timeout)
            for pid in self.peers.ids
        }
        replies: dict[int, PreVoteReply] = {}
        for pid, future in futures.items():
            with contextlib.suppress(ServiceUnavailable, FutureTimeout):
                replies[pid] = future.result(timeout=timeout + 0.1)
        return replies

    def _join_if_not_voter(self) -> None:
        with self.lock:
            voter = self.replica.voter
        if not voter:
            self._join(None)

    def _join(self, previous: Plan | None) -> Plan:
        futures = {pid: self.voters.submit(self.peers.status, pid) for pid in self.peers.ids}
        answers: dict[int, Status] = {}
        for pid, future in futures.items():
            with contextlib.suppress(ServiceUnavailable):
                answers[pid] = future.result()
        with contextlib.suppress(ApiError), self._locked() as replica:
            decision = decide(replica.status(), len(replica.peer_ids), replica.quorum, answers)
            if decision.plan == Plan.BOOTSTRAP:
                replica.bootstrap(decision.floor)
            elif decision.floor is not None:
                replica.learn_floor(decision.floor)
        if decision.plan != previous:
            log_event(
                log, "membership", replica=self.id, plan=decision.plan.value,
                answered=sorted(answers), floor=decision.floor,
            )  # fmt: skip
        return decision.plan

    def _try_disk(self) -> None:
        try:
            self.storage.reopen()
        except StorageError as exc:
            self.disk_error = str(exc)
            return
        with contextlib.suppress(ApiError), self._locked() as replica:
            replica.reload()
            self.disk_error = ""
            log_event(log, "disk recovered", replica=self.id, last_index=replica.last_index)

    # Settling purchases --------------------------------------------------------------

    def _settle_loop(self) -> None:
        while not self.stopping.wait(SETTLE_INTERVAL):
            with self.lock:
                replica = self.replica
                if not replica.ready:
                    continue
                end = replica.commit_index
                keys = saga.to_settle(replica.log, self.settled_upto, end)
            if keys:
                try:
                    self.catalog.settle(keys)
                except ServiceUnavailable:
                    continue
                self.settled_upto = end


def _now_ms() -> int:
    """The wall clock in unix ms: the time an entry carries, by which its key expires."""
    return time.time_ns() // 1_000_000


def _same_order(entry: Entry, name: str, quantity: int) -> Entry:
    if (entry.name, entry.quantity) != (name, quantity):
        raise ApiError(422, "This idempotency key was already used for a different order.")
    return entry
