from __future__ import annotations

from collections.abc import Sequence

from django import template

from jobkit.models import JobRun
from jobkit.timeline_chart import Chart, chart

register = template.Library()


@register.inclusion_tag("jobkit/timeline_chart.html")
def timeline_chart(jobs: Sequence[JobRun]) -> dict[str, Chart | None]:
    """{% timeline_chart jobs %}: one subject's jobs as bars on a time axis (jobkit/timeline_chart.py)."""
    return {"chart": chart(jobs)}
