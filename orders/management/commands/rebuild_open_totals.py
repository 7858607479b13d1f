"""Recreate the triggers of the open orders' totals for TIME_ZONE and rebuild the totals from the
orders (orders/open_totals.py): after TIME_ZONE was changed, or to check them."""

from django.conf import settings
from django.core.management.base import BaseCommand

from orders import open_totals
from orders.models import OpenTotal


class Command(BaseCommand):
    help = ("Recreates the database triggers that keep the open orders' totals, for TIME_ZONE, and rebuilds the "
            "totals from the orders (needed after TIME_ZONE changed: until then the overview reads the orders).")

    def handle(self, *args, **options):
        before = open_totals.installed_time_zone()
        open_totals.install()
        rows = OpenTotal.objects.count()
        self.stdout.write(f"open orders' totals rebuilt for {settings.TIME_ZONE} (were for {before}): {rows} rows")
