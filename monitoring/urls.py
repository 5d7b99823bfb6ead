from django.urls import path

import registry.urls  # noqa: F401 - registers the <crf:…> path converter

from . import views

app_name = "monitoring"
urlpatterns = [
    path("", views.progress, name="progress"),
    path("sites/<str:code>/", views.site, name="site"),
    path("sites/<str:code>/checks/", views.run_checks, name="run_checks"),
    path("sites/<str:code>/findings/query/", views.query_all_findings, name="query_all"),
    path("sites/<str:code>/lock/", views.site_lock, name="site_lock"),
    path("sites/<str:code>/unlock/", views.site_unlock, name="site_unlock"),
    path("findings/<int:pk>/query/", views.finding_query, name="finding_query"),
    path("cases/<int:pk>/queries/new/", views.query_new, name="query_new"),
    path("cases/<int:pk>/crf/<crf:crf>/verify/", views.crf_verify, name="crf_verify"),
    path("cases/<int:pk>/crf/<crf:crf>/unverify/", views.crf_unverify, name="crf_unverify"),
    path("cases/<int:pk>/lock/", views.case_lock, name="case_lock"),
    path("cases/<int:pk>/unlock/", views.case_unlock, name="case_unlock"),
    path("cases/<int:pk>/sign/", views.sign, name="sign"),
    path("queries/<int:pk>/answer/", views.query_answer, name="query_answer"),
    path("queries/<int:pk>/close/", views.query_close, name="query_close"),
    path("queries/<int:pk>/reopen/", views.query_reopen, name="query_reopen"),
]
