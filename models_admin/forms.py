"""Forms of the models dashboard; every model name is checked against Ollama's grammar first."""

from __future__ import annotations

from typing import Any

from django import forms
from django.utils.translation import gettext_lazy as _

from models_admin.names import MAX_NAME, model_name_parse
from models_admin.services import SORTS

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


class PullForm(forms.Form):
    model = ModelNameField(
        label=_("Model to pull"),
        help_text=_("[host/][namespace/]model[:tag], for example llama3.2 or qwen3:8b."),
        widget=forms.TextInput(attrs={"placeholder": "llama3.2"}),
    )


class PushForm(forms.Form):
    model = ModelNameField(
        label=_("Push to registry as"),
        help_text=_("The registry reads the name: namespace/model:tag, e.g. myuser/mymodel:v1."),
    )


class ModelForm(forms.Form):
    """A single existing model (delete, unload)."""

    model = ModelNameField()


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
