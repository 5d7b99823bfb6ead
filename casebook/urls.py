from django.urls import path

from . import views

app_name = "casebook"
urlpatterns = [
    path("cases/<int:pk>/casebook.pdf", views.case_pdf, name="case_pdf"),
    path("casebooks/sites/<str:code>/", views.site_archives, name="site_archives"),
    path(
        "casebooks/archives/<uuid:archive_id>/status/",
        views.archive_status,
        name="archive_status",
    ),
    path(
        "casebooks/archives/<uuid:archive_id>/download/",
        views.archive_download,
        name="archive_download",
    ),
]
