from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DunningAppConfig(AppConfig):
    name = "dunning"
    verbose_name = _("Dunning")
