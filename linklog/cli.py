"""The ``linklog`` command: thin over the client library (linklog.*).

Reads (ls, search, show, export, status) use the local view and work
offline; writes queue events in the outbox, apply them to the view at
once, and push when the server answers.
"""

from __future__ import annotations

import json
import os
import sys
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import click

from chalicelib.auth import issue_token
from chalicelib.formats import FORMATS, ImportFileError, read_links
from chalicelib.formats import csv_export, linklog_json, netscape
from chalicelib.formats.plan import ImportPlan
from chalicelib.formats.screen import screen
from chalicelib.keys import InvalidOrg
from chalicelib.links.addresses import AllowList
from chalicelib.state.queries import STATUSES, get_link, list_links, org_settings, search as search_links
from linklog import exporter, importer, settings as settings_module, writes
from linklog.api import Api, Refused, Unreachable
from linklog.outbox import Outbox
from linklog.replica import Replica
from linklog.sync import SyncReport, sync as run_sync

SECONDS_PER_DAY = 86_400
PAGE = 200


@dataclass
class Client:
    """What a command works with, opened once per command."""

    settings: settings_module.Settings
    replica: Replica
    outbox: Outbox
    offline: bool

    def api(self) -> Api:
        server, token = self.settings.require()
        return Api(server, token)

    def view(self):
        return self.replica.view()


def _allow_list() -> AllowList:
    try:
        return AllowList.parse(os.environ.get("LINKLOG_ALLOW_HOSTS", ""))
    except ValueError as error:
        raise click.UsageError(str(error)) from None


@contextmanager
def _client(ctx: click.Context):
    options = ctx.obj
    try:
        loaded = settings_module.load(home=options["home"], server=options["server"], token=options["token"])
    except settings_module.SettingsError as error:
        raise click.ClickException(str(error)) from None
    replica = Replica(loaded.home)
    outbox = Outbox(loaded.home)
    try:
        with replica.locked():
            _check_identity(loaded, outbox)
            if not replica.view_path.exists():
                replica.rebuild_view(outbox.pending())
            yield Client(loaded, replica, outbox, options["offline"])
    finally:
        replica.close()
        outbox.close()


def _check_identity(loaded: settings_module.Settings, outbox: Outbox) -> None:
    """One home holds one org: refuse a token for another (its replica would mix two orgs)."""
    org = loaded.org()
    known = outbox.identity("org")
    if org is None:
        return
    if known is None:
        outbox.set_identity("org", org)
    elif known != org:
        raise click.ClickException(
            f"{loaded.home} holds the replica of org {known!r}, not {org!r}; "
            "use another --home (or LINKLOG_HOME) for it"
        )


def _sync(client: Client, **kwargs) -> SyncReport | None:
    """Sync unless told to stay offline or no server is set; report being offline on stderr."""
    if client.offline or not (client.settings.server and client.settings.token):
        return None
    try:
        report = run_sync(client.api(), client.replica, client.outbox, **kwargs)
    except Refused as refusal:
        raise click.ClickException(f"the server refused: {refusal}") from None
    if report.offline:
        click.echo(f"offline: {report.offline}; {client.outbox.count()} event(s) wait in the outbox", err=True)
    for batch_id, error in report.rejected:
        click.echo(f"refused by the server, set aside: batch {batch_id}: {error}", err=True)
    return report


def _write(client: Client, events: list[dict]) -> None:
    """Queue ``events``, apply them to the view, and push if the server answers."""
    if not events:
        click.echo("nothing to change")
        return
    client.outbox.add(events)
    client.replica.apply_local(events)
    report = _sync(client)
    if report is not None and not report.offline:
        click.echo(f"pushed; the replica is at version {report.version}", err=True)


@click.group()
@click.option("--server", help="Server URL (or LINKLOG_SERVER, or `config set server`).")
@click.option("--token", help="Bearer token (or LINKLOG_TOKEN, or `config set token`).")
@click.option("--home", type=click.Path(file_okay=False), help="Directory of the replica and settings (or LINKLOG_HOME; default ~/.linklog).")
@click.option("--offline", is_flag=True, help="Do not contact the server: work on the replica and queue writes.")
@click.pass_context
def main(ctx: click.Context, server, token, home, offline) -> None:
    """linklog: your saved links, with a local replica that works offline."""
    ctx.obj = {"server": server, "token": token, "home": home, "offline": offline}


# Settings and tokens.


@main.group()
def config() -> None:
    """Show or change the settings in the home directory's config.toml."""


@config.command("set")
@click.argument("key", type=click.Choice(settings_module.KEYS))
@click.argument("value", required=False)
@click.pass_context
def config_set(ctx: click.Context, key: str, value: str | None) -> None:
    """Set KEY (server or token). A token left out is asked for, unechoed."""
    if value is None:
        value = click.prompt(key, hide_input=(key == "token"))
    loaded = settings_module.load(home=ctx.obj["home"])
    settings_module.write_setting(loaded.home, key, value.strip())
    click.echo(f"{key} set in {settings_module.config_path(loaded.home)}")


@config.command("show")
@click.pass_context
def config_show(ctx: click.Context) -> None:
    """Print the settings in force (the token only as set or not set)."""
    loaded = settings_module.load(home=ctx.obj["home"], server=ctx.obj["server"], token=ctx.obj["token"])
    click.echo(f"home: {loaded.home}")
    click.echo(f"server: {loaded.server or '(not set)'}")
    org = loaded.org()
    click.echo(f"token: {'set' if loaded.token else '(not set)'}" + (f" (org {org})" if org else ""))


@main.command()
@click.option("--org", required=True, help="The org the token grants.")
@click.option("--user", required=True, help="The user (the token's sub).")
@click.option("--days", type=click.IntRange(1, 3650), default=30, show_default=True, help="How long it is valid.")
def token(org: str, user: str, days: int) -> None:
    """Mint a token from LINKLOG_JWT_SECRET and print only the token."""
    secret = os.environ.get("LINKLOG_JWT_SECRET")
    if not secret:
        raise click.ClickException("LINKLOG_JWT_SECRET is not set: it is the server's HS256 secret")
    try:
        click.echo(issue_token(secret, sub=user, org=org, lifetime_seconds=days * SECONDS_PER_DAY, now=time.time()))
    except InvalidOrg as error:
        raise click.ClickException(str(error)) from None


# Sync and status.


@main.command()
@click.pass_context
def sync(ctx: click.Context) -> None:
    """Pull what is new, push the outbox, and bring the local view up to date."""
    with _client(ctx) as client:
        client.settings.require()
        client.offline = False
        report = _sync(client)
        click.echo(
            f"pulled {report.pulled_commits} commit(s), pushed {report.pushed_events} event(s) "
            f"in {report.pushed_batches} batch(es); replica at version {report.version}"
        )
        if report.offline:
            sys.exit(1)


@main.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def status(ctx: click.Context, as_json: bool) -> None:
    """The outbox, the replica's version and the server's head."""
    with _client(ctx) as client:
        head, reachable = None, None
        if not client.offline and client.settings.server and client.settings.token:
            try:
                head = client.api().pull(client.replica.version, limit=1)["head"]
                reachable = True
            except (Unreachable, Refused) as error:
                reachable = False
                click.echo(f"server: {type(error).__name__}: {error}", err=True)
        info = {
            "home": str(client.settings.home),
            "server": client.settings.server,
            "org": client.settings.org(),
            "client_id": client.outbox.client_id(),
            "replica_version": client.replica.version,
            "server_head": head,
            "server_reachable": reachable,
            "outbox_events": client.outbox.count(),
            "outbox_batches": len(client.outbox.batches()),
            "rejected": [{"batch_id": b, "error": e, "events": n} for b, e, n in client.outbox.rejected()],
            "links": exporter.count(client.view()),
        }
        if as_json:
            click.echo(json.dumps(info, indent=2))
            return
        for key, value in info.items():
            if key != "rejected":
                click.echo(f"{key}: {'unknown' if value is None else value}")
        for item in info["rejected"]:
            click.echo(f"rejected batch {item['batch_id']} ({item['events']} events): {item['error']}")


# Reads.


def _line(link: dict) -> str:
    title = (link.get("metadata") or {}).get("title") or link["url"]
    read = "✓" if link.get("completed_at") else " "
    tags = " ".join(f"#{tag['name']}" for tag in link.get("tags", []))
    return f"{link['id']}  {read} {link['status']:<9}  {title}" + (f"  {tags}" if tags else "")


@main.command()
@click.option("--tag", "tag_name", help="Only links with this tag.")
@click.option("--status", "status_filter", type=click.Choice(STATUSES), help="Only links in this processing status.")
@click.option("--read/--unread", "read", default=None, help="Only read (archived) or unread links.")
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, one link a line.")
@click.pass_context
def ls(ctx: click.Context, tag_name, status_filter, read, limit, as_json) -> None:
    """List saved links, newest first, from the local view."""
    with _client(ctx) as client:
        view = client.view()
        tag_id = None
        if tag_name:
            tag_id = writes.find_tag(view, tag_name)
            if tag_id is None:
                raise click.ClickException(f"no tag {tag_name!r}")
        shown, cursor = 0, None
        while shown < limit:
            page = list_links(view, status=status_filter, tag=tag_id, cursor=cursor, limit=PAGE)
            for link in page.links:
                if read is not None and (link["completed_at"] is not None) != read:
                    continue
                click.echo(json.dumps(link, ensure_ascii=False) if as_json else _line(link))
                shown += 1
                if shown == limit:
                    break
            if page.next_cursor is None:
                break
            cursor = page.next_cursor


@main.command()
@click.argument("query")
@click.option("--limit", type=click.IntRange(1, 100), default=20, show_default=True, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON, one result a line.")
@click.pass_context
def search(ctx: click.Context, query: str, limit: int, as_json: bool) -> None:
    """Search titles, descriptions, text (and URLs) in the local view."""
    with _client(ctx) as client:
        view = client.view()
        try:
            results = search_links(view, query, limit)
        except ValueError as error:
            raise click.ClickException(str(error)) from None
        # Links not processed yet (offline, say) have no text: match their URLs too.
        found = {result["id"] for result in results}
        words = [word.lower() for word in query.split() if word]
        if words and len(results) < limit:
            for link_id, url in view.execute("SELECT id, url FROM links WHERE deleted_at IS NULL ORDER BY seq DESC"):
                if link_id not in found and all(word in url.lower() for word in words):
                    results.append({"id": link_id, "url": url, "title": None, "snippet": url, "score": None})
                    if len(results) == limit:
                        break
        for result in results:
            if as_json:
                click.echo(json.dumps(result, ensure_ascii=False))
            else:
                click.echo(f"{result['id']}  {result['title'] or result['url']}\n    {result['snippet']}")


@main.command()
@click.argument("link")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def show(ctx: click.Context, link: str, as_json: bool) -> None:
    """Show one link (by id, id prefix or URL) with its text, summary and tags."""
    with _client(ctx) as client:
        view = client.view()
        found = get_link(view, _find(view, link))
        if as_json:
            click.echo(json.dumps(found, ensure_ascii=False, indent=2))
            return
        metadata = found.get("metadata") or {}
        click.echo(f"{metadata.get('title') or found['url']}\n{found['url']}")
        click.echo(f"id: {found['id']}  status: {found['status']}  saved: {found['created_at']}"
                   f"  read: {found['completed_at'] or 'no'}" + ("  DELETED" if found["deleted_at"] else ""))
        if found.get("error"):
            click.echo(f"error: {found['error']['code']}: {found['error']['message']}")
        if found["tags"]:
            click.echo("tags: " + ", ".join(tag["name"] for tag in found["tags"]))
        suggested = [s for s in found.get("suggestions") or [] if s["status"] == "suggested"]
        if suggested:
            click.echo("suggested tags: " + ", ".join(s["tag_name"] + (" (new)" if s["new"] else "") for s in suggested))
        if found.get("summary"):
            click.echo(f"\n{summary_heading(found)}\n{found['summary']}")


def summary_heading(link: dict) -> str:
    """The heading of a link's summary, naming who wrote it: ``Summary (extractive)``,
    ``Summary (bedrock:<model id>)``, or ``Summary (extractive; bedrock:<model id>
    failed: <why>)`` when the org's summarizer failed and the offline one stood in."""
    model = link.get("summary_model")
    if not model:
        return "Summary"
    failed = link.get("summary_fallback_from")
    if failed:
        return f"Summary ({model}; {failed} failed: {link.get('summary_fallback_reason') or 'no reason given'})"
    return f"Summary ({model})"


def _find(view, ref: str) -> str:
    try:
        return writes.find_link(view, ref)
    except writes.WriteError as error:
        raise click.ClickException(str(error)) from None


# Writes.


@main.command()
@click.argument("url")
@click.option("--tag", "tags", multiple=True, help="Tag it (repeat for more tags).")
@click.option("--title", help="The title to show until the page's own is fetched.")
@click.pass_context
def add(ctx: click.Context, url: str, tags: tuple[str, ...], title: str | None) -> None:
    """Save URL."""
    with _client(ctx) as client:
        try:
            link_id, events, existed = writes.add(client.view(), url, list(tags), title, _allow_list())
        except writes.WriteError as error:
            raise click.ClickException(str(error)) from None
        click.echo(f"{'already saved' if existed else 'saved'}: {link_id}")
        _write(client, events)


@main.command()
@click.argument("link")
@click.argument("tags", nargs=-1, required=True)
@click.pass_context
def tag(ctx: click.Context, link: str, tags: tuple[str, ...]) -> None:
    """Tag LINK with TAGS (tags that do not exist yet are created)."""
    with _client(ctx) as client:
        view = client.view()
        _write(client, writes.tag_events(view, _find(view, link), list(tags)))


@main.command()
@click.argument("link")
@click.argument("tags", nargs=-1, required=True)
@click.pass_context
def untag(ctx: click.Context, link: str, tags: tuple[str, ...]) -> None:
    """Take TAGS off LINK."""
    with _client(ctx) as client:
        view = client.view()
        try:
            _write(client, writes.untag(view, _find(view, link), list(tags)))
        except writes.WriteError as error:
            raise click.ClickException(str(error)) from None


def _link_command(name: str, event_name: str, help_text: str) -> None:
    @main.command(name=name, help=help_text)
    @click.argument("links", nargs=-1, required=True)
    @click.pass_context
    def command(ctx: click.Context, links: tuple[str, ...]) -> None:
        with _client(ctx) as client:
            view = client.view()
            events = [event for ref in links for event in writes.link_event(view, event_name, _find(view, ref))]
            _write(client, events)


_link_command("archive", "v1.LinkCompleted", "Mark LINKS read (archived).")
_link_command("unarchive", "v1.LinkUncompleted", "Mark LINKS unread again.")
_link_command("delete", "v1.LinkDeleted", "Delete LINKS (restore brings them back).")
_link_command("restore", "v1.LinkRestored", "Bring deleted LINKS back.")
_link_command("retry", "v1.LinkReprocessRequested", "Process LINKS again (fetch, text, summary, tags).")


def _suggestion_command(name: str, event_name: str, help_text: str) -> None:
    @main.command(name=name, help=help_text)
    @click.argument("link")
    @click.argument("tag_name", metavar="TAG")
    @click.pass_context
    def command(ctx: click.Context, link: str, tag_name: str) -> None:
        with _client(ctx) as client:
            view = client.view()
            try:
                _write(client, writes.suggestion_event(view, event_name, _find(view, link), tag_name))
            except writes.WriteError as error:
                raise click.ClickException(str(error)) from None


_suggestion_command(
    "accept", "v1.TagSuggestionAccepted", "Accept the suggestion of TAG for LINK (tags it; a new tag is created)."
)
_suggestion_command("dismiss", "v1.TagSuggestionDismissed", "Dismiss the suggestion of TAG for LINK.")


# The org's settings (chalicelib.orgsettings), in its log like everything else.


@main.group(invoke_without_command=True)
@click.pass_context
def settings(ctx: click.Context) -> None:
    """Show (the default) or set the org's settings: summarizer and tag suggestions."""
    if ctx.invoked_subcommand is None:
        ctx.invoke(settings_show)


@settings.command("show")
@click.option("--json", "as_json", is_flag=True, help="Print JSON.")
@click.pass_context
def settings_show(ctx: click.Context, as_json: bool = False) -> None:
    """Print the org's settings as of the replica (after a sync when online)."""
    with _client(ctx) as client:
        _sync(client)
        _echo_settings(client, as_json)


def _echo_settings(client: Client, as_json: bool = False) -> None:
    shown = org_settings(client.view()).as_json()
    if as_json:
        click.echo(json.dumps(shown, indent=2))
        return
    for key, value in shown.items():
        click.echo(f"{key}: {value:g}" if isinstance(value, float) else f"{key}: {value}")


@settings.command("set")
@click.option("--summarizer", help="'extractive' (offline) or 'bedrock:<model id>' (falls back to extractive).")
@click.option("--summarizer-timeout", type=float, help="Seconds a Bedrock summary may take (1 to 30).")
@click.option("--tag-suggestions", type=click.Choice(["existing", "existing+new"]),
              help="Suggest only the org's tags, or new tags from the page too.")
@click.pass_context
def settings_set(ctx: click.Context, summarizer, summarizer_timeout, tag_suggestions) -> None:
    """Change the settings named; the others keep their value."""
    changes = {
        name: value
        for name, value in (("summarizer", summarizer), ("summarizerTimeout", summarizer_timeout),
                            ("tagSuggestions", tag_suggestions))
        if value is not None
    }
    if not changes:
        raise click.UsageError("name a setting to change: --summarizer, --summarizer-timeout or --tag-suggestions")
    with _client(ctx) as client:
        try:
            events = writes.settings_event(changes)
        except writes.WriteError as error:
            raise click.ClickException(str(error)) from None
        _write(client, events)
        _echo_settings(client)


# Import and export.


@main.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--format", "file_format", type=click.Choice(FORMATS),
              help="The file's format (detected by default).")
@click.option("--dry-run", is_flag=True, help="Read and check the file, print what would be imported, queue nothing.")
@click.pass_context
def import_(ctx: click.Context, file: Path, file_format: str | None, dry_run: bool) -> None:
    """Import bookmarks from FILE (Netscape HTML, Pocket, Instapaper, Karakeep,
    Linkwarden, Omnivore, Wallabag, linklog JSON, or a list of URLs).

    Running it again after an interruption continues where it stopped."""
    data = file.read_bytes()
    try:
        found_format, links = read_links(data, file_format)
    except ImportFileError as error:
        raise click.ClickException(f"{file}: {error}; nothing was imported") from None
    screened = screen(links, _allow_list())
    with _client(ctx) as client:
        if not dry_run:
            _sync(client)
        plan = importer.plan(data, found_format, len(links), screened, client.replica, client.outbox)
        click.echo(f"{file.name}: {found_format}, {len(links)} bookmark(s)", err=True)
        if not dry_run:
            importer.queue(plan, client.replica, client.outbox)
            total = client.outbox.count()
            with click.progressbar(length=total, label="importing", file=sys.stderr) as bar:
                _sync(client, on_pushed=bar.update)
        _print_summary(plan, client.outbox.count(), dry_run)


def _print_summary(plan: ImportPlan, waiting: int, dry_run: bool) -> None:
    verb = "would import" if dry_run else "imported"
    click.echo(f"{verb}: {plan.queued_links}")
    if plan.earlier_run:
        click.echo(f"imported by an earlier run: {plan.earlier_run}")
    click.echo(f"already there: {plan.already_there}")
    click.echo(f"duplicates in the file: {plan.duplicates}")
    click.echo(f"refused: {len(plan.refused)}")
    for reason, number in plan.refused_by_reason.most_common():
        click.echo(f"  {number} × {reason}")
    for item in plan.refused[:20]:
        click.echo(f"  #{item.link.position + 1}: {item.link.url[:120] or '(no URL)'}: {item.reason}")
    if len(plan.refused) > 20:
        click.echo(f"  … and {len(plan.refused) - 20} more")
    if waiting and not dry_run:
        click.echo(f"waiting in the outbox: {waiting} event(s); run `linklog sync` when the server answers")


@main.command()
@click.option("--format", "export_format", type=click.Choice(["netscape", "json", "csv"]), default="json",
              show_default=True, help="Netscape HTML (browsers import it), JSON (everything) or CSV.")
@click.option("--output", "-o", type=click.Path(dir_okay=False, writable=True, path_type=Path),
              help="Write to this file (default: standard output).")
@click.pass_context
def export(ctx: click.Context, export_format: str, output: Path | None) -> None:
    """Export every saved link from the local view."""
    with _client(ctx) as client:
        view = client.view()
        total = exporter.count(view)
        out = open(output, "w", encoding="utf-8", newline="") if output else sys.stdout
        try:
            with click.progressbar(exporter.links(view), length=total, label="exporting", file=sys.stderr) as links:
                if export_format == "netscape":
                    netscape.write(out, (exporter.for_netscape(link) for link in links))
                elif export_format == "csv":
                    csv_export.write(out, links)
                else:
                    linklog_json.write(out, links)
        finally:
            if output:
                out.close()
        if output:
            click.echo(f"exported {total} link(s) to {output}", err=True)
