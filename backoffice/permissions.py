"""Who may use the back-office pages: superusers and members of the "Back office" group."""

from collections.abc import Callable
from functools import wraps

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render

BACK_OFFICE_GROUP = "Back office"


def is_back_office(user) -> bool:
    if not (user.is_authenticated and user.is_active):
        return False
    if user.is_superuser:
        return True
    cached = getattr(user, "_is_back_office", None)
    if cached is None:
        cached = user.groups.filter(name=BACK_OFFICE_GROUP).exists()
        user._is_back_office = cached
    return cached


def back_office_required(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Anonymous users go to the login page; signed-in users outside the group get a 403."""

    @wraps(view)
    def wrapped(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        if not is_back_office(request.user):
            return render(request, "backoffice/forbidden.html", status=403)
        return view(request, *args, **kwargs)

    return login_required(wrapped)
