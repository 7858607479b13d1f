from django.contrib.auth.management import create_permissions
from django.db import migrations

BACK_OFFICE_PERMISSIONS = {
    "accounts": {"salesaccount": ["view", "change"]},
    "orders": {"order": ["view", "change"], "orderevent": ["view"], "paymentmethod": ["view"]},
    "dunning": {
        "dunningconfig": ["view", "add", "change", "delete"],
        "emailtemplate": ["view", "add", "change", "delete"],
        "reminderassignment": ["view", "add", "change", "delete"],
        "reminder": ["view"],
        "dunningrun": ["view"],
    },
}


def create_back_office_group(apps, schema_editor):
    # Permissions are normally created after all migrations ran; create them now so the group
    # can hold them on a fresh database.
    for app_config in apps.get_app_configs():
        app_config.models_module = True
        create_permissions(app_config, apps=apps, verbosity=0)
        app_config.models_module = None
    Group = apps.get_model("auth", "Group")
    Permission = apps.get_model("auth", "Permission")
    group, _ = Group.objects.get_or_create(name="Back office")
    wanted = []
    for app_label, models in BACK_OFFICE_PERMISSIONS.items():
        for model, actions in models.items():
            wanted += [f"{action}_{model}" for action in actions]
    perms = Permission.objects.filter(content_type__app_label__in=BACK_OFFICE_PERMISSIONS, codename__in=wanted)
    group.permissions.set(perms)
    DunningAutomation = apps.get_model("dunning", "DunningAutomation")
    DunningAutomation.objects.get_or_create(pk=1)


def remove_back_office_group(apps, schema_editor):
    apps.get_model("auth", "Group").objects.filter(name="Back office").delete()


class Migration(migrations.Migration):
    dependencies = [
        ("dunning", "0001_initial"),
        ("orders", "0001_initial"),
        ("accounts", "0001_initial"),
        ("auth", "0012_alter_user_first_name_max_length"),
        ("contenttypes", "0002_remove_content_type_name"),
    ]
    operations = [migrations.RunPython(create_back_office_group, remove_back_office_group)]
