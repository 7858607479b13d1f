"""Everything collected under tests/integration/ needs real services or processes (a Celery worker
and broker, PostgreSQL row locks under threads, a SIGKILLed process, a browser) and is marked
`integration`: `pytest -m "not integration"` (`make test-fast`) is the fast core run."""

from pathlib import Path

import pytest

HERE = Path(__file__).parent


def pytest_collection_modifyitems(items):
    # A conftest hook sees the items of the whole session, so only the ones collected here are marked.
    for item in items:
        if item.path.is_relative_to(HERE):
            item.add_marker(pytest.mark.integration)
