"""Emulate the Ollama HTTP API ("the double") for the test-suite and the benchmarks.

The double is a real HTTP/1.1 server written with plain ``asyncio`` streams. It follows
``/work/shared/ollama-protocol.md`` (status codes, exact error strings, NDJSON framing, the
"errors and streams" rules of section 1.5) so that the official ``ollama`` client, httpx and the
Django app see the same bytes they would see from a real server.

In tests::

    double = OllamaDouble().start()        # background thread + own event loop, free port
    client = ollama.Client(host=double.url)
    double.configure(tokens_per_second=50, stall_after=3)
    ...
    double.wait_for_close("/api/chat")     # the client abandoned the stream
    double.stop()

By hand::

    .venv/bin/python -m tests.ollama_double --port 11434 --tokens-per-second 40
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import binascii
import copy
import functools
import hashlib
import json
import math
import random
import re
import signal
import threading
import time
import traceback
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from email.utils import formatdate
from http import HTTPStatus
from typing import Any, NamedTuple

VERSION = "0.12.6"
REGISTRY_HOST = "registry.ollama.ai"
LIBRARY_NAMESPACE = "library"
DEFAULT_TAG = "latest"
BUSY_MESSAGE = "server busy, please try again.  maximum pending requests exceeded"
RUNNER_CRASH_MESSAGE = "llama runner process has terminated: exit status 2"
MANIFEST_MISSING_MESSAGE = "pull model manifest: file does not exist"
JSON_CT = "application/json; charset=utf-8"
PLAIN_JSON_CT = "application/json"
NDJSON_CT = "application/x-ndjson"
TEXT_CT = "text/plain; charset=utf-8"
DEFAULT_NUM_CTX = 4096

# Unpaced streams are written in batches: one chunk per this many lines keeps the per-token cost at
# a string concatenation instead of a syscall + chunk header.
_BATCH_LINES = 512
# Only wait for the socket to drain once this much is queued; awaiting drain() per write is the
# single largest cost of a naive streaming server.
_DRAIN_ABOVE = 256 * 1024

_CONFIG_DEFAULTS: dict[str, Any] = {
    "tokens_per_second": None,
    "first_token_delay": 0.0,
    "reply": None,
    "reply_tokens": 30,
    "fail_status": None,
    "fail_message": None,
    "fail_paths": ("/api/chat", "/api/generate"),
    "error_after": None,
    "error_message": "an error was encountered while running the model: unexpected EOF",
    "drop_after": None,
    "stall_after": None,
    "pull_seconds": 0.3,
    "pull_fail_after": None,
    "pull_fail_message": "max retries exceeded: unexpected EOF",
    "think_default": True,
}

_TOKENS_MARKER = re.compile(r"\[\[tokens=(\d+)\]\]")
_TOKEN_SPLIT = re.compile(r"\s*\S+|\s+")
_WORD = re.compile(r"[a-z0-9]+")
_DIGEST_PATH = re.compile(r"^sha256[:-]([0-9a-fA-F]{64})$")

_LOREM = (
    "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor incididunt ut "
    "labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud exercitation ullamco "
    "laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure dolor in reprehenderit in "
    "voluptate velit esse cillum dolore eu fugiat nulla pariatur."
)
_THINKING = (
    "Okay, the user wants a short answer. Let me think about what matters most here, then reply "
    "clearly and concisely."
)


# --------------------------------------------------------------------------------------------
# JSON helpers


def dumps(obj: Any) -> str:
    """Serialise like Go's encoder: compact, ASCII-only, with ``<``, ``>`` and ``&`` escaped."""
    text = json.dumps(obj, ensure_ascii=True, separators=(",", ":"))
    # These three characters can only occur inside JSON strings, so a textual replace is safe.
    if "<" in text or ">" in text or "&" in text:
        text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return text


@functools.lru_cache(maxsize=8192)
def _token_json(token: str) -> str:
    return dumps(token)


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def _go_decode_error(exc: json.JSONDecodeError) -> str:
    """Translate a Python decode error into the wording of Go's ``encoding/json``."""
    doc, pos = exc.doc, exc.pos
    if pos >= len(doc.rstrip()):
        return "unexpected EOF"
    char = doc[pos]
    quoted = "'" + (char if char not in "\n\t\r" else repr(char)[1:-1]) + "'"
    msg = exc.msg
    if msg.startswith("Expecting value"):
        return f"invalid character {quoted} looking for beginning of value"
    if msg.startswith("Expecting property name"):
        return f"invalid character {quoted} looking for beginning of object key string"
    if msg.startswith("Expecting ':'"):
        return f"invalid character {quoted} after object key"
    if msg.startswith("Expecting ','"):
        return f"invalid character {quoted} after object key:value pair"
    if msg.startswith("Extra data"):
        return f"invalid character {quoted} after top-level value"
    if msg.startswith("Invalid control character"):
        return f"invalid character {quoted} in string literal"
    if msg.startswith("Unterminated"):
        return "unexpected EOF"
    return f"invalid character {quoted} looking for beginning of value"


# Field types checked the way Go's decoder would reject them (None is always allowed).
_FIELD_TYPES: dict[str, tuple[tuple[type, ...], str]] = {
    "model": ((str,), "string"),
    "name": ((str,), "string"),
    "stream": ((bool,), "bool"),
    "messages": ((list,), "[]api.Message"),
    "prompt": ((str,), "string"),
    "suffix": ((str,), "string"),
    "system": ((str,), "string"),
    "template": ((str,), "string"),
    "options": ((dict,), "map[string]interface {}"),
    "images": ((list,), "[]api.ImageData"),
    "raw": ((bool,), "bool"),
    "tools": ((list,), "api.Tools"),
    "context": ((list,), "[]int"),
    "insecure": ((bool,), "bool"),
    "source": ((str,), "string"),
    "destination": ((str,), "string"),
    "from": ((str,), "string"),
    "files": ((dict,), "map[string]string"),
    "adapters": ((dict,), "map[string]string"),
    "parameters": ((dict,), "map[string]interface {}"),
    "quantize": ((str,), "string"),
    "verbose": ((bool,), "bool"),
    "truncate": ((bool,), "bool"),
    "dimensions": ((int,), "int"),
}
_STRUCTS = {
    "/api/chat": "ChatRequest",
    "/api/generate": "GenerateRequest",
    "/api/pull": "PullRequest",
    "/api/push": "PushRequest",
    "/api/create": "CreateRequest",
    "/api/copy": "CopyRequest",
    "/api/delete": "DeleteRequest",
    "/api/show": "ShowRequest",
    "/api/embed": "EmbedRequest",
    "/api/embeddings": "EmbeddingRequest",
}


def _check_field_types(struct: str, body: dict) -> str | None:
    for key, value in body.items():
        spec = _FIELD_TYPES.get(key)
        if spec is None or value is None:
            continue
        types, go_type = spec
        ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
        if not ok:
            got = _go_type(value)
            return f"json: cannot unmarshal {got} into Go struct field {struct}.{key} of type {go_type}"
    for msg in body.get("messages") or []:
        if not isinstance(msg, dict):
            return (
                f"json: cannot unmarshal {_go_type(msg)} into Go struct field {struct}.messages "
                "of type api.Message"
            )
        for key in ("role", "content", "thinking", "tool_name"):
            if msg.get(key) is not None and not isinstance(msg[key], str):
                return (
                    f"json: cannot unmarshal {_go_type(msg[key])} into Go struct field "
                    f"Message.messages.{key} of type string"
                )
    return None


# --------------------------------------------------------------------------------------------
# Time helpers


def _utc_now() -> str:
    """Format the current time like Go's RFC 3339 nano in UTC (``...184789Z``)."""
    text = datetime.now(UTC).isoformat()[:-6]
    if "." in text:
        text = text.rstrip("0").rstrip(".")
    return text + "Z"


def _local_iso(moment: datetime) -> str:
    """Format an aware datetime with its local offset, as ``modified_at``/``expires_at`` are."""
    return moment.astimezone().isoformat()


def parse_go_duration(text: str) -> float:
    """Parse a Go duration string (``"5m"``, ``"1h30m"``, ``"-1"``…) into seconds, raising ValueError."""
    units = {"ns": 1e-9, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}
    original = text
    sign = 1.0
    if text[:1] in "+-" and text:
        sign = -1.0 if text[0] == "-" else 1.0
        text = text[1:]
    if text == "0":
        return 0.0
    if not text:
        raise ValueError(f'time: invalid duration "{original}"')
    total = 0.0
    pos = 0
    pattern = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)?")
    while pos < len(text):
        match = pattern.match(text, pos)
        if not match:
            raise ValueError(f'time: invalid duration "{original}"')
        if match.group(2) is None:
            raise ValueError(f'time: missing unit in duration "{original}"')
        total += float(match.group(1)) * units[match.group(2)]
        pos = match.end()
    return sign * total


# --------------------------------------------------------------------------------------------
# Model names


_PART_PATTERNS = {
    "host": re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.:-]{0,349}$"),
    "namespace": re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_-]{0,79}$"),
    "model": re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$"),
    "tag": re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,79}$"),
}


class ModelName(NamedTuple):
    """Hold the four parts of ``[host/][namespace/]model[:tag]``."""

    host: str
    namespace: str
    model: str
    tag: str

    def display(self) -> str:
        """Return the shortest form with the tag always present (``llama3.2:latest``)."""
        if self.host.lower() == REGISTRY_HOST:
            if self.namespace.lower() == LIBRARY_NAMESPACE:
                return f"{self.model}:{self.tag}"
            return f"{self.namespace}/{self.model}:{self.tag}"
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def full(self) -> str:
        """Return ``host/namespace/model:tag``."""
        return f"{self.host}/{self.namespace}/{self.model}:{self.tag}"

    def key(self) -> str:
        """Return the case-insensitive identity used for lookups."""
        return self.full().lower()


def parse_name(raw: Any) -> ModelName | None:
    """Parse a model name per the protocol's grammar; return None when it is invalid."""
    if not isinstance(raw, str) or not raw:
        return None
    text = raw.split("@", 1)[0]
    tag = DEFAULT_TAG
    colon, slash = text.rfind(":"), text.rfind("/")
    if colon > slash:
        text, tag = text[:colon], text[colon + 1 :]
    parts = text.split("/")
    if len(parts) > 3:
        return None
    name = ModelName(
        host=parts[-3] if len(parts) == 3 else REGISTRY_HOST,
        namespace=parts[-2] if len(parts) >= 2 else LIBRARY_NAMESPACE,
        model=parts[-1],
        tag=tag,
    )
    for field, pattern in _PART_PATTERNS.items():
        if not pattern.match(getattr(name, field)):
            return None
    return name


# --------------------------------------------------------------------------------------------
# Model records


def _sha(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


_TEMPLATES = {
    "llama3": (
        "<|start_header_id|>system<|end_header_id|>\n\n{{ if .System }}{{ .System }}{{ end }}<|eot_id|>"
        "{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>\n\n{{ .Content }}"
        "<|eot_id|>{{ end }}<|start_header_id|>assistant<|end_header_id|>\n\n"
    ),
    "chatml": (
        "{{- range .Messages }}<|im_start|>{{ .Role }}\n{{ .Content }}<|im_end|>\n{{ end }}"
        "<|im_start|>assistant\n{{ if .Think }}<think>\n{{ end }}"
    ),
    "inst": "[INST] {{ if .System }}{{ .System }} {{ end }}{{ .Prompt }} [/INST]",
    "gemma": "{{- range .Messages }}<start_of_turn>{{ .Role }}\n{{ .Content }}<end_of_turn>\n{{ end }}"
    "<start_of_turn>model\n",
    "prompt": "{{ .Prompt }}",
}
_LICENSES = {
    "llama": "LLAMA 3.2 COMMUNITY LICENSE AGREEMENT\nLlama 3.2 Version Release Date: September 25, 2024\n"
    '"Agreement" means the terms and conditions for use, reproduction, distribution and modification '
    "of the Llama Materials set forth herein.",
    "apache": "                                 Apache License\n                           Version 2.0, "
    "January 2004\n                        http://www.apache.org/licenses/",
    "mit": "Microsoft.\nCopyright (c) Microsoft Corporation.\n\nMIT License",
    "gemma": "Gemma Terms of Use\n\nLast modified: March 24, 2025",
}

# The small registry the double can "pull" from: display name -> record fields.
_CATALOGUE: dict[str, dict[str, Any]] = {
    "llama3.2:latest": {
        "family": "llama",
        "parameter_size": "3.2B",
        "parameter_count": 3212749888,
        "quantization_level": "Q4_K_M",
        "size": 2019393189,
        "capabilities": ["completion", "tools"],
        "context_length": 131072,
        "embedding_length": 3072,
        "template": "llama3",
        "license": "llama",
        "parameters": {"stop": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]},
        "digest": "a80c4f17acd55265feec403c7aef86be0c25983ab279d83f3bcd3abbcb5b8b72",
    },
    "llama3.2:1b": {
        "family": "llama",
        "parameter_size": "1.2B",
        "parameter_count": 1235814432,
        "quantization_level": "Q8_0",
        "size": 1321098329,
        "capabilities": ["completion", "tools"],
        "context_length": 131072,
        "embedding_length": 2048,
        "template": "llama3",
        "license": "llama",
        "parameters": {"stop": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]},
    },
    "qwen3:latest": {
        "family": "qwen3",
        "parameter_size": "8.2B",
        "parameter_count": 8190735360,
        "quantization_level": "Q4_K_M",
        "size": 5225388164,
        "capabilities": ["completion", "tools", "thinking"],
        "context_length": 40960,
        "embedding_length": 4096,
        "template": "chatml",
        "license": "apache",
        "parameters": {
            "repeat_penalty": 1,
            "stop": ["<|im_start|>", "<|im_end|>"],
            "temperature": 0.6,
            "top_k": 20,
            "top_p": 0.95,
        },
    },
    "qwen3:0.6b": {
        "family": "qwen3",
        "parameter_size": "751.63M",
        "parameter_count": 751632384,
        "quantization_level": "Q4_K_M",
        "size": 522653767,
        "capabilities": ["completion", "tools", "thinking"],
        "context_length": 40960,
        "embedding_length": 1024,
        "template": "chatml",
        "license": "apache",
        "parameters": {
            "repeat_penalty": 1,
            "stop": ["<|im_start|>", "<|im_end|>"],
            "temperature": 0.6,
            "top_k": 20,
            "top_p": 0.95,
        },
    },
    "mistral:latest": {
        "family": "llama",
        "parameter_size": "7.2B",
        "parameter_count": 7248023552,
        "quantization_level": "Q4_K_M",
        "size": 4372824384,
        "capabilities": ["completion", "tools"],
        "context_length": 32768,
        "embedding_length": 4096,
        "template": "inst",
        "license": "apache",
        "parameters": {"stop": ["[INST]", "[/INST]"]},
    },
    "all-minilm:latest": {
        "family": "bert",
        "parameter_size": "23M",
        "parameter_count": 22565376,
        "quantization_level": "F16",
        "size": 45960996,
        "capabilities": ["embedding"],
        "context_length": 512,
        "embedding_length": 384,
        "template": "prompt",
        "license": "apache",
        "parameters": {},
    },
    "nomic-embed-text:latest": {
        "family": "nomic-bert",
        "parameter_size": "137M",
        "parameter_count": 136727040,
        "quantization_level": "F16",
        "size": 274302450,
        "capabilities": ["embedding"],
        "context_length": 2048,
        "embedding_length": 768,
        "template": "prompt",
        "license": "apache",
        "parameters": {"num_ctx": 8192},
    },
    "llava:latest": {
        "family": "llama",
        "families": ["llama", "clip"],
        "parameter_size": "7B",
        "parameter_count": 7241732096,
        "quantization_level": "Q4_0",
        "size": 4733363377,
        "capabilities": ["completion", "vision"],
        "context_length": 32768,
        "embedding_length": 4096,
        "template": "inst",
        "license": "apache",
        "parameters": {"stop": ["[INST]", "[/INST]"]},
    },
    "gemma3:latest": {
        "family": "gemma3",
        "parameter_size": "4.3B",
        "parameter_count": 4300079472,
        "quantization_level": "Q4_K_M",
        "size": 3338801804,
        "capabilities": ["completion", "vision"],
        "context_length": 131072,
        "embedding_length": 2560,
        "template": "gemma",
        "license": "gemma",
        "parameters": {"stop": ["<end_of_turn>"], "temperature": 1, "top_k": 64, "top_p": 0.95},
    },
    "phi4:latest": {
        "family": "phi3",
        "parameter_size": "14.7B",
        "parameter_count": 14659507200,
        "quantization_level": "Q4_K_M",
        "size": 9053116391,
        "capabilities": ["completion"],
        "context_length": 16384,
        "embedding_length": 5120,
        "template": "chatml",
        "license": "mit",
        "parameters": {"stop": ["<|im_start|>", "<|im_end|>", "<|im_sep|>"]},
    },
}
# Tags that are the same artefact as another catalogue entry.
_CATALOGUE["llama3.2:3b"] = _CATALOGUE["llama3.2:latest"]
_CATALOGUE["llava:7b"] = _CATALOGUE["llava:latest"]
_CATALOGUE["qwen3:8b"] = _CATALOGUE["qwen3:latest"]
_CATALOGUE["gemma3:4b"] = _CATALOGUE["gemma3:latest"]

_SEED = [
    ("llama3.2:latest", "2025-05-04T17:37:44.706015-07:00"),
    ("llava:7b", "2025-04-20T09:12:03.512000-07:00"),
    ("qwen3:0.6b", "2025-04-12T11:02:51.100200-07:00"),
    ("nomic-embed-text:latest", "2025-03-30T08:45:10.000100-07:00"),
]


def make_model_record(display: str, **fields: Any) -> dict:
    """Build a model record (the value type of ``OllamaDouble.models``) from catalogue-style fields."""
    family = fields.get("family", "llama")
    size = int(fields.get("size", 1_000_000_000))
    template_key = fields.get("template", "prompt")
    template = _TEMPLATES.get(template_key, template_key)
    license_key = fields.get("license", "")
    license_text = _LICENSES.get(license_key, license_key)
    params = copy.deepcopy(fields.get("parameters", {}))
    layer_seed = fields.get("layer_seed", display.split(":", 1)[0] + fields.get("parameter_size", ""))
    blob = {"media": "model", "digest": "sha256:" + _sha(layer_seed + ":model"), "size": max(size - 12000, 1)}
    layers = [blob]
    if template:
        layers.append({"media": "template", "digest": "sha256:" + _sha(template), "size": len(template)})
    if license_text:
        layers.append(
            {"media": "license", "digest": "sha256:" + _sha(license_text), "size": len(license_text)}
        )
    if params:
        text = dumps(params)
        layers.append({"media": "parameters", "digest": "sha256:" + _sha(text), "size": len(text)})
    modified = fields.get("modified_at") or datetime.now(UTC)
    if isinstance(modified, str):
        modified = datetime.fromisoformat(modified)
    record = {
        "name": display,
        "family": family,
        "families": list(fields.get("families") or [family]),
        "format": "gguf",
        "parent_model": fields.get("parent_model", ""),
        "parameter_size": fields.get("parameter_size", "1B"),
        "parameter_count": int(fields.get("parameter_count", 1_000_000_000)),
        "quantization_level": fields.get("quantization_level", "Q4_K_M"),
        "size": size,
        "capabilities": list(fields.get("capabilities", ["completion"])),
        "context_length": int(fields.get("context_length", 8192)),
        "embedding_length": int(fields.get("embedding_length", 2048)),
        "template": template,
        "license": license_text,
        "parameters": params,
        "system": fields.get("system", ""),
        "messages": list(fields.get("messages") or []),
        "modified_at": modified,
        "layers": layers,
        "digest": fields.get("digest") or _sha(display + "".join(layer["digest"] for layer in layers)),
    }
    return record


def _seed_models() -> dict[str, dict]:
    models = {}
    for display, modified in _SEED:
        models[display] = make_model_record(display, modified_at=modified, **_CATALOGUE[display])
    return models


def _format_parameters(params: dict) -> str:
    """Format parameters like ``ollama show``: key padded to 30 columns, Go-quoted strings."""
    lines = []
    for key, value in params.items():
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, str):
                shown = json.dumps(item, ensure_ascii=False)
            elif isinstance(item, bool):
                shown = "true" if item else "false"
            elif isinstance(item, float) and item.is_integer():
                shown = str(int(item))
            else:
                shown = str(item)
            lines.append(f"{key:<30} {shown}")
    return "\n".join(lines)


def _modelfile(display: str, rec: dict) -> str:
    blob = rec["layers"][0]["digest"].replace(":", "-")
    out = [
        '# Modelfile generated by "ollama show"',
        "# To build a new Modelfile based on this, replace FROM with:",
        f"# FROM {display}",
        "",
        f"FROM /root/.ollama/models/blobs/{blob}",
    ]
    if rec["template"]:
        out.append(f'TEMPLATE """{rec["template"]}"""')
    if rec["system"]:
        out.append(f'SYSTEM """{rec["system"]}"""')
    for key, value in rec["parameters"].items():
        for item in value if isinstance(value, list) else [value]:
            out.append(f"PARAMETER {key} {item}")
    for msg in rec["messages"]:
        out.append(f"MESSAGE {msg.get('role', '')} {msg.get('content', '')}")
    if rec["license"]:
        out.append(f'LICENSE """{rec["license"]}"""')
    return "\n".join(out) + "\n"


def _details(rec: dict) -> dict:
    return {
        "parent_model": rec["parent_model"],
        "format": rec["format"],
        "family": rec["family"],
        "families": rec["families"],
        "parameter_size": rec["parameter_size"],
        "quantization_level": rec["quantization_level"],
    }


def _model_info(rec: dict) -> dict:
    fam = rec["family"]
    return {
        "general.architecture": fam,
        "general.file_type": 15,
        "general.parameter_count": rec["parameter_count"],
        "general.quantization_version": 2,
        f"{fam}.attention.head_count": 32,
        f"{fam}.block_count": 28,
        f"{fam}.context_length": rec["context_length"],
        f"{fam}.embedding_length": rec["embedding_length"],
        "tokenizer.ggml.model": "gpt2",
    }


# --------------------------------------------------------------------------------------------
# Text generation and embeddings


def tokenize(text: str) -> list[str]:
    """Split text into word-ish tokens that keep their leading whitespace (join == text)."""
    return _TOKEN_SPLIT.findall(text)


_LOREM_TOKENS = tokenize(_LOREM)
_THINKING_TOKENS = tokenize(_THINKING)


def _cycle_tokens(base: list[str], count: int) -> list[str]:
    if not base or count <= 0:
        return []
    if count <= len(base):
        return base[:count]
    # When wrapping around, the first token needs a separating space.
    wrapped = list(base)
    if not wrapped[0][:1].isspace():
        wrapped[0] = " " + wrapped[0]
    out = list(base)
    while len(out) < count:
        out.extend(wrapped[: count - len(out)])
    return out


@functools.lru_cache(maxsize=16384)
def _word_vector(word: str, dims: int) -> tuple[float, ...]:
    rng = random.Random(int.from_bytes(hashlib.sha256(word.encode()).digest()[:8], "big"))
    return tuple(rng.gauss(0.0, 1.0) for _ in range(dims))


def embed_text(text: str, dims: int) -> list[float]:
    """Return a deterministic L2-normalised vector; texts sharing words get similar vectors."""
    words = _WORD.findall(text.lower()) or [text]
    acc = [0.0] * dims
    for word in words:
        for i, x in enumerate(_word_vector(word, dims)):
            acc[i] += x
    norm = math.sqrt(sum(x * x for x in acc)) or 1.0
    return [x / norm for x in acc]


# --------------------------------------------------------------------------------------------
# HTTP plumbing


class _ClientGone(Exception):
    """Signal that the peer closed or reset the connection while we were responding."""


class _BadRequest(Exception):
    """Signal an unparsable HTTP request head."""


class _Request:
    __slots__ = ("body", "headers", "method", "path", "started_ns", "version")

    def __init__(self, method: str, path: str, version: str, headers: dict, body: bytes) -> None:
        self.method, self.path, self.version, self.headers, self.body = method, path, version, headers, body
        self.started_ns = time.perf_counter_ns()

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        if self.version == "HTTP/1.0":
            return conn == "keep-alive"
        return conn != "close"


class _Plan(NamedTuple):
    """Describe one generation: tokens to emit, how it ends and the synthetic metrics inputs."""

    chat: bool
    thinking: list[str]
    content: list[str]
    reason: str
    prompt_count: int
    load_ns: int


class _Conn:
    """Wrap one client connection with its own read buffer (so a watcher can read ahead)."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer
        self.buf = bytearray()
        self.eof = False
        self.close_after = False

    async def _fill(self) -> bool:
        if self.eof:
            return False
        data = await self.reader.read(65536)
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not await self._fill():
                raise _ClientGone
        data = bytes(self.buf[:n])
        del self.buf[:n]
        return data

    async def _read_line(self) -> bytes:
        while (idx := self.buf.find(b"\r\n")) < 0:
            if not await self._fill():
                raise _ClientGone
        line = bytes(self.buf[:idx])
        del self.buf[: idx + 2]
        return line

    async def read_request(self) -> _Request | None:
        """Read one request (head and body); return None on a clean EOF between requests."""
        while True:
            while self.buf.startswith(b"\r\n"):
                del self.buf[:2]
            idx = self.buf.find(b"\r\n\r\n")
            if idx >= 0:
                break
            if len(self.buf) > 65536:
                raise _BadRequest
            if not await self._fill():
                return None
        head = bytes(self.buf[:idx]).decode("latin-1")
        del self.buf[: idx + 4]
        lines = head.split("\r\n")
        try:
            method, target, version = lines[0].split(" ", 2)
        except ValueError:
            raise _BadRequest from None
        headers: dict[str, str] = {}
        for line in lines[1:]:
            key, _, value = line.partition(":")
            headers[key.strip().lower()] = value.strip()
        if headers.get("expect", "").lower() == "100-continue":
            self.writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
        if "chunked" in headers.get("transfer-encoding", "").lower():
            parts = []
            while True:
                try:
                    size = int((await self._read_line()).split(b";", 1)[0].strip() or b"0", 16)
                except ValueError:
                    raise _BadRequest from None
                if size == 0:
                    while await self._read_line():
                        pass  # trailers
                    break
                parts.append(await self._read_exact(size))
                await self._read_line()
            body = b"".join(parts)
        else:
            try:
                length = int(headers.get("content-length") or 0)
            except ValueError:
                raise _BadRequest from None
            body = await self._read_exact(length) if length else b""
        path = target.split("?", 1)[0]
        return _Request(method.upper(), path, version.upper(), headers, body)

    async def watch(self) -> None:
        """Read ahead until the peer closes; returning means the client is gone."""
        try:
            while await self._fill():
                pass
        except (ConnectionError, OSError):
            self.eof = True


class _Job(NamedTuple):
    """Bundle what a handler needs: connection, request, log entry, parsed body, config snapshot."""

    conn: _Conn
    req: _Request
    entry: dict
    body: Any
    cfg: dict


_date_cache: list = [0, ""]


def _http_date() -> str:
    now = int(time.time())
    if _date_cache[0] != now:
        _date_cache[0], _date_cache[1] = now, formatdate(now, usegmt=True)
    return _date_cache[1]


def _status_line(status: int) -> str:
    try:
        phrase = HTTPStatus(status).phrase
    except ValueError:
        phrase = "status code " + str(status)
    return f"HTTP/1.1 {status} {phrase}\r\n"


class _NDJSONStream:
    """Write an NDJSON response with chunked transfer encoding, batching lines into chunks."""

    def __init__(self, double: OllamaDouble, job: _Job) -> None:
        self.double, self.conn, self.req, self.entry = double, job.conn, job.req, job.entry
        self.pending: list[str] = []
        self.started = False
        self.open = False
        # HTTP/1.0 peers cannot read chunked bodies; they get a close-delimited body instead.
        self.chunked = job.req.version != "HTTP/1.0"

    def add(self, line: str) -> None:
        """Queue one complete line (must end with a newline)."""
        self.pending.append(line)

    def add_obj(self, obj: Any) -> None:
        """Queue one JSON object as a line."""
        self.pending.append(dumps(obj) + "\n")

    async def flush(self) -> None:
        """Send queued lines as one chunk (headers first if not yet sent)."""
        writer = self.conn.writer
        if writer.is_closing() or self.conn.eof:
            raise _ClientGone
        data = "".join(self.pending).encode("ascii")
        self.pending.clear()
        out = b""
        if not self.started:
            self.started = True
            self.open = True
            self.double.in_flight += 1
            self.entry["status"] = 200
            head = _status_line(200) + f"Content-Type: {NDJSON_CT}\r\nDate: {_http_date()}\r\n"
            head += "Transfer-Encoding: chunked\r\n\r\n" if self.chunked else "Connection: close\r\n\r\n"
            out = head.encode("latin-1")
            if not self.chunked:
                self.conn.close_after = True
        if data:
            out += (b"%x\r\n" % len(data) + data + b"\r\n") if self.chunked else data
        if out:
            writer.write(out)
        if writer.transport.get_write_buffer_size() > _DRAIN_ABOVE:
            try:
                await writer.drain()
            except (ConnectionError, OSError):
                raise _ClientGone from None

    async def finish(self) -> None:
        """Flush and terminate the chunked body."""
        await self.flush()
        if self.chunked:
            self.conn.writer.write(b"0\r\n\r\n")
        try:
            await self.conn.writer.drain()
        except (ConnectionError, OSError):
            raise _ClientGone from None
        self.close()
        self.double._mark(self.entry, finished=True)

    def close(self) -> None:
        """Account for the stream no longer being in flight (idempotent)."""
        if self.open:
            self.open = False
            self.double.in_flight -= 1


# --------------------------------------------------------------------------------------------
# The double


class OllamaDouble:
    """Serve a protocol-faithful emulation of the Ollama HTTP API from a background thread."""

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self.port = port
        self.url = ""
        self.models: dict[str, dict] = _seed_models()
        self.requests: list[dict] = []
        self.in_flight = 0
        self.blobs: dict[str, bytes] = {}
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._cfg: dict[str, Any] = dict(_CONFIG_DEFAULTS)
        self._loaded: dict[str, dict] = {}
        self._claimed_requests: set[int] = set()
        self._claimed_closes: set[int] = set()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._server: asyncio.AbstractServer | None = None
        self._conns: dict[_Conn, asyncio.Task] = {}
        self._stopping = False
        self._routes: dict[str, dict[str, Callable]] = {
            "/": {"GET": self._h_root, "HEAD": self._h_root},
            "/api/version": {"GET": self._h_version, "HEAD": self._h_version},
            "/api/tags": {"GET": self._h_tags, "HEAD": self._h_tags},
            "/api/ps": {"GET": self._h_ps},
            "/api/show": {"POST": self._h_show},
            "/api/chat": {"POST": self._h_chat},
            "/api/generate": {"POST": self._h_generate},
            "/api/pull": {"POST": self._h_pull},
            "/api/push": {"POST": self._h_push},
            "/api/create": {"POST": self._h_create},
            "/api/copy": {"POST": self._h_copy},
            "/api/delete": {"DELETE": self._h_delete},
            "/api/embed": {"POST": self._h_embed},
            "/api/embeddings": {"POST": self._h_embeddings},
        }

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self) -> OllamaDouble:
        """Start the server thread and listen; return self with ``port`` and ``url`` set."""
        if self._thread is not None:
            return self
        loop = asyncio.new_event_loop()
        thread = threading.Thread(target=self._run_loop, args=(loop,), name="ollama-double", daemon=True)
        self._loop, self._thread, self._stopping = loop, thread, False
        thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._listen(), loop).result(timeout=10)
        except BaseException:
            self._halt_loop()
            raise
        return self

    def stop(self) -> None:
        """Close the listener and every open connection, then end the server thread."""
        if self._thread is None or self._loop is None:
            return
        try:
            asyncio.run_coroutine_threadsafe(self._shutdown(), self._loop).result(timeout=10)
        finally:
            self._halt_loop()
            with self._lock:
                self.in_flight = 0

    def restart(self) -> None:
        """Listen again on the same port (after ``stop()``), keeping models and the request log."""
        self.stop()
        self.start()

    def __enter__(self) -> OllamaDouble:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def _run_loop(self, loop: asyncio.AbstractEventLoop) -> None:
        asyncio.set_event_loop(loop)
        loop.run_forever()

    def _halt_loop(self) -> None:
        loop, thread = self._loop, self._thread
        if loop is not None:
            loop.call_soon_threadsafe(loop.stop)
        if thread is not None:
            thread.join(timeout=10)
        if loop is not None and not loop.is_running():
            loop.close()
        self._loop, self._thread, self._server = None, None, None

    async def _listen(self) -> None:
        self._server = await asyncio.start_server(
            self._serve_conn, self.host, self.port, reuse_address=True, backlog=2048
        )
        self.port = self._server.sockets[0].getsockname()[1]
        shown = "127.0.0.1" if self.host in ("", "0.0.0.0") else self.host
        if ":" in shown:
            shown = f"[{shown}]"
        self.url = f"http://{shown}:{self.port}"

    async def _shutdown(self) -> None:
        self._stopping = True
        if self._server is not None:
            self._server.close()
        tasks = []
        for conn, task in list(self._conns.items()):
            # abort() sends RST so clients see a dropped connection rather than a clean EOF.
            conn.writer.transport.abort()
            task.cancel()
            tasks.append(task)
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._server is not None:
            await self._server.wait_closed()

    # ---- state and configuration -----------------------------------------------------------

    def reset(self) -> None:
        """Restore the seed models, default configuration and an empty request log."""
        with self._lock:
            self.models.clear()
            self.models.update(_seed_models())
            self._cfg = dict(_CONFIG_DEFAULTS)
            self.requests.clear()
            self._claimed_requests.clear()
            self._claimed_closes.clear()
            self._loaded.clear()
            self.blobs.clear()

    def configure(self, **kwargs: Any) -> None:
        """Set faults/pacing for following requests; a value of None restores that key's default."""
        unknown = set(kwargs) - set(_CONFIG_DEFAULTS)
        if unknown:
            raise TypeError(f"unknown OllamaDouble option(s): {', '.join(sorted(unknown))}")
        with self._lock:
            cfg = dict(self._cfg)
            for key, value in kwargs.items():
                if value is None:
                    cfg[key] = _CONFIG_DEFAULTS[key]
                elif key == "fail_paths":
                    cfg[key] = tuple(value)
                else:
                    cfg[key] = value
            self._cfg = cfg

    @property
    def config(self) -> dict:
        """Return a copy of the current configuration."""
        return dict(self._cfg)

    def add_model(self, name: str, **fields: Any) -> dict:
        """Install a model directly (fields as in the catalogue); return its record."""
        parsed = parse_name(name)
        if parsed is None:
            raise ValueError(f"invalid model name: {name!r}")
        display = parsed.display()
        base = _CATALOGUE.get(display.lower(), {})
        rec = make_model_record(display, **{**base, **fields})
        with self._lock:
            self._remove_model(parsed)
            self.models[display] = rec
        return rec

    def loaded_models(self) -> list[str]:
        """Return the display names currently reported by ``/api/ps``."""
        with self._lock:
            self._expire_loaded()
            return list(self._loaded)

    # ---- request log -----------------------------------------------------------------------

    def _log(self, entry: dict) -> None:
        with self._cond:
            self.requests.append(entry)
            self._cond.notify_all()

    def _mark(self, entry: dict, **changes: Any) -> None:
        with self._cond:
            entry.update(changes)
            self._cond.notify_all()

    def _wait(self, predicate: Callable[[dict], bool], claimed: set[int], timeout: float, what: str) -> dict:
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                for entry in self.requests:
                    if id(entry) not in claimed and predicate(entry):
                        claimed.add(id(entry))
                        return entry
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    raise TimeoutError(f"ollama double: no {what} within {timeout}s")
                self._cond.wait(remaining)

    def wait_for_request(self, path: str, timeout: float = 5.0) -> dict:
        """Block until a request to ``path`` has arrived and return its log entry.

        Each call returns the oldest matching entry not returned by an earlier call, so
        successive calls walk through successive requests.
        """
        return self._wait(lambda e: e["path"] == path, self._claimed_requests, timeout, f"request to {path}")

    def wait_for_close(self, path: str = "/api/chat", timeout: float = 5.0) -> dict:
        """Block until a response to ``path`` was abandoned by the client; return its log entry.

        Like ``wait_for_request``, each call consumes one matching entry.
        """
        return self._wait(
            lambda e: e["path"] == path and e["closed_early"],
            self._claimed_closes,
            timeout,
            f"client close on {path}",
        )

    async def await_request(self, path: str, timeout: float = 5.0) -> dict:
        """Await ``wait_for_request`` without blocking the caller's event loop."""
        return await asyncio.to_thread(self.wait_for_request, path, timeout)

    async def await_close(self, path: str = "/api/chat", timeout: float = 5.0) -> dict:
        """Await ``wait_for_close`` without blocking the caller's event loop."""
        return await asyncio.to_thread(self.wait_for_close, path, timeout)

    # ---- connection handling ---------------------------------------------------------------

    async def _serve_conn(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = _Conn(reader, writer)
        task = asyncio.current_task()
        assert task is not None
        self._conns[conn] = task
        try:
            while not self._stopping:
                try:
                    req = await conn.read_request()
                except _BadRequest:
                    writer.write(
                        b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    )
                    break
                if req is None:
                    break
                await self._dispatch(conn, req)
                if conn.close_after or not req.keep_alive or conn.eof:
                    break
            if not writer.is_closing():
                await writer.drain()
        except (_ClientGone, ConnectionError, OSError, asyncio.CancelledError):
            pass
        finally:
            self._conns.pop(conn, None)
            writer.close()

    async def _dispatch(self, conn: _Conn, req: _Request) -> None:
        body: Any = None
        parse_error: str | None = None
        struct = _STRUCTS.get(req.path)
        if struct is not None and req.method in ("POST", "DELETE"):
            if not req.body:
                parse_error = "missing request body"
            else:
                try:
                    body = json.loads(req.body.decode("utf-8"))
                except UnicodeDecodeError:
                    parse_error = "invalid character looking for beginning of value"
                except json.JSONDecodeError as exc:
                    parse_error = _go_decode_error(exc)
                else:
                    if not isinstance(body, dict):
                        parse_error = (
                            f"json: cannot unmarshal {_go_type(body)} into Go value of type api.{struct}"
                        )
                    else:
                        parse_error = _check_field_types(struct, body)
        entry = {
            "method": req.method,
            "path": req.path,
            "body": body,
            "headers": dict(req.headers),
            "status": None,
            "closed_early": False,
            "finished": False,
            "dropped": False,
        }
        self._log(entry)

        job = _Job(conn, req, entry, body, self._cfg)
        if req.path.startswith("/api/blobs/"):
            methods: dict[str, Callable] = {"HEAD": self._h_blob_head, "POST": self._h_blob_post}
        else:
            methods = self._routes.get(req.path, {})
        if not methods:
            await self._respond(job, 404, b"404 page not found", "text/plain")
            return
        handler = methods.get(req.method)
        if handler is None:
            await self._respond(job, 405, b"405 method not allowed", "text/plain")
            return
        if parse_error is not None:
            await self._error(job, 400, parse_error)
            return
        try:
            if struct in ("ChatRequest", "GenerateRequest", "PullRequest", "PushRequest", "CreateRequest"):
                await self._watched(handler(job), conn, entry)
            else:
                await handler(job)
        except (_ClientGone, ConnectionError, OSError, asyncio.CancelledError):
            raise
        except Exception as exc:
            # A bug in the double must surface as a visible 500, not as a mysteriously closed socket.
            traceback.print_exc()
            conn.close_after = True
            if entry["status"] is None and not conn.writer.is_closing():
                await self._error(job, 500, f"ollama double internal error: {exc!r}")

    async def _watched(self, coro: Any, conn: _Conn, entry: dict) -> None:
        """Run a long handler while watching the socket, cancelling it when the client leaves."""
        work = asyncio.ensure_future(coro)
        watcher = asyncio.ensure_future(conn.watch())
        try:
            await asyncio.wait({work, watcher}, return_when=asyncio.FIRST_COMPLETED)
        except asyncio.CancelledError:
            work.cancel()
            watcher.cancel()
            await asyncio.gather(work, watcher, return_exceptions=True)
            raise
        if not work.done():
            work.cancel()
        else:
            watcher.cancel()
        outcome = (await asyncio.gather(work, watcher, return_exceptions=True))[0]
        peer_left = watcher.done() and not watcher.cancelled()
        if peer_left or isinstance(outcome, (_ClientGone, ConnectionError, OSError, asyncio.CancelledError)):
            conn.close_after = True
            conn.eof = True
            if not entry["finished"] and not entry["dropped"] and not self._stopping:
                self._mark(entry, closed_early=True)
        elif isinstance(outcome, BaseException):
            raise outcome

    # ---- response helpers ------------------------------------------------------------------

    async def _respond(self, job: _Job, status: int, body: bytes, content_type: str | None) -> None:
        req, writer = job.req, job.conn.writer
        head = _status_line(status)
        if content_type:
            head += f"Content-Type: {content_type}\r\n"
        head += f"Date: {_http_date()}\r\nContent-Length: {len(body)}\r\n"
        if not req.keep_alive:
            head += "Connection: close\r\n"
        data = head.encode("latin-1") + b"\r\n" + (b"" if req.method == "HEAD" else body)
        job.entry["status"] = status
        if writer.is_closing():
            raise _ClientGone
        writer.write(data)
        try:
            await writer.drain()
        except (ConnectionError, OSError):
            raise _ClientGone from None
        self._mark(job.entry, finished=True)

    async def _json(self, job: _Job, obj: Any, status: int = 200, content_type: str = JSON_CT) -> None:
        await self._respond(job, status, dumps(obj).encode("ascii"), content_type)

    async def _error(self, job: _Job, status: int, message: str) -> None:
        await self._json(job, {"error": message}, status)

    @staticmethod
    def _fail_body(status: int, model: str, cfg: dict) -> str:
        if cfg["fail_message"]:
            return cfg["fail_message"]
        if status == 503:
            return BUSY_MESSAGE
        if status == 500:
            return RUNNER_CRASH_MESSAGE
        if status == 404:
            return f"model '{model}' not found"
        try:
            return HTTPStatus(status).phrase.lower()
        except ValueError:
            return "error"

    async def _maybe_fail(self, job: _Job, model: str) -> bool:
        """Answer with the configured ``fail_status`` (before any streaming) when it applies."""
        status = job.cfg["fail_status"]
        if status and job.req.path in job.cfg["fail_paths"]:
            await self._error(job, int(status), self._fail_body(int(status), model, job.cfg))
            return True
        return False

    def _drop(self, job: _Job) -> None:
        """Close the connection mid-response without the terminating chunk, like a crashed server.

        A dying process's sockets are closed with FIN, so the client first reads every byte that
        was sent and then sees the body end early (httpx: RemoteProtocolError).
        """
        self._mark(job.entry, dropped=True)
        job.conn.close_after = True

    # ---- model lookup ----------------------------------------------------------------------

    def _find(self, name: ModelName) -> tuple[str, dict] | None:
        key = name.key()
        with self._lock:
            for display, rec in self.models.items():
                parsed = parse_name(display)
                if parsed is not None and parsed.key() == key:
                    return display, rec
        return None

    def _remove_model(self, name: ModelName) -> bool:
        found = self._find(name)
        if found is None:
            return False
        with self._lock:
            self.models.pop(found[0], None)
            self._loaded.pop(found[0], None)
        return True

    def _expire_loaded(self) -> None:
        now = datetime.now(UTC)
        for display in [d for d, info in self._loaded.items() if info["expires_at"] <= now]:
            del self._loaded[display]

    def _load(self, display: str, rec: dict, keep_alive: float | None, options: dict) -> None:
        seconds = 300.0 if keep_alive is None else keep_alive
        now = datetime.now(UTC)
        expires = now + (timedelta(days=365 * 290) if seconds < 0 else timedelta(seconds=seconds))
        num_ctx = options.get("num_ctx") if isinstance(options.get("num_ctx"), int) else None
        if num_ctx is None:
            param_ctx = rec["parameters"].get("num_ctx")
            num_ctx = param_ctx if isinstance(param_ctx, int) else DEFAULT_NUM_CTX
        with self._lock:
            self._loaded[display] = {"expires_at": expires, "context_length": num_ctx}

    def _unload(self, display: str) -> None:
        with self._lock:
            self._loaded.pop(display, None)

    # ---- simple endpoints ------------------------------------------------------------------

    async def _h_root(self, job: _Job) -> None:
        await self._respond(job, 200, b"Ollama is running", TEXT_CT)

    async def _h_version(self, job: _Job) -> None:
        await self._json(job, {"version": VERSION})

    async def _h_tags(self, job: _Job) -> None:
        with self._lock:
            items = sorted(self.models.items(), key=lambda kv: kv[1]["modified_at"], reverse=True)
            models = [
                {
                    "name": display,
                    "model": display,
                    "modified_at": _local_iso(rec["modified_at"]),
                    "size": rec["size"],
                    "digest": rec["digest"],
                    "details": _details(rec),
                    "capabilities": list(rec["capabilities"]),
                }
                for display, rec in items
            ]
        await self._json(job, {"models": models})

    async def _h_ps(self, job: _Job) -> None:
        with self._lock:
            self._expire_loaded()
            rows = []
            for display, info in sorted(
                self._loaded.items(), key=lambda kv: kv[1]["expires_at"], reverse=True
            ):
                rec = self.models.get(display)
                if rec is None:
                    continue
                rows.append(
                    {
                        "name": display,
                        "model": display,
                        "size": rec["size"],
                        "digest": rec["digest"],
                        "details": _details(rec),
                        "expires_at": _local_iso(info["expires_at"]),
                        "size_vram": rec["size"],
                        "context_length": info["context_length"],
                    }
                )
        await self._json(job, {"models": rows})

    async def _h_show(self, job: _Job) -> None:
        body = job.body
        raw = body.get("model") or body.get("name") or ""
        if not raw:
            return await self._error(job, 400, "model is required")
        name = parse_name(raw)
        if name is None:
            return await self._error(job, 400, "invalid model name")
        found = self._find(name)
        if found is None:
            return await self._error(job, 404, f"model '{name.display()}' not found")
        display, rec = found
        out: dict[str, Any] = {}
        if rec["license"]:
            out["license"] = rec["license"]
        out["modelfile"] = _modelfile(display, rec)
        if rec["parameters"]:
            out["parameters"] = _format_parameters(rec["parameters"])
        if rec["template"]:
            out["template"] = rec["template"]
        if rec["system"]:
            out["system"] = rec["system"]
        out["details"] = _details(rec)
        if rec["messages"]:
            out["messages"] = rec["messages"]
        out["model_info"] = _model_info(rec)
        out["capabilities"] = list(rec["capabilities"])
        out["modified_at"] = _local_iso(rec["modified_at"])
        await self._json(job, out)

    async def _h_copy(self, job: _Job) -> None:
        body = job.body
        source, destination = body.get("source") or "", body.get("destination") or ""
        src, dst = parse_name(source), parse_name(destination)
        if src is None:
            return await self._error(job, 400, f'source "{source}" is invalid')
        if dst is None:
            return await self._error(job, 400, f'destination "{destination}" is invalid')
        found = self._find(src)
        if found is None:
            return await self._error(job, 404, f'model "{source}" not found')
        if src.key() != dst.key():
            rec = copy.deepcopy(found[1])
            rec["name"] = dst.display()
            rec["modified_at"] = datetime.now(UTC)
            with self._lock:
                self._remove_model(dst)
                self.models[dst.display()] = rec
        await self._respond(job, 200, b"", None)

    async def _h_delete(self, job: _Job) -> None:
        body = job.body
        raw = body.get("model") or body.get("name") or ""
        if not raw:
            return await self._error(job, 400, "model is required")
        name = parse_name(raw)
        if name is None:
            return await self._error(job, 400, f'name "{raw}" is invalid')
        if not self._remove_model(name):
            return await self._error(job, 404, f"model '{raw}' not found")
        await self._respond(job, 200, b"", None)

    async def _h_blob_head(self, job: _Job) -> None:
        req = job.req
        match = _DIGEST_PATH.match(req.path[len("/api/blobs/") :])
        if not match:
            return await self._error(job, 400, "invalid digest format")
        known = "sha256:" + match.group(1).lower() in self.blobs
        await self._respond(job, 200 if known else 404, b"", None)

    async def _h_blob_post(self, job: _Job) -> None:
        req = job.req
        match = _DIGEST_PATH.match(req.path[len("/api/blobs/") :])
        if not match:
            return await self._error(job, 400, "invalid digest format")
        expected = "sha256:" + match.group(1).lower()
        actual = "sha256:" + hashlib.sha256(req.body).hexdigest()
        if expected in self.blobs:
            return await self._respond(job, 200, b"", None)
        if actual != expected:
            return await self._error(job, 400, f'digest mismatch, expected "{expected}", got "{actual}"')
        with self._lock:
            self.blobs[expected] = req.body[:16]  # the magic bytes are all create needs
        await self._respond(job, 201, b"", None)

    # ---- embeddings ------------------------------------------------------------------------

    async def _h_embed(self, job: _Job) -> None:
        req, body = job.req, job.body
        raw = body.get("model") or ""
        name = parse_name(raw)
        if not raw:
            return await self._error(job, 404, "model '' not found")
        if name is None:
            return await self._error(job, 400, "invalid model name")
        inputs = body.get("input")
        if inputs is None or inputs == "":
            inputs = []
        elif isinstance(inputs, str):
            inputs = [inputs]
        elif not isinstance(inputs, list) or not all(isinstance(x, str) for x in inputs):
            return await self._error(job, 400, "invalid input type")
        found = self._find(name)
        if found is None:
            return await self._error(job, 404, f'model "{raw}" not found, try pulling it first')
        display, rec = found
        try:
            keep_alive = self._keep_alive(body)
        except ValueError as exc:
            return await self._error(job, 400, str(exc))
        self._load(display, rec, keep_alive, body.get("options") or {})
        dims = rec["embedding_length"]
        want = body.get("dimensions")
        vectors = []
        for text in inputs:
            vec = embed_text(text, dims)
            if isinstance(want, int) and 0 < want < dims:
                vec = vec[:want]
                norm = math.sqrt(sum(x * x for x in vec)) or 1.0
                vec = [x / norm for x in vec]
            vectors.append(vec)
        elapsed = max(time.perf_counter_ns() - req.started_ns, 1000)
        out: dict[str, Any] = {"model": raw, "embeddings": vectors}
        if vectors:
            out.update(
                total_duration=elapsed + 1_000_000,
                load_duration=1_000_000,
                prompt_eval_count=sum(max(1, len(tokenize(t))) for t in inputs),
            )
        if keep_alive == 0:
            self._unload(display)
        await self._json(job, out)

    async def _h_embeddings(self, job: _Job) -> None:
        body = job.body
        raw = body.get("model") or ""
        if not raw:
            return await self._error(job, 400, "model is required")
        name = parse_name(raw)
        if name is None:
            return await self._error(job, 400, "invalid model name")
        found = self._find(name)
        if found is None:
            return await self._error(job, 404, f'model "{raw}" not found, try pulling it first')
        display, rec = found
        try:
            keep_alive = self._keep_alive(body)
        except ValueError as exc:
            return await self._error(job, 400, str(exc))
        self._load(display, rec, keep_alive, body.get("options") or {})
        prompt = body.get("prompt") or ""
        # The legacy endpoint is not normalised by the handler; scale so clients can't assume |v| == 1.
        vec = [x * 12.5 for x in embed_text(prompt, rec["embedding_length"])] if prompt else []
        await self._json(job, {"embedding": vec})

    # ---- chat / generate -------------------------------------------------------------------

    @staticmethod
    def _keep_alive(body: dict) -> float | None:
        value = body.get("keep_alive")
        if value is None:
            return None
        if isinstance(value, bool):
            raise ValueError("json: cannot unmarshal bool into Go value of type api.Duration")
        if isinstance(value, (int, float)):
            return float(value)
        if isinstance(value, str):
            return parse_go_duration(value)
        raise ValueError(f"json: cannot unmarshal {_go_type(value)} into Go value of type api.Duration")

    async def _h_chat(self, job: _Job) -> None:
        await self._generate(job, chat=True)

    async def _h_generate(self, job: _Job) -> None:
        await self._generate(job, chat=False)

    def _validate_generation(self, body: dict, chat: bool) -> tuple[int, str] | None:
        think = body.get("think")
        if (
            think is not None
            and not isinstance(think, bool)
            and think not in ("low", "medium", "high", "max")
        ):
            shown = think if isinstance(think, str) else dumps(think)
            return 400, (
                f'invalid think value: "{shown}" (must be "high", "medium", "low", "max", true, or false)'
            )
        top = body.get("top_logprobs")
        if top is not None and (not isinstance(top, int) or not 0 <= top <= 20):
            return 400, "top_logprobs must be between 0 and 20"
        images = list(body.get("images") or [])
        for msg in body.get("messages") or []:
            images.extend(msg.get("images") or [])
        for image in images:
            if not isinstance(image, str):
                return 400, f"json: cannot unmarshal {_go_type(image)} into Go value of type string"
            try:
                base64.b64decode(image, validate=True)
            except (binascii.Error, ValueError):
                bad = next((i for i, ch in enumerate(image) if not (ch.isalnum() or ch in "+/=")), len(image))
                return 400, f"illegal base64 data at input byte {bad}"
        if (
            not chat
            and body.get("raw")
            and (body.get("template") or body.get("system") or body.get("context"))
        ):
            return 400, "raw mode does not support template, system, or context"
        return None

    def _runner_error(self, body: dict) -> str | None:
        """Return the error the runner would raise for bad options/format (sent as HTTP 500)."""
        options = body.get("options") or {}
        stop = options.get("stop")
        if stop is not None and not (isinstance(stop, list) and all(isinstance(s, str) for s in stop)):
            return 'option "stop" must be of type array'
        fmt = body.get("format")
        if fmt not in (None, "", "json") and not isinstance(fmt, dict):
            return f'invalid format: {dumps(fmt)}; expected "json" or a valid JSON Schema object'
        return None

    @staticmethod
    def _plan(rec: dict, body: dict, cfg: dict, chat: bool, load_ns: int) -> _Plan:
        """Decide the thinking and content tokens, the done_reason and the prompt token count."""
        if chat:
            messages = body.get("messages") or []
            users = [m.get("content") or "" for m in messages if (m.get("role") or "").lower() == "user"]
            last = users[-1] if users else ""
            prompt_words = sum(len(tokenize(m.get("content") or "")) for m in messages)
        else:
            last = body.get("prompt") or ""
            prompt_words = len(tokenize(last)) + len(tokenize(body.get("system") or ""))
        marker = _TOKENS_MARKER.search(last)
        base = tokenize(cfg["reply"]) if cfg["reply"] is not None else _LOREM_TOKENS
        if marker:
            count = int(marker.group(1))
        elif cfg["reply"] is not None:
            count = len(base)
        else:
            count = int(cfg["reply_tokens"])
        content = _cycle_tokens(base, count)
        think = body.get("think")
        thinking_on = "thinking" in rec["capabilities"] and (
            think is True or isinstance(think, str) or (think is None and cfg["think_default"])
        )
        thinking = list(_THINKING_TOKENS) if thinking_on else []
        reason = "stop"
        num_predict = (body.get("options") or {}).get("num_predict")
        if isinstance(num_predict, (int, float)) and not isinstance(num_predict, bool) and num_predict >= 0:
            limit = int(num_predict)
            if limit < len(thinking) + len(content):
                reason = "length"
                thinking = thinking[:limit]
                content = content[: max(0, limit - len(thinking))]
        return _Plan(chat, thinking, content, reason, prompt_words + 10, load_ns)

    async def _generate(self, job: _Job, chat: bool) -> None:
        body, cfg = job.body, job.cfg
        raw = body.get("model") or ""
        if not raw:
            if chat:
                return await self._error(job, 400, "model is required")
            return await self._error(job, 404, "model '' not found")
        name = parse_name(raw)
        if name is None:
            return await self._error(job, 400, "invalid model name")
        try:
            keep_alive = self._keep_alive(body)
        except ValueError as exc:
            return await self._error(job, 400, str(exc))
        problem = self._validate_generation(body, chat)
        if problem:
            return await self._error(job, *problem)
        if await self._maybe_fail(job, raw):
            return
        found = self._find(name)
        if found is None:
            return await self._error(job, 404, f"model '{raw}' not found")
        display, rec = found
        caps = rec["capabilities"]
        if "completion" not in caps:
            return await self._error(job, 400, f'"{raw}" does not support {"chat" if chat else "generate"}')
        if chat and body.get("tools") and "tools" not in caps:
            return await self._error(job, 400, f"{name.full()} does not support tools")
        if not chat and body.get("suffix") and "insert" not in caps:
            return await self._error(job, 400, f"{name.full()} does not support insert")
        if body.get("think") not in (None, False) and "thinking" not in caps:
            return await self._error(job, 400, f'"{raw}" does not support thinking')
        runner_error = self._runner_error(body)
        if runner_error:
            return await self._error(job, 500, runner_error)

        was_loaded = display in self.loaded_models()
        load_started = time.perf_counter_ns()
        if cfg["first_token_delay"]:
            await asyncio.sleep(float(cfg["first_token_delay"]))
        self._load(display, rec, keep_alive, body.get("options") or {})
        load_ns = max(time.perf_counter_ns() - load_started, 100_000 if was_loaded else 2_000_000)

        if not (body.get("messages") if chat else body.get("prompt")):
            reason = "load"
            if keep_alive == 0:
                reason = "unload"
                self._unload(display)
            obj: dict[str, Any] = {"model": raw, "created_at": _utc_now()}
            if chat:
                obj["message"] = {"role": "assistant", "content": ""}
            else:
                obj["response"] = ""
            obj.update(done=True, done_reason=reason)
            return await self._json(job, obj)

        plan = self._plan(rec, body, cfg, chat, load_ns)
        try:
            if body.get("stream") is False:
                await self._generate_once(job, plan)
            else:
                await self._generate_stream(job, plan)
        finally:
            if keep_alive == 0:
                self._unload(display)

    @staticmethod
    def _fault_point(cfg: dict, total: int) -> tuple[str | None, int]:
        """Return the first configured fault and after how many tokens it fires."""
        best: tuple[str | None, int] = (None, total)
        for kind in ("error_after", "drop_after", "stall_after"):
            value = cfg[kind]
            if value is not None and (best[0] is None or int(value) < best[1]):
                best = (kind, min(int(value), total))
        return best

    @staticmethod
    def _final(job: _Job, plan: _Plan, eval_ns: int, content: str = "", thinking: str = "") -> dict:
        """Build the ``done:true`` object with ``done_reason`` and the six metrics."""
        prompt_ns = plan.prompt_count * 20_000
        elapsed = time.perf_counter_ns() - job.req.started_ns
        total_ns = max(elapsed, plan.load_ns + prompt_ns + eval_ns) + 50_000
        eval_count = len(plan.thinking) + len(plan.content)
        obj: dict[str, Any] = {"model": job.body["model"], "created_at": _utc_now()}
        if plan.chat:
            message = {"role": "assistant", "content": content}
            if thinking:
                message["thinking"] = thinking
            obj["message"] = message
        else:
            obj["response"] = content
            if thinking:
                obj["thinking"] = thinking
        obj["done"] = True
        obj["done_reason"] = plan.reason
        if not plan.chat and not job.body.get("raw"):
            obj["context"] = [(i * 7919 + 128000) % 128256 for i in range(plan.prompt_count + eval_count)]
        obj["total_duration"] = total_ns
        obj["load_duration"] = plan.load_ns
        obj["prompt_eval_count"] = plan.prompt_count
        obj["prompt_eval_duration"] = prompt_ns
        if eval_count:  # Go omits zero metrics
            obj["eval_count"] = eval_count
        obj["eval_duration"] = max(eval_ns, 1000)
        return obj

    async def _generate_once(self, job: _Job, plan: _Plan) -> None:
        """Answer ``stream:false``: the whole generation buffered into one object."""
        cfg = job.cfg
        total = len(plan.thinking) + len(plan.content)
        fault, at = self._fault_point(cfg, total)
        eval_started = time.perf_counter_ns()
        if cfg["tokens_per_second"]:
            # The real server buffers the whole generation, so the client waits for all of it.
            await asyncio.sleep((at if fault else total) / float(cfg["tokens_per_second"]))
        if fault == "error_after":
            return await self._error(job, 500, cfg["error_message"])
        if fault == "drop_after":
            return self._drop(job)
        if fault == "stall_after":
            await asyncio.get_running_loop().create_future()
        eval_ns = time.perf_counter_ns() - eval_started
        obj = self._final(job, plan, eval_ns, "".join(plan.content), "".join(plan.thinking))
        await self._json(job, obj)

    async def _generate_stream(self, job: _Job, plan: _Plan) -> None:
        """Stream NDJSON deltas, paced or as fast as possible, honouring the configured faults."""
        cfg = job.cfg
        total = len(plan.thinking) + len(plan.content)
        fault, at = self._fault_point(cfg, total)
        if fault == "error_after" and at == 0:
            # Nothing written yet: since v0.12.6 the error gets a real status (1.5, case 2).
            return await self._error(job, 500, cfg["error_message"])
        limit = at if fault else total
        head = '{"model":' + dumps(job.body["model"]) + ',"created_at":"'
        if plan.chat:
            content_tail = '","message":{"role":"assistant","content":'
            think_tail = '","message":{"role":"assistant","content":"","thinking":'
            end = '},"done":false}\n'
        else:
            content_tail = '","response":'
            think_tail = '","response":"","thinking":'
            end = ',"done":false}\n'
        # Pre-render everything after the timestamp so the hot loop is one concatenation per line.
        tails = [think_tail + _token_json(t) + end for t in plan.thinking]
        tails += [content_tail + _token_json(t) + end for t in plan.content]
        del tails[limit:]

        stream = _NDJSONStream(self, job)
        eval_started = time.perf_counter_ns()
        try:
            tps = cfg["tokens_per_second"]
            i = 0
            if not tps:
                while i < limit:
                    j = min(limit, i + (1 if i == 0 else _BATCH_LINES))
                    prefix = head + _utc_now()
                    stream.add("".join([prefix + tail for tail in tails[i:j]]))
                    await stream.flush()
                    i = j
                    # Let other streams and the socket watcher run between batches.
                    await asyncio.sleep(0)
            else:
                loop = asyncio.get_running_loop()
                rate = float(tps)
                t0 = loop.time()
                while i < limit:
                    # Token k is due at t0 + k/rate; send everything that is due in one chunk.
                    due = min(limit, int((loop.time() - t0) * rate) + 1)
                    if due > i:
                        prefix = head + _utc_now()
                        stream.add("".join([prefix + tail for tail in tails[i:due]]))
                        await stream.flush()
                        i = due
                    if i < limit:
                        await asyncio.sleep(max(0.0, t0 + i / rate - loop.time()))
            eval_ns = time.perf_counter_ns() - eval_started
            if fault == "error_after":
                stream.add_obj({"error": cfg["error_message"]})
                await stream.finish()
                return
            if fault == "drop_after":
                try:
                    await job.conn.writer.drain()
                except (ConnectionError, OSError):
                    raise _ClientGone from None
                return self._drop(job)
            if fault == "stall_after":
                # Headers only go out with the first token, as with a real server stuck loading.
                await asyncio.get_running_loop().create_future()
            stream.add_obj(self._final(job, plan, eval_ns))
            await stream.finish()
        finally:
            stream.close()

    # ---- pull / push / create --------------------------------------------------------------

    def _pull_events(self, name: ModelName, fresh: bool) -> list[Any]:
        """Return the progress lines of a pull (dicts), ending in an error string for unknown models."""
        events: list[Any] = [{"status": "pulling manifest"}]
        spec = _CATALOGUE.get(name.display().lower()) if name.host.lower() == REGISTRY_HOST else None
        if spec is None:
            events.append(MANIFEST_MISSING_MESSAGE)
            return events
        rec = make_model_record(name.display(), **spec)
        for layer in rec["layers"]:
            digest, size = layer["digest"], layer["size"]
            status = "pulling " + digest[7:19]
            if not fresh or size < 100_000:
                events.append({"status": status, "digest": digest, "total": size, "completed": size})
                continue
            events.append({"status": status, "digest": digest, "total": size})
            for step in range(1, 5):
                events.append(
                    {"status": status, "digest": digest, "total": size, "completed": size * step // 4}
                )
        events += [{"status": "verifying sha256 digest"}, {"status": "writing manifest"}]
        events.append(lambda: self._install(name, spec))
        events.append({"status": "success"})
        return events

    def _install(self, name: ModelName, spec: dict) -> None:
        with self._lock:
            existing = self._find(name)
            display = existing[0] if existing else name.display()
            self.models[display] = make_model_record(display, **spec)

    async def _progress(
        self,
        job: _Job,
        events: list[Any],
        seconds: float,
        fail_after: int | None = None,
        fail_message: str = "",
    ) -> None:
        """Play progress events as a stream, or buffered for ``stream:false`` (1.5 rules apply)."""
        lines = [e for e in events if isinstance(e, dict)]
        delay = seconds / max(1, len(lines))
        stream = _NDJSONStream(self, job) if job.body.get("stream") is not False else None
        sent = 0
        try:
            for event in events:
                if callable(event):
                    event()
                    continue
                if fail_after is not None and sent >= fail_after:
                    event = fail_message
                if isinstance(event, str):
                    if stream is not None and stream.started:
                        # Output already went out: the status stays 200 and the error is a line (1.5).
                        stream.add_obj({"error": event})
                        await stream.finish()
                    else:
                        await self._error(job, 500, event)
                    return
                if sent and delay:
                    await asyncio.sleep(delay)
                if stream is not None:
                    stream.add_obj(event)
                    await stream.flush()
                sent += 1
            if stream is not None:
                await stream.finish()
            else:
                await self._json(job, {"status": "success"}, content_type=PLAIN_JSON_CT)
        finally:
            if stream is not None:
                stream.close()

    async def _h_pull(self, job: _Job) -> None:
        body, cfg = job.body, job.cfg
        raw = body.get("model") or body.get("name") or ""
        name = parse_name(raw)
        if name is None:
            return await self._error(job, 400, "invalid model name")
        if await self._maybe_fail(job, raw):
            return
        events = self._pull_events(name, fresh=self._find(name) is None)
        await self._progress(
            job,
            events,
            float(cfg["pull_seconds"]),
            cfg["pull_fail_after"],
            cfg["pull_fail_message"],
        )

    async def _h_push(self, job: _Job) -> None:
        body, cfg = job.body, job.cfg
        raw = body.get("model") or body.get("name") or ""
        if not raw:
            return await self._error(job, 400, "model is required")
        name = parse_name(raw)
        if name is None:
            return await self._error(job, 400, "invalid model name")
        if await self._maybe_fail(job, raw):
            return
        found = self._find(name)
        events: list[Any] = [{"status": "retrieving manifest"}]
        if found is None:
            path = f"/root/.ollama/models/manifests/{name.host}/{name.namespace}/{name.model}/{name.tag}"
            events += [{"status": "couldn't retrieve manifest"}, f"open {path}: no such file or directory"]
        else:
            for layer in found[1]["layers"]:
                digest, size = layer["digest"], layer["size"]
                status = "pushing " + digest[7:19]
                events.append({"status": status, "digest": digest, "total": size})
                events.append({"status": status, "digest": digest, "total": size, "completed": size})
            events += [{"status": "pushing manifest"}, {"status": "success"}]
        await self._progress(job, events, float(cfg["pull_seconds"]))

    async def _h_create(self, job: _Job) -> None:
        body, cfg = job.body, job.cfg
        raw = body.get("model") or body.get("name") or ""
        name = parse_name(raw)
        if name is None:
            return await self._error(job, 400, "invalid model name")
        files = body.get("files") or {}
        for path, digest in {**files, **(body.get("adapters") or {})}.items():
            if not isinstance(digest, str) or not digest:
                return await self._error(job, 400, "invalid digest format")
            if path.startswith("/") or ".." in path.split("/"):
                return await self._error(job, 400, "file path must be relative")
        if await self._maybe_fail(job, raw):
            return
        source = body.get("from") or ""
        if not source and not files:
            return await self._error(job, 400, "neither 'from' or 'files' was specified")

        events: list[Any] = []
        fields: dict[str, Any]
        base_layers: list[dict]
        pulled = False
        if source:
            src = parse_name(source)
            if src is None:
                return await self._error(job, 400, "invalid model name")
            found = self._find(src)
            if found is None:
                # The server pulls a missing base first; drop the pull's own "success" line.
                pull = self._pull_events(src, fresh=True)
                if isinstance(pull[-1], str):
                    return await self._progress(job, pull, 0.0)
                events += pull[:-1]
                pulled = True
                spec = _CATALOGUE[src.display().lower()]
                fields = {k: v for k, v in spec.items() if k != "digest"}
                base_layers = make_model_record(src.display(), **spec)["layers"]
            else:
                base = found[1]
                fields = {
                    k: copy.deepcopy(base[k])
                    for k in (
                        "family",
                        "families",
                        "parameter_size",
                        "parameter_count",
                        "quantization_level",
                        "size",
                        "capabilities",
                        "context_length",
                        "embedding_length",
                        "template",
                        "license",
                        "parameters",
                        "system",
                        "messages",
                    )
                }
                base_layers = base["layers"]
        else:
            digests = [d.replace("-", ":", 1).lower() for d in files.values()]
            missing = [d for d in digests if d not in self.blobs]
            if missing:
                blob_path = "/root/.ollama/models/blobs/" + missing[0].replace(":", "-")
                return await self._error(job, 400, f"open {blob_path}: no such file or directory")
            if not all(self.blobs[d].startswith(b"GGUF") for d in digests):
                return await self._error(job, 400, "supplied file was not in GGUF format")
            events.append({"status": "parsing GGUF"})
            fields = {
                "family": "llama",
                "parameter_size": "1B",
                "capabilities": ["completion"],
                "license": "",
            }
            digest = next(iter(files.values())).replace("-", ":", 1).lower()
            base_layers = [{"media": "model", "digest": digest, "size": 1_000_000}]

        new_parts = {}
        for key in ("template", "system", "license", "parameters", "messages"):
            value = body.get(key)
            if value in (None, "", [], {}):
                continue
            if key == "license" and isinstance(value, list):
                value = "\n".join(value)
            if key == "parameters":
                value = {**fields.get("parameters", {}), **value}
            fields[key] = value
            new_parts[key] = value
        for layer in base_layers:
            if layer["media"] not in new_parts:
                events.append({"status": f"using existing layer {layer['digest']}"})
        for value in new_parts.values():
            events.append({"status": f"creating new layer sha256:{_sha(dumps(value))}"})
        events.append({"status": "writing manifest"})
        fields["layer_seed"] = source or raw
        if body.get("quantize") or body.get("quantization"):
            fields["quantization_level"] = (body.get("quantize") or body.get("quantization")).upper()

        def install() -> None:
            rec = make_model_record(name.display(), **fields)
            rec["layers"][0] = dict(base_layers[0])
            with self._lock:
                self._remove_model(name)
                self.models[name.display()] = rec

        events.append(install)
        events.append({"status": "success"})
        await self._progress(job, events, float(cfg["pull_seconds"]) if pulled else 0.0)


# --------------------------------------------------------------------------------------------
# Command line


def main(argv: list[str] | None = None) -> None:
    """Run the double in the foreground until interrupted."""
    parser = argparse.ArgumentParser(
        prog="python -m tests.ollama_double", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=11434, help="0 picks a free port")
    parser.add_argument("--tokens-per-second", type=float, default=None, help="pace chat/generate streams")
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="seconds of simulated loading")
    parser.add_argument("--reply-tokens", type=int, default=None, help="tokens per reply (default 30)")
    args = parser.parse_args(argv)

    double = OllamaDouble(host=args.host, port=args.port)
    double.configure(
        tokens_per_second=args.tokens_per_second,
        first_token_delay=args.first_token_delay,
        reply_tokens=args.reply_tokens,
    )
    double.start()
    print(f"ollama double listening on {double.url}", flush=True)
    done = threading.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        signal.signal(sig, lambda *_: done.set())
    try:
        while not done.wait(1.0):
            pass
    finally:
        double.stop()


if __name__ == "__main__":
    main()
