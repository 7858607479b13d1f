"""Import (create or update) orders from a CSV file; see orders/importing.py and README "Importing orders"."""

from django.core.management.base import BaseCommand, CommandError

from orders.importing import COLUMNS, OPTIONAL_COLUMNS, OrderFileError, OrderImportError, import_orders_file


class Command(BaseCommand):
    help = (
        "Creates or updates orders, keyed by (sales account, number), from a UTF-8 CSV file (comma or "
        f"semicolon) with the header {','.join(COLUMNS)} (optionally {','.join(OPTIONAL_COLUMNS)}). "
        "Every row is checked first: one bad row and nothing is imported. Dunning state of existing orders "
        "is never changed."
    )

    def add_arguments(self, parser):
        parser.add_argument("file", help="Path of the CSV file.")
        parser.add_argument("--dry-run", action="store_true",
                            help="Check the file and print the counts; write nothing.")

    def handle(self, *args, file: str, dry_run: bool = False, **options):
        try:
            result = import_orders_file(file, dry_run=dry_run)
        except OrderFileError as exc:
            raise CommandError(str(exc)) from None
        except OrderImportError as exc:
            for line in exc.problems:
                self.stderr.write(line)
            count = len(exc.problems)
            raise CommandError(f"{count} problem{'s' if count != 1 else ''} in {file}: nothing imported") from None
        prefix = "dry run, nothing written: would have " if dry_run else ""
        self.stdout.write(prefix + result.summary())
        if result.changed_fields:
            fields = ", ".join(f"{name} {n}" for name, n in sorted(result.changed_fields.items()))
            self.stdout.write(f"changed fields: {fields}")
