from django.urls import path

from . import views

app_name = "security"
urlpatterns = [
    path("verify/", views.two_factor_verify, name="two_factor_verify"),
    path("setup/", views.two_factor_setup, name="two_factor_setup"),
]
