from django import forms

from .dataset import Cuts

DEFAULT_CUTS = Cuts()


class RunForm(forms.Form):
    test = forms.ChoiceField(
        label="Table 2 test",
        choices=[
            ("fisher", "Fisher's exact (as printed in the paper)"),
            ("chi2", "Pearson chi-square (larger registries)"),
        ],
        initial="fisher",
    )
    age_years = forms.FloatField(
        label="Age cut (years)", initial=DEFAULT_CUTS.age_years, min_value=19, max_value=100
    )
    months_from_diagnosis = forms.FloatField(
        label="Diagnosis-to-start cut (months)",
        initial=DEFAULT_CUTS.months_from_diagnosis,
        min_value=0,
        max_value=240,
    )
    marrow_blasts_pct = forms.FloatField(
        label="Marrow blasts cut (%)",
        initial=DEFAULT_CUTS.marrow_blasts_pct,
        min_value=0,
        max_value=100,
    )
    dexamethasone_mg = forms.FloatField(
        label="Dexamethasone cut (mg)",
        initial=DEFAULT_CUTS.dexamethasone_mg,
        min_value=0,
        max_value=10000,
    )

    def parameters(self) -> dict:
        d = self.cleaned_data
        return {
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
