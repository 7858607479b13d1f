from django.apps import AppConfig
from django.utils.translation import gettext_lazy as _


class DunningAppConfig(AppConfig):
    name = "dunning"
    verbose_name = _("Dunning")

    def ready(self) -> None:
        from anymail.signals import tracking

        from . import (
            checks,  # noqa: F401  (registers the system checks)
            tasks,  # noqa: F401  (registers the tasks in every process: the web queues Notify by name)
        )
        from .tracking import on_tracking_event

        # The provider's delivery webhooks (delivered, bounced, complained) update the reminders.
        tracking.connect(on_tracking_event, dispatch_uid="dunning.tracking.on_tracking_event")
