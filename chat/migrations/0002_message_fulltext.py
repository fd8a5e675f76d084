"""Full-text index for conversation search on PostgreSQL (SQLite keeps a LIKE fallback)."""

from __future__ import annotations

from django.db import migrations

INDEX = (
    "CREATE INDEX IF NOT EXISTS msg_content_fts ON chat_message "
    "USING gin (to_tsvector('simple'::regconfig, COALESCE(content, '')))"
)


def create_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute(INDEX)


def drop_index(apps, schema_editor):
    if schema_editor.connection.vendor == "postgresql":
        schema_editor.execute("DROP INDEX IF EXISTS msg_content_fts")


class Migration(migrations.Migration):
    dependencies = [("chat", "0001_initial")]
    operations = [migrations.RunPython(create_index, drop_index)]
