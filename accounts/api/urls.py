"""API routes of the accounts app: trading a password for a token, and ending it."""

from django.urls import path

from .views import LogoutView, ObtainTokenView

urlpatterns = [
    path("auth/token/", ObtainTokenView.as_view(), name="auth-token"),
    path("auth/logout/", LogoutView.as_view(), name="auth-logout"),
]
