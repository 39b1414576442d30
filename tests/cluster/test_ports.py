"""The port preflight accepts what daprd and Redis can bind and names what they cannot."""

from __future__ import annotations

import os
import socket
import time

import pytest

from cluster.ports import PortReservation, ensure_port_free, holders
from cluster.processes import ClusterError


@pytest.fixture
def time_wait_port() -> int:
    """A port whose only socket is in TIME_WAIT, left by a closed listener's connection.

    The side that closes first ends in TIME_WAIT. Here the server closes first, so the
    TIME_WAIT end is the accepted socket, whose local port is the listener's port: the
    state a daprd or Redis leaves behind when it stops with clients connected. The
    listener sets SO_REUSEADDR, as Go's net.Listen, Redis and uvicorn do.
    """
    listener = socket.create_server(("127.0.0.1", 0))
    port: int = listener.getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # active close: this end goes FIN_WAIT -> TIME_WAIT
    client.recv(1)  # the peer sees EOF ...
    client.close()  # ... and answers with its own FIN, completing the handshake
    listener.close()
    deadline = time.monotonic() + 5
    while [h.state for h in holders(port)] != ["TIME_WAIT"] and time.monotonic() < deadline:
        time.sleep(0.02)
    return port


def test_a_port_held_only_by_a_time_wait_socket_is_not_in_use(time_wait_port: int) -> None:
    assert [h.state for h in holders(time_wait_port)] == ["TIME_WAIT"]

    ensure_port_free(time_wait_port, "placement")

    with socket.create_server(("127.0.0.1", time_wait_port)):  # and a listener binds it
        pass


def test_a_listening_port_is_in_use_and_the_error_names_the_listener() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        port = listener.getsockname()[1]
        with pytest.raises(ClusterError, match=rf"port {port} \(needed by redis\)") as caught:
            ensure_port_free(port, "redis")

    assert "already in use" in str(caught.value)
    assert f"pid {os.getpid()} (" in str(caught.value)


def test_a_live_client_connection_on_the_port_is_named_as_such_not_as_a_listener() -> None:
    with socket.create_server(("127.0.0.1", 0)) as listener:
        client = socket.create_connection(("127.0.0.1", listener.getsockname()[1]))
        accepted, _ = listener.accept()
        port = client.getsockname()[1]  # the client's ephemeral port, no SO_REUSEADDR
        try:
            started = time.monotonic()
            with pytest.raises(ClusterError, match="connection's local end \\(ESTABLISHED"):
                ensure_port_free(port, "actor-host-1-daprd", time_wait_s=30)
            assert time.monotonic() - started < 5  # a live connection is not waited for
        finally:
            client.close()
            accepted.close()


def test_a_reserved_port_is_skipped_by_clients_but_a_listener_still_binds_it() -> None:
    reservation = PortReservation()
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    reservation.hold([port])
    try:
        ensure_port_free(port, "scheduler")
        with socket.create_server(("127.0.0.1", port)) as listener:
            assert listener.getsockname()[1] == port
    finally:
        reservation.release()
    assert reservation.ports == set()
