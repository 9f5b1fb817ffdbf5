"""The `linklog` command against a live dev server (the `make run` process):
import, round trips through export, offline work, and crashes mid-sync."""

from __future__ import annotations

import json
import random
import re
import time
from collections import Counter

import pytest
import requests

from bedrock_stub import unreachable_bedrock
from chalicelib.links.urls import normalize_url
from cli_server import SECRET, HoldingProxy, Linklog, Pages, token
from devserver_process import DevServer
from linklog.cli import summary_heading

TERMINAL = """SELECT count(*) FROM links LEFT JOIN link_status AS s ON s.link_id = links.id
              WHERE s.status IN ('completed', 'cancelled')
                 OR (s.status = 'failed' AND s.next_retry_at IS NULL)"""


@pytest.fixture(scope="module")
def pages():
    server = Pages()
    yield server
    server.close()


@pytest.fixture(scope="module")
def shared_server(tmp_path_factory, pages):
    """One dev server for the tests that do not stop it; each test has orgs of its own.

    Bedrock refuses it, so an org that chooses a Bedrock summarizer gets the fallback."""
    with unreachable_bedrock() as bedrock:
        running = DevServer(tmp_path_factory.mktemp("shared") / "data",
                            {"LINKLOG_ALLOW_HOSTS": pages.allow, **bedrock}, secret=SECRET)
        yield running
        running.stop()


@pytest.fixture
def server(shared_server, request):
    shared_server.org = request.node.name.replace("test_", "")[:40].strip("_")
    return shared_server


@pytest.fixture
def own_server(tmp_path, pages):
    """A dev server of this test's own: to stop and start it, or to load it."""
    running = DevServer(tmp_path / "data", {"LINKLOG_ALLOW_HOSTS": pages.allow}, secret=SECRET)
    running.org = "acme"
    yield running
    running.stop()


def user(tmp_path, server, pages, org=None, name="home"):
    org = org or server.org
    return Linklog(tmp_path / f"{name}-{org}", server.url, org, pages.allow)


def bookmarks(pages, count, start=1_600_000_000):
    """A Netscape bookmark file of ``count`` pages in three folders, with
    tags, read marks, a few 404s, a duplicate and a refused bookmarklet."""
    folders = ["Baking", "Reading, later", "Café ☕"]
    lines = ["<!DOCTYPE NETSCAPE-Bookmark-file-1>", "<TITLE>Bookmarks</TITLE>", "<DL><p>"]
    for index, folder in enumerate(folders):
        lines += [f"<DT><H3>{folder}</H3>", "<DL><p>"]
        for i in range(index, count, len(folders)):
            path = f"/gone/{i}" if i % 10 == 9 else f"/p/{i}"
            lines.append(
                f'<DT><A HREF="{pages.url}{path}" ADD_DATE="{start + i * 3600}" '
                f'TAGS="t{i % 5}" TOREAD="{0 if i % 4 == 0 else 1}">Page p {i}</A>'
            )
        lines.append("</DL><p>")
    lines.append(f'<DT><A HREF="{pages.url}/p/1?utm_source=x" ADD_DATE="{start}">again</A>')
    lines.append('<DT><A HREF="javascript:void(0)">bookmarklet</A>')
    lines.append("</DL><p>")
    return "\n".join(lines) + "\n"


def wait_until_terminal(cli, expected, timeout=120):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        cli("sync")
        with cli.view() as view:
            if view.execute(TERMINAL).get == expected:
                return
        time.sleep(0.5)
    raise AssertionError(f"links not all terminal after {timeout} s")


def snapshot(cli):
    """The links as a user sees them: URL, title, tags, read, saved-at."""
    with cli.view() as view:
        rows = view.execute(
            """SELECT links.id, links.url, meta.title, links.completed_at IS NOT NULL, links.created_at
               FROM links LEFT JOIN link_metadata AS meta ON meta.link_id = links.id
               WHERE links.deleted_at IS NULL"""
        ).fetchall()
        tags = Counter()
        result = set()
        for link_id, url, title, read, created_at in rows:
            names = frozenset(
                name for (name,) in view.execute(
                    "SELECT tags.name FROM link_tags JOIN tags ON tags.id = link_tags.tag_id WHERE link_id = ?",
                    (link_id,),
                )
            )
            tags.update(names)
            result.add((normalize_url(url), title, names, bool(read), created_at[:19]))
        return result


def assert_each_event_once(server, org):
    ids = Counter(event["id"] for event in server.log_events(org))
    assert [event_id for event_id, n in ids.items() if n > 1] == []
    return ids


def test_import_then_export_round_trips_into_a_fresh_org(tmp_path, server, pages):
    alice = user(tmp_path, server, pages)
    source = tmp_path / "bookmarks.html"
    # Fewer links than one processor cycle takes: until issue 8's fix, the
    # processor leaves the rest of a larger push unprocessed.
    source.write_text(bookmarks(pages, 20), encoding="utf-8")

    result = alice("import", str(source))
    assert "imported: 20\n" in result.output
    assert "duplicates in the file: 1\n" in result.output
    assert "refused: 1\n" in result.output and "unsupported scheme javascript:" in result.output
    wait_until_terminal(alice, 20)
    with alice.view() as view:
        assert Counter(s for (s,) in view.execute("SELECT status FROM link_status")) == {"completed": 18, "failed": 2}
    before = snapshot(alice)
    assert len(before) == 20
    example = next(item for item in before if item[0].endswith("/p/4"))
    assert example[2] == frozenset({"Reading, later", "t4"})
    assert example[3] is True  # TOREAD="0"

    # Exported, then imported by someone else into a fresh org: the same links.
    for export_format in ("netscape", "json"):
        exported = tmp_path / f"export.{export_format}"
        alice("export", "--format", export_format, "--output", str(exported))
        bob = user(tmp_path, server, pages, org=f"fresh-{export_format}-{server.org}"[:60])
        assert "imported: 20\n" in bob("import", str(exported)).output
        after = snapshot(bob)
        # Tags with a comma lose it in Netscape's comma-separated TAGS.
        if export_format == "netscape":
            before_compared = {(u, t, frozenset(n.replace(",", "") for n in names), r, s)
                               for u, t, names, r, s in before}
        else:
            before_compared = before
        assert after == before_compared, export_format

    csv_out = alice("export", "--format", "csv").stdout
    assert csv_out.splitlines()[0].startswith("url,title,tags,saved_at,read")
    assert len([line for line in csv_out.splitlines() if line.startswith("http")]) == 20


def test_an_import_run_again_adds_nothing(tmp_path, server, pages):
    alice = user(tmp_path, server, pages)
    source = tmp_path / "bookmarks.html"
    source.write_text(bookmarks(pages, 12), encoding="utf-8")
    alice("import", str(source))
    again = alice("import", str(source)).output
    assert "imported: 0\n" in again and "imported by an earlier run: 12\n" in again
    ids = assert_each_event_once(server, server.org)
    assert len(ids) > 12
    # A page the org already has (saved another way) is "already there".
    other = tmp_path / "urls.txt"
    other.write_text(f"{pages.url}/p/1\n{pages.url}/p/new\n")
    output = alice("import", str(other)).output
    assert "imported: 1\n" in output and "already there: 1\n" in output


def upload(server, data: bytes) -> dict:
    """``POST /v1/import`` of ``data`` to the test's org, as the web page sends it."""
    answer = requests.post(
        f"{server.url}/v1/import", data=data, timeout=120,
        headers={"Authorization": f"Bearer {token(server.org)}", "Content-Type": "application/octet-stream"},
    )
    assert answer.status_code == 200, answer.text
    return answer.json()


def assert_saved_once(server, count):
    """The org holds ``count`` links and each tag name once, as the API shows them."""
    auth = {"Authorization": f"Bearer {token(server.org)}"}
    links = requests.get(f"{server.url}/v1/links", params={"limit": 200}, headers=auth, timeout=60).json()["links"]
    assert len(links) == len({normalize_url(link["url"]) for link in links}) == count
    names = [tag["name"] for tag in requests.get(f"{server.url}/v1/tags", headers=auth, timeout=60).json()["tags"]]
    assert len(names) == len(set(names))
    events = server.log_events(server.org)
    created = {event["args"]["id"] for event in events if event["name"] == "v1.LinkCreated"}
    assert len(created) == count
    assert len({event["args"]["id"] for event in events if event["name"] == "v1.TagCreated"}) == len(names)


def test_a_file_imported_by_the_command_and_then_uploaded_is_saved_once(tmp_path, server, pages):
    alice = user(tmp_path, server, pages)
    source = tmp_path / "bookmarks.html"
    source.write_text(bookmarks(pages, 30), encoding="utf-8")
    assert "imported: 30\n" in alice("import", str(source)).output
    logged = len(server.log_events(server.org))

    again = upload(server, source.read_bytes())

    assert (again["saved"], again["duplicates"], again["refused"], again["tags_created"]) == (0, 31, 1, 0)
    assert len(server.log_events(server.org)) == logged
    assert_saved_once(server, 30)


def test_a_file_queued_offline_uploaded_and_then_synced_is_saved_once(tmp_path, server, pages):
    # The command queues the file before it sees the upload's links: only
    # ids the two paths agree on keep the links and tags from doubling.
    alice = user(tmp_path, server, pages)
    source = tmp_path / "bookmarks.html"
    source.write_text(bookmarks(pages, 30), encoding="utf-8")
    alice("--offline", "import", str(source))

    assert upload(server, source.read_bytes())["saved"] == 30
    alice("sync")

    assert_saved_once(server, 30)
    # Run again, the command knows them as its own.
    assert "imported by an earlier run: 30\n" in alice("import", str(source)).output
    assert_saved_once(server, 30)


def test_a_malformed_file_is_refused_and_nothing_is_pushed(tmp_path, server, pages):
    alice = user(tmp_path, server, pages)
    broken = tmp_path / "pocket.csv"
    broken.write_text("title,link\nA,https://example.com/\n")
    result = alice("import", str(broken), ok=False)
    assert result.exit_code == 1
    assert "neither Pocket's" in result.output and "nothing was imported" in result.output
    assert server.log_events(server.org) == []


def test_reads_and_writes_work_offline_and_sync_pushes_them_once(tmp_path, own_server, pages):
    server = own_server
    alice = user(tmp_path, server, pages)
    alice("add", f"{pages.url}/p/first", "--tag", "bread")
    wait_until_terminal(alice, 1)
    server.stop()

    added = alice("add", f"{pages.url}/p/offline", "--tag", "Later", "--title", "Written on a train")
    assert "offline:" in added.output
    link_id = added.output.split("saved: ")[1].split()[0]
    first_id = alice("search", "first").output.split()[0]
    alice("tag", link_id, "trains")
    alice("archive", first_id)
    alice("untag", first_id, "bread")

    listing = alice("ls").output
    assert "Written on a train  #Later #trains" in listing
    assert any(line.startswith(first_id) and "✓" in line for line in listing.splitlines())
    assert first_id in alice("search", "sourdough").output  # the processed page's text
    assert link_id in alice("search", "train").output  # the offline title
    status = json.loads(alice("status", "--json").stdout)
    assert status["outbox_events"] == 7 and status["server_reachable"] is False
    assert server.log_events(server.org) and len(server.log_events(server.org)) < 10

    server.restart()
    assert "pushed 7 event(s)" in alice("sync").output
    assert "pushed 0 event(s)" in alice("sync").output
    ids = assert_each_event_once(server, server.org)
    names = Counter(event["name"] for event in server.log_events(server.org) if event["id"] in ids)
    assert names["v1.LinkCreated"] == 2 and names["v1.LinkCompleted"] == 1 and names["v2.LinkUntagged"] == 1
    assert json.loads(alice("status", "--json").stdout)["outbox_events"] == 0
    # Someone else pulling the org sees the same, once the processor has
    # titled the offline link (else it may do so between the two pulls).
    wait_until_terminal(alice, 2)
    bob = user(tmp_path, server, pages, name="bob")
    bob("sync")
    assert snapshot(bob) == snapshot(alice)


def test_a_sync_killed_again_and_again_commits_every_event_exactly_once(tmp_path, own_server, pages):
    # Its hundreds of links keep the worker busy: a server of its own.
    server = own_server
    alice = user(tmp_path, server, pages)
    alice("sync")
    source = tmp_path / "bookmarks.html"
    source.write_text(bookmarks(pages, 700), encoding="utf-8")
    alice("--offline", "import", str(source))
    with alice.view() as view:
        assert view.execute("SELECT count(*) FROM links").get == 700
    queued = json.loads(alice("--offline", "status", "--json").stdout)["outbox_events"]
    assert queued > 1400
    queued_ids = alice.outbox_event_ids()
    assert len(queued_ids) == queued

    chances = random.Random(7)
    interrupted, seen = 0, []
    for _ in range(8):
        committed = len(server.log_events(server.org))
        process = alice.subprocess("sync")
        # Killed a moment after its next push lands (starting Python takes
        # seconds on a busy machine), so the kill falls among the pushes.
        deadline = time.monotonic() + 60
        while process.poll() is None and len(server.log_events(server.org)) == committed:
            if time.monotonic() > deadline:
                break
            time.sleep(0.05)
        # The first kill comes as soon as a push has landed: with pushes
        # that quick (batch markers), a pause could see the whole sync end.
        time.sleep(chances.uniform(0, 0.8) if seen else 0)
        process.kill()
        process.wait()
        left = json.loads(alice("--offline", "status", "--json").stdout)["outbox_events"]
        seen.append(left)
        if 0 < left < queued:
            interrupted += 1
        if left == 0:
            break
    alice("sync")
    assert json.loads(alice("status", "--json").stdout)["outbox_events"] == 0
    ids = assert_each_event_once(server, server.org)
    assert queued_ids <= set(ids)  # none lost, none twice
    created = [e for e in server.log_events(server.org) if e["name"] == "v1.LinkCreated"]
    assert len(created) == 700
    assert interrupted >= 1, f"no kill landed in the middle of a sync: {seen}"


def test_a_sync_killed_after_the_server_committed_but_before_its_answer_pushes_nothing_twice(tmp_path, own_server, pages):
    # Its hundreds of links keep the worker busy: a server of its own.
    server = own_server
    proxy = HoldingProxy(server.url)
    try:
        alice = Linklog(tmp_path / "home", proxy.url, server.org, pages.allow)
        alice("sync")
        source = tmp_path / "bookmarks.html"
        source.write_text(bookmarks(pages, 250), encoding="utf-8")
        alice("--offline", "import", str(source))
        queued_ids = alice.outbox_event_ids()
        proxy.hold.set()
        process = alice.subprocess("sync")
        assert proxy.held.wait(60), "the sync pushed nothing"
        process.kill()
        process.wait()
        proxy.hold.clear()
        proxy.release.set()
        # The first batch is committed, and still in the outbox.
        assert server.log_events(server.org)
        assert alice.outbox_event_ids() == queued_ids
        alice("sync")
        assert alice.outbox_event_ids() == set()
        ids = assert_each_event_once(server, server.org)
        assert queued_ids <= set(ids)
    finally:
        proxy.close()


def test_an_interrupted_import_run_again_continues_without_duplicates(tmp_path, own_server, pages):
    # Its hundreds of links keep the worker busy: a server of its own.
    server = own_server
    alice = user(tmp_path, server, pages)
    source = tmp_path / "bookmarks.html"
    source.write_text(bookmarks(pages, 600), encoding="utf-8")
    process = alice.subprocess("import", str(source))
    # Killed once the first batches are committed, before the last.
    deadline = time.monotonic() + 60
    while not server.log_events(server.org) and time.monotonic() < deadline:
        time.sleep(0.1)
    process.kill()
    process.wait()
    created_before = [e for e in server.log_events(server.org) if e["name"] == "v1.LinkCreated"]
    assert 0 < len(created_before) < 600

    output = alice("import", str(source)).output
    assert "already there: 0\n" in output
    ids = assert_each_event_once(server, server.org)
    created = [e for e in server.log_events(server.org) if e["name"] == "v1.LinkCreated"]
    assert len(created) == 600
    assert len({e["args"]["id"] for e in created}) == 600
    assert len(ids) == len(server.log_events(server.org))


def test_token_prints_only_a_token_and_config_never_prints_it(tmp_path, monkeypatch):
    from click.testing import CliRunner

    from chalicelib.auth import make_verifier
    from linklog.cli import main

    runner = CliRunner()
    env = {"LINKLOG_JWT_SECRET": "s" * 40, "LINKLOG_HOME": str(tmp_path)}
    result = runner.invoke(main, ["token", "--org", "acme", "--user", "ada", "--days", "2"], env=env)
    assert result.exit_code == 0
    minted = result.output.strip()
    assert result.output == minted + "\n"
    principal = make_verifier(secret="s" * 40)(f"Bearer {minted}")
    assert (principal.org, principal.sub) == ("acme", "ada")
    assert runner.invoke(main, ["token", "--org", "no/slash", "--user", "x"], env=env).exit_code == 1
    assert "LINKLOG_JWT_SECRET is not set" in runner.invoke(
        main, ["token", "--org", "a", "--user", "b"], env={"LINKLOG_JWT_SECRET": ""}).output

    assert runner.invoke(main, ["config", "set", "token", minted], env=env).exit_code == 0
    assert runner.invoke(main, ["config", "set", "server", "http://127.0.0.1:9"], env=env).exit_code == 0
    assert oct((tmp_path / "config.toml").stat().st_mode & 0o777) == "0o600"
    shown = runner.invoke(main, ["config", "show"], env=env).output
    assert "token: set (org acme)" in shown and "http://127.0.0.1:9" in shown
    status = runner.invoke(main, ["status"], env=env).output
    for output in (shown, status):
        assert minted not in output and minted[-12:] not in output


def test_a_home_refuses_a_token_of_another_org(tmp_path, server, pages):
    alice = user(tmp_path, server, pages)
    alice("sync")
    other = Linklog(alice.home, server.url, "other", pages.allow)
    result = other("ls", ok=False)
    assert result.exit_code == 1 and f"holds the replica of org '{server.org}'" in result.output


def test_tag_suggestions_delete_restore_retry_and_unarchive(tmp_path, server, pages):
    alice = user(tmp_path, server, pages)
    alice("add", f"{pages.url}/p/sourdough-starter", "--tag", "Sourdough")
    second = alice("add", f"{pages.url}/p/sourdough-loaf").output.split("saved: ")[1].split()[0]
    third = alice("add", f"{pages.url}/p/sourdough-crumb").output.split("saved: ")[1].split()[0]
    wait_until_terminal(alice, 3)
    assert "suggested tags: Sourdough" in alice("show", second).output

    alice("accept", second, "sourdough")
    alice("dismiss", third, "SOURDOUGH")
    with alice.view() as view:
        assert view.execute(
            "SELECT link_id, status FROM tag_suggestions WHERE link_id IN (?, ?) ORDER BY link_id", (second, third)
        ).fetchall() == sorted([(second, "accepted"), (third, "dismissed")])
    assert f"{second}" in alice("ls", "--tag", "sourdough").output
    assert third not in alice("ls", "--tag", "sourdough").output
    assert "no suggestion" in alice("accept", third, "nope", ok=False).output

    alice("archive", second)
    assert second in alice("ls", "--read").output
    alice("unarchive", second)
    assert second not in alice("ls", "--read").output

    alice("delete", third)
    assert third not in alice("ls").output
    assert "DELETED" in alice("show", third).output
    alice("restore", third)
    assert third in alice("ls").output

    alice("retry", second)
    with alice.view() as view:
        assert view.execute("SELECT count(*) FROM link_status WHERE link_id = ?", (second,)).get in (0, 1)
    wait_until_terminal(alice, 3)
    attempts = [e for e in server.log_events(server.org)
                if e["name"] == "v1.LinkProcessingStarted" and e["args"]["linkId"] == second]
    assert len(attempts) == 2
    assert_each_event_once(server, server.org)
    shown = json.loads(alice("show", second, "--json").stdout)
    assert shown["status"] == "completed" and [t["name"] for t in shown["tags"]] == ["Sourdough"]
    assert "private address" in alice("add", "http://192.168.0.1/", ok=False).output


def test_settings_shown_and_set_turn_on_new_tags_which_can_be_accepted(tmp_path, server, pages):
    alice = user(tmp_path, server, pages)
    assert alice("settings").output.splitlines() == [
        "summarizer: extractive", "summarizerTimeout: 10", "tagSuggestions: existing"]

    refused = alice("settings", "set", "--summarizer", "gpt-4", ok=False)
    assert refused.exit_code == 1 and "summarizer" in refused.output
    assert alice("settings", "set", "--summarizer-timeout", "99", ok=False).exit_code == 1
    assert alice.outbox_event_ids() == set()

    shown = alice("settings", "set", "--tag-suggestions", "existing+new", "--summarizer-timeout", "4").output
    assert "tagSuggestions: existing+new" in shown and "summarizerTimeout: 4" in shown
    assert json.loads(alice("settings", "show", "--json").stdout)["tagSuggestions"] == "existing+new"
    link = alice("add", f"{pages.url}/p/rye-sourdough").output.split("saved: ")[1].split()[0]
    wait_until_terminal(alice, 1)
    assert "suggested tags: sourdough (new)" in alice("show", link).output

    alice("accept", link, "sourdough")
    assert link in alice("ls", "--tag", "sourdough").output
    shown = json.loads(alice("show", link, "--json").stdout)
    assert [t["name"] for t in shown["tags"]] == ["sourdough"]
    assert [(s["tag_name"], s["status"]) for s in shown["suggestions"] if s["new"]][0] == ("sourdough", "accepted")

    # Off again: the next link gets no new tags.
    alice("settings", "set", "--tag-suggestions", "existing")
    other = alice("add", f"{pages.url}/p/wholemeal-loaf").output.split("saved: ")[1].split()[0]
    wait_until_terminal(alice, 2)
    assert not [s for s in json.loads(alice("show", other, "--json").stdout)["suggestions"] if s["new"]]
    assert_each_event_once(server, server.org)


def test_show_says_which_model_wrote_the_summary(tmp_path, server, pages):
    alice = user(tmp_path, server, pages)
    model = "bedrock:anthropic.claude-3-haiku-20240307-v1:0"
    alice("settings", "set", "--summarizer", model, "--summarizer-timeout", "2")
    fell_back = alice("add", f"{pages.url}/p/pear-harvest").output.split("saved: ")[1].split()[0]
    wait_until_terminal(alice, 1)

    shown = alice("show", fell_back).output.splitlines()
    heading = shown.index(next(line for line in shown if line.startswith("Summary")))
    assert re.fullmatch(
        re.escape(f"Summary (extractive; {model} failed: EndpointConnectionError: Could not connect") + r".*\)",
        shown[heading],
    ), shown
    assert shown[heading + 1].startswith("A long article about p pear harvest")

    alice("settings", "set", "--summarizer", "extractive")
    offline = alice("add", f"{pages.url}/p/plum-harvest").output.split("saved: ")[1].split()[0]
    wait_until_terminal(alice, 2)
    assert "\nSummary (extractive)\nA long article about p plum harvest" in alice("show", offline).output


def test_the_summary_heading_names_the_model_that_wrote_it():
    assert summary_heading({"summary_model": "bedrock:m-1"}) == "Summary (bedrock:m-1)"
    assert summary_heading({"summary_model": None}) == "Summary"
    assert summary_heading({"summary_model": "extractive", "summary_fallback_from": "bedrock:m-1"}) == (
        "Summary (extractive; bedrock:m-1 failed: no reason given)")
