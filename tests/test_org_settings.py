"""Per-org settings through real cycles: the production link processor,
pages served over HTTP on 127.0.0.1, the local store, and Bedrock through
botocore's Stubber.

An org switches to a Bedrock summarizer and new tag suggestions, then
back; the events record which model wrote each summary, a Bedrock
timeout or error falls back to the extractive summary and says so, and
new tags are suggested only while the org asks for them.
"""

from __future__ import annotations

import threading

import pytest
from botocore.stub import ANY

from bedrock_stub import converse_answer, stubbed_bedrock
from chalicelib import cycle
from chalicelib.links.fetch import fetch_page
from chalicelib.links.pipeline import make_link_processor
from chalicelib.state.queries import get_link, org_settings
from clocks import FakeClock, WallClock
from fetch_servers import PageServer, html, policy_for
from processing_org import AT, client_commit
from statelog import all_commits, replay, state_at

ORG = "acme"
MODEL = "anthropic.claude-3-haiku-20240307-v1:0"
SOURDOUGH = (
    "<html><head><title>How to bake sourdough bread at home</title></head><body><article>"
    "<h1>How to bake sourdough bread at home</h1>"
    + "<p>Sourdough bread is made with a starter instead of commercial yeast. Feed your starter the day "
    "before you bake. Mix flour, water and salt, then fold the dough every half hour, and bake the bread "
    "in a hot dutch oven until the crust is dark.</p>" * 4
    + "</article></body></html>"
)


def article(topic: str) -> str:
    return (
        f"<html><head><title>Notes on {topic}</title></head><body><article><h1>Notes on {topic}</h1>"
        + f"<p>The {topic} season starts early this year. Growers say the {topic} harvest will be large, "
        f"and markets expect lower prices for {topic} by the summer.</p>" * 3
        + "</article></body></html>"
    )


@pytest.fixture
def pages():
    routes = {"/sourdough": html(SOURDOUGH)}
    routes.update({f"/{n}": html(article(topic)) for n, topic in enumerate(["apples", "pears", "plums", "cherries"])})
    server = PageServer(routes)
    yield server
    server.close()


@pytest.fixture
def bedrock():
    with stubbed_bedrock() as stubbed:
        yield stubbed


def save(store, link: str, url: str) -> None:
    client_commit(store, ORG, "v1.LinkCreated", {"id": link, "url": url, "createdAt": AT})


def choose(store, **settings) -> None:
    client_commit(store, ORG, "v1.OrgSettingsChanged", settings)


def run(store, process):
    report = cycle.run_cycle(
        store, ORG, process=process, holder="proc-a", clock=FakeClock(), now=WallClock(), emit=lambda line: None
    )
    assert report.outcome == "done"
    return report


def events_of(store, name: str, link: str) -> list[dict]:
    return [
        event["args"]
        for commit in all_commits(store, ORG)
        for event in commit["events"]
        if event["name"] == name and event["args"].get("linkId") == link
    ]


def summarized(store, link: str) -> dict:
    [args] = events_of(store, "v1.LinkSummarized", link)
    return args


def test_an_org_switches_to_bedrock_and_back(local_store, pages, bedrock):
    client, stubber = bedrock
    made_for: list[float] = []

    def bedrock_client(timeout: float):
        made_for.append(timeout)
        return client

    policy = policy_for(pages)
    process = make_link_processor(fetch=lambda url: fetch_page(url, policy), bedrock_client=bedrock_client)
    client_commit(local_store, ORG, "v1.TagCreated", {"id": "t-bread", "name": "Bread", "createdAt": AT})

    # Nothing chosen: the offline summary, no new tags.
    save(local_store, "l0", pages.url + "/0")
    run(local_store, process)
    assert summarized(local_store, "l0")["model"] == "extractive"
    assert "fallbackFrom" not in summarized(local_store, "l0")

    choose(local_store, summarizer=f"bedrock:{MODEL}", summarizerTimeout=1, tagSuggestions="existing+new")
    save(local_store, "l1", pages.url + "/sourdough")
    stubber.add_response(
        "converse",
        converse_answer("A sourdough loaf from starter to crust."),
        {"modelId": MODEL, "system": ANY, "messages": ANY, "inferenceConfig": ANY},
    )
    run(local_store, process)
    assert summarized(local_store, "l1") == {
        "linkId": "l1", "summary": "A sourdough loaf from starter to crust.", "model": f"bedrock:{MODEL}"}
    assert made_for == [1.0]
    # New tags are on: the existing "Bread" is suggested, not a new "bread".
    assert [args["tagId"] for args in events_of(local_store, "v1.TagSuggested", "l1")] == ["t-bread"]
    new_names = [args["name"] for args in events_of(local_store, "v1.NewTagSuggested", "l1")]
    assert "sourdough" in new_names
    assert not {"bread", "breads"} & set(new_names)

    # A model that does not answer in time: the extractive summary, and the event says why.
    release, answered = threading.Event(), threading.Event()

    def hold(**kwargs):
        release.wait(10)

    stubber.add_response("converse", converse_answer("Too late."))
    client.meta.events.register("provide-client-params.bedrock-runtime.Converse", hold)
    client.meta.events.register("after-call.bedrock-runtime.Converse", lambda **kwargs: answered.set())
    save(local_store, "l2", pages.url + "/1")
    try:
        run(local_store, process)
    finally:
        release.set()
    # The abandoned call ends on its own; its answer is not used.
    assert answered.wait(10)
    client.meta.events.unregister("provide-client-params.bedrock-runtime.Converse", hold)
    late = summarized(local_store, "l2")
    assert late["model"] == "extractive"
    assert late["fallbackFrom"] == f"bedrock:{MODEL}"
    assert late["fallbackReason"] == "no answer within 1 s"
    assert late["summary"].startswith("The pears season starts early this year.")

    # An AWS error: the same.
    stubber.add_client_error("converse", service_error_code="ThrottlingException", http_status_code=429)
    save(local_store, "l3", pages.url + "/2")
    run(local_store, process)
    throttled = summarized(local_store, "l3")
    assert (throttled["model"], throttled["fallbackFrom"]) == ("extractive", f"bedrock:{MODEL}")
    assert throttled["fallbackReason"].startswith("ThrottlingException: An error occurred (ThrottlingException)")

    # Back to the offline summary and existing tags only: Bedrock is not called again.
    choose(local_store, summarizer="extractive", tagSuggestions="existing")
    save(local_store, "l4", pages.url + "/3")
    run(local_store, process)
    assert summarized(local_store, "l4")["model"] == "extractive"
    assert "fallbackFrom" not in summarized(local_store, "l4")
    assert events_of(local_store, "v1.NewTagSuggested", "l4") == []
    stubber.assert_no_pending_responses()

    # The state shows who wrote each summary.
    db = replay(local_store, ORG)
    shown = {link: get_link(db, link) for link in ("l0", "l1", "l2", "l4")}
    assert [shown[link]["summary_model"] for link in shown] == ["extractive", f"bedrock:{MODEL}", "extractive", "extractive"]
    assert shown["l2"]["summary_fallback_from"] == f"bedrock:{MODEL}"
    assert shown["l2"]["summary_fallback_reason"] == "no answer within 1 s"
    assert {s["tag_name"]: s["new"] for s in shown["l1"]["suggestions"]}["Bread"] is False
    assert {s["tag_name"] for s in shown["l1"]["suggestions"] if s["new"]} == set(new_names)


def test_a_bedrock_client_that_cannot_be_made_falls_back(local_store, pages):
    def no_region(timeout):
        raise RuntimeError("You must specify a region.")

    policy = policy_for(pages)
    process = make_link_processor(fetch=lambda url: fetch_page(url, policy), bedrock_client=no_region)
    choose(local_store, summarizer=f"bedrock:{MODEL}")
    save(local_store, "l0", pages.url + "/0")

    report = run(local_store, process)

    assert report.links_done == ("l0",)
    args = summarized(local_store, "l0")
    assert (args["model"], args["fallbackFrom"]) == ("extractive", f"bedrock:{MODEL}")
    assert args["fallbackReason"] == "RuntimeError: You must specify a region."


def test_new_tags_are_not_suggested_when_off(local_store, pages):
    policy = policy_for(pages)
    process = make_link_processor(fetch=lambda url: fetch_page(url, policy))
    choose(local_store, tagSuggestions="existing+new")
    choose(local_store, tagSuggestions="existing")
    save(local_store, "l1", pages.url + "/sourdough")

    run(local_store, process)

    assert events_of(local_store, "v1.NewTagSuggested", "l1") == []
    assert get_link(replay(local_store, ORG), "l1")["suggestions"] == []


def test_settings_left_out_keep_their_value_and_an_empty_state_has_the_defaults(local_store):
    assert org_settings(replay(local_store, ORG)).as_json() == {
        "summarizer": "extractive", "summarizerTimeout": 10.0, "tagSuggestions": "existing"}

    choose(local_store, summarizer=f"bedrock:{MODEL}", summarizerTimeout=4)
    choose(local_store, tagSuggestions="existing+new")

    assert org_settings(replay(local_store, ORG)).as_json() == {
        "summarizer": f"bedrock:{MODEL}", "summarizerTimeout": 4.0, "tagSuggestions": "existing+new"}


@pytest.mark.parametrize(
    "args",
    [
        {"summarizer": "gpt"},
        {"summarizer": "bedrock:"},
        {"summarizerTimeout": 0},
        {"summarizerTimeout": "5"},
        {"tagSuggestions": "all"},
        {"summarizer": "extractive", "tagSuggestions": None, "summarizerTimeout": 100},
        {},
    ],
)
def test_a_bad_settings_event_in_the_log_is_skipped_and_changes_nothing(args):
    good = {"id": "e1", "name": "v1.OrgSettingsChanged", "args": {"summarizer": f"bedrock:{MODEL}"}, "at": AT}
    bad = {"id": "e2", "name": "v1.OrgSettingsChanged", "args": args, "at": AT}
    client = {"kind": "client", "id": "device"}
    commits = [
        {"version": 1, "org": ORG, "batch_id": "b1", "committed_at": AT, "author": client, "events": [good]},
        {"version": 2, "org": ORG, "batch_id": "b2", "committed_at": AT, "author": client, "events": [bad]},
    ]

    db = state_at(commits)

    assert org_settings(db).summarizer == f"bedrock:{MODEL}"
    assert db.execute("SELECT skipped_events FROM meta").get == 1
