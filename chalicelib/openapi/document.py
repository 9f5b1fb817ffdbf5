"""The OpenAPI 3.1 document of the HTTP API, built from the pydantic models.

Each route is listed with its parameters, its request body (the model the
route validates with), its answer and the refusals it can make, all in
the one error shape. The document is built once and served as it is.
"""

from __future__ import annotations

import functools

from pydantic.json_schema import models_json_schema

from chalicelib.events import MAX_BODY_BYTES, PushBatch
from chalicelib.openapi import models
from chalicelib.state.queries import MAX_PAGE, MAX_SEARCH_QUERY, MAX_SEARCH_RESULTS, STATUSES
from chalicelib.sync import MAX_PULL_EVENTS

REF = "#/components/schemas/{model}"
# The refusals every authenticated route can make.
COMMON_REFUSALS = {
    401: "no token, or a bad one",
    415: "a Content-Type the route does not take",
    429: "throttled by the API stage (on AWS)",
    500: "misconfigured, an internal error, or an org's log is damaged",
    503: "the store is unavailable or the log too contended; retry after Retry-After",
}


def _json(model: str, description: str) -> dict:
    return {"description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}}}


def _refusals(route_refusals: dict[int, str] | None = None) -> dict:
    """The route's own refusals and the common ones, each an ErrorResponse."""
    chosen = {**COMMON_REFUSALS, **(route_refusals or {})}
    return {str(status): _json("ErrorResponse", text) for status, text in sorted(chosen.items())}


def _query(name: str, schema: dict, description: str) -> dict:
    return {"name": name, "in": "query", "required": False, "schema": schema,
            "description": description}


def _body(model: str, description: str) -> dict:
    return {"required": True, "description": description,
            "content": {"application/json": {"schema": {"$ref": REF.format(model=model)}}}}


def _operation(operation_id: str, summary: str, answer: str, refusals: dict, **more) -> dict:
    return {"operationId": operation_id, "summary": summary,
            "responses": {"200": _json(answer, summary), **refusals}, **more}


@functools.cache
def openapi_document() -> dict:
    """The OpenAPI 3.1 document (a fresh build per process, cached)."""
    _, schemas = models_json_schema(
        [(model, "validation" if model in (PushBatch, models.QueryRequest) else "serialization")
         for model in (PushBatch, models.QueryRequest, models.ErrorResponse, models.Health,
                       models.PushResult, models.PullPage, models.LinksPage, models.LinkDetail,
                       models.SearchResults, models.QueryResult, models.Stats)],
        ref_template=REF,
    )
    limit = lambda most, default: {"type": "integer", "minimum": 1, "maximum": most,  # noqa: E731
                                   "default": default}
    paths = {
        "/health": {"get": {
            "operationId": "health", "summary": "Is the API up", "security": [],
            "responses": {"200": _json("Health", "up")}}},
        "/v1/sync/push": {"post": _operation(
            "push", "Commit a batch of events as the org's next log version", "PushResult",
            _refusals({400: "malformed JSON", 413: "body or batch too large",
                       422: "invalid fields, with their paths"}),
            requestBody=_body("PushBatch", f"at most {MAX_BODY_BYTES} bytes"))},
        "/v1/sync/pull": {"get": _operation(
            "pull", "Commits after a version", "PullPage", _refusals({422: "bad parameters"}),
            parameters=[
                _query("since", {"type": "integer", "minimum": 0, "default": 0},
                       "commits after this version"),
                _query("limit", limit(MAX_PULL_EVENTS, MAX_PULL_EVENTS), "events per page"),
            ])},
        "/v1/links": {"get": _operation(
            "listLinks", "The org's links, newest first", "LinksPage",
            _refusals({422: "bad parameters"}),
            parameters=[
                _query("status", {"type": "string", "enum": list(STATUSES)}, "only this status"),
                _query("tag", {"type": "string"}, "only links with this tag id"),
                _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                _query("limit", limit(MAX_PAGE, 50), "links per page"),
            ])},
        "/v1/links/{link_id}": {"get": _operation(
            "getLink", "One link with its text, summary and tags", "LinkDetail",
            _refusals({404: "no such link"}),
            parameters=[{"name": "link_id", "in": "path", "required": True,
                         "schema": {"type": "string"}, "description": "a link id or alias"}])},
        "/v1/search": {"get": _operation(
            "search", "Full-text search, best first", "SearchResults",
            _refusals({422: "bad parameters"}),
            parameters=[
                _query("q", {"type": "string", "maxLength": MAX_SEARCH_QUERY}, "words to find"),
                _query("limit", limit(MAX_SEARCH_RESULTS, 20), "results"),
            ])},
        "/v1/query": {"post": _operation(
            "query", "Read-only SQL over the org's state", "QueryResult",
            _refusals({400: "malformed JSON", 413: "SQL too long",
                       422: "not one read-only statement, or over the time limit"}),
            requestBody=_body("QueryRequest", "one SELECT or WITH statement"))},
        "/v1/stats": {"get": _operation(
            "stats", "Version, snapshot and processing figures", "Stats", _refusals())},
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/": {"get": {
            "operationId": "webPage", "summary": "The small web page", "security": [],
            "responses": {"200": {"description": "HTML",
                                  "content": {"text/html": {"schema": {"type": "string"}}}}}}},
    }
    return {
        "openapi": "3.1.0",
        "info": {"title": "linklog", "version": "1",
                 "description": "Save links for later: an event log per org, processed into "
                                "rich entries. Every refusal is an ErrorResponse."},
        "paths": paths,
        "components": {
            "schemas": schemas["$defs"],
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer",
                                           "bearerFormat": "JWT"}},
        },
        "security": [{"bearer": []}],
    }
