from django.apps import AppConfig


class ExportsConfig(AppConfig):
    name = "exports"
    verbose_name = "Exports"

    def ready(self) -> None:
        # An integration's template and dependencies list its exports; integrations may not
        # import this app, so the exports are handed to it through the related registry.
        from exports.serializers import integration_export_documents
        from integrations.related import register_related

        register_related("exports", integration_export_documents)

        # Export runs and file import runs are kinds of run of the one lifecycle
        # (syncengine.jobs.lifecycle).
        from exports import import_runs, runs  # noqa: F401

        # The sync engine's beat tick claims due export schedules too.
        from exports.scheduler import exports_schedule_tick
        from syncengine.sync.scheduler import schedule_register

        schedule_register("exports", exports_schedule_tick)
