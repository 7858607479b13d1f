"""HTML in, PDF out, with the letters' stylesheet: the part of letter rendering that needs no
database and no Django, so that it can run in a process of its own (dunning.letters renders large
batches on every core: `render_letters_pdf`). The stylesheet and the font configuration are set up
once per process (about 100 ms each time otherwise). Only data: URIs are loaded; nothing else is
fetched, so staff text can never make the renderer fetch a URL."""

from __future__ import annotations

from pathlib import Path

STYLESHEET = Path(__file__).parent / "templates" / "dunning" / "letters.css"
_state: tuple | None = None


def _setup() -> tuple:
    global _state
    if _state is None:
        from weasyprint import CSS
        from weasyprint.text.fonts import FontConfiguration

        fonts = FontConfiguration()
        _state = (CSS(string=STYLESHEET.read_text(), font_config=fonts), fonts)
    return _state


def layout(html: str):
    """The laid-out pages of a letters document (a weasyprint Document)."""
    from weasyprint import HTML
    from weasyprint.urls import URLFetcher

    css, fonts = _setup()
    return HTML(string=html, url_fetcher=URLFetcher(allowed_protocols=["data"])).render(
        stylesheets=[css], font_config=fonts)


def html_to_pdf(html: str) -> bytes:
    return layout(html).write_pdf()


def merge_pdfs(parts: list[bytes]) -> bytes:
    """One PDF of the pages of `parts`, in order (pypdf)."""
    import io

    from pypdf import PdfReader, PdfWriter

    writer = PdfWriter()
    for part in parts:
        writer.append(PdfReader(io.BytesIO(part)))
    out = io.BytesIO()
    writer.write(out)
    return out.getvalue()
