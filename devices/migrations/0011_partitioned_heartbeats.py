from django.db import migrations, models

# Heartbeats move to a table whose primary key is (device, received_at): on PostgreSQL a table
# partitioned by range of received_at (daily partitions are then created ahead, and dropped past the
# retention, by devices/heartbeat_partitions.py; the DEFAULT partition takes every heartbeat until
# then, so that heartbeats are accepted after `migrate` alone); on SQLite, the embedded default, a
# plain table. Existing rows are carried over; two of one device at the same instant become one.

POSTGRESQL = [
    "ALTER TABLE devices_heartbeat RENAME TO devices_heartbeat_unpartitioned",
    "ALTER INDEX devices_heartbeat_pkey RENAME TO devices_heartbeat_unpartitioned_pkey",
    "DROP INDEX heartbeat_device_time",
    "DROP INDEX heartbeat_time",
    """CREATE TABLE devices_heartbeat (
        device_id bigint NOT NULL,
        received_at timestamp with time zone NOT NULL,
        metrics jsonb NOT NULL,
        CONSTRAINT devices_heartbeat_pkey PRIMARY KEY (device_id, received_at)
    ) PARTITION BY RANGE (received_at)""",
    """ALTER TABLE devices_heartbeat ADD CONSTRAINT devices_heartbeat_device_id_fk_devices_device_id
        FOREIGN KEY (device_id) REFERENCES devices_device (id) DEFERRABLE INITIALLY DEFERRED""",
    "CREATE INDEX heartbeat_time ON devices_heartbeat (received_at)",
    "CREATE TABLE devices_heartbeat_default PARTITION OF devices_heartbeat DEFAULT",
    """INSERT INTO devices_heartbeat (device_id, received_at, metrics)
        SELECT device_id, received_at, metrics FROM devices_heartbeat_unpartitioned ON CONFLICT DO NOTHING""",
    "DROP TABLE devices_heartbeat_unpartitioned",
]

SQLITE = [
    """CREATE TABLE devices_heartbeat_keyed (
        "device_id" bigint NOT NULL REFERENCES "devices_device" ("id") DEFERRABLE INITIALLY DEFERRED,
        "received_at" datetime NOT NULL,
        "metrics" text NOT NULL CHECK ((JSON_VALID("metrics") OR "metrics" IS NULL)),
        PRIMARY KEY ("device_id", "received_at")
    )""",
    """INSERT OR IGNORE INTO devices_heartbeat_keyed (device_id, received_at, metrics)
        SELECT device_id, received_at, metrics FROM devices_heartbeat""",
    "DROP TABLE devices_heartbeat",
    "ALTER TABLE devices_heartbeat_keyed RENAME TO devices_heartbeat",
    'CREATE INDEX "heartbeat_time" ON "devices_heartbeat" ("received_at")',
]


def rebuild_heartbeat_table(apps, schema_editor):
    statements = POSTGRESQL if schema_editor.connection.vendor == "postgresql" else SQLITE
    for statement in statements:
        schema_editor.execute(statement)


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0010_device_name_trigram"),
    ]

    operations = [
        migrations.SeparateDatabaseAndState(
            state_operations=[
                migrations.RemoveIndex(model_name="heartbeat", name="heartbeat_device_time"),
                migrations.AddField(
                    model_name="heartbeat",
                    name="pk",
                    field=models.CompositePrimaryKey(
                        "device", "received_at", blank=True, editable=False, primary_key=True, serialize=False
                    ),
                ),
                migrations.RemoveField(model_name="heartbeat", name="id"),
            ],
            database_operations=[migrations.RunPython(rebuild_heartbeat_table, elidable=False)],
        ),
    ]
