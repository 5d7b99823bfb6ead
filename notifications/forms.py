from django import forms
from django.contrib.auth import authenticate
from django.utils.translation import gettext_lazy as _

from .models import NotificationPreference


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = list(NotificationPreference.KINDS)


class LanguageForm(forms.ModelForm):
    """The profile's language (the navigation's switcher sets it too)."""

    class Meta:
        model = NotificationPreference
        fields = ["language"]
        labels = {"language": _("Language of the pages and of my e-mail")}

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.fields["language"].choices = [("", _("My browser's language"))] + [
            (code, name) for code, name in self.fields["language"].choices if code
        ]


class EmailForm(forms.Form):
    """The user's own e-mail address; changing it asks for the password (a reset link goes to
    it). The password is checked through authenticate(), so django-axes counts wrong ones."""

    email = forms.EmailField(label=_("E-mail address"), required=False)
    password = forms.CharField(
        label=_("Your password (to change the address)"),
        widget=forms.PasswordInput,
        required=False,
    )

    def __init__(self, *args, user, request, **kwargs):
        super().__init__(*args, **kwargs)
        self.user, self.request = user, request
        self.fields["email"].initial = user.email

    def clean(self):
        data = super().clean()
        if self.errors or data.get("email", "") == self.user.email:
            return data
        user = authenticate(
            self.request, username=self.user.get_username(), password=data.get("password") or ""
        )
        if user != self.user:
            self.add_error("password", _("Enter your password to change the e-mail address."))
        return data
