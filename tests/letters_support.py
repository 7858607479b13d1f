"""Reading letters back: WeasyPrint needs pango (skipped with the reason where it is missing, and
failing instead under MAHNWESEN_NO_SKIP=1, see tests/conftest.py); the QR code is read from a page
rendered by poppler's pdftoppm with zxing-cpp."""

from __future__ import annotations

import io
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

MM = 72 / 25.4  # PDF points per millimetre
# DIN 5008 form B: the address field, which shows in the window of a DL envelope
WINDOW = {"x0": 20 * MM, "x1": 105 * MM, "top": 45 * MM, "bottom": 90 * MM}


def weasyprint_missing() -> str | None:
    try:
        import weasyprint  # noqa: F401  (loads pango through cffi)
    except (ImportError, OSError) as exc:
        return f"WeasyPrint cannot load its libraries (apt-get install libpango-1.0-0 libpangoft2-1.0-0): {exc}"
    return None


@pytest.fixture
def needs_weasyprint():
    reason = weasyprint_missing()
    if reason:
        pytest.skip(reason)


@pytest.fixture
def needs_qr_reader(needs_weasyprint):
    if shutil.which("pdftoppm") is None:
        pytest.skip("pdftoppm is missing (apt-get install poppler-utils)")
    try:
        import zxingcpp  # noqa: F401
    except ImportError as exc:
        pytest.skip(f"zxing-cpp is missing (pip install zxing-cpp): {exc}")


def read_qr_codes_png(png: bytes) -> list[str]:
    import zxingcpp
    from PIL import Image

    return [r.text for r in zxingcpp.read_barcodes(Image.open(io.BytesIO(png)))
            if r.format == zxingcpp.BarcodeFormat.QRCode]


def read_qr_codes_pdf(pdf: bytes, page: int = 1) -> list[str]:
    """The QR codes on a page of `pdf`, rendered at 200 dpi by pdftoppm."""
    with tempfile.TemporaryDirectory() as tmp:
        source = Path(tmp) / "letter.pdf"
        source.write_bytes(pdf)
        subprocess.run(["pdftoppm", "-r", "200", "-png", "-f", str(page), "-l", str(page), "-singlefile",
                        str(source), str(Path(tmp) / "page")], check=True, timeout=60)
        return read_qr_codes_png((Path(tmp) / "page.png").read_bytes())


def page_words(pdf: bytes, page: int = 0) -> list[dict]:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        return doc.pages[page].extract_words(keep_blank_chars=False, extra_attrs=["fontname", "size"])


def page_chars(pdf: bytes, page: int = 0) -> list[dict]:
    import pdfplumber

    with pdfplumber.open(io.BytesIO(pdf)) as doc:
        return list(doc.pages[page].chars)


def page_text(pdf: bytes) -> str:
    import pypdf

    return "\n".join(p.extract_text() for p in pypdf.PdfReader(io.BytesIO(pdf)).pages)


def in_window(item: dict) -> bool:
    return (item["x0"] >= WINDOW["x0"] - 0.5 and item["x1"] <= WINDOW["x1"] + 0.5
            and item["top"] >= WINDOW["top"] - 0.5 and item["bottom"] <= WINDOW["bottom"] + 0.5)
