"""Threads that fetch store objects a few at a time, kept for the life of the process.

A restore fetches its deltas while the base downloads; a cycle reads its
new commits, and a pull or a replay reads packs and commits, a few at a
time. Starting threads for each call cost more than the work: about 90 ms
for eight threads on a loaded machine, more than a whole restore of a
10,000-link org from a local disk, and a cold pull reads its pages in many
small calls. So all of them use this one pool.

Tasks given to the pool must not wait on the pool themselves: with every
thread waiting, nothing would run what they wait for.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

# At most this many fetches run at once in one process: enough to hide the
# round trips of S3 (a 1,000-commit page is not 1,000 GETs in a row), few
# enough not to flood the store from one Lambda.
FETCHERS = 8

pool = ThreadPoolExecutor(max_workers=FETCHERS, thread_name_prefix="store-fetch")
