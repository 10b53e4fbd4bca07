from django.apps import AppConfig


class ConnectorsConfig(AppConfig):
    name = "connectors"
    verbose_name = "Connectors"

    def ready(self) -> None:
        # Importing the modules registers their connectors in the catalog.
        from connectors import (
            azure_blob,  # noqa: F401
            feeds,  # noqa: F401
            http_json,  # noqa: F401
            mixpanel,  # noqa: F401
            postgres,  # noqa: F401
            s3,  # noqa: F401
            sftp,  # noqa: F401
            sftp_pull,  # noqa: F401
            stripe,  # noqa: F401
        )
        from connectors.declarative import shipped  # noqa: F401
