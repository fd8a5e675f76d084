"""Conversations and their messages, each owned by one user."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Conversation(models.Model):
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="conversations"
    )
    title = models.CharField(max_length=200, blank=True)
    model = models.CharField(max_length=200, blank=True)
    system_prompt = models.TextField(blank=True)
    # Generation options sent to Ollama: temperature, top_p, top_k, num_ctx, seed,
    # num_predict (the length limit; Ollama ignores "max_tokens") and keep_alive.
    options = models.JSONField(default=dict, blank=True)
    pinned = models.BooleanField(default=False)
    archived = models.BooleanField(default=False)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now_add=True, db_index=False)

    class Meta:
        indexes = [
            # The sidebar: one user's conversations, pinned first, newest first.
            models.Index(fields=["owner", "archived", "-pinned", "-updated_at", "-id"], name="conv_sidebar"),
        ]

    def __str__(self) -> str:
        return self.title or f"#{self.pk}"


class Message(models.Model):
    class Role(models.TextChoices):
        USER = "user", _("User")
        ASSISTANT = "assistant", _("Assistant")

    class Status(models.TextChoices):
        STREAMING = "streaming", _("Streaming")
        COMPLETE = "complete", _("Complete")
        STOPPED = "stopped", _("Stopped")
        INTERRUPTED = "interrupted", _("Interrupted")
        ERROR = "error", _("Error")

    conversation = models.ForeignKey(Conversation, on_delete=models.CASCADE, related_name="messages")
    role = models.CharField(max_length=16, choices=Role.choices)
    content = models.TextField(blank=True)
    thinking = models.TextField(blank=True)
    model = models.CharField(max_length=200, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.COMPLETE)
    error = models.TextField(blank=True)
    error_kind = models.CharField(max_length=32, blank=True)
    # Ollama's statistics from the final chunk (durations in nanoseconds).
    prompt_eval_count = models.IntegerField(null=True, blank=True)
    eval_count = models.IntegerField(null=True, blank=True)
    eval_duration = models.BigIntegerField(null=True, blank=True)
    total_duration = models.BigIntegerField(null=True, blank=True)
    done_reason = models.CharField(max_length=32, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)  # doubles as the stream's heartbeat
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["id"]
        indexes = [
            models.Index(fields=["conversation", "id"], name="msg_history"),
            models.Index(fields=["status", "updated_at"], name="msg_status"),
        ]

    def __str__(self) -> str:
        return f"{self.role} #{self.pk}"

    @property
    def is_final(self) -> bool:
        return self.status != self.Status.STREAMING

    @property
    def tokens_per_second(self) -> float | None:
        if self.eval_count and self.eval_duration:
            return self.eval_count / self.eval_duration * 1e9
        return None

    @property
    def total_seconds(self) -> float | None:
        return self.total_duration / 1e9 if self.total_duration else None
