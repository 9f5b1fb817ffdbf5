"""The linklog client: a local replica of an org, kept by pulling its log, and
an outbox of events pushed exactly once. ``linklog.cli`` is the command
line over it, thin, as sqlite-utils' cli.py is over db.py.

- api: the HTTP API (push with retries, paged pull)
- settings: server URL, token and home directory from flags, environment or file
- outbox: events waiting to be pushed, grouped into batches with stable ids
- replica: the org's state, built by chalicelib.state's apply from pulled commits
- sync: pull, push the outbox, rebuild the local view
- writes: the events behind add, tag, archive, delete, …
- importer: a bookmark file into outbox batches whose ids derive from the file
- exporter: the replica's links as Netscape HTML, JSON or CSV

The Lambda functions never import this package: its dependencies (click)
stay out of the deployment package.
"""
