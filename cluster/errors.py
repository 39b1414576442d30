"""The launcher's one error: a cluster process could not be started, stopped or made ready."""

from __future__ import annotations


class ClusterError(RuntimeError):
    """A cluster process could not be started or did not become ready.

    The message names the process, the cause and the next step (a log path and its tail).
    """
