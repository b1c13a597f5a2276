"""HTTP transport between replicas: protocol messages to and from JSON.

Every call has the client's timeout; failures surface as ``ServiceUnavailable``.
"""

from __future__ import annotations

from app.common.http import ServiceClient, ServiceUnavailable
from app.orders.replication import AppendReply, AppendRequest, Entry, VoteReply, VoteRequest


def vote_request_from_json(data: dict) -> VoteRequest:
    return VoteRequest(data["term"], data["candidate_id"], data["commit_index"])


def vote_reply_to_json(reply: VoteReply) -> dict:
    return {
        "term": reply.term,
        "granted": reply.granted,
        "log_term": reply.log_term,
        "last_index": reply.last_index,
        "entries": [entry.to_json() for entry in reply.entries],
    }


def append_request_to_json(request: AppendRequest) -> dict:
    return {
        "term": request.term,
        "leader_id": request.leader_id,
        "prev_index": request.prev_index,
        "prev_term": request.prev_term,
        "entries": [entry.to_json() for entry in request.entries],
        "commit_index": request.commit_index,
        "to_end": request.to_end,
    }


def append_request_from_json(data: dict) -> AppendRequest:
    return AppendRequest(
        term=data["term"],
        leader_id=data["leader_id"],
        prev_index=data["prev_index"],
        prev_term=data["prev_term"],
        entries=tuple(Entry.from_json(e) for e in data["entries"]),
        commit_index=data["commit_index"],
        to_end=data["to_end"],
    )


class Peers:
    """Clients for the other replicas."""

    def __init__(self, urls: dict[int, str], timeout: float) -> None:
        self.clients = {pid: ServiceClient(url, timeout, pool_size=8) for pid, url in urls.items()}

    @property
    def ids(self) -> list[int]:
        return sorted(self.clients)

    def _data(self, peer_id: int, method: str, path: str, body: dict | None = None) -> dict:
        reply = self.clients[peer_id].request(method, path, json=body)
        if reply.status != 200 or not isinstance(reply.data, dict):
            raise ServiceUnavailable(
                self.clients[peer_id].base_url + path,
                f"status {reply.status}: {reply.error_message}",
                maybe_delivered=True,
            )
        return reply.data

    def vote(self, peer_id: int, request: VoteRequest) -> VoteReply:
        data = self._data(
            peer_id,
            "POST",
            "/raft/vote",
            {
                "term": request.term,
                "candidate_id": request.candidate_id,
                "commit_index": request.commit_index,
            },
        )
        return VoteReply(
            term=data["term"],
            granted=data["granted"],
            log_term=data["log_term"],
            last_index=data["last_index"],
            entries=tuple(Entry.from_json(e) for e in data["entries"]),
        )

    def append(self, peer_id: int, request: AppendRequest) -> AppendReply:
        data = self._data(peer_id, "POST", "/raft/append", append_request_to_json(request))
        return AppendReply(data["term"], data["success"], data["last_index"], data["synced"])

    def committed_after(self, peer_id: int, index: int) -> tuple[int, list[Entry]]:
        data = self._data(peer_id, "GET", f"/raft/committed?after={index}")
        return data["commit_index"], [Entry.from_json(e) for e in data["entries"]]
