import pytest

from chalicelib.links.urls import normalize_url

SAME_PAGE = [
    ("HTTP://Example.COM/Path", "http://example.com/Path"),
    ("https://example.com", "https://example.com/"),
    ("http://example.com:80/a", "http://example.com/a"),
    ("https://example.com:443/a", "https://example.com/a"),
    ("https://example.com:80/a", "https://example.com:80/a"),
    ("http://example.com:8080", "http://example.com:8080/"),
    ("https://example.com/a#section-2", "https://example.com/a"),
    ("https://example.com/a?utm_source=x&utm_medium=y", "https://example.com/a"),
    ("https://example.com/a?b=2&utm_campaign=z&a=1", "https://example.com/a?b=2&a=1"),
    ("https://example.com/a?UTM_Source=x&id=3", "https://example.com/a?id=3"),
    ("https://example.com/?fbclid=abc&gclid=def", "https://example.com/"),
    ("https://example.com/?mc_eid=1&mc_cid=2&igshid=3&q=ok", "https://example.com/?q=ok"),
    ("https://example.com/?msclkid=1&_hsenc=2&_hsmi=3&yclid=4", "https://example.com/"),
    ("https://example.com/?z=1&y=2&x=3", "https://example.com/?z=1&y=2&x=3"),
    ("https://example.com/?a=1&&b=2", "https://example.com/?a=1&b=2"),
    ("https://example.com/?", "https://example.com/"),
    ("https://example.com/?utm%5Fsource=x", "https://example.com/"),
    ("https://example.com/?ref=home", "https://example.com/?ref=home"),
    ("  https://example.com/a  ", "https://example.com/a"),
    ("https://bücher.de/katalog", "https://xn--bcher-kva.de/katalog"),
    ("https://BÜCHER.de/", "https://xn--bcher-kva.de/"),
    ("https://例え.jp/", "https://xn--r8jz45g.jp/"),
    ("http://[2001:DB8::0001]:80/x", "http://[2001:db8::1]/x"),
    ("http://127.0.0.1:8000/page", "http://127.0.0.1:8000/page"),
    ("https://user:pw@Example.com/", "https://user:pw@example.com/"),
    ("https://example.com/A%20b/", "https://example.com/A%20b/"),
]


@pytest.mark.parametrize("url, expected", SAME_PAGE)
def test_normalize_url(url, expected):
    assert normalize_url(url) == expected


@pytest.mark.parametrize("url, expected", SAME_PAGE)
def test_normalized_url_is_a_fixed_point(url, expected):
    assert normalize_url(expected) == expected


INVALID = [
    "",
    "   ",
    "example.com/a",
    "/relative/path",
    "ftp://example.com/file",
    "javascript:alert(1)",
    "mailto:someone@example.com",
    "https://",
    "https:///path",
    "https://exa mple.com/",
    "https://example.com/a b",
    "https://example.com/\x00",
    "https://example.com:99999/",
    "https://example.com:port/",
    "https://[not-ipv6]/",
    "https://exa$mple.com/",
    "https://a..b/",
    "https://" + "a" * 8200 + ".com/",
    None,
    42,
    b"https://example.com/",
]


@pytest.mark.parametrize("url", INVALID)
def test_invalid_urls_raise_value_error(url):
    with pytest.raises(ValueError):
        normalize_url(url)
