"""Small helpers shared by the JSON API views: body parsing, errors, Idempotency-Key handling."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Any, TypeVar

from django import forms
from django.db import IntegrityError, transaction
from django.http import HttpRequest, JsonResponse

from shop.models import IdempotencyRecord


class ApiError(Exception):
    def __init__(self, errors: dict[str, list[str]], status: int = 400):
        super().__init__(errors)
        self.errors = errors
        self.status = status

    def response(self) -> JsonResponse:
        return JsonResponse({"errors": self.errors}, status=self.status)


def json_body(request: HttpRequest) -> dict[str, Any]:
    if request.content_type != "application/json":
        raise ApiError({"body": ["Send JSON with Content-Type: application/json."]}, status=415)
    try:
        data = json.loads(request.body or b"")
    except (ValueError, UnicodeDecodeError) as exc:
        raise ApiError({"body": [f"Malformed JSON: {exc}"]}) from exc
    if not isinstance(data, dict):
        raise ApiError({"body": ["The JSON body must be an object."]})
    return data


FormT = TypeVar("FormT", bound=forms.Form)


def bind_json(
    body: dict[str, Any], form_class: type[FormT], other_fields: tuple[str, ...] = ()
) -> tuple[FormT, dict[str, list[str]]]:
    """Bind a JSON body to a form of string fields; every problem is returned by field at once:
    unknown fields (under "body"), values that are not strings, and the form's own errors."""
    errors: dict[str, list[str]] = {}
    unknown = sorted(set(body) - set(form_class.base_fields) - set(other_fields))
    if unknown:
        errors["body"] = [f"Unknown field(s): {', '.join(unknown)}."]
    for field in form_class.base_fields:
        if field in body and not isinstance(body[field], str):
            errors[field] = ["Must be a string."]
    form = form_class({k: v for k, v in body.items() if k in form_class.base_fields and isinstance(v, str)})
    if not form.is_valid():
        for field, messages in form.errors.items():
            errors.setdefault(field, list(messages))
    return form, errors


def idempotent_create(
    request: HttpRequest, scope: str, body: dict[str, Any], create: Callable[[], str]
) -> tuple[str, bool]:
    """Run `create` (returns the new resource's public id) at most once per Idempotency-Key.

    Returns (resource_id, created). Without the header it just creates. The same key with a different
    body is refused with 422, as Stripe does, because the client is reusing a key by mistake.
    """
    key = request.headers.get("Idempotency-Key")
    if key is None:
        return create(), True
    if not 1 <= len(key) <= 255:
        raise ApiError({"Idempotency-Key": ["Must be 1 to 255 characters."]})
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    for _ in range(2):
        existing = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise ApiError(
                    {"Idempotency-Key": ["This key was already used with a different request body."]},
                    status=422,
                )
            return existing.resource_id, False
        try:
            with transaction.atomic():
                resource_id = create()
                IdempotencyRecord.objects.create(
                    scope=scope, key=key, fingerprint=fingerprint, resource_id=resource_id
                )
            return resource_id, True
        except IntegrityError:
            continue  # a concurrent request with the same key won: read its record
    raise ApiError({"Idempotency-Key": ["Could not settle this key; retry the request."]}, status=409)
