"""One heartbeat row per device and time: the batched intake writes a batch again after a writer
died mid-way (INSERT ... ON CONFLICT (device_id, received_at) DO NOTHING needs this index)."""

from django.db import migrations


class Migration(migrations.Migration):
    dependencies = [("devices", "0010_device_name_trigram")]

    operations = [
        migrations.RunSQL(
            "CREATE UNIQUE INDEX IF NOT EXISTS heartbeat_device_time_unique ON devices_heartbeat (device_id, received_at)",
            reverse_sql="DROP INDEX IF EXISTS heartbeat_device_time_unique",
        )
    ]
