"""HTTP endpoints of an order replica: orders for the front-end, protocol messages for peers."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app, request

from app.common import validation
from app.common.errors import ApiError, ok, readiness
from app.orders.node import OrderNode
from app.orders.peers import (
    append_request_from_json,
    pre_vote_request_from_json,
    to_json,
    vote_request_from_json,
)
from app.orders.replication import NO_INDEX

bp = Blueprint("orders", __name__)


def node() -> OrderNode:
    return current_app.extensions["order_node"]


@bp.get("/health")
def health():
    return ok(node().health())


@bp.get("/ready")
def ready():
    return readiness(node().readiness_problems())


@bp.post("/orders")
def place_order():
    settings = node().settings
    body = validation.json_body(request)
    validation.check_fields(body, {"name", "quantity", "key"})
    name = validation.toy_name(body["name"], settings.max_name_length)
    quantity = validation.positive_int(body["quantity"], "quantity", settings.max_order_quantity)
    key = validation.idempotency_key(body["key"])
    done = node().place_order(name, quantity, key)
    data = {"order_number": done.number, "replayed": done.replayed}
    if done.version is not None:
        data["version"] = done.version
    return ok(data)


@bp.get("/orders/<number>")
def get_order(number: str):
    return ok(node().get_order(validation.order_number(number)))


@bp.post("/election")
def election():
    body = validation.json_body(request)
    validation.check_fields(body, {"term"})
    term = validation.non_negative_int(body["term"], "term")
    return ok(node().elect(term))


@bp.post("/leader")
def leader_notice():
    body = validation.json_body(request)
    validation.check_fields(body, {"leader_id", "term"})
    node().notice_leader(
        validation.non_negative_int(body["leader_id"], "leader_id"),
        validation.non_negative_int(body["term"], "term"),
    )
    return ok({"leader_id": body["leader_id"], "term": body["term"]})


# Protocol messages between replicas. Their shape is checked field by field so that a bad
# message is a 400, never an exception inside the protocol.


def _index(value: Any, field: str) -> int:
    """An index (NO_INDEX allowed: "before the first entry") or any other protocol number."""
    if type(value) is int and value == NO_INDEX:
        return value
    return validation.non_negative_int(value, field)


def _message(required: dict[str, type]) -> dict[str, Any]:
    body = validation.json_body(request)
    validation.check_fields(body, set(required))
    for field, kind in required.items():
        value = body[field]
        if kind is int:
            _index(value, field)
        elif kind is list:
            if not isinstance(value, list):
                raise ApiError(400, f"The {field} must be a list.")
        elif not isinstance(value, kind) or (kind is not bool and isinstance(value, bool)):
            raise ApiError(400, f"The {field} has the wrong type.")
    return body


def _check_entries(entries: list[Any], prev_index: int) -> None:
    """Entries must be well-formed orders at consecutive indices right after prev_index,
    with distinct keys: anything else would corrupt the log, so it is refused whole."""
    settings = node().settings
    keys = set()
    for offset, entry in enumerate(entries):
        if not isinstance(entry, dict):
            raise ApiError(400, "Each entry must be an object.")
        validation.check_fields(entry, {"index", "term", "name", "quantity", "key"}, {"created"})
        if _index(entry["index"], "entry index") != prev_index + 1 + offset:
            raise ApiError(400, "Entry indices must follow prev_index without gaps.")
        validation.positive_int(entry["term"], "entry term", validation.PROTOCOL_LIMIT - 1)
        validation.toy_name(entry["name"], settings.max_name_length)
        validation.positive_int(entry["quantity"], "entry quantity", settings.max_order_quantity)
        validation.non_negative_int(entry.get("created", 0), "entry created")
        keys.add(validation.log_key(entry["key"]))
    if len(keys) != len(entries):
        raise ApiError(400, "Two entries carry the same key.")


@bp.post("/raft/vote")
def vote():
    body = _message({"term": int, "candidate_id": int, "commit_index": int})
    return ok(to_json(node().handle_vote(vote_request_from_json(body))))


@bp.post("/raft/prevote")
def pre_vote():
    body = _message({"term": int, "candidate_id": int})
    return ok(to_json(node().handle_pre_vote(pre_vote_request_from_json(body))))


@bp.post("/raft/append")
def append():
    body = _message(
        {
            "term": int,
            "leader_id": int,
            "prev_index": int,
            "prev_term": int,
            "entries": list,
            "commit_index": int,
            "to_end": bool,
            "cluster_id": str,
            "round": int,
        }
    )
    _check_entries(body["entries"], body["prev_index"])
    return ok(to_json(node().handle_append(append_request_from_json(body))))


@bp.get("/raft/status")
def status():
    return ok(to_json(node().status()))


@bp.get("/raft/committed")
def committed():
    raw = request.args.get("after", str(NO_INDEX))
    after = NO_INDEX if raw == str(NO_INDEX) else validation.order_number(raw)
    return ok(node().committed_after(after))
