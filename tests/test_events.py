"""Push validation: the event vocabulary, strict, with field paths in refusals."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from chalicelib.events import (
    CLIENT_EVENTS,
    MAX_BODY_BYTES,
    PROCESSOR_EVENTS,
    InvalidPush,
    Push,
    parse_push,
    validate_processor_event,
)
from chalicelib.jsonbody import MAX_JSON_DEPTH, nesting_depth

AT = "2026-11-23T20:00:00.000Z"


def link_created(n: int = 1, **args) -> dict:
    return {
        "id": f"e{n}",
        "name": "v1.LinkCreated",
        "args": {"id": f"l{n}", "url": "https://example.com/a?b=1", "createdAt": AT, **args},
        "at": AT,
    }


def body(*events, **top) -> bytes:
    return json.dumps({"batch_id": "b1", "client_id": "phone", "events": list(events), **top}).encode()


def refusal(raw: bytes) -> InvalidPush:
    with pytest.raises(InvalidPush) as caught:
        parse_push(raw)
    return caught.value


def test_a_valid_push_keeps_the_events_exactly_as_sent():
    sent = [
        link_created(1, domain="example.com", source="share-sheet"),
        {"id": "e2", "name": "v1.TagCreated",
         "args": {"id": "t1", "name": "cooking", "createdAt": AT, "sortOrder": 1}, "at": AT},
        {"id": "e3", "name": "v2.LinkUntagged", "args": {"linkId": "l1", "tagId": "t1"},
         "at": "2026-11-23T21:00:00+01:00"},
    ]

    assert parse_push(body(*sent)) == Push("b1", "phone", sent)


def test_every_client_event_of_the_vocabulary_is_accepted():
    examples = {
        "v1.LinkCreated": {"id": "l1", "url": "http://example.com", "createdAt": AT},
        "v1.LinkDeleted": {"id": "l1", "deletedAt": AT},
        "v1.LinkRestored": {"id": "l1"},
        "v1.LinkCompleted": {"id": "l1", "completedAt": AT},
        "v1.LinkUncompleted": {"id": "l1"},
        "v1.LinkReprocessRequested": {"linkId": "l1", "requestedAt": AT},
        "v1.TagCreated": {"id": "t1", "name": "news", "createdAt": AT},
        "v1.TagRenamed": {"id": "t1", "name": "news"},
        "v1.TagDeleted": {"id": "t1", "deletedAt": AT},
        "v1.LinkTagged": {"id": "lt1", "linkId": "l1", "tagId": "t1", "createdAt": AT},
        "v2.LinkUntagged": {"linkId": "l1", "tagId": "t1"},
        "v1.TagSuggestionAccepted": {"id": "s1"},
        "v1.TagSuggestionDismissed": {"id": "s1"},
        "v1.OrgSettingsChanged": {"summarizer": "bedrock:eu.anthropic.claude-3-haiku-20240307-v1:0",
                                  "summarizerTimeout": 5, "tagSuggestions": "existing+new"},
    }
    assert set(examples) == set(CLIENT_EVENTS)
    events = [{"id": f"e{i}", "name": name, "args": args, "at": AT}
              for i, (name, args) in enumerate(examples.items())]

    assert len(parse_push(body(*events)).events) == len(examples)


@pytest.mark.parametrize(
    "event, path, kind",
    [
        (link_created(url="javascript:alert(1)"), "events.0.args.url", "value_error"),
        (link_created(url="ftp://example.com/file"), "events.0.args.url", "value_error"),
        (link_created(url="https://"), "events.0.args.url", "value_error"),
        (link_created(url="https://example.com/" + "a" * 2030), "events.0.args.url", "string_too_long"),
        (link_created(url="https://exa mple.com/"), "events.0.args.url", "value_error"),
        (link_created(createdAt="yesterday"), "events.0.args.createdAt", "value_error"),
        (link_created(createdAt="2026-11-23T20:00:00"), "events.0.args.createdAt", "value_error"),
        (link_created(createdAt="2026-11-23"), "events.0.args.createdAt", "value_error"),
        (link_created(createdAt=1700000000), "events.0.args.createdAt", "string_type"),
        (link_created(extra="field"), "events.0.args.extra", "extra_forbidden"),
        (link_created(domain=7), "events.0.args.domain", "string_type"),
        ({**link_created(), "id": "x" * 65}, "events.0.id", "string_too_long"),
        ({**link_created(), "id": ""}, "events.0.id", "string_too_short"),
        ({**link_created(), "id": "a\nb"}, "events.0.id", "value_error"),
        ({**link_created(), "at": None}, "events.0.at", "string_type"),
        ({**link_created(), "user": "x"}, "events.0.user", "extra_forbidden"),
        ({"id": "e1", "name": "v1.TagCreated",
          "args": {"id": "t", "name": "n", "createdAt": AT, "sortOrder": "1"}, "at": AT},
         "events.0.args.sortOrder", "float_type"),
        ({"id": "e1", "name": "v1.TagCreated",
          "args": {"id": "t", "name": "n" * 201, "createdAt": AT}, "at": AT},
         "events.0.args.name", "string_too_long"),
        ({"id": "e1", "name": "v1.LinkRestored", "args": {}, "at": AT}, "events.0.args.id", "missing"),
        ({"id": "e1", "name": "v1.LinkRestored", "args": ["l1"], "at": AT},
         "events.0.args", "model_type"),
        ({"id": "e1", "name": "v1.Nonsense", "args": {}, "at": AT}, "events.0.name", "unknown_event"),
        ({"id": "e1", "args": {}, "at": AT}, "events.0.name", "missing"),
        ({"id": "e1", "name": "v1.LinkSummarized",
          "args": {"linkId": "l1", "summary": "s", "model": "m"}, "at": AT},
         "events.0.name", "processor_event"),
        ("not an object", "events.0", "model_attributes_type"),
    ],
)
def test_a_bad_event_is_refused_with_its_field_path(event, path, kind):
    error = refusal(body(event))

    assert error.status == 422
    assert error.code == "invalid"
    assert (error.details[0]["path"], error.details[0]["type"]) == (path, kind)


@pytest.mark.parametrize(
    "raw, path, kind",
    [
        (body(link_created(), batch_id=""), "batch_id", "string_too_short"),
        (body(link_created(), client_id=42), "client_id", "string_type"),
        (body(link_created(), version=3), "version", "extra_forbidden"),
        (body(), "events", "too_short"),
        (json.dumps({"batch_id": "b", "client_id": "c"}).encode(), "events", "missing"),
        (json.dumps({"batch_id": "b", "client_id": "c", "events": {}}).encode(), "events", "list_type"),
        (b"[]", "", "model_type"),
        (b"null", "", "model_type"),
        (body(link_created(1), {**link_created(2), "id": "e1"}), "events.1.id", "duplicate_id"),
    ],
)
def test_a_bad_push_envelope_is_refused(raw, path, kind):
    error = refusal(raw)

    assert error.status == 422
    assert (error.details[0]["path"], error.details[0]["type"]) == (path, kind)


@pytest.mark.parametrize(
    "raw",
    [b"", b"{", b'{"batch_id": "b",}', b"\xff\xfe{}", b'{"n": NaN}', b"{'a': 1}"],
)
def test_malformed_json_is_a_400(raw):
    error = refusal(raw)

    assert (error.status, error.code) == (400, "malformed_json")


def test_a_body_over_one_megabyte_is_a_413():
    exactly = body(link_created())
    exactly += b" " * (MAX_BODY_BYTES - len(exactly))

    assert len(parse_push(exactly).events) == 1
    error = refusal(exactly + b" ")
    assert (error.status, error.code) == (413, "body_too_large")
    assert error.details == {"limit_bytes": 1048576}


def test_more_than_500_events_is_a_413():
    assert len(parse_push(body(*[link_created(n) for n in range(500)])).events) == 500

    error = refusal(body(*[link_created(n) for n in range(501)]))
    assert (error.status, error.code) == (413, "too_many_events")


def test_many_bad_fields_give_a_bounded_list_of_details():
    error = refusal(body(*[link_created(n, url="javascript:x") for n in range(200)]))

    assert len(error.details) == 50
    assert error.message.startswith("invalid fields: events.0.args.url, events.1.args.url")


def test_the_error_shape():
    error = refusal(body({"id": "e1", "name": "v1.Nope", "args": {}, "at": AT}))

    assert error.body() == {
        "error": {
            "code": "invalid",
            "message": "invalid fields: events.0.name",
            "details": [
                {"path": "events.0.name", "message": "unknown event name 'v1.Nope'",
                 "type": "unknown_event"}
            ],
        }
    }


def test_processor_events_are_validated_by_their_own_models():
    assert len(PROCESSOR_EVENTS) == 9
    failed = {"id": "p1", "name": "v1.LinkProcessingFailed", "at": AT,
              "args": {"linkId": "l1", "code": "http_404", "message": "gone",
                       "retryable": False, "failedAt": AT}}
    assert validate_processor_event(failed) is failed

    with pytest.raises(ValidationError):
        validate_processor_event({**failed, "args": {**failed["args"], "retryable": "no"}})
    with pytest.raises(ValidationError):
        validate_processor_event({"id": "s", "name": "v1.TagSuggested", "at": AT,
                                  "args": {"id": "s", "linkId": "l", "tagId": "t", "score": 1.5}})
    with pytest.raises(ValidationError):
        validate_processor_event(link_created())


@pytest.mark.parametrize(
    "text, depth",
    [("1", 0), ("[]", 1), ('{"a": [[{}]]}', 4), ('["[[[", "]"]', 1), ('["\\"[[", {"\\\\": ["{"]}]', 3),
     ("[" * 1000 + "]" * 1000, 1000)],
)
def test_nesting_depth_counts_arrays_and_objects_not_brackets_in_strings(text, depth):
    assert nesting_depth(text) == depth


def test_json_nested_past_the_limit_is_a_400_before_parsing():
    at_limit = "[" * (MAX_JSON_DEPTH - 1) + "]" * (MAX_JSON_DEPTH - 1)
    assert refusal(body(link_created(), extra=json.loads(at_limit))).code == "invalid"

    error = refusal(b'{"events": ' + b"[" * 33 + b"]" * 33 + b"}")

    assert (error.status, error.code) == (400, "json_too_deep")
    assert error.details == {"limit_depth": 32}


@pytest.mark.parametrize(
    "args, path",
    [
        ({"sortOrder": 2**63}, "events.0.args.sortOrder"),
        ({"sortOrder": -(2**63) - 1}, "events.0.args.sortOrder"),
        ({"createdAt": "20261123T200000Z"}, "events.0.args.createdAt"),
        ({"createdAt": "2026-W48-1T20:00:00Z"}, "events.0.args.createdAt"),
        ({"createdAt": "0001-01-01T00:00:00+01:00"}, "events.0.args.createdAt"),
        ({"createdAt": "9999-12-31T23:59:59-01:00"}, "events.0.args.createdAt"),
        ({"createdAt": "2026-11-23T20:00:00.1234567Z"}, "events.0.args.createdAt"),
        ({"name": "a\ud800"}, "events.0.args.name"),
    ],
)
def test_values_the_state_cannot_keep_are_refused(args, path):
    tag = {"id": "e1", "name": "v1.TagCreated", "at": AT,
           "args": {"id": "t1", "name": "n", "createdAt": AT, **args}}

    error = refusal(body(tag))

    assert error.status == 422
    assert [detail["path"] for detail in error.details] == [path]


def test_the_edges_of_what_the_state_keeps_are_accepted():
    tag = {"id": "e1", "name": "v1.TagCreated", "at": "9999-12-31T23:59:59.999999Z",
           "args": {"id": "t1", "name": "n", "createdAt": "0001-01-01T00:00:00Z",
                    "sortOrder": 2**63 - 1}}

    assert parse_push(body(tag)).events == [tag]


def test_processor_counts_past_64_bits_are_refused():
    extracted = {"id": "p1", "name": "v1.LinkContentExtracted", "at": AT,
                 "args": {"linkId": "l1", "text": "t", "wordCount": 2**63, "readingMinutes": 1}}

    with pytest.raises(ValidationError):
        validate_processor_event(extracted)


def settings_changed(**args) -> dict:
    return {"id": "e1", "name": "v1.OrgSettingsChanged", "args": args, "at": AT}


@pytest.mark.parametrize(
    "args",
    [
        {"summarizer": "extractive"},
        {"summarizer": "bedrock:anthropic.claude-3-haiku-20240307-v1:0"},
        {"summarizer": "bedrock:arn:aws:bedrock:eu-west-1:123456789012:inference-profile/eu.x-v1:0"},
        {"summarizerTimeout": 1},
        {"summarizerTimeout": 30.0},
        {"tagSuggestions": "existing"},
        {"tagSuggestions": "existing+new", "summarizer": "extractive", "summarizerTimeout": 2.5},
    ],
)
def test_settings_changes_are_accepted(args):
    assert parse_push(body(settings_changed(**args))).events[0]["args"] == args


@pytest.mark.parametrize(
    "args, path",
    [
        ({}, "events.0.args"),
        ({"summarizer": "Extractive"}, "events.0.args.summarizer"),
        ({"summarizer": "bedrock:"}, "events.0.args.summarizer"),
        ({"summarizer": "bedrock: model"}, "events.0.args.summarizer"),
        ({"summarizer": "bedrock:" + "m" * 201}, "events.0.args.summarizer"),
        ({"summarizer": "openai:gpt-4"}, "events.0.args.summarizer"),
        ({"summarizer": None, "tagSuggestions": "new"}, "events.0.args.tagSuggestions"),
        ({"summarizerTimeout": 0.5}, "events.0.args.summarizerTimeout"),
        ({"summarizerTimeout": 31}, "events.0.args.summarizerTimeout"),
        ({"summarizerTimeout": True}, "events.0.args.summarizerTimeout"),
        ({"summarizerTimeout": "5"}, "events.0.args.summarizerTimeout"),
        ({"tagSuggestions": "EXISTING"}, "events.0.args.tagSuggestions"),
        ({"tagSuggestions": ["existing"]}, "events.0.args.tagSuggestions"),
        ({"model": "x", "summarizer": "extractive"}, "events.0.args.model"),
    ],
)
def test_bad_settings_are_refused_naming_the_field(args, path):
    error = refusal(body(settings_changed(**args)))

    assert error.status == 422
    assert [detail["path"] for detail in error.details] == [path]
