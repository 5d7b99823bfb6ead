"""The case report forms (CRFs): ModelForms rendered with crispy-forms' Bootstrap 5 pack.

The forms restate no rule: ModelForm validation calls each model's clean(), and the views set the
record's patient before validating so the rules that depend on the case run too.
"""

from crispy_forms.helper import FormHelper
from crispy_forms.layout import Fieldset, Layout
from crispy_forms.templatetags.crispy_forms_utils import remove_spaces
from crispy_forms.utils import render_crispy_form
from django import forms
from django.template import engines
from django.utils import translation
from django.utils.safestring import mark_safe
from django.utils.translation import gettext
from django.utils.translation import gettext_lazy as _

from .models import (
    AdverseEvent,
    Baseline,
    Cycle,
    FollowUp,
    Patient,
    ResponseAssessment,
    SubsequentTherapy,
    Transplant,
)

REASON_MAX_LENGTH = 100  # simple_history's history_change_reason column


def entered_fields(model) -> list[str]:
    """Every field the site enters on a case record (not the case itself, nothing derived)."""
    return [f.name for f in model._meta.fields if f.editable and f.name not in ("id", "patient")]


DATE_INVALID = _("Enter the date as YYYY-MM-DD, e.g. 2017-03-06.")


class DateInput(forms.DateInput):
    """A text box for YYYY-MM-DD. Not the browser's date picker: that shows the browser's own
    locale format (mm/dd/yyyy, 2026. 11. 29.), and the study writes dates as ISO in English and
    in Korean alike (source documents are copied as they read)."""

    input_type = "text"

    def __init__(self, attrs=None):
        iso = {
            "placeholder": "YYYY-MM-DD",
            "pattern": r"\d{4}-\d{2}-\d{2}",
            "inputmode": "numeric",
            "autocomplete": "off",
            "maxlength": "10",
        }
        super().__init__({**iso, **(attrs or {})}, format="%Y-%m-%d")


def cycle_label(cycle) -> str:
    return gettext("Cycle %(n)s (%(start)s)") % {"n": cycle.number, "start": cycle.start_date}


class CachedChoiceIterator(forms.models.ModelChoiceIterator):
    """Choices from the field's queryset through its result cache: one plain SELECT.

    ModelChoiceIterator reads the queryset with .iterator(), which on PostgreSQL opens a
    server-side cursor (DECLARE ... WITH HOLD, FETCH, CLOSE) for what is a handful of cycles."""

    def __iter__(self):
        if self.field.empty_label is not None:
            yield ("", self.field.empty_label)
        for obj in self.queryset:
            yield self.choice(obj)


class CrfForm(forms.ModelForm):
    """Every CRF carries the version it was read at and, once the CRF was complete, a reason."""

    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    change_reason = forms.CharField(
        label=_("Reason for change"),
        max_length=REASON_MAX_LENGTH,
        help_text=_(
            "This CRF has been marked complete or has an open query: say why you change "
            "it (kept in the audit trail)."
        ),
    )
    layout = None  # optional crispy Layout fields, in order

    def __init__(self, *args, patient=None, needs_reason=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.patient = patient
        self.fields["version"].initial = self.instance.version if self.instance.pk else None
        if not needs_reason:
            del self.fields["change_reason"]
        for field in self.fields.values():
            if isinstance(field, forms.DateField):
                field.widget = DateInput()
                field.error_messages["invalid"] = DATE_INVALID
        if "cycle" in self.fields and patient is not None:
            self.fields["cycle"].iterator = CachedChoiceIterator  # before the queryset: it
            self.fields["cycle"].queryset = patient.cycles.all()  # sets the widget's choices
            self.fields["cycle"].label_from_instance = cycle_label
        self.helper = FormHelper()
        self.helper.form_tag = False
        # The page's <form> has its {% csrf_token %}: crispy's would be a second copy (and would
        # make the rendered fields differ per session, see render_crf_form()).
        self.helper.disable_csrf = True
        self.helper.render_unmentioned_fields = True
        if self.layout:
            self.helper.layout = Layout(*self.layout)


class RegistrationForm(CrfForm):
    """Registration: the eligibility criteria come first; Patient.clean() says which fails."""

    eligibility = (
        "relapsed_refractory",
        "bcp_all",
        "ph_negative",
        "cd19_positive",
        "burkitt",
        "birth_year",
        "birth_date",
        "blinatumomab_start_date",
    )
    layout = (
        Fieldset(_("Eligibility"), *eligibility),
        Fieldset(_("Patient"), "institution", "sex", "diagnosis_date", "site_case_number"),
    )

    class Meta:
        model = Patient
        fields = [
            "institution",
            "relapsed_refractory",
            "bcp_all",
            "ph_negative",
            "cd19_positive",
            "burkitt",
            "birth_year",
            "birth_date",
            "blinatumomab_start_date",
            "sex",
            "diagnosis_date",
            "site_case_number",
        ]

    def __init__(self, *args, institutions=None, **kwargs):
        super().__init__(*args, **kwargs)
        if "institution" in self.fields:
            self.fields["institution"].queryset = institutions
        if self.instance.pk is None:
            # The investigator confirms each criterion: no box comes ticked from the model's
            # default (an unticked inclusion box is refused by Patient.clean()).
            for name in self.eligibility:
                if isinstance(self.fields[name], forms.BooleanField):
                    self.initial[name] = False


class PatientForm(RegistrationForm):
    """The registration data of a registered case (its site cannot change)."""

    layout = (
        Fieldset(_("Eligibility"), *RegistrationForm.eligibility),
        Fieldset(_("Patient"), "sex", "diagnosis_date", "site_case_number"),
    )

    class Meta(RegistrationForm.Meta):
        fields = [f for f in RegistrationForm.Meta.fields if f != "institution"]


class BaselineForm(CrfForm):
    layout = (
        Fieldset(
            _("Disease and prior therapy"),
            "ecog",
            "salvage_phase",
            "prior_therapies_n",
            "prior_allo_sct",
            "prior_allo_sct_date",
        ),
        Fieldset(
            _("Relapse site"),
            "relapse_site",
            *(f"emd_{s}" for s in Baseline.EMD_SITES),
            "emd_other_specify",
            "marrow_blasts_pct",
            "pb_blasts_per_ul",
        ),
        Fieldset(
            _("Cytogenetics at diagnosis (risk is derived)"),
            "cyto_dx_done",
            "cyto_dx_abnormalities_n",
            "cyto_dx_modal_number",
            "cyto_dx_kmt2a",
        ),
        Fieldset(
            _("Cytogenetics at blinatumomab start (risk is derived)"),
            "cyto_start_done",
            "cyto_start_abnormalities_n",
            "cyto_start_modal_number",
            "cyto_start_kmt2a",
        ),
        Fieldset(_("Prephase"), "prephase_regimen", "prephase_other", "dexamethasone_mg_before"),
    )

    class Meta:
        model = Baseline
        fields = entered_fields(Baseline)


class CycleForm(CrfForm):
    class Meta:
        model = Cycle
        fields = entered_fields(Cycle)

    def clean_number(self):
        # The (patient, number) constraint involves a field the form does not show, so
        # ModelForm would not check it: say it here rather than fail on the database.
        number = self.cleaned_data["number"]
        others = self.patient.cycles.exclude(pk=self.instance.pk) if self.patient else None
        if others is not None and others.filter(number=number).exists():
            raise forms.ValidationError(gettext("Cycle %(n)s is already entered.") % {"n": number})
        return number


class AssessmentForm(CrfForm):
    class Meta:
        model = ResponseAssessment
        fields = entered_fields(ResponseAssessment)


class AdverseEventForm(CrfForm):
    class Meta:
        model = AdverseEvent
        fields = entered_fields(AdverseEvent)
        widgets = {
            "ctcae_term": forms.TextInput(
                attrs={"list": "ctcae-terms", "autocomplete": "off", "data-ctcae-term": ""}
            ),
            "grade": forms.Select(
                choices=[("", "---------")] + [(g, str(g)) for g in range(1, 6)],
                attrs={"data-ctcae-grade": ""},
            ),
        }


class TransplantForm(CrfForm):
    class Meta:
        model = Transplant
        fields = entered_fields(Transplant)


class SubsequentTherapyForm(CrfForm):
    class Meta:
        model = SubsequentTherapy
        fields = entered_fields(SubsequentTherapy)


class FollowUpForm(CrfForm):
    class Meta:
        model = FollowUp
        fields = entered_fields(FollowUp)


class RemoveForm(forms.Form):
    version = forms.IntegerField(widget=forms.HiddenInput, required=False)
    reason = forms.CharField(
        label=_("Reason for removal"),
        max_length=REASON_MAX_LENGTH,
        help_text=_("Kept in the audit trail with the removed record."),
    )


# --- Rendering -----------------------------------------------------------------------------------
#
# crispy-forms' Bootstrap field templates were ~60% of a CRF page's time (~10-15 ms per form). A
# blank form (a new record, nothing typed yet) renders the same for every case of its kind except
# for its ModelChoiceFields (the case's cycles): that HTML is kept per process with a marker in
# place of each such <select>, which is rendered per request exactly as crispy's field template
# does. tests/registry/test_crf_forms.py checks the result against crispy's own rendering.

_SELECT_TEMPLATE = engines["django"].from_string(
    "{% load crispy_forms_field %}{% crispy_field field 'class' 'form-select' %}"
)
_BLANK_FORMS: dict = {}  # (form class, fields, initial values) -> HTML with markers
_BLANK_FORMS_MAX = 256


def _marker(name) -> str:
    # Starts with "<" and ends with ">" like the <select> it stands for, so crispy's whitespace
    # folding (remove_spaces) treats its surroundings the same.
    return f"<!--crf-select:{name}-->"


class _MarkerSelect(forms.Select):
    def render(self, name, value, attrs=None, renderer=None):
        return mark_safe(_marker(name))


def _blank_form_key(form):
    """What a blank form's HTML depends on besides its per-case selects; None: not cacheable."""
    per_case = []
    initial = []
    for name, field in form.fields.items():
        if isinstance(field, forms.ModelChoiceField):
            if type(field.widget) is not forms.Select:
                return None
            per_case.append(name)
        else:
            initial.append((name, form[name].initial))
    # Labels, help texts and choices are in the page's language: one copy per language.
    key = (translation.get_language(), type(form), tuple(form.fields), tuple(initial))
    try:
        hash(key)
    except TypeError:
        return None
    return key, per_case


def render_crf_form(form, blank=False) -> str:
    """The form's crispy HTML. `blank`: an unbound form of a new record (its HTML is cached)."""
    found = _blank_form_key(form) if blank and not form.is_bound else None
    if found is None:
        return render_crispy_form(form)
    key, per_case = found
    html = _BLANK_FORMS.get(key)
    if html is None:
        widgets = {name: form.fields[name].widget for name in per_case}
        try:
            for name in per_case:
                form.fields[name].widget = _MarkerSelect()
            html = render_crispy_form(form)
        finally:
            for name, widget in widgets.items():
                form.fields[name].widget = widget
        if len(_BLANK_FORMS) >= _BLANK_FORMS_MAX:
            _BLANK_FORMS.clear()
        _BLANK_FORMS[key] = html
    for name in per_case:
        select = remove_spaces(_SELECT_TEMPLATE.render({"field": form[name]})).strip()
        html = html.replace(_marker(name), select)
    return mark_safe(html)
