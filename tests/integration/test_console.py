"""The ops console in headless Chromium (playwright, Debian's chromium) on the real cluster.

Screenshots go to each test's tmp_path; ORDERFLOW_CONSOLE_SCREENSHOTS=<dir> copies them
there too (the README's are docs/console-*.png).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, sync_playwright
from playwright.sync_api import Error as PlaywrightError

from cluster.config import ROOT
from cluster.local import LocalCluster
from tests.integration.support import call, deposit, ok, place, publish, restock, wait_until

CHROMIUM = os.environ.get("ORDERFLOW_CHROMIUM", "/usr/bin/chromium")
SHOTS = os.environ.get("ORDERFLOW_CONSOLE_SCREENSHOTS")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).is_file():
        pytest.fail(f"{CHROMIUM} not found: run `make console-deps` (make setup does)")
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=CHROMIUM, headless=True)
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Browser, cluster: LocalCluster) -> Iterator[Page]:
    # signed in as the cluster's operator (the console asks with HTTP Basic)
    user, key = cluster.gateway_keys.console_auth()
    context = browser.new_context(
        viewport={"width": 1400, "height": 900},
        http_credentials={"username": user, "password": key},
    )
    yield context.new_page()
    context.close()


@pytest.fixture(scope="module")
def console_url(cluster: LocalCluster) -> str:
    return f"http://127.0.0.1:{cluster.app('console').app_port}"


@pytest.fixture(scope="module")
def console(cluster: LocalCluster, console_url: str) -> Iterator[httpx.Client]:
    """The console's API, as the cluster's operator."""
    with httpx.Client(
        base_url=console_url, timeout=10, auth=cluster.gateway_keys.console_auth()
    ) as client:
        yield client


def test_the_console_asks_an_operator_to_sign_in_and_admits_the_clusters(
    browser: Browser, console_url: str, console: httpx.Client, cluster: LocalCluster
) -> None:
    anonymous = httpx.get(f"{console_url}/cluster", timeout=10)
    assert anonymous.status_code == 401
    assert "Basic" in anonymous.headers["www-authenticate"]
    storefront = {"authorization": cluster.gateway_keys.headers("storefront")["authorization"]}
    assert httpx.get(f"{console_url}/cluster", headers=storefront).status_code == 403
    assert httpx.get(f"{console_url}/healthz/app").status_code == 200  # probes stay open
    assert console.get("/api/deadletters").status_code == 200
    context = browser.new_context()  # a browser that cannot sign in gets no page
    try:  # (headless, it has no sign-in dialog to show for the Basic challenge)
        with pytest.raises(PlaywrightError, match="ERR_INVALID_AUTH_CREDENTIALS"):
            context.new_page().goto(f"{console_url}/cluster")
    finally:
        context.close()


def screenshot(page: Page, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    if SHOTS:
        shutil.copy(path, Path(SHOTS) / path.name)
    return path


def test_the_cluster_page_lists_both_actor_hosts_and_their_actor_types(
    page: Page, console_url: str, tmp_path: Path
) -> None:
    page.goto(f"{console_url}/cluster")

    for host in ("actor-host-1", "actor-host-2"):
        row = page.locator(f'#apps tr[data-app="{host}"]')
        types = row.locator(".actor-type").all_inner_texts()
        assert {"OrderActor", "InventoryActor", "WalletActor", "BeaconActor"} <= set(types), host
        assert row.locator(".down").count() == 0, row.inner_text()
    assert page.locator("#placement tr").count() >= 3  # a header and both hosts
    assert "up" in page.locator('#infrastructure tr[data-name="redis"]').inner_text()
    # the feeds read the orders stream through their own groups, daprd lists none of them
    orders = page.locator('#stream-groups tr[data-stream="orders"]')
    groups = {orders.nth(i).get_attribute("data-group") for i in range(orders.count())}
    assert {"actor-host", "projector", "shipping"} <= groups, groups
    assert screenshot(page, tmp_path, "console-cluster").stat().st_size > 0


def test_an_orders_timeline_shows_its_events_in_order(
    page: Page, console_url: str, gateway_sidecar: httpx.Client, uid: str, tmp_path: Path
) -> None:
    sku, customer = f"tea-{uid}", f"cust-{uid}"
    restock(gateway_sidecar, sku, 10)
    deposit(gateway_sidecar, customer, 10_000)
    order_id = place(gateway_sidecar, customer, [(sku, 2, 450)])
    wait_until(
        lambda: _status(gateway_sidecar, order_id) == "shipped", timeout=30, what="order shipped"
    )
    history = ok(call(gateway_sidecar, "OrderActor", order_id, "History", {"limit": 100}))

    page.goto(f"{console_url}/orders?q={customer}")
    page.click(f"text={order_id}")

    rows = page.locator("#timeline tr.event")
    shown = [rows.nth(i).get_attribute("data-type") for i in range(rows.count())]
    assert shown == [e["type"] for e in history["events"]]
    assert shown[0] == "order.placed"
    assert shown[-1] == "order.shipped"
    assert page.locator("#status").inner_text() == "shipped"
    screenshot(page, tmp_path, "console-order")


def test_a_dead_letter_redriven_from_the_page_is_applied_and_leaves_the_list(
    page: Page,
    console_url: str,
    console: httpx.Client,
    gateway_sidecar: httpx.Client,
    sidecar_of: Callable[[str], httpx.Client],
    uid: str,
    tmp_path: Path,
) -> None:
    sku = f"cup-{uid}"
    restock(gateway_sidecar, sku, 5)
    order_id, event_id, letter = _an_unreserved_commit_dead_lettered(
        gateway_sidecar, sidecar_of("actor-host-1"), console, sku=sku, order_uid=f"dl-{uid}"
    )
    assert letter["code"] == "inventory.reservation_not_found"
    # the operator fixes the cause (the reservation exists now), then redrives
    reserve = {"order_id": order_id, "quantity": 2, "message_id": f"fix-{uid}"}
    ok(call(gateway_sidecar, "InventoryActor", sku, "Reserve", reserve))

    page.goto(f"{console_url}/deadletters?code=inventory.reservation_not_found")
    row = page.locator(f'tr.letter[data-id="{letter["id"]}"]')
    assert sku in row.inner_text()
    row.locator("summary").click()  # the event, as it was refused
    screenshot(page, tmp_path, "console-deadletters")
    row.locator("button.redrive").click()

    assert f"republished to orders as {event_id}" in page.locator("#result").inner_text()
    assert page.locator(f'tr.letter[data-id="{letter["id"]}"]').count() == 0
    wait_until(
        lambda: _stock(gateway_sidecar, sku)["on_hand"] == 3,
        timeout=30,
        what="the redriven Commit to apply",
    )
    assert _stock(gateway_sidecar, sku)["reserved"] == 0
    assert _letter(console, event_id) is None  # applied: no new dead letter came back


def test_the_redrive_cli_lists_a_dead_letter_and_redrives_it_by_id(
    console_url: str,
    console: httpx.Client,
    cluster: LocalCluster,
    gateway_sidecar: httpx.Client,
    sidecar_of: Callable[[str], httpx.Client],
    uid: str,
) -> None:
    key = cluster.gateway_keys.console_auth()[1]
    sku = f"mug-{uid}"
    restock(gateway_sidecar, sku, 4)
    order_id, event_id, letter = _an_unreserved_commit_dead_lettered(
        gateway_sidecar, sidecar_of("actor-host-1"), console, sku=sku, order_uid=f"cli-{uid}"
    )

    listed = _cli(
        key, "--console", console_url, "--list", "--code", "inventory.reservation_not_found"
    )
    assert listed.returncode == 0, listed.stderr
    assert letter["id"] in listed.stdout

    reserve = {"order_id": order_id, "quantity": 1, "message_id": f"fix-cli-{uid}"}
    ok(call(gateway_sidecar, "InventoryActor", sku, "Reserve", reserve))
    redriven = _cli(key, "--console", console_url, "--id", letter["id"])
    assert redriven.returncode == 0, redriven.stdout + redriven.stderr
    wait_until(
        lambda: _stock(gateway_sidecar, sku)["on_hand"] == 3,
        timeout=30,
        what="the Commit redriven from the CLI to apply",
    )
    assert _letter(console, event_id) is None
    again = _cli(key, "--console", console_url, "--id", letter["id"])
    assert again.returncode != 0  # already redriven: refused, not published twice


def test_the_plots_page_draws_the_order_throughput_from_prometheus(
    page: Page, console_url: str, gateway_sidecar: httpx.Client, uid: str, tmp_path: Path
) -> None:
    """An order placed, Prometheus scrapes its counters, uPlot (served by the console from
    the runtime folder, never a CDN) draws the throughput."""
    sku, customer = f"pot-{uid}", f"cust-plot-{uid}"
    restock(gateway_sidecar, sku, 3)
    deposit(gateway_sidecar, customer, 5_000)
    place(gateway_sidecar, customer, [(sku, 1, 300)])
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    chart = 'section.plot[data-plot="throughput"] .chart canvas'

    def drawn() -> bool:
        page.goto(f"{console_url}/plots")
        page.wait_for_load_state("networkidle")
        return page.locator(chart).count() > 0

    wait_until(drawn, timeout=90, what="the throughput plot to be drawn")
    screenshot(page, tmp_path, "console-plots")
    assert errors == []
    assert page.locator("p.error").count() == 0  # uPlot is installed


def _an_unreserved_commit_dead_lettered(
    sidecar: httpx.Client,
    publisher: httpx.Client,
    console: httpx.Client,
    *,
    sku: str,
    order_uid: str,
) -> tuple[str, str, dict[str, Any]]:
    """Ship an order, then publish its order.shipped again naming `sku`, which it holds no
    reservation of, through `publisher` (an actor host's daprd: `orders` is the actor hosts'
    topic): the Commit is refused and dead-lettered (the read side has that version
    already and ignores it). Returns the order id, the event id and the console's letter."""
    event_id = uuid.uuid4().hex
    order_id, version = _a_shipped_order(sidecar, order_uid)
    shipped = _order_shipped(order_id, event_id, sku, version=version)
    publish(publisher, "orders", shipped, event_id=event_id, event_type="order.shipped")
    wait_until(
        lambda: _letter(console, event_id) is not None,
        timeout=30,
        what="the console to list the dead letter",
    )
    letter = _letter(console, event_id)
    assert letter is not None
    return order_id, event_id, letter


def _cli(key: str, *args: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "apps.console.redrive", *args]
    env = {**os.environ, "ORDERFLOW_CONSOLE_KEY": key}  # `make -s tokens` exports it
    return subprocess.run(
        argv, cwd=ROOT, env=env, capture_output=True, text=True, timeout=60, check=False
    )


def _status(sidecar: httpx.Client, order_id: str) -> str:
    return str(ok(call(sidecar, "OrderActor", order_id, "Get"))["status"])


def _stock(sidecar: httpx.Client, sku: str) -> dict[str, Any]:
    return ok(call(sidecar, "InventoryActor", sku, "Get"))


def _letter(console: httpx.Client, event_id: str) -> dict[str, Any] | None:
    letters = console.get("/api/deadletters").json()["letters"]
    return next((x for x in letters if x["cloudevent_id"] == event_id), None)


def _a_shipped_order(sidecar: httpx.Client, uid: str) -> tuple[str, int]:
    """A real order that shipped, and its version: a dead letter built on it leaves the
    read models equal to a rebuild from the actors' histories (test_read_side.py)."""
    sku, customer = f"kettle-{uid}", f"cust-{uid}"
    restock(sidecar, sku, 1)
    deposit(sidecar, customer, 1_000)
    order_id = place(sidecar, customer, [(sku, 1, 100)])
    wait_until(lambda: _status(sidecar, order_id) == "shipped", timeout=30, what="shipped")
    view = call(sidecar, "OrderActor", order_id, "Get")
    return order_id, int(view["aggregate_version"])


def _order_shipped(order_id: str, event_id: str, sku: str, *, version: int) -> dict[str, Any]:
    return {
        "event_id": event_id,
        "type": "order.shipped",
        "schema_version": 1,
        "aggregate_type": "OrderActor",
        "aggregate_id": order_id,
        "aggregate_version": version,
        "occurred_at": "2026-11-22T10:15:30.123456+00:00",
        "correlation_id": order_id,
        "causation_id": event_id,
        "payload": {
            "shipment_id": f"shp-{event_id[:20]}",
            "customer_id": "cust-dl",
            "amount": 900,
            "capture_payment": False,
            "commit_skus": [sku],
        },
    }
