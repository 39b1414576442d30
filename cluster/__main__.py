"""Command line: python -m cluster up|down|status|watch|logs|compose-check."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import signal
import sys
import time
from pathlib import Path
from types import FrameType

from cluster import pidfile
from cluster.config import ClusterConfig
from cluster.local import WATCHDOG, LocalCluster, stop_stages, wait_forever
from cluster.pidfile import live_pids
from cluster.ports import PortReservation
from cluster.processes import ClusterError, Stopped, stop_in_stages
from cluster.tokens import keep_gateway_keys, read_tokens, secrets_dir
from cluster.watchdog import for_cluster, watch_detached


def _raise_interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def watched(config: ClusterConfig) -> bool:
    """Whether the cluster gets the sidecar watchdog (cluster/watchdog.py)."""
    return config.with_watchdog and any(a.actor_types for a in config.apps())


def cmd_up(config: ClusterConfig, *, detach: bool) -> int:
    cluster = LocalCluster(config)
    if cluster.pid_file.exists() and live_pids(cluster.pid_file):
        print(f"a cluster is already running (see {cluster.pid_file}); `make down` stops it")
        return 1
    print(f"starting the Orderflow local cluster (logs in {config.log_dir}) ...", flush=True)
    started = time.monotonic()
    # Also SIGINT: a shell without job control starts background jobs with SIGINT
    # ignored, and Python then never raises KeyboardInterrupt.
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _raise_interrupt)
    stop, up = True, False
    try:  # one try around everything after the handlers: a signal may land anywhere
        cluster.start()
        up = True
        print(f"\nOrderflow is up in {time.monotonic() - started:.1f}s:")
        for label, url in cluster.urls():
            print(f"  {label:<34} {url}")
        if detach:
            stop = False
            if watched(config):
                cluster.start_detached_watchdog()
                log = config.log_dir / f"{WATCHDOG}.log"
                print(
                    f"\nThe sidecar watchdog runs beside it (ORDERFLOW_WATCHDOG=0: off); log {log}"
                )
            print("\nrunning in the background; `make status` shows it, `make down` stops it")
            return 0
        watch = None
        if watched(config):
            watch = for_cluster(cluster, report=lambda line: print(line, flush=True)).watch
            print(
                "The sidecar watchdog restarts an actor host's daprd whose actor calls all "
                "hang (ORDERFLOW_WATCHDOG=0: off)."
            )
        print("\nCtrl-C stops everything.", flush=True)
        wait_forever(cluster, watch)
    except KeyboardInterrupt:
        print("\nstopping ...", flush=True)
    finally:
        if stop:
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
                signal.signal(sig, signal.SIG_IGN)  # a second Ctrl-C must not cut the stop short
            stopped = cluster.stop(report=lambda s: print(s.describe(), flush=True))
            killed = [s.name for s in stopped if s.killed]
            print(f"stopped ({len(killed)} needed SIGKILL)." if killed else "stopped.")
    return 0 if up else 130


def cmd_down(config: ClusterConfig) -> int:
    cluster = LocalCluster(config)
    if not cluster.pid_file.exists():
        print("no cluster is running")
        return 0
    recorded = pidfile.recorded(cluster.pid_file)
    for name in sorted(n for n, r in recorded.items() if r.exited()):
        print(f"{name} was not running (see {recorded[name].log_path})")
    # Hold each port as its process goes, so the processes still running cannot take
    # it as an ephemeral port and make the next `make up` wait for their TIME_WAIT.
    reservation = PortReservation()

    def report(stopped: Stopped) -> None:
        print(stopped.describe(), flush=True)
        if stopped.name in cluster.processes:
            reservation.hold(cluster.processes[stopped.name].ports)

    started = time.monotonic()
    results = []
    if WATCHDOG in recorded:  # first, and alone: it may be restarting a daprd right now
        results += stop_in_stages([[recorded.pop(WATCHDOG)]], report=report)
        recorded = {n: r for n, r in pidfile.recorded(cluster.pid_file).items() if n in recorded}
    stages = [[recorded[n] for n in stage] for stage in stop_stages(list(recorded))]
    try:
        results += stop_in_stages(stages, report=report)
    finally:
        reservation.release()
    cluster.pid_file.unlink(missing_ok=True)
    killed = [r.name for r in results if r.killed]
    verdict = f"{len(killed)} needed SIGKILL: {', '.join(killed)}" if killed else "no SIGKILL"
    print(f"stopped in {time.monotonic() - started:.1f}s ({verdict})")
    return 0


def cmd_status(config: ClusterConfig) -> int:
    pid_file = LocalCluster(config).pid_file
    if not pid_file.exists():
        print("no cluster is running")
        return 3
    data = pidfile.read(pid_file)
    live = live_pids(pid_file)
    for name, entry in data["processes"].items():
        state = "running" if name in live else "DEAD"
        print(f"  {name:<22} pid {entry['pid']:<8} {state:<8} {entry['log']}")
    return 0 if len(live) == len(data["processes"]) else 1


def cmd_tokens(config: ClusterConfig, *, for_env: bool = False) -> int:
    """The cluster's two Dapr tokens, its Redis password and the gateway's client keys as
    shell exports: `eval "$(python -m cluster tokens)"`, then `curl -H "dapr-api-token:
    $DAPR_API_TOKEN" ...` calls a sidecar's API, `curl -H "Authorization: Bearer
    $ORDERFLOW_GATEWAY_KEY" ...` the gateway as its operator, `redis-cli -p 6380 ...`
    Redis (REDISCLI_AUTH)."""
    tokens = read_tokens(config.state_dir)
    if tokens is None:
        print(
            f"no tokens in {secrets_dir(config.state_dir)}: start the cluster first (`make up`)",
            file=sys.stderr,
        )
        return 3
    keys = keep_gateway_keys(config.state_dir)
    if for_env:  # what `make dapr-run` hands the dapr CLI: its daprds and apps inherit it
        run_env = {**tokens.env, "ORDERFLOW_GATEWAY_CLIENTS": str(keys.clients_file)}
        print(" ".join(f"{name}={shlex.quote(value)}" for name, value in run_env.items()))
        return 0
    # REDISCLI_AUTH: redis-cli's own variable, so `redis-cli -p 6380 ...` authenticates
    redis_cli = {"REDISCLI_AUTH": tokens.redis} if tokens.redis else {}
    for name, value in {**tokens.env, **keys.env, **redis_cli}.items():
        print(f"export {name}={shlex.quote(value)}")
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m cluster", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    up = sub.add_parser("up", help="start the cluster (foreground unless --detach)")
    up.add_argument("--detach", action="store_true", help="start and return")
    up.add_argument("--infra-only", action="store_true", help="only Redis, placement and scheduler")
    sub.add_parser("down", help="stop a detached cluster")
    sub.add_parser(
        "watch", help="the sidecar watchdog over a detached cluster (`up --detach` starts it)"
    )
    sub.add_parser("status", help="show the cluster's processes")
    sub.add_parser(
        "tokens",
        help="print the cluster's Dapr tokens and gateway client keys as shell exports",
    ).add_argument(
        "--env",
        action="store_true",
        help="NAME=value pairs for `env`: the two tokens and the gateway's clients file",
    )
    logs = sub.add_parser("logs", help="everything one order did, from every process's log")
    logs.add_argument("--order", required=True, help="the order id (ord-...)")
    logs.add_argument("--json", action="store_true", help="print the apps' JSON lines as they are")
    check = sub.add_parser("compose-check", help="validate docker-compose.yml")
    check.add_argument("path", type=Path)
    args = parser.parse_args(argv)
    config = ClusterConfig.from_env()
    if getattr(args, "infra_only", False):
        config = dataclasses.replace(config, with_apps=False)
    try:
        if args.command == "up":
            return cmd_up(config, detach=args.detach)
        if args.command == "down":
            return cmd_down(config)
        if args.command == "status":
            return cmd_status(config)
        if args.command == "tokens":
            return cmd_tokens(config, for_env=args.env)
        if args.command == "watch":
            return watch_detached(config, report=lambda line: print(line, flush=True))
        if args.command == "logs":
            from cluster import logs as order_logs

            return order_logs.main(config.log_dir, args.order, as_json=args.json)
        from cluster.compose import check_compose

        return int(check_compose(args.path))
    except ClusterError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
