from django.urls import re_path

from config.api.routers import UUID_PATTERN
from sftpgateway import views

SFTP = rf"^integrations/(?P<integrationId>{UUID_PATTERN})/sftp"

urlpatterns = [
    re_path(rf"{SFTP}/?$", views.SftpCredentialView.as_view(), name="integration-sftp"),
    re_path(rf"{SFTP}/rotate/?$", views.SftpRotateView.as_view(), name="integration-sftp-rotate"),
    re_path(rf"{SFTP}/keys/?$", views.SftpKeyListView.as_view(), name="integration-sftp-keys"),
    re_path(
        rf"{SFTP}/keys/(?P<keyId>{UUID_PATTERN})/?$",
        views.SftpKeyDetailView.as_view(),
        name="integration-sftp-key",
    ),
    re_path(
        rf"{SFTP}/activity/?$",
        views.SftpActivityListView.as_view(),
        name="integration-sftp-activity",
    ),
]
