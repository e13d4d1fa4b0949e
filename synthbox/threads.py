"""One way to start a background thread: named, a daemon, and its death logged."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from typing import Any

log = logging.getLogger("synthbox.threads")


def start_thread(name: str, fn: Callable[..., Any], *args: Any) -> threading.Thread:
    """Run `fn(*args)` in a daemon thread called `name`; an exception that ends it is
    logged with the thread's name, then raised as the thread's end."""

    def run() -> None:
        try:
            fn(*args)
        except BaseException:
            log.exception("thread %s ended with an error", name)
            raise

    thread = threading.Thread(target=run, name=name, daemon=True)
    thread.start()
    return thread
