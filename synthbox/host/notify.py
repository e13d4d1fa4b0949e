"""systemd's notify protocol, written to NOTIFY_SOCKET directly (it is one datagram).

`READY=1` once SynthBox serves and its queues run, `STOPPING=1` when it begins to
stop, and `WATCHDOG=1` every half of `WatchdogSec` while the process is healthy.
Without NOTIFY_SOCKET (not under systemd) every call does nothing.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
from collections.abc import Callable

from synthbox.threads import start_thread


def notify(state: str) -> bool:
    """Send `state` (e.g. "READY=1") to systemd. True if it was sent."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
            sock.connect(address)
            sock.sendall(state.encode())
        return True
    except OSError:
        return False


def watchdog_interval() -> float | None:
    """Seconds between WATCHDOG=1 pings (half of WatchdogSec), or None if not asked for."""
    usec = os.environ.get("WATCHDOG_USEC")
    pid = os.environ.get("WATCHDOG_PID")
    # The one-file binary runs as a child of its launcher, which is systemd's main PID.
    ours = {str(os.getpid()), str(os.getppid())} if getattr(sys, "frozen", False) else {
        str(os.getpid())}
    if not usec or not usec.isdigit() or (pid and pid not in ours):
        return None
    return int(usec) / 1_000_000 / 2


def start_watchdog(stopped: threading.Event, healthy: Callable[[], bool]) -> None:
    """Ping the watchdog while `healthy()` holds, until `stopped` is set."""
    interval = watchdog_interval()
    if interval is None:
        return

    def ping() -> None:
        while not stopped.wait(interval):
            if healthy():
                notify("WATCHDOG=1")

    start_thread("watchdog", ping)
