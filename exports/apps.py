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

        # Export runs are a kind of run of the one lifecycle (syncengine.lifecycle).
        from exports import runs  # noqa: F401
