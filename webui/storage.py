from __future__ import annotations

from whitenoise.storage import CompressedManifestStaticFilesStorage


class StaticStorage(CompressedManifestStaticFilesStorage):
    """Hashed, compressed static files; unhashed URLs before `collectstatic` has run.

    `make run` collects static files, so production pages get cache-busting names. Tests and
    a fresh checkout have no manifest: the plain name is served by whitenoise's finders.
    """

    manifest_strict = False

    def url(self, name: str | None, force: bool = False) -> str:
        try:
            return super().url(name, force)
        except ValueError:
            return self.base_url + (name or "")
