from __future__ import annotations

from django.db import models


class IdempotencyRecord(models.Model):
    """An API request's Idempotency-Key and the resource it created.

    Written in the same transaction as the resource, under a unique (scope, key) constraint, so two
    concurrent requests with the same key cannot both create one: the loser reads the winner's row.
    """

    scope = models.CharField(max_length=32)
    key = models.CharField(max_length=255)
    fingerprint = models.CharField(max_length=64, help_text="sha256 of the canonical request body")
    resource_id = models.CharField(max_length=64)
    created_at = models.DateTimeField(auto_now_add=True, db_index=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["scope", "key"], name="idempotency_key_unique_per_scope")
        ]

    def __str__(self) -> str:
        return f"{self.scope}:{self.key}"


class OpsPermission(models.Model):  # noqa: DJ008 (no rows to print: it has no table)
    """No table: Django permissions hang off a model, and the ops page's own switches have none."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [("switch_sandbox_faults", "Can switch the sandbox's faults on the ops page")]
