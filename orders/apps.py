from django.apps import AppConfig
from django.db.backends.signals import connection_created
from django.utils.translation import gettext_lazy as _


class OrdersConfig(AppConfig):
    name = "orders"
    verbose_name = _("Orders")

    def ready(self) -> None:
        from .open_totals import register_sqlite_functions

        # the SQLite triggers of the open orders' totals call these (orders.open_totals)
        connection_created.connect(register_sqlite_functions, dispatch_uid="orders_open_totals_sqlite")
