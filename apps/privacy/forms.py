"""Forms of the portal and the admin. Validation only: views call services."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils import timezone
from django.utils.translation import gettext_lazy as _

from apps.privacy.kinds import all_kinds, kind_choices
from apps.privacy.models import PrivacyRequest


def portal_kinds() -> list[tuple[str, str, str]]:
    """What the portal offers, from the kinds table: (value, label, hint)."""
    return [(k.value, k.portal_label, k.portal_hint) for k in all_kinds()]


def _portal_kind_choices() -> list[tuple[str, str]]:
    return [(value, label) for value, label, _ in portal_kinds()]


REGIMES = [("gdpr", _("In the EU, the EEA or the UK (GDPR)")),
           ("ccpa", _("In California (CCPA)"))]


class PortalRequestForm(forms.Form):
    kind = forms.ChoiceField(choices=_portal_kind_choices,
                             error_messages={"required": _("Choose what you would like us to do."),
                                             "invalid_choice": _("Choose one of the options.")})
    regime = forms.ChoiceField(choices=REGIMES, error_messages={
        "required": _("Choose where you live."),
        "invalid_choice": _("Choose one of the options.")})
    identifier = forms.CharField(max_length=254, required=False, strip=True)

    def __init__(self, *args: Any, verified: bool = False, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.verified = verified

    def clean(self) -> dict[str, Any]:
        cleaned = super().clean()
        if not self.verified and not cleaned.get("identifier"):
            self.add_error("identifier", _("Enter the email address you use with us."))
        return cleaned


class VerifyForm(forms.Form):
    r = forms.CharField(max_length=32)
    token = forms.CharField(max_length=100, strip=True, error_messages={
        "required": _("Enter the code from the email.")})


class LogRequestForm(forms.Form):
    """Staff log a request received by mail or phone."""

    tenant = forms.ModelChoiceField(queryset=None, required=True)  # set by the admin view
    kind = forms.ChoiceField(choices=kind_choices)
    regime = forms.ChoiceField(choices=PrivacyRequest.Regime.choices)
    channel = forms.ChoiceField(choices=[(PrivacyRequest.Channel.MAIL, "Mail"),
                                         (PrivacyRequest.Channel.PHONE, "Phone")])
    identifier = forms.CharField(
        max_length=512, help_text="The subject's id at the client site (as its backend sends "
        "it to Discreet). Pseudonymized; kept only encrypted until the request closes.")
    contact_email = forms.EmailField(
        required=False, help_text="Where to send the acknowledgment, verification link and "
        "answer. Kept only encrypted until the request closes.")
    received_at = forms.DateTimeField(
        initial=timezone.now, help_text="When the letter or call arrived: the clock starts "
        "then (UTC).")
    identity_verified = forms.BooleanField(
        required=False, help_text="You verified the requester's identity by other means.")
    acknowledged = forms.BooleanField(
        required=False, help_text="You already acknowledged receipt to the requester.")


class ReasonForm(forms.Form):
    reason = forms.CharField(widget=forms.Textarea(attrs={"rows": 5, "cols": 70}),
                             max_length=2000)
