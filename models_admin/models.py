"""Long model operations (pull, push, create), the audit log of every admin action, and the
Ollama servers admins add to the fleet."""

from __future__ import annotations

from datetime import timedelta

from django.conf import settings
from django.db import models
from django.utils.translation import gettext_lazy as _


class Operation(models.Model):
    """One long-running job against Ollama, run as a task in a server process."""

    class Kind(models.TextChoices):
        PULL = "pull", _("Pull")
        PUSH = "push", _("Push")
        CREATE = "create", _("Create")

    class Status(models.TextChoices):
        RUNNING = "running", _("Running")
        SUCCEEDED = "succeeded", _("Succeeded")
        FAILED = "failed", _("Failed")
        CANCELLED = "cancelled", _("Cancelled")

    kind = models.CharField(max_length=16, choices=Kind.choices)
    model = models.CharField(max_length=600)
    source = models.CharField(max_length=600, blank=True)  # the base model of a create
    server = models.CharField(max_length=100, blank=True)  # the fleet server's name it runs on
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)  # the heartbeat while running
    error = models.TextField(blank=True)
    progress = models.JSONField(default=dict, blank=True)  # the last snapshot, saved every few seconds

    class Meta:
        indexes = [
            models.Index(fields=["status", "updated_at"], name="op_status"),
            models.Index(fields=["-started_at"], name="op_recent"),
        ]

    def __str__(self) -> str:
        return f"{self.kind} {self.model} ({self.status})"

    @property
    def is_running(self) -> bool:
        return self.status == self.Status.RUNNING

    @property
    def duration(self) -> timedelta | None:
        if self.finished_at is None:
            return None
        return self.finished_at - self.started_at


class AuditEntry(models.Model):
    """Who did what to which model, and whether it worked."""

    class Action(models.TextChoices):
        PULL = "pull", _("Pull")
        CANCEL = "cancel", _("Cancel")
        DELETE = "delete", _("Delete")
        CREATE = "create", _("Create")
        COPY = "copy", _("Copy")
        PUSH = "push", _("Push")
        UNLOAD = "unload", _("Unload")
        SERVER = "server", _("Server")

    class Outcome(models.TextChoices):
        OK = "ok", _("OK")
        ERROR = "error", _("Error")

    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    action = models.CharField(max_length=16, choices=Action.choices)
    model = models.CharField(max_length=600)
    outcome = models.CharField(max_length=8, choices=Outcome.choices)
    detail = models.TextField(blank=True)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        verbose_name_plural = "audit entries"

    def __str__(self) -> str:
        return f"{self.action} {self.model}: {self.outcome}"


class OllamaServer(models.Model):
    """An Ollama server an admin added to the fleet (servers from the environment are not rows)."""

    name = models.CharField(_("name"), max_length=100, unique=True)
    base_url = models.CharField(_("base URL"), max_length=500, unique=True)
    enabled = models.BooleanField(_("enabled"), default=True)
    headers = models.JSONField(_("extra headers"), default=dict, blank=True)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return f"{self.name} ({self.base_url})"
