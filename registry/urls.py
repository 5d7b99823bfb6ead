from django.urls import path, register_converter

from . import views
from .models import CrfStatus


class ChoiceConverter:
    """A path segment that is one of a fixed set of names (anything else is a 404)."""

    values: tuple[str, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        cls.regex = "|".join(cls.values)

    def to_python(self, value):
        return value

    def to_url(self, value):
        return value


class RepeatingRecord(ChoiceConverter):
    values = tuple(slug for slug, kind in views.KINDS.items() if kind.many)


class SingleRecord(ChoiceConverter):
    values = tuple(slug for slug, kind in views.KINDS.items() if not kind.many)


class Crf(ChoiceConverter):
    values = tuple(crf for crf, _label in CrfStatus.CRF_CHOICES)


register_converter(RepeatingRecord, "records")
register_converter(SingleRecord, "record")
register_converter(Crf, "crf")

app_name = "registry"
urlpatterns = [
    path("", views.case_list, name="case_list"),
    path("cases/register/", views.register, name="register"),
    path("cases/<int:pk>/", views.case, name="case"),
    path("cases/<int:pk>/response/", views.derive_response, name="derive_response"),
    path("cases/<int:pk>/crf/<crf:crf>/complete/", views.crf_complete, name="crf_complete"),
    path("cases/<int:pk>/<record:kind>/", views.single_record, name="single_record"),
    path("cases/<int:pk>/<records:kind>/new/", views.record_new, name="record_new"),
    path("cases/<int:pk>/<records:kind>/<int:record_pk>/", views.record_edit, name="record_edit"),
    path(
        "cases/<int:pk>/<records:kind>/<int:record_pk>/remove/",
        views.record_remove,
        name="record_remove",
    ),
]
