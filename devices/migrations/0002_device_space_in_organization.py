"""A device's space belongs to the device's organization, enforced by the database.

PostgreSQL gets a composite foreign key (space, organization) -> space (id, organization);
SQLite, which cannot add a foreign key to an existing table, gets triggers with the same effect.
"""

from django.db import migrations

POSTGRES_FORWARD = """
ALTER TABLE devices_device
    ADD CONSTRAINT device_space_in_organization
    FOREIGN KEY (space_id, organization_id) REFERENCES spaces_space (id, organization_id);
"""
POSTGRES_BACKWARD = "ALTER TABLE devices_device DROP CONSTRAINT device_space_in_organization;"

SQLITE_CHECK = """
SELECT RAISE(ABORT, 'device_space_in_organization: the space belongs to another organization')
WHERE NEW.space_id IS NOT NULL AND NOT EXISTS (
    SELECT 1 FROM spaces_space WHERE id = NEW.space_id AND organization_id IS NEW.organization_id
);
"""
SQLITE_FORWARD = [
    f"CREATE TRIGGER device_space_in_organization_insert BEFORE INSERT ON devices_device BEGIN {SQLITE_CHECK} END;",
    f"CREATE TRIGGER device_space_in_organization_update BEFORE UPDATE ON devices_device BEGIN {SQLITE_CHECK} END;",
]
SQLITE_BACKWARD = [
    "DROP TRIGGER device_space_in_organization_insert;",
    "DROP TRIGGER device_space_in_organization_update;",
]


def forward(apps, schema_editor):
    statements = [POSTGRES_FORWARD] if schema_editor.connection.vendor == "postgresql" else SQLITE_FORWARD
    for statement in statements:
        schema_editor.execute(statement)


def backward(apps, schema_editor):
    statements = [POSTGRES_BACKWARD] if schema_editor.connection.vendor == "postgresql" else SQLITE_BACKWARD
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0001_initial"),
        ("spaces", "0001_initial"),
    ]

    operations = [migrations.RunPython(forward, backward)]
