"""Run the dunning job once, now, whatever the global switch says."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from accounts.models import SalesAccount
from dunning.models import DunningRun
from dunning.services import dunning_run_execute


class Command(BaseCommand):
    help = (
        "Runs the dunning job once, now, whatever the global switch says: the automatic reminders of "
        "every active config, then the prepayment cancellation. Safe alongside a scheduled run."
    )

    def add_arguments(self, parser):
        parser.add_argument("--dry-run", action="store_true",
                            help="Print what would be sent and flagged; change and send nothing.")
        parser.add_argument("--sales-account", metavar="NAME", help="Only this sales account (its exact name).")

    def handle(self, *args, dry_run: bool = False, sales_account: str | None = None, **options):
        account_id = None
        if sales_account is not None:
            account = SalesAccount.objects.filter(name=sales_account).first()
            if account is None:
                known = ", ".join(SalesAccount.objects.values_list("name", flat=True)) or "none"
                raise CommandError(f"unknown sales account {sales_account!r} (known: {known})")
            account_id = account.id
        run = dunning_run_execute(now=timezone.now(), trigger=DunningRun.Trigger.COMMAND, dry_run=dry_run,
                                  sales_account_id=account_id)
        self._print(run)
        if run.error:
            self.stderr.write(run.error)

    def _print(self, run: DunningRun) -> None:
        out = self.stdout
        out.write(("DRY RUN: nothing was sent or changed. " if run.dry_run else "") +
                  f"Run #{run.pk} in {run.duration_ms} ms.")
        levels = run.details.get("levels", {})
        if not levels:
            out.write("Reminders: none due.")
        for account in sorted(levels):
            for level in sorted(levels[account]):
                counts = levels[account][level]
                text = ", ".join(f"{k} {v}" for k, v in sorted(counts.items()))
                out.write(f"  {account} / level {level}: {text}")
        cancellation = run.details.get("cancellation", {})
        if not cancellation:
            out.write("Prepayment cancellation: nothing to do.")
        for account in sorted(cancellation):
            c = cancellation[account]
            verb = "would flag" if run.dry_run else "flagged"
            verb2 = "would cancel" if run.dry_run else "cancelled"
            out.write(f"  {account}: {verb} {c['flagged']}, {verb2} {c['cancelled']}")
        if not run.dry_run:
            out.write(f"Total: sent {run.sent}, failed {run.failed}, skipped {run.skipped}, "
                      f"flagged {run.flagged}, cancelled {run.cancelled}.")
