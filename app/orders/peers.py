"""HTTP transport between replicas: protocol messages to and from JSON.

Every call has the client's timeout; failures surface as ``ServiceUnavailable``.
"""

from __future__ import annotations

from dataclasses import asdict

from app.common.http import ServiceClient, ServiceUnavailable
from app.orders.elections import PreVoteReply, PreVoteRequest
from app.orders.membership import Status
from app.orders.replication import AppendReply, AppendRequest, Entry, VoteReply, VoteRequest


def to_json(message) -> dict:
    """A protocol message (a dataclass, entries included) as a JSON object."""
    return asdict(message)


def _entries(data: dict) -> tuple[Entry, ...]:
    return tuple(Entry(**e) for e in data["entries"])


def vote_request_from_json(data: dict) -> VoteRequest:
    return VoteRequest(data["term"], data["candidate_id"], data["commit_index"])


def pre_vote_request_from_json(data: dict) -> PreVoteRequest:
    return PreVoteRequest(data["term"], data["candidate_id"])


def append_request_from_json(data: dict) -> AppendRequest:
    return AppendRequest(**{**data, "entries": _entries(data)})


class Peers:
    """Clients for the other replicas."""

    def __init__(self, urls: dict[int, str], timeout: float, token: str) -> None:
        self.clients = {
            pid: ServiceClient(url, timeout, token, pool_size=8) for pid, url in urls.items()
        }

    @property
    def ids(self) -> list[int]:
        return sorted(self.clients)

    def _data(
        self,
        peer_id: int,
        method: str,
        path: str,
        body: dict | None = None,
        timeout: float | None = None,
    ) -> dict:
        reply = self.clients[peer_id].request(method, path, json=body, timeout=timeout)
        if reply.status != 200 or not isinstance(reply.data, dict):
            raise ServiceUnavailable(
                self.clients[peer_id].base_url + path,
                f"status {reply.status}: {reply.error_message}",
                maybe_delivered=True,
            )
        return reply.data

    def vote(self, peer_id: int, request: VoteRequest) -> VoteReply:
        data = self._data(peer_id, "POST", "/raft/vote", to_json(request))
        return VoteReply(**{**data, "entries": _entries(data)})

    def pre_vote(self, peer_id: int, request: PreVoteRequest, timeout: float) -> PreVoteReply:
        reply = self._data(peer_id, "POST", "/raft/prevote", to_json(request), timeout)
        return PreVoteReply(**reply)

    def append(self, peer_id: int, request: AppendRequest) -> AppendReply:
        return AppendReply(**self._data(peer_id, "POST", "/raft/append", to_json(request)))

    def committed_after(self, peer_id: int, index: int) -> tuple[int, str, list[Entry]]:
        data = self._data(peer_id, "GET", f"/raft/committed?after={index}")
        return data["commit_index"], data["cluster_id"], [Entry(**e) for e in data["entries"]]

    def status(self, peer_id: int) -> Status:
        return Status(**self._data(peer_id, "GET", "/raft/status"))
