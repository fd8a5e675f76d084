"""Account forms: throttled log-in and sign-up."""

from __future__ import annotations

from django import forms
from django.contrib.auth import authenticate
from django.contrib.auth.forms import AuthenticationForm, UserCreationForm
from django.http import HttpRequest

from webui.accounts.throttle import (
    client_address,
    login_failure_record,
    login_success_record,
    login_wait,
    signup_message,
    signup_wait,
    throttle_message,
)

THROTTLED = "throttled"


class LoginForm(AuthenticationForm):
    """Log-in that locks a user name or address out after too many failures.

    While locked the password is not even checked, so guessing gains nothing.
    """

    def clean(self):
        username = self.cleaned_data.get("username")
        password = self.cleaned_data.get("password")
        if username is None or not password:
            return self.cleaned_data
        address = client_address(self.request)
        if wait := login_wait(username=username, address=address):
            raise forms.ValidationError(throttle_message(wait), code=THROTTLED)
        self.user_cache = authenticate(self.request, username=username, password=password)
        if self.user_cache is None:
            login_failure_record(username=username, address=address)
            if wait := login_wait(username=username, address=address):
                raise forms.ValidationError(throttle_message(wait), code=THROTTLED)
            raise self.get_invalid_login_error()
        self.confirm_login_allowed(self.user_cache)
        login_success_record(username=username)
        return self.cleaned_data


class SignupForm(UserCreationForm):
    """Sign-up: a user name and a password twice, limited per client address."""

    def __init__(self, *args, request: HttpRequest, **kwargs):
        self.request = request
        super().__init__(*args, **kwargs)

    def clean(self):
        if wait := signup_wait(address=client_address(self.request)):
            raise forms.ValidationError(signup_message(wait), code=THROTTLED)
        return super().clean()
