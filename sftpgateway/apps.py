from django.apps import AppConfig


class SftpGatewayConfig(AppConfig):
    name = "sftpgateway"
    verbose_name = "SFTP gateway"
