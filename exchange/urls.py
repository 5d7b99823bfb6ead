from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.routers import DefaultRouter

from . import api, views

app_name = "exchange"

router = DefaultRouter()
for prefix, viewset in api.ROUTES:
    router.register(prefix, viewset, basename=prefix)

urlpatterns = [
    path("exchange/", views.index, name="index"),
    path("exchange/import/", views.import_cases, name="import"),
    path("exchange/template/", views.template_doc, name="template"),
    path("exchange/import_template.zip", views.template_zip, name="template_zip"),
    path("exchange/import_template.xlsx", views.template_xlsx, name="template_xlsx"),
    path("exchange/codebook/", views.codebook_page, name="codebook"),
    path("exchange/codebook.csv", views.codebook_csv, name="codebook_csv"),
    path("exchange/odm.xml", views.odm_export, name="odm"),
    path("exchange/cases.zip", views.cases_zip, name="cases_zip"),
    path("exchange/exports/", views.exports, name="exports"),
    path("exchange/exports/<uuid:job_id>/status/", views.export_status, name="export_status"),
    path("exchange/exports/<uuid:job_id>/download/", views.export_download, name="export_download"),
    path("exchange/api-token/", views.api_token, name="api_token"),
    path("api/v1/auth/token/", views.ObtainExpiringAuthToken.as_view(), name="api_token_obtain"),
    path("api/v1/", include(router.urls)),
    path("api/schema/", SpectacularAPIView.as_view(), name="api_schema"),
    # The split view serves its script as a file: the CSP allows no inline scripts.
    path(
        "api/docs/",
        SpectacularSwaggerSplitView.as_view(url_name="exchange:api_schema"),
        name="api_docs",
    ),
]
