"""How a cycle spreads its fetches: in all, and per origin."""

import pytest

from chalicelib.links.outcome import LinkJob
from chalicelib.links.politeness import OriginSlots, choose, origin_of


def job(n, url):
    return LinkJob(link_id=f"l{n}", url=url)


@pytest.mark.parametrize(
    "url, origin",
    [
        ("https://Example.COM/a", ("https", "example.com", 443)),
        ("http://example.com/a?b#c", ("http", "example.com", 80)),
        ("http://example.com:8080/", ("http", "example.com", 8080)),
        ("http://127.0.0.1:9/x", ("http", "127.0.0.1", 9)),
        ("http://[::1]:81/", ("http", "::1", 81)),
        ("http://example.com:99999/", ("", "http://example.com:99999/", 0)),
    ],
)
def test_the_origin_is_scheme_host_and_port(url, origin):
    assert origin_of(url) == origin


def test_http_and_https_of_one_host_are_two_origins():
    assert origin_of("http://example.com/") != origin_of("https://example.com/")


def test_choose_keeps_order_and_both_caps():
    jobs = [job(n, f"https://a.test/{n}") for n in range(5)] + [
        job(n, f"https://b.test/{n}") for n in range(5, 8)] + [job(8, "https://c.test/")]
    chosen = choose(jobs, most=6, most_per_origin=2)
    assert [j.link_id for j in chosen] == ["l0", "l1", "l5", "l6", "l8"]
    assert [j.link_id for j in choose(jobs, most=3, most_per_origin=2)] == ["l0", "l1", "l5"]


def test_slots_release_at_most_per_origin_and_free_up_when_finished():
    jobs = [job(n, f"https://a.test/{n}") for n in range(3)] + [job(3, "https://b.test/")]
    slots = OriginSlots(jobs, per_origin=2)
    taken = [slots.take() for _ in range(4)]
    assert [j.link_id if j else None for j in taken] == ["l0", "l1", "l3", None]
    slots.finished(taken[0])
    assert slots.take().link_id == "l2"
    assert slots.take() is None


def test_per_origin_must_be_positive():
    with pytest.raises(ValueError):
        OriginSlots([], per_origin=0)
