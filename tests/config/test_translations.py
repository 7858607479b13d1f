"""The back office is German and English: every text the code marks for translation has a German
translation, and the compiled catalogue is the one the sources give. Runs Django's makemessages on
a copy of the sources (it rewrites the catalogue in place) and reads the result with msgattrib."""

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PO = "locale/de/LC_MESSAGES/django.po"


@pytest.mark.skipif(not (shutil.which("xgettext") and shutil.which("msgattrib") and shutil.which("msgfmt")),
                    reason="needs GNU gettext (xgettext, msgattrib, msgfmt: apt-get install gettext)")
def test_every_marked_text_has_a_german_translation(tmp_path):
    copy = tmp_path / "src"
    shutil.copytree(ROOT, copy, ignore=shutil.ignore_patterns(".venv", ".git", "tests", "scripts", "var",
                                                              "node_modules", "__pycache__", "*.sqlite3",
                                                              ".pytest_cache"))
    subprocess.run([sys.executable, "manage.py", "makemessages", "-l", "de", "-v", "0"], cwd=copy, check=True,
                   env={"PATH": "/usr/bin:/bin", "DJANGO_DEBUG": "true", "DJANGO_SETTINGS_MODULE": "config.settings"},
                   capture_output=True)
    missing = subprocess.run(["msgattrib", "--untranslated", "--no-obsolete", str(copy / PO)],
                             capture_output=True, text=True, check=True).stdout
    fuzzy = subprocess.run(["msgattrib", "--only-fuzzy", "--no-obsolete", str(copy / PO)],
                           capture_output=True, text=True, check=True).stdout
    ids = [line for line in (missing + fuzzy).splitlines() if line.startswith("msgid ") and line != 'msgid ""']
    assert not ids, f"texts without a German translation (add them to {PO}, then msgfmt): {ids}"


@pytest.mark.skipif(not shutil.which("msgfmt"), reason="needs GNU gettext (msgfmt: apt-get install gettext)")
def test_the_compiled_catalogue_is_up_to_date(tmp_path):
    fresh = tmp_path / "django.mo"
    subprocess.run(["msgfmt", "--check", "-o", str(fresh), str(ROOT / PO)], check=True)
    assert fresh.read_bytes() == (ROOT / PO.replace(".po", ".mo")).read_bytes(), "run msgfmt on the .po"
