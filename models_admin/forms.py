"""Forms of the models dashboard; every model name is checked against Ollama's grammar first."""

from __future__ import annotations

import json
import re
from typing import Any
from urllib.parse import urlsplit

from django import forms
from django.utils.translation import gettext_lazy as _

from models_admin.models import OllamaServer
from models_admin.names import MAX_NAME, model_name_parse
from models_admin.services import SORTS
from webui import fleet
from webui.ollama import parse_host

MAX_SYSTEM_PROMPT = 20_000
MAX_EMBED_TEXT = 20_000


class ModelNameField(forms.CharField):
    """A model name, stripped and validated with Ollama's grammar before Ollama sees it."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", _("Model"))
        kwargs.setdefault("error_messages", {"required": _("Enter a model name, for example llama3.2.")})
        super().__init__(**kwargs)
        self.widget.attrs.setdefault("autocomplete", "off")
        self.widget.attrs.setdefault("spellcheck", "false")
        self.widget.attrs.setdefault("maxlength", str(MAX_NAME))

    def clean(self, value: Any) -> str:
        value = super().clean(value)
        if value in self.empty_values and not self.required:
            return ""
        model_name_parse(value)
        return value


class ServerChoiceField(forms.ChoiceField):
    """Which server of the fleet: one by name, or every server (fleet.ALL)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("label", _("Server"))
        kwargs.setdefault("required", False)
        super().__init__(**kwargs)

    def offer(self, names: list[str], *, everywhere: str) -> None:
        self.choices = [(fleet.ALL, everywhere), *((name, name) for name in names)]


class PullForm(forms.Form):
    model = ModelNameField(
        label=_("Model to pull"),
        help_text=_("[host/][namespace/]model[:tag], for example llama3.2 or qwen3:8b."),
        widget=forms.TextInput(attrs={"placeholder": "llama3.2"}),
    )
    server = ServerChoiceField(label=_("Pull on"), initial=fleet.ALL)

    def __init__(self, *args: Any, servers: list[str] | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.servers = servers or []
        self.fields["server"].offer(self.servers, everywhere=_("Every server"))

    @property
    def several(self) -> bool:
        """Whether to offer the choice of server (a fleet of one keeps the form as it was)."""
        return len(self.servers) > 1


class PushForm(forms.Form):
    model = ModelNameField(
        label=_("Push to registry as"),
        help_text=_("The registry reads the name: namespace/model:tag, e.g. myuser/mymodel:v1."),
    )


class ModelForm(forms.Form):
    """A single existing model (delete, unload), on one server or on every server that has it."""

    model = ModelNameField()
    server = forms.CharField(required=False, max_length=100)


class DeleteForm(ModelForm):
    confirm = forms.BooleanField(required=False, widget=forms.HiddenInput)


class CopyForm(forms.Form):
    source = ModelNameField(label=_("Source"), widget=forms.HiddenInput)
    destination = ModelNameField(
        label=_("New name"), widget=forms.TextInput(attrs={"placeholder": "llama3.2-backup"})
    )


class CreateForm(forms.Form):
    name = ModelNameField(label=_("New model name"), widget=forms.TextInput(attrs={"placeholder": "example"}))
    base = forms.ChoiceField(label=_("Base model"))
    system = forms.CharField(
        label=_("System prompt"),
        required=False,
        max_length=MAX_SYSTEM_PROMPT,
        widget=forms.Textarea(attrs={"rows": 4, "placeholder": _("You are Mario from Super Mario Bros.")}),
    )
    temperature = forms.FloatField(
        label=_("Temperature"),
        required=False,
        min_value=0,
        max_value=2,
        help_text=_("0 to 2; empty keeps the base model's value."),
        widget=forms.NumberInput(attrs={"step": "0.1", "placeholder": "0.8"}),
    )
    num_ctx = forms.IntegerField(
        label=_("Context length (num_ctx)"),
        required=False,
        min_value=256,
        max_value=1_048_576,
        help_text=_("Tokens of context; empty keeps the base model's value."),
        widget=forms.NumberInput(attrs={"step": "256", "placeholder": "4096"}),
    )

    def __init__(self, *args: Any, bases: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["base"].choices = [(name, name) for name in bases]

    def parameters(self) -> dict[str, Any]:
        """Return the Modelfile parameters the form sets (only those filled in)."""
        chosen = {
            "temperature": self.cleaned_data.get("temperature"),
            "num_ctx": self.cleaned_data.get("num_ctx"),
        }
        return {key: value for key, value in chosen.items() if value is not None}


class EmbedForm(forms.Form):
    model = forms.ChoiceField(label=_("Embedding model"))
    text = forms.CharField(
        label=_("Text"),
        max_length=MAX_EMBED_TEXT,
        widget=forms.Textarea(
            attrs={"rows": 3, "placeholder": _("The sky is blue because of Rayleigh scattering.")}
        ),
    )

    def __init__(self, *args: Any, models: list[str], **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.fields["model"].choices = [(name, name) for name in models]


class ListQueryForm(forms.Form):
    """The table's filter and sort, from the query string; bad values fall back to defaults."""

    q = forms.CharField(required=False, max_length=200)
    sort = forms.ChoiceField(required=False, choices=[(sort, sort) for sort in SORTS])
    dir = forms.ChoiceField(required=False, choices=[("asc", "asc"), ("desc", "desc")])

    def query(self) -> dict[str, Any]:
        data = self.cleaned_data if self.is_valid() else {}
        sort = data.get("sort") or "modified"
        direction = data.get("dir") or ("asc" if sort == "name" else "desc")
        return {"q": data.get("q", ""), "sort": sort, "dir": direction}


def headers_parse(text: str) -> dict[str, str]:
    """Parse `Name: value` lines (or a JSON object) into headers; raise ValidationError."""
    text = text.strip()
    if not text:
        return {}
    if text.startswith("{"):
        try:
            parsed = json.loads(text)
        except ValueError:
            raise forms.ValidationError(_("That is not a JSON object.")) from None
        if not isinstance(parsed, dict):
            raise forms.ValidationError(_("That is not a JSON object."))
        pairs = [(str(key), str(value)) for key, value in parsed.items()]
    else:
        pairs = []
        for line in text.splitlines():
            if not line.strip():
                continue
            if ":" not in line:
                raise forms.ValidationError(_("Write one header per line as Name: value."))
            key, value = line.split(":", 1)
            pairs.append((key.strip(), value.strip()))
    for key, value in pairs:
        if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", key):
            raise forms.ValidationError(_("“%(name)s” is not a valid header name.") % {"name": key})
        if "\n" in value or "\r" in value:
            raise forms.ValidationError(_("A header value cannot span lines."))
    return dict(pairs)


class ServerForm(forms.ModelForm):
    """Add or edit an Ollama server of the fleet; the URL is read like OLLAMA_HOST."""

    headers_text = forms.CharField(
        label=_("Extra headers"),
        required=False,
        max_length=4000,
        help_text=_(
            "Optional, one per line: Authorization: Bearer …  Sent with every request to this server."
        ),
        widget=forms.Textarea(attrs={"rows": 3, "spellcheck": "false", "autocomplete": "off"}),
    )
    clear_headers = forms.BooleanField(label=_("Remove the saved headers"), required=False)

    class Meta:
        model = OllamaServer
        fields = ["name", "base_url", "enabled"]
        labels = {"name": _("Name"), "base_url": _("Address"), "enabled": _("Enabled")}
        help_texts = {
            "name": _("How the dashboard and error messages call it, e.g. gpu-1."),
            "base_url": _("host:port or http(s)://host[:port][/path], read like OLLAMA_HOST."),
        }
        widgets = {
            "name": forms.TextInput(attrs={"placeholder": "gpu-1", "autocomplete": "off"}),
            "base_url": forms.TextInput(
                attrs={"placeholder": "10.0.0.5:11434", "autocomplete": "off", "spellcheck": "false"}
            ),
        }

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.instance.pk and self.instance.headers:
            names = ", ".join(sorted(self.instance.headers))
            self.fields["headers_text"].help_text = _(
                "Saved: %(names)s (values hidden). Leave empty to keep them; write new ones to replace them."
            ) % {"names": names}
        else:
            del self.fields["clear_headers"]

    def clean_name(self) -> str:
        name = " ".join(self.cleaned_data["name"].split())
        if name == fleet.ALL or not name:
            raise forms.ValidationError(_("Choose another name."))
        if any(server.name == name for server in fleet.settings_servers()):
            raise forms.ValidationError(_("A server from the environment already has this name."))
        return name

    def clean_base_url(self) -> str:
        raw = self.cleaned_data["base_url"].strip()
        if not raw or any(character.isspace() for character in raw):
            raise forms.ValidationError(_("Enter an address such as 10.0.0.5:11434."))
        try:
            url = parse_host(raw)
            parts = urlsplit(url)
            parts.port  # noqa: B018 -- raises ValueError for a port that is not 0-65535
            if parts.hostname and not parts.hostname.isascii():
                parts.hostname.encode("idna")  # an international name must have an ASCII form
        except (ValueError, UnicodeError):  # 10.0.0.5:99999, a:b:c, http://[::1
            parts = None
        if (
            parts is None
            or parts.scheme not in ("http", "https")
            or not parts.hostname
            or not url.isprintable()  # control characters: no HTTP client sends them
        ):
            raise forms.ValidationError(_("Enter an http or https address such as 10.0.0.5:11434."))
        if any(server.url == url for server in fleet.settings_servers()):
            raise forms.ValidationError(_("This server is already in the fleet (from the environment)."))
        duplicates = OllamaServer.objects.filter(base_url=url).exclude(pk=self.instance.pk)
        if duplicates.exists():
            raise forms.ValidationError(_("This server is already in the fleet."))
        return url

    def clean_headers_text(self) -> dict[str, str] | None:
        """Return the new headers, or None to keep the saved ones."""
        text = self.cleaned_data.get("headers_text", "")
        if not text.strip():
            return None
        return headers_parse(text)

    def headers(self) -> dict[str, str]:
        """Return the headers to save: new ones, none (removed), or the saved ones."""
        if self.cleaned_data.get("clear_headers"):
            return {}
        new = self.cleaned_data.get("headers_text")
        return new if new is not None else dict(self.instance.headers or {})
