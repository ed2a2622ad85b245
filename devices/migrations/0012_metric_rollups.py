import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("devices", "0011_partitioned_heartbeats"),
    ]

    operations = [
        migrations.CreateModel(
            name="MetricRollup",
            fields=[
                (
                    "pk",
                    models.CompositePrimaryKey(
                        "device",
                        "resolution",
                        "bucket_start",
                        "metric",
                        blank=True,
                        editable=False,
                        primary_key=True,
                        serialize=False,
                    ),
                ),
                (
                    "device",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="metric_rollups",
                        to="devices.device",
                    ),
                ),
                ("resolution", models.PositiveIntegerField(choices=[(60, "Minute"), (3600, "Hour"), (86400, "Day")])),
                ("bucket_start", models.DateTimeField()),
                ("metric", models.CharField(blank=True, max_length=64)),
                ("count", models.PositiveIntegerField()),
                ("minimum", models.FloatField(null=True)),
                ("maximum", models.FloatField(null=True)),
                ("total", models.FloatField(null=True)),
            ],
            options={
                "indexes": [models.Index(fields=["resolution", "bucket_start"], name="rollup_resolution_time")],
            },
        ),
        migrations.CreateModel(
            name="RollupProgress",
            fields=[
                (
                    "resolution",
                    models.PositiveIntegerField(
                        choices=[(60, "Minute"), (3600, "Hour"), (86400, "Day")], primary_key=True, serialize=False
                    ),
                ),
                ("rolled_up_until", models.DateTimeField()),
            ],
        ),
    ]
