from django.apps import AppConfig


class SftpGatewayConfig(AppConfig):
    name = "sftpgateway"
    verbose_name = "SFTP gateway"

    def ready(self) -> None:
        # integrations cannot import this app (it sits below it); it calls these back instead:
        # a new feed integration gets its SFTP login, a deleted one loses it.
        from integrations.hooks import on_integration_created, on_integration_deleted
        from sftpgateway.services import integration_created_hook, integration_deleted_hook

        on_integration_created(integration_created_hook)
        on_integration_deleted(integration_deleted_hook)
