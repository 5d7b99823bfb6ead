from django.contrib import admin
from django.contrib.auth import views as auth_views
from django.urls import include, path
from django.views.i18n import JavaScriptCatalog

from notifications.language import set_language
from notifications.views import PasswordResetView

urlpatterns = [
    path("admin/", admin.site.urls),
    path("accounts/login/", auth_views.LoginView.as_view(), name="login"),
    path("accounts/logout/", auth_views.LogoutView.as_view(), name="logout"),
    path("accounts/2fa/", include("security.urls")),
    path("accounts/profile/", include("notifications.urls")),
    # The navigation's language switcher (notifications.language) and the strings of the pages'
    # scripts in the user's language (djangojs catalogue).
    path("accounts/language/", set_language, name="set_language"),
    path("jsi18n/", JavaScriptCatalog.as_view(), name="javascript-catalog"),
    path("accounts/password_reset/", PasswordResetView.as_view(), name="password_reset"),
    path(
        "accounts/password_reset/done/",
        auth_views.PasswordResetDoneView.as_view(),
        name="password_reset_done",
    ),
    path(
        "accounts/reset/<uidb64>/<token>/",
        auth_views.PasswordResetConfirmView.as_view(),
        name="password_reset_confirm",
    ),
    path(
        "accounts/reset/done/",
        auth_views.PasswordResetCompleteView.as_view(),
        name="password_reset_complete",
    ),
    path("analysis/", include("analysis.urls")),
    path("monitoring/", include("monitoring.urls")),
    path("", include("exchange.urls")),
    path("", include("casebook.urls")),
    path("", include("registry.urls")),
]

# Styled error pages with the site's navigation (templates/400.html, 403.html). A refused action
# (PermissionDenied) says why; Django calls handler403 with DEBUG on and off alike.
handler400 = "registry.views.bad_request"
handler403 = "registry.views.permission_denied"
