"""What every router of the JSON API shares: reading a JSON body, binding it to a form, the error
shape, the documented request bodies and Idempotency-Key handling.

Request bodies are not validated by ninja: `json_object` reads them and the Django forms decide (the
same forms as the HTML pages), so a rule lives in one place. The ninja Schema classes of the bodies
only describe them in the OpenAPI document (`json_request_body`).
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable
from typing import Annotated, Any, TypeVar

from django import forms
from django.conf import settings
from django.core.exceptions import RequestDataTooBig, ValidationError
from django.db import IntegrityError, transaction
from django.db.models import Model, QuerySet
from django.http import Http404, HttpRequest
from ninja import Field, Header, Schema
from ninja.openapi.schema import REF_TEMPLATE
from pydantic import ConfigDict

from apikit.models import IdempotencyRecord

# Our bodies are 4 levels deep. A far deeper one is an attack or a mistake: refused before any code
# (repr, json.dumps, the forms) walks it recursively.
MAX_JSON_DEPTH = 32
DISCARD_MAX_BYTES = 64 * 1024 * 1024  # of an oversized body, read to answer it (see discard_body)


class ApiError(Exception):
    """A refusal: rendered as `{"errors": {field: [messages]}}` with `status` by the API's handler."""

    def __init__(self, errors: dict[str, list[str]], status: int = 400):
        super().__init__(errors)
        self.errors = errors
        self.status = status


class Errors(Schema):
    """Every refusal by an operation: the problems by field ("body" for the body as a whole)."""

    errors: dict[str, list[str]]


class In(Schema):
    """Base of the request body schemas, which only document: `additionalProperties: false` says that
    unknown fields are refused (by `bind_json`)."""

    model_config = ConfigDict(extra="forbid")


class Out(Schema):
    """Base of the response schemas. A payload key that the schema lacks is a server error, which the
    tests meet at once: the document cannot silently fall behind the payload functions."""

    model_config = ConfigDict(extra="forbid")


class Accepted(Out):
    """202: the request is committed; its work runs in background jobs. Poll `url` (or the GET)."""

    id: str
    status: str
    url: str


class Job(Out):
    """One row of a subject's job timeline (`JobRun.as_dict()`)."""

    name: str
    queue: str
    status: str
    attempts: int
    retries: int
    queued_at: str | None
    started_at: str | None
    finished_at: str | None
    next_retry_at: str | None
    last_error: str


# Typed `str` so that the document says a string (a header is never null); absent, it is None.
IdempotencyKey = Annotated[
    str,
    Header(
        None,
        alias="Idempotency-Key",
        min_length=1,
        max_length=255,
        description="Same key and same body: the first answer again. Same key, another body: 422.",
    ),
]


def json_request_body(schema: type[Schema]) -> dict[str, Any]:
    """The OpenAPI `requestBody` of an operation whose body `json_object` reads (pass as openapi_extra).

    Nested schemas are written in place: the operation's document cannot add them to the components.
    """
    document = schema.model_json_schema(ref_template=REF_TEMPLATE)
    definitions = document.pop("$defs", {})

    def resolve(node: Any) -> Any:
        if isinstance(node, dict):
            if "$ref" in node:
                return resolve(definitions[node["$ref"].rsplit("/", 1)[-1]])
            return {key: resolve(value) for key, value in node.items()}
        if isinstance(node, list):
            return [resolve(value) for value in node]
        return node

    return {"requestBody": {"required": True, "content": {"application/json": {"schema": resolve(document)}}}}


def json_object(request: HttpRequest) -> dict[str, Any]:
    """The request's body as a JSON object, or an ApiError naming what is wrong with it."""
    if request.content_type != "application/json":
        raise ApiError({"body": ["Send JSON with Content-Type: application/json."]}, status=415)
    try:
        raw = request.body
    except RequestDataTooBig as exc:  # Django refuses to read it; its default answer is an HTML 400
        discard_body(request)
        limit = settings.DATA_UPLOAD_MAX_MEMORY_SIZE
        raise ApiError({"body": [f"The body is larger than {limit} bytes."]}, status=413) from exc
    try:
        text = raw.decode("utf-8")  # RFC 8259: JSON between systems is UTF-8
    except UnicodeDecodeError as exc:
        raise ApiError({"body": [f"The body is not UTF-8: {exc}"]}) from exc
    try:
        data = json.loads(text)
        too_deep = json_depth(data) > MAX_JSON_DEPTH
    except RecursionError:  # nested past even the parser's own limit
        too_deep = True
    except ValueError as exc:
        raise ApiError({"body": [f"Malformed JSON: {exc}"]}) from exc
    if too_deep:
        raise ApiError({"body": [f"JSON nested deeper than {MAX_JSON_DEPTH} levels."]})
    if not isinstance(data, dict):
        raise ApiError({"body": ["The JSON body must be an object."]})
    return data


def discard_body(request: HttpRequest) -> None:
    """Read and drop the unread body, up to DISCARD_MAX_BYTES.

    Most clients send the whole body before reading the answer; if the server closed the connection
    with the body unread, they would see it reset (a broken pipe), not the 413. Past the bound, a client
    is not worth a worker's time and the reset is what it gets.
    """
    left = DISCARD_MAX_BYTES
    while left > 0 and (chunk := request.read(min(left, 64 * 1024))):
        left -= len(chunk)


def json_depth(value: Any) -> int:
    """Levels of nesting of a parsed JSON value (a scalar is 1), counted without recursion."""
    depth, level = 0, [value]
    while level:
        depth += 1
        level = [
            child
            for node in level
            if isinstance(node, dict | list)
            for child in (node.values() if isinstance(node, dict) else node)
        ]
    return depth


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


ModelT = TypeVar("ModelT", bound=Model)


def idempotent_create(
    key: str | None, queryset: QuerySet[ModelT], body: dict[str, Any], create: Callable[[], ModelT]
) -> ModelT:
    """Run `create` (returns the new resource, which has a `public_id`) at most once per Idempotency-Key.

    Returns what the first request with this key created. Without a key it just creates. The same key
    with a different body is refused with 422, as Stripe does: the client is reusing a key by mistake.
    Keys are scoped by the resource's model, so an order and a subscription may share one.
    """
    if key is None:
        return create()
    scope = queryset.model._meta.label_lower
    fingerprint = hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()
    for _ in range(2):
        existing = IdempotencyRecord.objects.filter(scope=scope, key=key).first()
        if existing is not None:
            if existing.fingerprint != fingerprint:
                raise ApiError(
                    {"Idempotency-Key": ["This key was already used with a different request body."]},
                    status=422,
                )
            return queryset.get(public_id=existing.resource_id)
        try:
            with transaction.atomic():
                resource = create()
                IdempotencyRecord.objects.create(
                    scope=scope, key=key, fingerprint=fingerprint, resource_id=str(resource.public_id)
                )
            return resource
        except IntegrityError:
            continue  # a concurrent request with the same key won: read its record
    raise ApiError({"Idempotency-Key": ["Could not settle this key; retry the request."]}, status=409)


# An email address in a JSON API body's schema (documentation only: the forms' EmailField decides;
# 254 characters is the longest address RFC 5321 lets through).
Email = Annotated[
    str, Field(max_length=254, examples=["ada@example.com"], json_schema_extra={"format": "email"})
]


def get_by_public_id(queryset: QuerySet[ModelT], public_id: str, what: str) -> ModelT:
    """The object with this public id, or a 404: a malformed id is just an id nobody has."""
    try:
        return queryset.get(public_id=public_id)
    except (queryset.model.DoesNotExist, ValidationError) as exc:
        raise Http404(f"No such {what}.") from exc
