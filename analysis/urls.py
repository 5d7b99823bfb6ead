from django.urls import path

from . import views

app_name = "analysis"
urlpatterns = [
    path("", views.dashboard, name="dashboard"),
    path("dataset.csv", views.dataset_csv, name="dataset_csv"),
    path("runs/", views.start_run, name="start_run"),
    path("runs/<uuid:run_id>/", views.run_detail, name="run_detail"),
    path("runs/<uuid:run_id>/status/", views.run_status, name="run_status"),
    path("runs/<uuid:run_id>/files/<str:filename>", views.download, name="download"),
    path("runs/<uuid:run_id>/tables/<slug:key>.csv", views.table_csv, name="table_csv"),
]
