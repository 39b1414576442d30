"""Port preflight and reservations: what daprd and Redis can bind, and who holds a port.

daprd, placement, scheduler (Go), Redis and uvicorn all bind their listeners with
SO_REUSEADDR. The kernel then lets them bind a port that only sockets with SO_REUSEADDR
hold and that nobody listens on, e.g. the TIME_WAIT ends of a previous listener's
connections. It refuses the bind while a socket WITHOUT SO_REUSEADDR holds the port:
a client's connection whose ephemeral local port happens to be one of ours (most of
our ports lie in Linux's ephemeral range, 32768-60999), live or in TIME_WAIT for 60 s.

So the preflight binds exactly as they do. When that fails it looks at who holds the
port (/proc/net/tcp): a listener is "in use" (fail at once, naming the pid when it can);
a connection in TIME_WAIT clears by itself (wait, up to `TIME_WAIT_S`); a live
connection's local end does not (fail, naming it). A `PortReservation` keeps the kernel
from handing our ports to clients while a process is down or starting: a socket bound
with SO_REUSEADDR and not listening blocks ephemeral allocation of its port but not a
listener's bind.
"""

from __future__ import annotations

import contextlib
import os
import socket
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from cluster.errors import ClusterError

TIME_WAIT_S = 65.0  # Linux keeps TIME_WAIT for 60 s (fixed), plus a margin
# /proc/net/tcp's state column; the ones that end by themselves are "lingering"
_STATES = {
    "01": "ESTABLISHED",
    "02": "SYN_SENT",
    "03": "SYN_RECV",
    "04": "FIN_WAIT1",
    "05": "FIN_WAIT2",
    "06": "TIME_WAIT",
    "07": "CLOSE",
    "08": "CLOSE_WAIT",
    "09": "LAST_ACK",
    "0A": "LISTEN",
    "0B": "CLOSING",
}
_LINGERING = {"TIME_WAIT", "FIN_WAIT1", "FIN_WAIT2", "CLOSING", "LAST_ACK"}


@dataclass(frozen=True)
class Holder:
    """One socket bound to a port, as /proc/net/tcp{,6} lists it."""

    state: str
    peer_port: int
    inode: int

    def describe(self) -> str:
        if self.state == "LISTEN":
            return "a listening socket"
        return f"a connection's local end ({self.state}, peer port {self.peer_port})"


def holders(port: int) -> list[Holder]:
    """Every socket whose local port is `port` (empty where /proc is not available)."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(OSError):
            for line in Path(table).read_text().splitlines()[1:]:
                fields = line.split()
                local, peer, state, inode = fields[1], fields[2], fields[3], fields[9]
                if int(local.rsplit(":", 1)[1], 16) == port:
                    found.append(
                        Holder(
                            state=_STATES.get(state, state),
                            peer_port=int(peer.rsplit(":", 1)[1], 16),
                            inode=int(inode),
                        )
                    )
    return found


def pids_of(inode: int) -> list[str]:
    """`<pid> (<name>)` of processes holding socket `inode` (those we may inspect)."""
    target = f"socket:[{inode}]"
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            if any(os.readlink(fd) == target for fd in (proc / "fd").iterdir()):
                found.append(f"{proc.name} ({(proc / 'comm').read_text().strip()})")
    return found


def any_free_port() -> int:
    """A loopback port the kernel has free now (for a throwaway listener, e.g. a bench's)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def can_bind(port: int) -> bool:
    """Whether a listener with SO_REUSEADDR (daprd, Redis, uvicorn) can bind the port now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind(("127.0.0.1", port))
            sock.listen(1)
        except OSError:
            return False
    return True


def ensure_port_free(port: int, owner: str, *, time_wait_s: float = 0.0) -> None:
    """Return when `owner` can bind `port`; else fail naming the holder.

    With `time_wait_s`, wait that long for connections in TIME_WAIT to clear first (the
    launcher waits `TIME_WAIT_S`; a poll loop passes nothing and gets the error at once).
    """
    deadline = time.monotonic() + time_wait_s
    announced = False
    while not can_bind(port):
        found = holders(port)
        listening = [h for h in found if h.state == "LISTEN"]
        if listening or not found:
            raise ClusterError(_in_use(port, owner, listening))
        lingering = all(h.state in _LINGERING for h in found)
        if not lingering or time.monotonic() > deadline:
            raise ClusterError(_held(port, owner, found, waited=time_wait_s if lingering else 0))
        if not announced and time_wait_s > 0:
            print(
                f"port {port} (needed by {owner}) is held by {found[0].describe()}: "
                f"waiting up to {time_wait_s:.0f}s for the kernel to release it",
                file=sys.stderr,
                flush=True,
            )
            announced = True
        time.sleep(0.5)


def _in_use(port: int, owner: str, listening: list[Holder]) -> str:
    who = ", ".join(p for h in listening for p in pids_of(h.inode))
    return (
        f"port {port} (needed by {owner}) is already in use on 127.0.0.1"
        + (f": pid {who} listens there" if who else "")
        + ". Stop whatever listens there (a cluster from `make up`? then `make down`), "
        "or move every port with ORDERFLOW_PORT_OFFSET=<n>."
    )


def _held(port: int, owner: str, found: list[Holder], *, waited: float) -> str:
    states = ", ".join(sorted({h.describe() for h in found}))
    return (
        f"port {port} (needed by {owner}) is held by {states}, not by a listener, and "
        f"{owner} cannot bind it (a client got it as its ephemeral port; the kernel range is "
        f"{_ephemeral_range()}). A TIME_WAIT end clears within 60 s"
        + (f" (waited {waited:.0f}s)" if waited else "")
        + "; "
        f"a live connection keeps it until it closes: `ss -tanp '( sport = :{port} )'` "
        "names it. Retry, or move every port with ORDERFLOW_PORT_OFFSET=<n>."
    )


def _ephemeral_range() -> str:
    try:
        low, high = Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()
    except (OSError, ValueError):
        return "unknown"
    return f"{low}-{high}"


class PortReservation:
    """Bound, non-listening SO_REUSEADDR sockets: the kernel gives these ports to no client.

    A listener with SO_REUSEADDR still binds them, so a reservation may stay in place
    until the process that needs the port is up.
    """

    def __init__(self) -> None:
        self._sockets: dict[int, socket.socket] = {}

    def hold(self, ports: Iterable[int]) -> None:
        for port in ports:
            if port in self._sockets:
                continue
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                sock.close()  # held by someone else: the preflight reports it
                continue
            self._sockets[port] = sock

    def release(self, ports: Iterable[int] | None = None) -> None:
        for port in list(self._sockets if ports is None else ports):
            sock = self._sockets.pop(port, None)
            if sock is not None:
                sock.close()

    @property
    def ports(self) -> set[int]:
        return set(self._sockets)
