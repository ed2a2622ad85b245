from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("accounts", "0006_invitation_delivery"),
    ]

    operations = [
        migrations.AddField(
            model_name="invitation",
            name="email_attempts",
            field=models.PositiveSmallIntegerField(default=0),
        ),
    ]
