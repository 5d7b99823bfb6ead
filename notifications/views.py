"""The user's profile (e-mail address and which e-mails to receive) and the throttled password
reset (Django's own views, the same password validators as everywhere)."""

from urllib.parse import urlsplit

from django.conf import settings
from django.contrib import messages
from django.contrib.auth import views as auth_views
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.urls import reverse_lazy
from django.utils import translation
from django.utils.translation import gettext as _

from . import language, throttle
from .forms import EmailForm, LanguageForm, PreferenceForm
from .models import NotificationPreference


@login_required
def profile(request):
    pref = NotificationPreference.objects.filter(user=request.user).first()
    pref = pref or NotificationPreference(user=request.user)
    data = request.POST if request.method == "POST" else None
    form = PreferenceForm(data, instance=pref, prefix="pref")
    email_form = EmailForm(data, user=request.user, request=request, prefix="mail")
    # The language is its own form on the page: a post without it (an older page) keeps it.
    language_form = LanguageForm(data, instance=pref, prefix="lang")
    with_language = data is not None and "lang-language" in data
    forms_valid = form.is_valid() and email_form.is_valid()
    if request.method == "POST" and forms_valid and (not with_language or language_form.is_valid()):
        form.save()
        if with_language:
            language_form.save()
            language.remember(request, pref.language)
            if pref.language:
                translation.activate(pref.language)
        new_email = email_form.cleaned_data["email"]
        if new_email != request.user.email:
            request.user.email = new_email
            request.user.save(update_fields=["email"])
        messages.success(request, _("Your settings are saved."))
        return redirect("notifications:profile")
    context = {"form": form, "email_form": email_form, "language_form": language_form}
    return render(request, "notifications/profile.html", context)


class PasswordResetView(auth_views.PasswordResetView):
    """Django's reset view, throttled, with links built from settings.SITE_URL. The answer is
    the same whether or not the address has an account, and whether or not a limit was
    reached for that address (nothing to learn about who is registered)."""

    template_name = "registration/password_reset_form.html"
    email_template_name = "registration/password_reset_email.txt"
    subject_template_name = "registration/password_reset_subject.txt"
    success_url = reverse_lazy("password_reset_done")

    def form_valid(self, form):
        over = throttle.record_and_check(self.request, form.cleaned_data["email"])
        if over == throttle.ADDRESS:
            return render(self.request, "registration/password_reset_throttled.html", status=429)
        if over is None:
            site = urlsplit(settings.SITE_URL)
            form.save(
                domain_override=site.netloc,
                use_https=site.scheme == "https",
                token_generator=self.token_generator,
                from_email=self.from_email,
                email_template_name=self.email_template_name,
                subject_template_name=self.subject_template_name,
                request=self.request,
            )
        return redirect(self.get_success_url())
