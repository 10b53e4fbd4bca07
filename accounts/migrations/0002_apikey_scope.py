"""API key scopes. Keys that exist before scopes get ``admin``: they could do everything, and
nothing that worked before this migration stops working; new keys default to ``write``."""

from django.db import migrations, models

SCOPE_CHOICES = [
    ("read", "Read: safe methods only (GET, HEAD, OPTIONS)"),
    ("write", "Write: read, and create, change and delete resources"),
    ("admin", "Admin: write, and manage the account's API keys"),
]
SCOPE_HELP = "read: safe methods only; write: also changes; admin: also manages API keys."


class Migration(migrations.Migration):
    dependencies = [("accounts", "0001_initial")]

    operations = [
        migrations.AddField(
            model_name="apikey",
            name="scope",
            field=models.CharField(
                choices=SCOPE_CHOICES, default="admin", help_text=SCOPE_HELP, max_length=10
            ),
        ),
        migrations.AlterField(
            model_name="apikey",
            name="scope",
            field=models.CharField(
                choices=SCOPE_CHOICES, default="write", help_text=SCOPE_HELP, max_length=10
            ),
        ),
    ]
