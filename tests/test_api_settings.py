"""``GET`` and ``PUT /v1/settings`` over HTTP: shown with defaults, changed
through the log, bad values refused naming the field with nothing written,
and a processor cycle after a change suggests new tags."""

from __future__ import annotations

import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from chalicelib.cycle import run_cycle
from chalicelib.links.outcome import LinkOutcome, NewTagSuggestion
from statelog import all_commits
from tests.api_server import serving

ORG = "acme"
AT = "2026-11-23T20:00:00Z"
MODEL = "bedrock:eu.anthropic.claude-3-haiku-20240307-v1:0"
DEFAULTS = {"summarizer": "extractive", "summarizerTimeout": 10.0, "tagSuggestions": "existing"}


@pytest.fixture
def api(local_store):
    with serving(local_store) as running:
        running.store = local_store
        yield running


def get(api, org: str = ORG):
    return api.http.get(f"{api.url}/v1/settings", headers=api.auth(org), timeout=30)


def put(api, body, org: str = ORG):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    return api.http.put(
        f"{api.url}/v1/settings", data=raw, headers={"Content-Type": "application/json", **api.auth(org)}, timeout=30
    )


def test_settings_start_at_the_defaults_and_change_through_the_log(api):
    assert get(api).json() == {"settings": DEFAULTS, "version": 0}

    changed = put(api, {"summarizer": MODEL, "summarizerTimeout": 5})
    assert changed.status_code == 200, changed.text
    assert changed.json() == {"settings": {**DEFAULTS, "summarizer": MODEL, "summarizerTimeout": 5.0}, "version": 1}

    again = put(api, {"tagSuggestions": "existing+new"})
    assert again.json()["settings"] == {"summarizer": MODEL, "summarizerTimeout": 5.0, "tagSuggestions": "existing+new"}
    assert get(api).json() == again.json()
    # Each change is one client commit holding one v1.OrgSettingsChanged.
    commits = all_commits(api.store, ORG)
    assert [[event["name"] for event in commit["events"]] for commit in commits] == [["v1.OrgSettingsChanged"]] * 2
    assert commits[1]["events"][0]["args"] == {"tagSuggestions": "existing+new"}
    assert commits[1]["author"] == {"kind": "client", "id": "api-settings"}
    # Another org's settings are its own.
    assert get(api, "other").json() == {"settings": DEFAULTS, "version": 0}


@pytest.mark.parametrize(
    "body, status, path",
    [
        ({"summarizer": "gpt-4"}, 422, "summarizer"),
        ({"summarizer": "bedrock:"}, 422, "summarizer"),
        ({"summarizerTimeout": 0}, 422, "summarizerTimeout"),
        ({"summarizerTimeout": 1e400}, 400, None),
        ({"summarizerTimeout": "10"}, 422, "summarizerTimeout"),
        ({"tagSuggestions": "all"}, 422, "tagSuggestions"),
        ({"tagSuggestions": "existing", "colour": "blue"}, 422, "colour"),
        ({}, 422, ""),
        ([], 422, ""),
        (b"{", 400, None),
        (b'{"summarizer": "' + b"x" * 10_001 + b'"}', 413, None),
    ],
)
def test_bad_settings_are_refused_and_change_nothing(api, body, status, path):
    put(api, {"tagSuggestions": "existing+new"}).raise_for_status()

    refused = put(api, body)

    assert refused.status_code == status, refused.text
    error = refused.json()["error"]
    if path is not None:
        assert [detail["path"] for detail in error["details"]] == [path]
    assert len(all_commits(api.store, ORG)) == 1
    assert get(api).json()["settings"]["tagSuggestions"] == "existing+new"


def test_the_processor_uses_the_settings_put_through_the_api(api):
    asked: list[bool] = []

    def process(job) -> LinkOutcome:
        asked.append(job.suggest_new_tags)
        new = (NewTagSuggestion("sourdough", 0.8),) if job.suggest_new_tags else ()
        return LinkOutcome(link_id=job.link_id, new_tags=new)

    def save(link_id: str) -> None:
        api.push({"batch_id": link_id, "client_id": "phone", "events": [{
            "id": link_id, "name": "v1.LinkCreated", "at": AT,
            "args": {"id": link_id, "url": f"https://example.com/{link_id}", "createdAt": AT}}]}).raise_for_status()

    save("l1")
    run_cycle(api.store, ORG, process=process, holder="test", emit=lambda line: None)
    put(api, {"tagSuggestions": "existing+new"}).raise_for_status()
    save("l2")
    run_cycle(api.store, ORG, process=process, holder="test", emit=lambda line: None)

    assert asked == [False, True]
    link = api.http.get(f"{api.url}/v1/links/l2", headers=api.auth(), timeout=30).json()
    assert [(s["tag_name"], s["tag_id"], s["new"], s["status"]) for s in link["suggestions"]] == [
        ("sourdough", None, True, "suggested")]
    assert api.http.get(f"{api.url}/v1/links/l1", headers=api.auth(), timeout=30).json()["suggestions"] == []


settings_values = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=30),
    st.sampled_from(["extractive", "existing+new", "bedrock:m", "bedrock:a" * 30, "\x00", "\ud800", 10**30]),
    st.lists(st.integers(), max_size=2),
)
settings_bodies = st.one_of(
    st.dictionaries(st.sampled_from(["summarizer", "summarizerTimeout", "tagSuggestions", "other"]),
                    settings_values, max_size=4),
    settings_values,
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=settings_bodies)
def test_any_body_is_refused_or_applied_and_the_org_keeps_working(api, body):
    before = len(all_commits(api.store, ORG))

    answer = put(api, json.dumps(body).encode())

    assert answer.status_code in (200, 400, 422), answer.text
    after = len(all_commits(api.store, ORG))
    assert after == before + (answer.status_code == 200)
    shown = get(api)
    assert shown.status_code == 200
    if answer.status_code == 200:
        assert shown.json() == answer.json()
        assert {name: shown.json()["settings"][name] for name in body} == {
            name: float(value) if name == "summarizerTimeout" else value for name, value in body.items()}
    assert run_cycle(api.store, ORG, process=lambda job: LinkOutcome(job.link_id), holder="t",
                     emit=lambda line: None).outcome in ("done", "nothing_to_do")
