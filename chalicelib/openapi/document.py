"""The OpenAPI 3.1 document of the HTTP API, built from the pydantic models.

Each route is listed with its parameters, its request body (the model the
route validates with), its answer and the refusals it can make, all in
the one error shape. The document is built once and served as it is.
"""

from __future__ import annotations

import functools

from pydantic.json_schema import models_json_schema

from chalicelib import exports, imports, web
from chalicelib.events import MAX_BODY_BYTES, OrgSettingsChangedArgs, PushBatch
from chalicelib.formats import FORMATS as IMPORT_FORMATS
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


def _media_type(content_type: str) -> str:
    # A response's media type without its charset, as OpenAPI names it.
    return content_type.split(";")[0]


def _file(content_types, description: str) -> dict:
    """A file answer (a web app asset) in any of ``content_types``: text, or a JSON document."""
    content = {}
    for kind in map(_media_type, content_types):
        # Clients (and schemathesis) parse a +json answer: it is an object, not a string.
        shape = "object" if kind.endswith("+json") else "string"
        content[kind] = {"schema": {"type": shape}}
    return {"description": description, "content": content}


def _asset(operation_id: str, summary: str, names: list[str], refusals: dict | None = None,
           **more) -> dict:
    """A web app file route: no token, the content types of ``names``."""
    return {"operationId": operation_id, "summary": summary, "security": [],
            "responses": {"200": _file([web.ASSETS[name] for name in names], summary),
                          **(refusals or {})},
            **more}


def _export_answer() -> dict:
    """The export file in its format's content type, or on S3 (large) where to fetch it."""
    content = {_media_type(kind): {"schema": {"type": "string"}}
               for _, kind in exports.FORMATS.values()}
    content["application/json"] = {"schema": {"oneOf": [
        {"$ref": REF.format(model="LinklogExport")}, {"$ref": REF.format(model="ExportLink")}]}}
    return {"description": "the file (Content-Disposition: attachment), or on S3 a file over "
                           f"{exports.INLINE_LIMIT} bytes as a presigned link valid for an hour",
            "content": content}


def _operation(operation_id: str, summary: str, answer: str, refusals: dict, **more) -> dict:
    return {"operationId": operation_id, "summary": summary,
            "responses": {"200": _json(answer, summary), **refusals}, **more}


@functools.cache
def openapi_document() -> dict:
    """The OpenAPI 3.1 document (a fresh build per process, cached)."""
    _, schemas = models_json_schema(
        [(model, "validation" if model in (PushBatch, models.QueryRequest, OrgSettingsChangedArgs)
          else "serialization")
         for model in (PushBatch, models.QueryRequest, OrgSettingsChangedArgs, models.OrgSettings,
                       models.ErrorResponse, models.Health,
                       models.PushResult, models.PullPage, models.LinksPage, models.LinkDetail,
                       models.TagList, models.SearchResults, models.QueryResult,
                       models.ImportSummary, models.ExportLink, models.LinklogExport,
                       models.Stats)],
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
                _query("archived", {"type": "string", "enum": ["true", "false"]},
                       "true: only links marked read; false: only the others"),
                _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                _query("limit", limit(MAX_PAGE, 50), "links per page"),
            ])},
        "/v1/tags": {"get": _operation(
            "listTags", "The org's tags with how many saved links carry each", "TagList",
            _refusals({422: "bad parameters"}),
            parameters=[
                _query("cursor", {"type": "string"}, "next_cursor of the previous page"),
                _query("limit", limit(MAX_PAGE, 50), "tags per page"),
            ])},
        "/v1/links/{link_id}": {"get": _operation(
            "getLink", "One link with its text, summary and tags", "LinkDetail",
            _refusals({404: "no such link", 422: "an id holding NUL or a lone surrogate"}),
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
        "/v1/import": {"post": _operation(
            "importFile", "Save the links of an uploaded bookmark file", "ImportSummary",
            _refusals({413: "a file over 10 MB", 422: "a file in no known format, or empty"}),
            parameters=[_query("format", {"type": "string", "enum": list(IMPORT_FORMATS)},
                               "the file's format (detected from its content by default)")],
            requestBody={
                "required": True,
                "description": f"the file's raw bytes, at most {imports.MAX_UPLOAD_BYTES} bytes",
                "content": {kind: {"schema": {"type": "string", "format": "binary"}}
                            for kind in imports.UPLOAD_CONTENT_TYPES}})},
        "/v1/export": {"get": {
            "operationId": "exportLinks", "summary": "The org's saved links as a file",
            "parameters": [_query("format", {"type": "string", "enum": list(exports.FORMATS),
                                             "default": "netscape"}, "the file's format")],
            "responses": {"200": _export_answer(),
                          **_refusals({422: "an unknown format"})}}},
        "/v1/settings": {
            "get": _operation("getSettings", "The org's settings", "OrgSettings", _refusals()),
            "put": _operation(
                "changeSettings", "Change some of the org's settings (a v1.OrgSettingsChanged)",
                "OrgSettings",
                _refusals({400: "malformed JSON", 413: "a body over 10,000 bytes",
                           422: "invalid fields, with their names"}),
                requestBody=_body("OrgSettingsChangedArgs",
                                  "the settings to change; those left out keep their value")),
        },
        "/v1/stats": {"get": _operation(
            "stats", "Version, snapshot and processing figures", "Stats", _refusals())},
        "/openapi.json": {"get": {
            "operationId": "openapi", "summary": "This document", "security": [],
            "responses": {"200": {"description": "OpenAPI 3.1",
                                  "content": {"application/json": {"schema": {"type": "object"}}}}}}},
        "/": {"get": _asset("webPage", "The web app's page", ["index.html"])},
        "/share": {"get": _asset(
            "shareTarget", "The web app's share target: the page, which saves ?url=",
            ["index.html"],
            parameters=[_query("url", {"type": "string"}, "the address to save"),
                        _query("text", {"type": "string"}, "shared text holding an address")])},
        "/web/{name}": {"get": _asset(
            "webAsset", "One of the web app's files, by name", list(web.ASSETS),
            refusals={"404": _json("ErrorResponse", "no such file")},
            parameters=[{"name": "name", "in": "path", "required": True,
                         "schema": {"type": "string"}, "examples": list(web.ASSETS),
                         "description": "a file name; any other is a 404"}])},
        "/favicon.ico": {"get": _asset("favicon", "The app's icon (SVG)", ["icon.svg"])},
        "/manifest.webmanifest": {"get": _asset(
            "webManifest", "The web app manifest", ["manifest.webmanifest"])},
        "/sw.js": {"get": _asset("serviceWorker", "The service worker", ["sw.js"])},
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
