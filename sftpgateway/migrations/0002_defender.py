import django.db.models.deletion
from django.db import migrations, models


def lockouts_to_bans(apps, schema_editor):
    """Username lockouts become bans of the address they came from; "lockout" rows become "ban".

    The defender bans addresses only. A credential still locked out is carried over as a ban,
    until the same moment, of the address its last lockout named; the lockouts that lived only
    in Redis (addresses guessing unknown usernames) end with this release.
    """
    from django.utils import timezone

    credentials = apps.get_model("sftpgateway", "SftpCredential")
    activity = apps.get_model("sftpgateway", "SftpActivity")
    hosts = apps.get_model("sftpgateway", "DefenderHost")
    now = timezone.now()
    for credential in credentials.objects.filter(locked_until__gt=now):
        last = (
            activity.objects.filter(credential=credential, event="lockout")
            .exclude(remote_address="")
            .order_by("-created_at")
            .first()
        )
        if last is None:
            continue
        hosts.objects.update_or_create(
            address=last.remote_address,
            defaults={
                "banned_until": credential.locked_until,
                "banned_at": last.created_at,
                "ban_count": 1,
                "ban_reason": f"Lockout of {credential.username} before the defender",
                "credential": credential,
                "last_event_at": last.created_at,
            },
        )
    activity.objects.filter(event="lockout").update(event="ban")


def bans_to_lockouts(apps, schema_editor):
    apps.get_model("sftpgateway", "SftpActivity").objects.filter(event="ban").update(
        event="lockout"
    )


class Migration(migrations.Migration):
    dependencies = [
        ("sftpgateway", "0001_initial"),
    ]

    operations = [
        migrations.AlterField(
            model_name="sftpactivity",
            name="event",
            field=models.CharField(
                choices=[
                    ("login", "Login"),
                    ("login_failed", "Failed login"),
                    ("ban", "Address banned"),
                    ("unban", "Ban lifted"),
                    ("upload", "Upload"),
                    ("upload_failed", "Failed upload"),
                    ("partial", "Partial upload"),
                    ("refused", "Refused request"),
                    ("disconnected", "Disconnected by the gateway"),
                ],
                max_length=20,
            ),
        ),
        migrations.CreateModel(
            name="DefenderHost",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                ("address", models.CharField(max_length=64, unique=True)),
                ("banned_until", models.DateTimeField(blank=True, db_index=True, null=True)),
                ("banned_at", models.DateTimeField(blank=True, null=True)),
                (
                    "ban_count",
                    models.PositiveIntegerField(
                        default=0,
                        help_text="Bans so far; each one lasts longer than the one before.",
                    ),
                ),
                ("ban_reason", models.CharField(blank=True, max_length=300)),
                (
                    "refused_count",
                    models.PositiveIntegerField(
                        default=0, help_text="Connections refused during the current ban."
                    ),
                ),
                ("last_event_at", models.DateTimeField(blank=True, null=True)),
                ("created_at", models.DateTimeField(auto_now_add=True)),
                (
                    "credential",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="sftpgateway.sftpcredential",
                    ),
                ),
                (
                    "refused_activity",
                    models.ForeignKey(
                        blank=True,
                        null=True,
                        on_delete=django.db.models.deletion.SET_NULL,
                        related_name="+",
                        to="sftpgateway.sftpactivity",
                    ),
                ),
            ],
            options={
                "verbose_name": "SFTP source address",
                "verbose_name_plural": "SFTP source addresses (defender)",
                "ordering": ["-banned_until", "-last_event_at"],
            },
        ),
        migrations.CreateModel(
            name="DefenderEvent",
            fields=[
                ("id", models.BigAutoField(primary_key=True, serialize=False)),
                (
                    "kind",
                    models.CharField(
                        choices=[
                            ("login_failed", "wrong password"),
                            ("unknown_user", "unknown username"),
                            ("no_login", "connection closed without logging in"),
                            ("limit_exceeded", "connection over the per-address limits"),
                        ],
                        max_length=20,
                    ),
                ),
                ("score", models.PositiveIntegerField()),
                (
                    "connections",
                    models.PositiveIntegerField(
                        default=1,
                        help_text="Connections this row counts (those over the limits come in batches).",
                    ),
                ),
                ("created_at", models.DateTimeField()),
                (
                    "host",
                    models.ForeignKey(
                        on_delete=django.db.models.deletion.CASCADE,
                        related_name="events",
                        to="sftpgateway.defenderhost",
                    ),
                ),
            ],
            options={
                "ordering": ["-created_at"],
                "indexes": [
                    models.Index(
                        fields=["host", "created_at"], name="sftpgateway_host_id_682bbd_idx"
                    )
                ],
            },
        ),
        migrations.RunPython(lockouts_to_bans, bans_to_lockouts),
        migrations.RemoveField(
            model_name="sftpcredential",
            name="locked_until",
        ),
    ]
