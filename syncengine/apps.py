from django.apps import AppConfig


class SyncEngineConfig(AppConfig):
    name = "syncengine"
    verbose_name = "Sync engine"

    def ready(self) -> None:
        # integrations cannot import this app (it sits below it); it calls this back instead:
        # an integration created with runNow starts its first run at once, not at the next tick.
        from integrations.hooks import on_integration_created
        from syncengine.sync.scheduler import integration_created_hook

        on_integration_created(integration_created_hook)

        # The kinds of run this app works register themselves with the lifecycle.
        from syncengine.feeds import ingest  # noqa: F401
        from syncengine.sync import runner  # noqa: F401
