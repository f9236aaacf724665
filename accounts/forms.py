"""Login forms that say so when axes refused the login, instead of "wrong password"."""

from __future__ import annotations

from django import forms
from django.contrib.admin.forms import AdminAuthenticationForm
from django.contrib.auth.forms import AuthenticationForm

from .lockout import lockout_message, was_locked_out


class LockoutMessageMixin:
    """After a refused login, replace the usual error by the lockout message when axes locked it out."""

    def clean(self):
        try:
            return super().clean()  # type: ignore[misc]
        except forms.ValidationError:
            if was_locked_out(getattr(self, "request", None)):
                raise forms.ValidationError(lockout_message(), code="locked_out") from None
            raise


class LoginForm(LockoutMessageMixin, AuthenticationForm):
    """The web login (`/login/`)."""


class AdminLoginForm(LockoutMessageMixin, AdminAuthenticationForm):
    """The Django admin's login page."""
