from django.urls import path

from config.api.routers import ApiRouter
from integrations import views

router = ApiRouter()
router.register("integrations", views.IntegrationViewSet, basename="integration")
router.register("imports", views.FileImportViewSet, basename="import")
router.register("flows", views.FlowViewSet, basename="flow")

urlpatterns = [
    path(
        "templates/<str:token>",
        views.TemplateDownloadView.as_view(),
        name="integration-template-download",
    ),
    *router.urls,
]
