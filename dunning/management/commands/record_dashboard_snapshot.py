"""Record today's dashboard snapshot now (what beat's task does), backfilling the missing days."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from dunning.reporting import TREND_DAYS, reminder_outcomes_rebuild, snapshots_record


class Command(BaseCommand):
    help = (
        "Records today's receivables snapshot for the dashboard (a second run today replaces today's "
        "figures), backfills each missing day of the last --days days from the order history, and "
        "rebuilds the reminder outcomes."
    )

    def add_arguments(self, parser):
        parser.add_argument("--days", type=int, default=TREND_DAYS,
                            help=f"Backfill missing days this far back (1-3660, default {TREND_DAYS}).")

    def handle(self, *args, days: int = TREND_DAYS, **options):
        if not 1 <= days <= 3660:
            raise CommandError(f"--days must be between 1 and 3660, not {days}")
        now = timezone.now()
        result = snapshots_record(now=now, backfill_days=days)
        outcomes = reminder_outcomes_rebuild(now=now)
        self.stdout.write(f"Snapshot of {result.day}: {result.rows} rows; {result.backfilled_days} days backfilled; "
                          f"{outcomes} reminder outcome rows.")
