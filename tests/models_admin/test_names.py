"""Model names are checked against Ollama's grammar before Ollama is asked."""

from __future__ import annotations

import pytest
from django.core.exceptions import ValidationError

from models_admin.forms import PullForm
from models_admin.names import model_name_parse

VALID = {
    "llama3.2": "llama3.2:latest",
    "llama3.2:latest": "llama3.2:latest",
    "library/llama3.2:latest": "llama3.2:latest",
    "registry.ollama.ai/library/llama3.2:latest": "llama3.2:latest",
    "qwen3:0.6b": "qwen3:0.6b",
    "myuser/mymodel:v1": "myuser/mymodel:v1",
    "hf.co/org/repo:Q4_K_M": "hf.co/org/repo:Q4_K_M",
    "localhost:5000/ns/m": "localhost:5000/ns/m:latest",
    "_under/score-x": "_under/score-x:latest",
    "  llama3.2  ": "llama3.2:latest",
}


@pytest.mark.parametrize("raw", VALID)
def test_it_accepts_and_canonicalises_valid_names(raw):
    assert model_name_parse(raw).display == VALID[raw]


def test_it_treats_spellings_of_one_model_as_the_same():
    keys = {model_name_parse(raw).key for raw in ["Llama3.2", "llama3.2:latest", "library/llama3.2"]}
    assert len(keys) == 1


@pytest.mark.parametrize(
    ("raw", "says"),
    [
        ("", "Enter a model name"),
        ("   ", "Enter a model name"),
        ("../../x", "is not a valid"),
        ("a b", "cannot contain spaces"),
        ("x" * 10_000, "too long"),
        ("x" * 81, "is not a valid model name"),
        ("llama3.2:", "tag after ':' is empty"),
        ("a/b/c/d", "at most three parts"),
        ("ns.dot/model", "is not a valid namespace"),
        ("model:ta:g", "is not a valid"),
        ("-dash", "is not a valid model name"),
        ("mödel", "is not a valid model name"),
        ("https://host/ns/m", "at most three parts"),
        ("model@sha256:abc", "is not a valid"),
        ("a//b", "is not a valid"),
    ],
)
def test_it_refuses_invalid_names_with_a_clear_message(raw, says):
    with pytest.raises(ValidationError) as caught:
        model_name_parse(raw)
    assert says in " ".join(caught.value.messages)


def test_it_reports_the_name_error_on_the_pull_form():
    form = PullForm({"model": "../../x"})
    assert not form.is_valid()
    assert "is not a valid" in form.errors["model"][0]
