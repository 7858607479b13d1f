"""`python manage.py import_statement FILE... [--dry-run]`: camt.053 (XML or ZIP) and MT940 files.
Prints `entries N, payments P, matched M, unmatched U, duplicates D, ignored I` and exits 0; a file
it cannot read: one line naming it (and the entry where known), exit 1, nothing written."""

from django.core.management.base import BaseCommand, no_translations
from django.utils import timezone

from payments.services import ImportRefused, statements_import


class Command(BaseCommand):
    help = "Import bank statements (camt.053 XML or ZIP, MT940) and match their payments to orders."

    def add_arguments(self, parser):
        parser.add_argument("files", nargs="+", metavar="FILE")
        parser.add_argument("--dry-run", action="store_true", help="Read and match, write nothing.")

    @no_translations  # one line in English (the upload page says the same in the user's language)
    def handle(self, *args, files, dry_run, **options):
        try:
            result = statements_import(files, dry_run=dry_run, now=timezone.now())
        except ImportRefused as exc:
            self.stderr.write(str(exc))
            raise SystemExit(1) from None
        self.stdout.write(result.line())
