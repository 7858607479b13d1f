"""Create the demo data (idempotent); see demo/writer.py."""

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from demo.writer import PlanConflict, demo_seed
from orders.importing import OrderImportError

ORDER = ["SalesAccount", "PaymentMethod", "DunningConfig", "EmailTemplate", "ReminderAssignment", "User", "Order",
         "Reminder"]


class Command(BaseCommand):
    help = (
        "Creates demo data: sales accounts Webshop, eBay and Amazon, payment methods, dunning configs, German "
        "and English reminder templates, the users 'support' (superuser) and 'backoffice' (Back office group) "
        "and a few hundred orders in every dunning state. Only what is missing is created; running it again "
        "changes nothing. Refuses to run with DEBUG off unless --force."
    )

    def add_arguments(self, parser):
        parser.add_argument("--force", action="store_true",
                            help="Run even with DEBUG off (creates users with known names on that database).")
        parser.add_argument("--reset-passwords", action="store_true",
                            help="Give the demo users new random passwords (and print them).")

    def handle(self, *args, force: bool = False, reset_passwords: bool = False, **options):
        if not settings.DEBUG and not force:
            raise CommandError("DEBUG is off (production?): seed_demo would create demo users and orders here; "
                               "use --force if you really mean it")
        try:
            result = demo_seed(now=timezone.now(), reset_passwords=reset_passwords)
        except PlanConflict as exc:  # nothing was written: it all runs in one transaction
            raise CommandError(f"the demo plan does not fit the rules, nothing was written: {exc}") from None
        except OrderImportError as exc:  # e.g. a second seed_demo created the same orders meanwhile
            raise CommandError(f"seed_demo wrote nothing: {' '.join(exc.problems)}") from None
        for name in ORDER:
            self.stdout.write(f"{name}: {result.totals.get(name, 0)} ({result.created.get(name, 0)} created)")
        for username, password in result.passwords.items():
            self.stdout.write(self.style.WARNING(
                f"user {username!r}: password {password}  (shown once; new one with --reset-passwords)"))
