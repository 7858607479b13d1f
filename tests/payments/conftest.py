import pytest
from django.utils import translation


@pytest.fixture(autouse=True)
def english():
    """The parser and import tests read the problems in English (what the command prints; it runs
    without translations). The German of the upload page: tests/backoffice/test_payments_pages.py."""
    with translation.override("en"):
        yield
