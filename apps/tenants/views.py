"""The page where an invited colleague accepts a team invitation (outside the admin: they
have no account yet). The token in the URL is a secret: the page is never cached, the log
filter masks it (``apps.core.pii``), and it works once."""

from __future__ import annotations

from typing import Any

from django import forms
from django.contrib import messages
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.decorators import method_decorator
from django.views import View
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters

from apps.core.exceptions import ApplicationError
from apps.tenants.services import (
    accept_invitation,
    find_invitation,
    invitation_needs_new_account,
)


class AcceptInvitationForm(forms.Form):
    password1 = forms.CharField(label="Password", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))
    password2 = forms.CharField(label="Password again", strip=False,
                                widget=forms.PasswordInput(attrs={"autocomplete": "new-password"}))

    def __init__(self, *args: Any, new_account: bool, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if not new_account:  # the existing account's password, once
            self.fields["password1"].label = "Your password"
            self.fields["password1"].widget.attrs["autocomplete"] = "current-password"
            del self.fields["password2"]

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if "password2" in self.fields and cleaned.get("password1") != cleaned.get("password2"):
            self.add_error("password2", "The two passwords differ.")
        return cleaned


@method_decorator([never_cache, sensitive_post_parameters("password1", "password2")],
                  name="dispatch")
class AcceptInvitationView(View):
    template_name = "tenants/accept_invitation.html"

    def get(self, request: HttpRequest, token: str) -> HttpResponse:
        invitation = find_invitation(token)
        if invitation is None:
            return self._invalid(request)
        form = AcceptInvitationForm(new_account=invitation_needs_new_account(invitation))
        return self._page(request, invitation, form)

    def post(self, request: HttpRequest, token: str) -> HttpResponse:
        invitation = find_invitation(token)
        if invitation is None:
            return self._invalid(request)
        form = AcceptInvitationForm(request.POST,
                                    new_account=invitation_needs_new_account(invitation))
        if form.is_valid():
            try:
                accept_invitation(token=token, password=form.cleaned_data["password1"])
            except ApplicationError as exc:
                if exc.code == "invitation_invalid":
                    return self._invalid(request)
                form.add_error("password1", exc.message)
            else:
                messages.success(request, f"Welcome to {invitation.tenant.name}. Log in with "
                                          f"your email address and your password.")
                return redirect(f"{reverse('admin:login')}?next={reverse('admin:index')}")
        return self._page(request, invitation, form)

    def _page(self, request: HttpRequest, invitation: Any, form: AcceptInvitationForm
              ) -> HttpResponse:
        return render(request, self.template_name, {
            "invitation": invitation, "form": form,
            "title": f"Join {invitation.tenant.name}"})

    def _invalid(self, request: HttpRequest) -> HttpResponse:
        return render(request, self.template_name, {"invitation": None,
                                                    "title": "Invitation not valid"},
                      status=404)
