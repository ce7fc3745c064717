from __future__ import annotations

from django.db import models


class OpsPermission(models.Model):  # noqa: DJ008 (no rows to print: it has no table)
    """No table: Django permissions hang off a model, and the ops page's own switches have none."""

    class Meta:
        managed = False
        default_permissions = ()
        permissions = [
            ("switch_sandbox_faults", "Can switch the sandbox's faults on the ops page"),
            ("advance_clock", "Can move the shop clock forward on the ops page"),
            ("run_chaos", "Can start a fault campaign from the ops page"),
        ]
