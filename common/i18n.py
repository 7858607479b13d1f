"""Texts written into the database for people to read later (a run's or a reminder's error): one
language for everyone, the installation's (LANGUAGE_CODE), whoever's request or which worker wrote
them. Mark the message with `gettext_noop` where it is written so makemessages finds it."""

from __future__ import annotations

from django.conf import settings
from django.utils import translation


def stored_text(message: str, **params: object) -> str:
    """`message` translated into LANGUAGE_CODE, with `%(name)s` placeholders filled from `params`."""
    with translation.override(settings.LANGUAGE_CODE):
        text = translation.gettext(message)
    return text % params if params else text
