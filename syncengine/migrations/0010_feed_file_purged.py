from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("syncengine", "0009_vehicle_indexes"),
    ]

    operations = [
        migrations.AddField(
            model_name="feedfile",
            name="purged_at",
            field=models.DateTimeField(
                blank=True,
                help_text="When the retention (FEED_FILE_RETENTION_DAYS) removed the stored "
                "copy; the row, its counts and samples stay.",
                null=True,
            ),
        ),
        migrations.AlterField(
            model_name="feedfile",
            name="stored_path",
            field=models.CharField(
                blank=True,
                help_text="Its name in the feed file storage (FEED_STORAGE_DIR, or "
                "FEED_STORAGE_URL); empty once the retention purged it (or when nothing was "
                "kept).",
                max_length=500,
            ),
        ),
        migrations.AddIndex(
            model_name="feedfile",
            index=models.Index(
                condition=models.Q(("stored_path", ""), _negated=True),
                fields=["stored_path"],
                name="feedfile_stored_path",
            ),
        ),
    ]
