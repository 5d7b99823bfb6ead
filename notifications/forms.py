from django import forms
from django.contrib.auth import authenticate

from .models import NotificationPreference


class PreferenceForm(forms.ModelForm):
    class Meta:
        model = NotificationPreference
        fields = list(NotificationPreference.KINDS)


class EmailForm(forms.Form):
    """The user's own e-mail address; changing it asks for the password (a reset link goes to
    it). The password is checked through authenticate(), so django-axes counts wrong ones."""

    email = forms.EmailField(label="E-mail address", required=False)
    password = forms.CharField(
        label="Your password (to change the address)",
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
            self.add_error("password", "Enter your password to change the e-mail address.")
        return data
