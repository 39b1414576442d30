"""The order saga as a Dapr Workflow (dapr-ext-workflow): the peer `make bench` compares.

    DAPR_GRPC_PORT=... DAPR_HTTP_PORT=... python -m bench.peers.workflow_saga

Same fulfilment as Orderflow's OrderActor saga: reserve every line (in parallel), authorize
the payment, confirm; a rejected line or a declined payment releases every reservation made
(and voids the hold). Its activities call the same InventoryActor and WalletActor through the
actor API of this process's own daprd, each call carrying a message id so a retried activity
changes nothing twice. Confirmation is the workflow's output (no OrderActor). The bench starts
instances and reads their status through daprd's workflow HTTP API
(/v1.0/workflows/dapr/fulfil_order/...). With DAPR_API_TOKEN set (the bench's cluster sets
it), every call to its daprd carries it: the workflow SDK's clients read the variable
themselves, the activities' actor calls send it as the apps do. Not part of the product.
"""

from __future__ import annotations

import datetime as dt
import os
import signal
import threading
from collections.abc import Callable, Generator
from typing import Any

import httpx
from dapr.ext.workflow import (
    DaprWorkflowContext,
    RetryPolicy,
    WorkflowActivityContext,
    WorkflowRuntime,
    when_all,
)

from actors.toolkit.apitoken import dapr_api_token_from_env, sidecar_headers

WORKFLOW = "fulfil_order"
RETRY = RetryPolicy(first_retry_interval=dt.timedelta(milliseconds=200), max_number_of_attempts=5)
REJECTED = {"inventory.stock_rejected", "wallet.payment_declined"}

Activity = Callable[[WorkflowActivityContext, dict[str, Any]], bool]


def actor_call(client: httpx.Client) -> Callable[[str, str, str, dict[str, Any]], bool]:
    """POST an actor method through daprd; True when the command was applied, not refused."""

    def call(actor_type: str, actor_id: str, method: str, body: dict[str, Any]) -> bool:
        resp = client.post(f"/v1.0/actors/{actor_type}/{actor_id}/method/{method}", json=body)
        resp.raise_for_status()  # daprd or the host failed: the activity retries
        answer = resp.json()
        if not answer.get("ok"):
            return False  # a domain refusal (e.g. unknown wallet)
        return not {e["type"] for e in answer.get("events", [])} & REJECTED

    return call


def activities(client: httpx.Client) -> dict[str, Activity]:
    call = actor_call(client)

    def reserve(_: WorkflowActivityContext, a: dict[str, Any]) -> bool:
        body = {"sku": a["sku"], "order_id": a["order_id"], "quantity": a["quantity"]}
        return call("InventoryActor", a["sku"], "Reserve", {**body, "message_id": a["mid"]})

    def release(_: WorkflowActivityContext, a: dict[str, Any]) -> bool:
        body = {"sku": a["sku"], "order_id": a["order_id"], "message_id": a["mid"]}
        return call("InventoryActor", a["sku"], "Release", body)

    def authorize(_: WorkflowActivityContext, a: dict[str, Any]) -> bool:
        body = {"order_id": a["order_id"], "amount": a["amount"], "message_id": a["mid"]}
        return call("WalletActor", a["customer_id"], "Authorize", body)

    def void(_: WorkflowActivityContext, a: dict[str, Any]) -> bool:
        body = {"order_id": a["order_id"], "message_id": a["mid"]}
        return call("WalletActor", a["customer_id"], "Void", body)

    return {"reserve": reserve, "release": release, "authorize": authorize, "void": void}


def fulfil_order(ctx: DaprWorkflowContext, order: dict[str, Any]) -> Generator[Any, Any, str]:
    """Reserve every line, authorize, confirm; compensate on a refusal."""
    oid, lines = order["order_id"], order["lines"]
    reserves: list[Any] = [
        ctx.call_activity(
            "reserve",
            input={**line, "order_id": oid, "mid": f"{oid}-reserve-{line['sku']}"},
            retry_policy=RETRY,
        )
        for line in lines
    ]
    reserved = yield when_all(reserves)
    if all(reserved):
        amount = sum(line["quantity"] * line["unit_price"] for line in lines)
        args = {"order_id": oid, "customer_id": order["customer_id"], "amount": amount}
        if (
            yield ctx.call_activity(
                "authorize", input={**args, "mid": f"{oid}-auth"}, retry_policy=RETRY
            )
        ):
            return "confirmed"
        yield ctx.call_activity("void", input={**args, "mid": f"{oid}-void"}, retry_policy=RETRY)
    releases: list[Any] = [
        ctx.call_activity(
            "release",
            input={"sku": line["sku"], "order_id": oid, "mid": f"{oid}-release-{line['sku']}"},
            retry_policy=RETRY,
        )
        for line in lines
    ]
    yield when_all(releases)
    return "cancelled"


def main() -> None:
    http_port = os.environ["DAPR_HTTP_PORT"]
    client = httpx.Client(
        base_url=f"http://127.0.0.1:{http_port}",
        headers=sidecar_headers(dapr_api_token_from_env()),
        timeout=30,
    )
    runtime = WorkflowRuntime(host="127.0.0.1", port=os.environ["DAPR_GRPC_PORT"])
    runtime.register_workflow(fulfil_order, name=WORKFLOW)
    for name, fn in activities(client).items():
        runtime.register_activity(fn, name=name)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    runtime.start()  # type: ignore[no-untyped-call]
    print("workflow runtime started", flush=True)
    stop.wait()
    runtime.shutdown()  # type: ignore[no-untyped-call]
    client.close()


if __name__ == "__main__":
    main()
