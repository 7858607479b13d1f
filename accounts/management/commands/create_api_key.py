"""`python manage.py create_api_key "<sales account name>" [--name ERP]`: prints the new key as its
last line (it is stored hashed and cannot be shown again)."""

from django.core.management.base import BaseCommand, CommandError

from accounts.models import SalesAccount
from accounts.services import api_key_create


class Command(BaseCommand):
    help = "Create an API key for a sales account and print it (shown only now)."

    def add_arguments(self, parser):
        parser.add_argument("sales_account", help="the sales account's name")
        parser.add_argument("--name", default="", help="what uses the key, e.g. ERP")

    def handle(self, *args, sales_account: str, name: str, **options):
        account = SalesAccount.objects.filter(name=sales_account).first()
        if account is None:
            known = ", ".join(SalesAccount.objects.values_list("name", flat=True)) or "none"
            raise CommandError(f"no sales account named {sales_account!r} (known: {known})")
        row, key = api_key_create(sales_account=account, name=name[:100])
        self.stdout.write(f"API key {row.prefix}... for {account.name} (store it now, it is not shown again):")
        self.stdout.write(key)
