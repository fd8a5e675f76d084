"""Benchmarks of the web UI against the Ollama double: `python -m tests.bench` (`make bench`)."""
