"""Start several callables at the same moment, each in its own thread with its own database
connection (for PostgreSQL tests with transaction=True), and collect their results."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection


def run_in_threads(*targets: Callable[[], Any], timeout: float = 120) -> list[Any]:
    barrier = threading.Barrier(len(targets))
    results: list[Any] = [None] * len(targets)
    errors: list[BaseException] = []

    def run(i: int, target: Callable[[], Any]) -> None:
        try:
            barrier.wait()
            results[i] = target()
        except Exception as exc:  # reported below, in the test's thread
            errors.append(exc)
        finally:
            connection.close()

    threads = [threading.Thread(target=run, args=(i, t)) for i, t in enumerate(targets)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout)
    assert not errors, errors
    assert not any(t.is_alive() for t in threads), "a thread did not finish in time"
    return results
