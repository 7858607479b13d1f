"""Choices shared in shape by the apps."""

from django.db import models


class ReasonChoices(models.TextChoices):
    """Reason codes that are stored (in a run's details, a result) and shown by their label later."""

    @classmethod
    def label_of(cls, code: str) -> str:
        """The label of a stored code; an unknown code (from an older version) is shown as it is."""
        return str(cls(code).label) if code in cls.values else code
