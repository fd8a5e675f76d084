"""Fixtures of the webui tests."""

from __future__ import annotations

import pytest

from webui.health import health_cache_clear


@pytest.fixture(autouse=True)
def _fresh_health_cache():
    """Forget Ollama health results between tests: each test points at its own Ollama."""
    health_cache_clear()
    yield
    health_cache_clear()
