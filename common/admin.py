"""Admin helpers shared by the apps."""

from django.http import HttpRequest


class ReadOnlyAdminMixin:
    """A record of what happened (reminders, tracking events): viewable with the view permission,
    never added, changed or deleted by hand, not even by superusers."""

    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj=None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj=None) -> bool:
        return False
