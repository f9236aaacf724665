"""The web login page."""

from __future__ import annotations

from django.conf import settings
from django.contrib.auth import views as auth_views
from django.core.exceptions import NON_FIELD_ERRORS

from .forms import LoginForm


class LoginView(auth_views.LoginView):
    """Django's login view with the lockout message; a locked-out attempt answers 429."""

    form_class = LoginForm

    def get_context_data(self, **kwargs):
        # The page names the directory only when logins go to it (LDAP_URI); otherwise local accounts.
        return super().get_context_data(**kwargs, directory_login=bool(getattr(settings, "AUTH_LDAP_SERVER_URI", "")))

    def form_invalid(self, form):
        response = super().form_invalid(form)
        if form.has_error(NON_FIELD_ERRORS, "locked_out"):
            response.status_code = 429
        return response
