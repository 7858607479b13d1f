"""Seeds the published base rates (§ 247 BGB, Deutsche Bundesbank) and lets the back-office group
view them; only support staff (superusers) change them."""

from decimal import Decimal

from django.contrib.auth.management import create_permissions
from django.db import migrations

PUBLISHED = [
    ("2024-07-01", "3.37"),
    ("2025-01-01", "2.27"),
    ("2025-07-01", "1.27"),
    ("2026-01-01", "1.27"),
]


def seed(apps, schema_editor):
    BaseRate = apps.get_model("dunning", "BaseRate")
    for valid_from, rate in PUBLISHED:
        BaseRate.objects.get_or_create(valid_from=valid_from, defaults={"rate": Decimal(rate)})
    # The permission is normally created after all migrations ran; create it now (see 0002).
    app_config = apps.get_app_config("dunning")
    app_config.models_module = True
    create_permissions(app_config, apps=apps, verbosity=0)
    app_config.models_module = None
    group = apps.get_model("auth", "Group").objects.filter(name="Back office").first()
    if group is not None:
        group.permissions.add(*apps.get_model("auth", "Permission").objects.filter(
            content_type__app_label="dunning", codename="view_baserate"))


def unseed(apps, schema_editor):
    apps.get_model("dunning", "BaseRate").objects.filter(valid_from__in=[d for d, _ in PUBLISHED]).delete()


class Migration(migrations.Migration):

    dependencies = [
        ("dunning", "0006_claim"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]

    operations = [migrations.RunPython(seed, unseed)]
