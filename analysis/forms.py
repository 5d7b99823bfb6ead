from django import forms
from django.utils.translation import gettext_lazy as _

from .dataset import Cuts
from .defaults import DEFAULT_LANDMARK_DAYS, DEFAULT_REFERENCE_RATE

DEFAULT_CUTS = Cuts()


class RunForm(forms.Form):
    test = forms.ChoiceField(
        label=_("Table 2 test"),
        choices=[
            ("fisher", _("Fisher's exact (as printed in the paper)")),
            ("chi2", _("Pearson chi-square (larger registries)")),
        ],
        initial="fisher",
    )
    age_years = forms.FloatField(
        label=_("Age cut (years)"), initial=DEFAULT_CUTS.age_years, min_value=19, max_value=100
    )
    months_from_diagnosis = forms.FloatField(
        label=_("Diagnosis-to-start cut (months)"),
        initial=DEFAULT_CUTS.months_from_diagnosis,
        min_value=0,
        max_value=240,
    )
    marrow_blasts_pct = forms.FloatField(
        label=_("Marrow blasts cut (%)"),
        initial=DEFAULT_CUTS.marrow_blasts_pct,
        min_value=0,
        max_value=100,
    )
    dexamethasone_mg = forms.FloatField(
        label=_("Dexamethasone cut (mg)"),
        initial=DEFAULT_CUTS.dexamethasone_mg,
        min_value=0,
        max_value=10000,
    )

    # Beyond the paper (analysis/beyond.py); optional, the defaults apply when left empty.
    landmark_days = forms.IntegerField(
        label=_("Landmark (days after blinatumomab start)"),
        initial=DEFAULT_LANDMARK_DAYS,
        min_value=1,
        max_value=3650,
        required=False,
    )
    reference_rate = forms.FloatField(
        label=_("Reference response rate (one-sided test)"),
        initial=DEFAULT_REFERENCE_RATE,
        min_value=0.001,
        max_value=0.999,
        required=False,
    )

    def parameters(self) -> dict:
        d = self.cleaned_data
        landmark_days = d.get("landmark_days")
        reference_rate = d.get("reference_rate")
        return {
            "landmark_days": DEFAULT_LANDMARK_DAYS if landmark_days is None else landmark_days,
            "reference_rate": DEFAULT_REFERENCE_RATE if reference_rate is None else reference_rate,
            "test": d["test"],
            "cuts": {
                k: d[k]
                for k in (
                    "age_years",
                    "months_from_diagnosis",
                    "marrow_blasts_pct",
                    "dexamethasone_mg",
                )
            },
        }
