"""Exports made before remote destinations named their connection: S3 and Azure Blob ones get
the account's one connection of the matching connector (what a create without ``connectionId``
does now); with none or several they are left as they are, and their runs say what is missing."""

from django.db import migrations

CONNECTORS = {"S3": "s3", "AZURE_BLOB": "azure_blob"}


def name_connections(apps, schema_editor):
    Export = apps.get_model("exports", "Export")
    Connection = apps.get_model("connectors", "Connection")
    for export in Export.objects.filter(destination__type__in=list(CONNECTORS)).iterator():
        destination = dict(export.destination or {})
        if destination.get("connectionId"):
            continue
        candidates = list(
            Connection.objects.filter(
                account_id=export.account_id, connector_id=CONNECTORS[destination["type"]]
            ).values_list("pk", flat=True)[:2]
        )
        if len(candidates) == 1:
            destination["connectionId"] = str(candidates[0])
            Export.objects.filter(pk=export.pk).update(destination=destination)


class Migration(migrations.Migration):
    dependencies = [
        ("exports", "0002_export_options_files"),
        ("connectors", "0002_connection_next_sync_at"),
    ]

    operations = [migrations.RunPython(name_connections, migrations.RunPython.noop)]
