from django import forms
from django.utils.translation import gettext_lazy as _

from .records import queryable_fields


class QueryForm(forms.Form):
    field_name = forms.ChoiceField(label=_("Field"), required=False)
    message = forms.CharField(label=_("Question"), widget=forms.Textarea(attrs={"rows": 3}))

    def __init__(self, *args, model=None, **kwargs):
        super().__init__(*args, **kwargs)
        whole = _("The whole record") if model is not None else _("The whole CRF")
        choices = [("", whole)]
        if model is not None:
            choices += queryable_fields(model)
        self.fields["field_name"].choices = choices


class MessageForm(forms.Form):
    message = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class OptionalMessageForm(forms.Form):
    message = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 2}))


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(required=False, widget=forms.Textarea(attrs={"rows": 2}))


class SignatureForm(forms.Form):
    password = forms.CharField(
        label=_("Your password"),
        strip=False,
        widget=forms.PasswordInput(attrs={"autocomplete": "current-password"}),
        help_text=_("Re-enter your password to sign."),
    )
