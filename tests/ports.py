"""A free TCP port on this machine for a test's server or process group (the OS picks it)."""

from __future__ import annotations

import socket


def free_port() -> int:
    """A port nothing listens on now (bound and released: a race is possible, rarely hit)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
