"""The live dashboard on a running store: its snapshot against the replicas' own answers,
and the page as headless Chromium renders it (app/frontend/dashboard.py)."""

from __future__ import annotations

import re
import time
from html.parser import HTMLParser

import pytest
import requests
from PIL import Image

from app.cluster import Cluster, replica_name
from app.frontend.leader import SURVEY_MAX_AGE
from app.observe import replica_health, wait_converged
from tests.browser import dump_dom, screenshot
from tests.support import NO_RESTOCK, order, wait_for, wait_workers_subscribed

SIZE = (1200, 800)
LEADER_BLUE = (23, 92, 211)  # --lead in dashboard.html


@pytest.fixture(scope="module")
def store(module_cluster_factory) -> Cluster:
    cluster = module_cluster_factory(env=NO_RESTOCK)
    assert requests.get(f"{cluster.frontend_url}/ready", timeout=10).status_code == 200
    wait_workers_subscribed(cluster)  # any worker may draw the page: each must see the stream
    return cluster


def state(store: Cluster) -> dict:
    reply = requests.get(f"{store.frontend_url}/dashboard/state", timeout=5)
    assert reply.status_code == 200
    return reply.json()["data"]


def test_the_page_is_self_contained(store):
    reply = requests.get(f"{store.frontend_url}/dashboard", timeout=5)
    assert reply.status_code == 200
    assert reply.headers["Content-Type"].startswith("text/html")
    assert "connect-src 'self'" in reply.headers["Content-Security-Policy"]
    page = reply.text
    assert not re.search(r"https?://|<script[^>]+src=|<link[^>]+href=|@import", page)


def test_the_snapshot_shows_what_the_replicas_say(store):
    assert order(requests, store.frontend_url, "Tux", 1).status_code == 201
    assert wait_converged(store, 10)
    health = replica_health(store)
    snapshot = state(store)
    leader = next(rid for rid, h in health.items() if h["role"] == "leader")
    assert snapshot["leader"] == {"id": leader, "term": health[leader]["term"]}
    assert [r["id"] for r in snapshot["replicas"]] == sorted(store.replica_urls)
    for replica in snapshot["replicas"]:
        own = health[replica["id"]]
        assert replica["answered"] is True
        for field in ("role", "term", "commit_index", "last_index", "voter"):
            assert replica[field] == own[field], (replica, own)


def test_reads_orders_and_invalidations_show_up(store):
    before = state(store)
    for _ in range(5):
        assert requests.get(f"{store.frontend_url}/products/Kite", timeout=5).status_code == 200
    placed = order(requests, store.frontend_url, "Kite", 1)
    assert placed.status_code == 201
    version = int(placed.headers["X-Product-Version"])

    def seen() -> dict | None:
        now = state(store)  # any worker: each receives every invalidation
        kites = [i for i in now["invalidations"] if i["product"] == "Kite"]
        return now if kites and kites[0]["version"] == version else None

    after = wait_for(seen, 5, "the order's invalidation on the dashboard")
    newest = next(i for i in after["invalidations"] if i["product"] == "Kite")
    assert newest["reason"] == "purchase" and 0 <= newest["lag_seconds"] < 5
    route = "/products/<name>"
    assert after["requests"]["by_route"][route] >= before["requests"]["by_route"].get(route, 0) + 5
    lookups, earlier = after["cache"]["lookups"], before["cache"]["lookups"]
    assert lookups.get("hit", 0) + lookups.get("miss", 0) >= (
        earlier.get("hit", 0) + earlier.get("miss", 0) + 5
    )
    assert lookups.get("hit", 0) > earlier.get("hit", 0)  # five reads of one toy: some hit


class _Dom(HTMLParser):
    """The dashboard's rows and items as rendered: their data-* attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.replicas: dict[str, str] = {}
        self.products: list[str] = []
        self.routes: list[str] = []
        self.updates = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        data = dict(attrs)
        if tag == "tr" and "data-replica" in data:
            self.replicas[data["data-replica"]] = data["data-role"]
        elif tag == "tr" and "data-route" in data:
            self.routes.append(data["data-route"])
        elif tag == "li" and "data-product" in data:
            self.products.append(data["data-product"])
        elif tag == "body":
            self.updates = int(data.get("data-updates") or 0)


def rendered(store: Cluster) -> _Dom:
    dom = _Dom()
    dom.feed(dump_dom(f"{store.frontend_url}/dashboard", run_for_ms=3500))
    return dom


def test_chromium_renders_the_replicas_the_leader_and_the_stream_and_it_updates(store):
    assert order(requests, store.frontend_url, "Fox", 1).status_code == 201
    leader = next(rid for rid, h in replica_health(store).items() if h["role"] == "leader")
    dom = rendered(store)
    assert dom.updates >= 3, "the page polled and redrew at least three times"
    assert dom.replicas == {
        str(rid): "leader" if rid == leader else "follower" for rid in store.replica_urls
    }
    assert "Fox" in dom.products
    assert "/products/<name>" in dom.routes or "/orders" in dom.routes
    assert not any(route.startswith("/dashboard") for route in dom.routes)


def test_the_page_says_so_when_the_front_end_stops_answering(store, tmp_path):
    """The page opened from a file has no front-end to ask: after 3.5 s without a snapshot
    it must say so, rather than keep showing the last one as current."""
    page = tmp_path / "dashboard.html"
    page.write_text(requests.get(f"{store.frontend_url}/dashboard", timeout=5).text)
    dom = dump_dom(page.as_uri(), run_for_ms=5000)
    status = re.search(r'<div id="status" class="([^"]*)">([^<]*)<', dom)
    assert status is not None, dom[:2000]
    assert status.group(1) == "stale" and "not answering" in status.group(2)


def test_a_killed_replica_shows_as_not_answering_then_back(store):
    victim = min(store.replica_urls)
    leader = wait_for(lambda: state(store)["leader"], 10, "a leader on the dashboard")
    if leader["id"] == victim:
        victim = max(rid for rid in store.replica_urls if rid != victim)
    store.kill(replica_name(victim))
    killed = time.monotonic()

    def silent() -> dict | None:
        now = state(store)
        (view,) = [r for r in now["replicas"] if r["id"] == victim]
        return now if not view["answered"] else None

    try:
        # Each worker reuses its survey of the replicas for up to SURVEY_MAX_AGE.
        snapshot = wait_for(silent, 5, "the killed replica shown as not answering")
        assert time.monotonic() - killed < SURVEY_MAX_AGE + 2.5
        (view,) = [r for r in snapshot["replicas"] if r["id"] == victim]
        assert view["term"] is None and view["role"] is None
        assert snapshot["leader"] is not None  # two of three still lead
        time.sleep(SURVEY_MAX_AGE)  # every worker's earlier survey is out of date by now
        assert rendered(store).replicas[str(victim)] == "silent"
    finally:
        store.restart(replica_name(victim))
    wait_for(lambda: all(r["answered"] for r in state(store)["replicas"]), 30, "replica back")


def not_drawn(image: Image.Image) -> str:
    """Why a screenshot does not show the dashboard drawn (empty when it does)."""
    if image.format != "PNG" or image.size != SIZE:
        return f"a {image.format} of {image.size}, not a PNG of {SIZE}"
    colours = image.convert("RGB").getcolors(maxcolors=1 << 16) or []
    if len(colours) <= 50:
        return f"{len(colours)} colours: a blank page"
    # The leader's role is drawn in the leader colour: some pixels are close to it.
    close = sum(
        count
        for count, rgb in colours
        if sum(abs(a - b) for a, b in zip(rgb, LEADER_BLUE, strict=True)) < 40
    )
    return "" if close > 20 else "no leader drawn"


def test_the_screenshot_shows_a_drawn_page(store, tmp_path):
    shot = screenshot(f"{store.frontend_url}/dashboard", tmp_path / "dash.png", SIZE, 3000)
    with Image.open(shot) as image:
        assert not_drawn(image) == ""


def test_the_screenshot_check_refuses_a_blank_or_leaderless_page(tmp_path):
    blank = tmp_path / "blank.png"
    Image.new("RGB", SIZE, (246, 247, 249)).save(blank)
    with Image.open(blank) as image:
        assert "blank" in not_drawn(image)
    noisy = tmp_path / "grey.png"
    Image.effect_noise(SIZE, 60).convert("RGB").save(noisy)  # many colours, none blue
    with Image.open(noisy) as image:
        assert not_drawn(image) == "no leader drawn"
