"""Threads that fetch store objects a few at a time, kept for the life of the process.

A restore fetches its deltas while the base downloads; a cycle reads its
new commits, and a pull or a replay reads packs and commits, a few at a
time. Starting threads for each call cost more than the work: about 90 ms
for eight threads on a loaded machine, more than a whole restore of a
10,000-link org from a local disk, and a cold pull reads its pages in many
small calls. A snapshot's parts and deltas are fetched (parts compressed
and put) here too. So all of them use this one pool.

A task given to the pool may wait only for what a thread outside the pool
settles without first waiting on the pool (a snapshot part waits for its
manifest, which the restoring thread reads itself: snapshots._part_job);
and no task may itself restore, replay or read commits, which wait on the
pool. Otherwise, with every thread waiting, nothing would run what they
wait for.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

# At most this many fetches run at once in one process: enough to hide the
# round trips of S3 (a 1,000-commit page is not 1,000 GETs in a row), few
# enough not to flood the store from one Lambda.
FETCHERS = 8

pool = ThreadPoolExecutor(max_workers=FETCHERS, thread_name_prefix="store-fetch")
