from django.contrib.postgres.operations import TrigramExtension
from django.db import migrations

# The name search is UPPER(name) LIKE UPPER('%word%') (Django's icontains): a trigram index on that
# expression answers it without reading every device. PostgreSQL only: SQLite, the embedded
# default, has no such index and scans, which is fine at its size. Kept out of the model's
# Meta.indexes so that SQLite's table rebuilds never try to create it.
INDEX = "device_name_trgm"


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(
            f'CREATE INDEX IF NOT EXISTS {INDEX} ON devices_device USING gin ((UPPER("name"::text)) gin_trgm_ops)'
        )


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(f"DROP INDEX IF EXISTS {INDEX}")


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0009_activation_error_codes"),
    ]

    operations = [
        TrigramExtension(),
        migrations.RunPython(create_index, drop_index, elidable=False),
    ]
