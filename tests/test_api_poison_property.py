"""Property tests: nothing a client pushes, and no object in the log, can
break an org.

- Arbitrary JSON values for every argument of every client event, pushed
  through the API: each push is refused with a 4xx or applied without a
  value being skipped, and then every read route answers 200 and a
  processor cycle runs.
- Arbitrary JSON written straight into the log as events (bypassing push,
  as a bug or an older version might): apply, reads and cycles go on.

Each example uses a fresh org of one store served over HTTP. Example counts
are bounded so both run in seconds.
"""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from chalicelib import log
from chalicelib.cycle import run_cycle
from chalicelib.events import CLIENT_EVENT_ARGS, PROCESSOR_EVENT_ARGS
from chalicelib.state.apply import HANDLERS
from org_health import AT, harmful_skips, read_routes, skip_reasons, write_raw_commit
from processing_org import FakeProcessor
from tests.api_server import serving

_orgs = itertools.count()

HOSTILE_STRINGS = [
    "", "l0", "t0", "s0", "\x00", "a\x00b", "\ud800", "x\udfffy", "\u2028", "\ufeff", "é", "😀" * 10,
    "x" * 64, "x" * 65, "x" * 2049, "[" * 40,
    AT, "2026-11-23T20:00:00+01:00", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
    "0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "20261123T200000Z",
    "2026-W48-1T20:00:00Z", "2026-11-23T20:00:00.123456789Z", "2026-11-23T20:00:00",
    "https://example.com/", "http://127.0.0.1:1/", "https://bücher.de/", "https://[::1]/",
    "https://example.com:99999/", "javascript:alert(1)", "https://" + "a" * 300 + ".com/",
]
any_text = st.one_of(st.text(st.characters(codec=None, exclude_categories=()), max_size=20),
                     st.sampled_from(HOSTILE_STRINGS))
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from([2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30, 0, -1]),
    st.floats(),
    any_text,
)
json_values = st.recursive(
    scalars,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(any_text, children, max_size=3),
    max_leaves=6,
)

# Valid values by field, so that each push carries one hostile value among
# valid ones and reaches the state whenever push lets that value through.
TIMES = [AT, "2026-11-23T20:00:00.5+05:30", "0001-01-01T00:00:00Z", "9999-12-31T23:59:59.999999Z",
         "0001-01-01T01:00:00+01:00"]
plain_text = st.text(st.characters(exclude_categories=("Cc", "Cs")), min_size=1, max_size=40)
VALID = {
    "id": st.sampled_from(["l0", "l1", "t0", "s0", "x" * 64]) | plain_text,
    "linkId": st.sampled_from(["l0", "l1"]),
    "tagId": st.sampled_from(["t0", "t1"]),
    "url": st.sampled_from(["https://example.com/", "https://bücher.de/a?b=1#c", "http://[::1]:8080/"]),
    "name": plain_text,
    "domain": plain_text,
    "source": plain_text,
    "sortOrder": st.integers(-(2**63), 2**63 - 1) | st.floats(allow_nan=False, allow_infinity=False),
    "attempt": st.integers(1, 3),
    "wordCount": st.integers(0, 1000),
    "readingMinutes": st.integers(0, 10),
    "score": st.floats(0, 1),
    "retryAfter": st.integers(0, 900),
    "retryable": st.booleans(),
    "summarizer": st.sampled_from(["extractive", "bedrock:anthropic.claude-3-haiku-20240307-v1:0"]),
    "summarizerTimeout": st.integers(1, 30) | st.floats(1, 30),
    "tagSuggestions": st.sampled_from(["existing", "existing+new"]),
}
NUMBERS = {"sortOrder", "attempt", "wordCount", "readingMinutes", "score", "retryAfter", "summarizerTimeout"}
time_values = st.sampled_from(TIMES)
# Hostile values of the field's own kind: the edges of what push accepts.
ODD_TIMES = ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00", "20261123T200000Z",
             "2026-W48-1T20:00:00Z", "2026-11-23T20:00:00.123456789Z", "2026-11-23T20:00:00",
             "2026-11-23 20:00:00Z", "2026-11-23T20:00Z", "2026-11-23T24:00:00Z"]
EDGE_NUMBERS = [2**63 - 1, 2**63, -(2**63), -(2**63) - 1, 10**30, 1e308, -0.0, 0.1]


def valid(field: str):
    return VALID.get(field, time_values if field.endswith("At") else plain_text)


def mostly(likely, other):
    """``likely`` three times in four, ``other`` otherwise."""
    return st.integers(0, 3).flatmap(lambda n: other if n == 0 else likely)


def hostile(field: str):
    if field in NUMBERS:
        kind = mostly(st.sampled_from(EDGE_NUMBERS), st.floats())
    elif field.endswith("At"):
        kind = st.sampled_from(ODD_TIMES + TIMES)
    else:
        kind = any_text
    return mostly(kind, json_values)


ALL_EVENT_ARGS = {**CLIENT_EVENT_ARGS, **PROCESSOR_EVENT_ARGS}


def event_with(name: str, poisoned: str):
    """A valid ``name`` event but for one hostile value: an argument, or ``at``."""
    fields = ALL_EVENT_ARGS[name].model_fields
    args = st.fixed_dictionaries(
        {field: hostile(field) if field == poisoned else valid(field) for field in fields}
    )
    at = hostile("at") if poisoned == "at" else time_values
    return st.builds(lambda a, t: {"id": "e1", "name": name, "args": a, "at": t}, args, at)


# Every argument of every client event, and each event's time.
POISON_POINTS = [(name, field) for name in sorted(CLIENT_EVENT_ARGS)
                 for field in [*CLIENT_EVENT_ARGS[name].model_fields, "at"]]
one_push_per_point = st.tuples(*(event_with(name, field) for name, field in POISON_POINTS))


SETUP = [
    {"id": "setup-l0", "name": "v1.LinkCreated", "at": AT,
     "args": {"id": "l0", "url": "https://example.com/zero", "createdAt": AT}},
    {"id": "setup-t0", "name": "v1.TagCreated", "at": AT,
     "args": {"id": "t0", "name": "zero", "createdAt": AT}},
]


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    from chalicelib.store import LocalStore

    store = LocalStore(str(tmp_path_factory.mktemp("poison") / "store"))
    with serving(store) as running:
        running.store = store
        yield running


def new_org(api) -> str:
    """A fresh org holding link l0 and tag t0, for the events to name."""
    org = f"prop{next(_orgs)}"
    log.append(api.store, org, SETUP, batch_id="setup", author={"kind": "client", "id": "setup"})
    return org


def check_reads_and_a_cycle(api, org: str) -> None:
    """Every read route answers 200, and a cycle processes a link saved now."""
    routes = read_routes(api, org, "l0")
    assert set(routes.values()) == {200}, routes
    fresh = f"fresh-{next(_orgs)}"
    log.append(api.store, org, [{"id": fresh, "name": "v1.LinkCreated", "at": AT, "args": {
        "id": fresh, "url": f"https://example.com/{fresh}", "createdAt": AT}}],
        batch_id=fresh, author={"kind": "client", "id": "setup"})
    report = run_cycle(api.store, org, process=FakeProcessor(), holder="prop", emit=lambda line: None)
    assert report.outcome == "done", report.record
    assert fresh in report.links_done, report.record


# No shrinking: a failing example here is a few dozen pushes, shrinking it
# takes minutes, and the failure message already names the event and value.
SETTINGS = settings(deadline=None, database=None,
                    phases=[Phase.explicit, Phase.generate],
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                           HealthCheck.function_scoped_fixture])


@settings(SETTINGS, max_examples=6)
@given(one_push_per_point)
def test_any_client_push_is_refused_or_applied_and_the_org_keeps_working(api, events):
    org = new_org(api)
    for number, event in enumerate(events):
        event = {**event, "id": f"e{number}"}
        body = json.dumps({"batch_id": f"b{number}", "client_id": "c", "events": [event]})

        response = api.push(body.encode(), org=org)

        assert 400 <= response.status_code < 500 or response.status_code == 200, response.text
        if response.status_code != 200:
            assert set(response.json()) == {"error"}
            assert set(response.json()["error"]) == {"code", "message", "details"}
    check_reads_and_a_cycle(api, org)
    # What push accepted, the state applied: nothing was skipped for its values.
    assert harmful_skips(api.store, org) == {}


event_names = st.sampled_from(sorted(HANDLERS) + ["v9.Unknown", "LinkCreated", ""])
arg_names = st.sampled_from(sorted({field for model in CLIENT_EVENT_ARGS.values()
                                    for field in model.model_fields} | {"text", "attempt", "score",
                                                                        "retryable", "code"}))
event_like = st.fixed_dictionaries(
    {"id": st.one_of(st.sampled_from(["p0", "p1"]), any_text, json_values),
     "name": st.one_of(event_names, json_values),
     "args": st.one_of(st.dictionaries(arg_names, st.one_of(json_values, valid("id"), time_values),
                                       max_size=6), json_values),
     "at": st.one_of(time_values, json_values)},
    optional={"extra": json_values},
)
authors = st.one_of(
    st.just({"kind": "client", "id": "hand"}),
    st.builds(lambda epoch: {"kind": "processor", "id": "hand", "epoch": epoch},
              st.integers(0, 3) | st.sampled_from([2**62, 2**63 - 1, 2**63, 2**70])),
)


def nearly_valid(names) -> st.SearchStrategy:
    """One event per argument (and ``at``) of each event named: valid but
    for that one hostile value, as a bug or an older version might write."""
    return st.tuples(*(
        event_with(name, field).map(lambda event, n=name, f=field: {**event, "id": f"{n}-{f}"})
        for name in sorted(names) for field in [*ALL_EVENT_ARGS[name].model_fields, "at"]
    )).map(list)


PROCESSOR = {"kind": "processor", "id": "hand", "epoch": 1}


@settings(SETTINGS, max_examples=12)
@given(nearly_valid(CLIENT_EVENT_ARGS), nearly_valid(PROCESSOR_EVENT_ARGS),
       st.lists(st.tuples(authors, st.lists(st.one_of(event_like, json_values), min_size=1,
                                            max_size=6)), min_size=1, max_size=3))
def test_any_json_written_into_the_log_as_events_never_stops_apply_or_reads(
    api, client_events, processor_events, commits
):
    org = new_org(api)
    write_raw_commit(api.store, org, {"kind": "client", "id": "hand"}, client_events)
    write_raw_commit(api.store, org, PROCESSOR, processor_events)
    for author, events in commits:
        write_raw_commit(api.store, org, author, events)

    skip_reasons(api.store, org)  # a replay from scratch applies every commit
    check_reads_and_a_cycle(api, org)
