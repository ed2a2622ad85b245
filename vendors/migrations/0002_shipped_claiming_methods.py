"""Install the claiming methods the portal ships with (vendors/claiming_methods.py)."""

from django.db import migrations

from vendors.claiming_methods import SHIPPED_METHODS, install_shipped_methods


def add_methods(apps, schema_editor):
    install_shipped_methods(apps.get_model("vendors", "ClaimingMethod"), apps.get_model("vendors", "IdentifierField"))


def remove_methods(apps, schema_editor):
    apps.get_model("vendors", "ClaimingMethod").objects.filter(
        slug__in=[spec["slug"] for spec in SHIPPED_METHODS], device_models__isnull=True
    ).delete()


class Migration(migrations.Migration):
    dependencies = [("vendors", "0001_initial")]

    operations = [migrations.RunPython(add_methods, remove_methods)]
