"""The app's URLs plus the bare baseline of the load benchmark (bench/load_bench.py).

`/bench/bare/<patient>/<assessments|adverse-events>/new/` is what a Django tutorial would write:
a plain ModelForm on the same model, login required, no site scoping, no version check, no row
lock, no crispy-forms, no audit reason; saving redirects like the real CRF view does.
"""

from django import forms
from django.contrib.auth.decorators import login_required
from django.http import HttpResponse
from django.shortcuts import get_object_or_404, redirect
from django.template import engines
from django.urls import path

from config.urls import urlpatterns as app_urlpatterns
from registry.forms import entered_fields
from registry.models import AdverseEvent, Patient, ResponseAssessment

BARE_TEMPLATE = engines["django"].from_string(
    "<!doctype html><title>bare</title><form method='post'>{% csrf_token %}"
    "{{ form.as_p }}<button>Save</button></form>"
)


class BareAssessmentForm(forms.ModelForm):
    class Meta:
        model = ResponseAssessment
        fields = entered_fields(ResponseAssessment)


class BareAdverseEventForm(forms.ModelForm):
    class Meta:
        model = AdverseEvent
        fields = entered_fields(AdverseEvent)


BARE_FORMS = {"assessments": BareAssessmentForm, "adverse-events": BareAdverseEventForm}


@login_required
def bare_new(request, pk, kind):
    if kind not in BARE_FORMS:
        raise ValueError(kind)
    patient = get_object_or_404(Patient, pk=pk)
    form_class = BARE_FORMS[kind]
    record = form_class._meta.model(patient=patient)
    form = form_class(request.POST or None, instance=record)
    form.fields["cycle"].queryset = patient.cycles.all()
    if request.method == "POST" and form.is_valid():
        form.save()
        return redirect(request.path)
    return HttpResponse(BARE_TEMPLATE.render({"form": form}, request))


urlpatterns = [
    path("bench/bare/<int:pk>/<str:kind>/new/", bare_new, name="bench_bare_new"),
    *app_urlpatterns,
]
