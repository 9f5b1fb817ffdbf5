"""Readable text: readability-lxml's article as plain text, with counts."""

from __future__ import annotations

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from chalicelib.links.text import combine_articles, count_words, html_to_text, readable_text, text_stats


def test_blocks_are_separated_by_a_blank_line_and_br_by_a_line_break():
    fragment = (
        "<div><h2>Heading</h2><p>First   paragraph\n spread over\tlines.</p>"
        "<blockquote>A quote.</blockquote><p>Line one<br>Line two</p></div>"
    )

    assert html_to_text(fragment) == "Heading\n\nFirst paragraph spread over lines.\n\nA quote.\n\nLine one\nLine two"


def test_inline_elements_do_not_break_words():
    assert html_to_text("<p>Read <a href='/x'>the <b>bold</b> link</a>, then <em>stop</em>.</p>") == (
        "Read the bold link, then stop."
    )


def test_lists_and_table_rows_are_blocks_cells_are_spaced():
    fragment = "<ul><li>one</li><li>two</li></ul><table><tr><td>a</td><td>b</td></tr><tr><th>c</th><td>d</td></tr></table>"

    assert html_to_text(fragment) == "one\n\ntwo\n\na b\n\nc d"


def test_preformatted_text_keeps_its_layout():
    fragment = "<p>Code:</p><pre>def f():\n    return 1\n</pre><p>After.</p>"

    assert html_to_text(fragment) == "Code:\n\ndef f():\n    return 1\n\nAfter."


def test_comments_are_dropped_but_their_tail_is_kept():
    assert html_to_text("<p>before<!-- hidden note -->after</p>") == "beforeafter"


def test_a_whole_page_gives_its_body_text_only():
    # readability hands back the whole page when it finds no article in it.
    assert html_to_text("<html><head><title>Tab title</title></head><body><p>Body.</p></body></html>") == "Body."


def test_control_characters_are_removed():
    assert html_to_text("<p>bell\x07 and\x1b escape</p>") == "bell and escape"


def test_empty_fragment():
    assert html_to_text("") == ""
    assert html_to_text("<div><p> </p></div>") == ""


ARTICLE = """<html><head><title>Page</title><style>p {color: red}</style></head><body>
<div class="sidebar"><ul><li><a href="/">Home</a></li><li><a href="/about">About us</a></li></ul></div>
<div class="article-body">
<p>The city council voted on Tuesday to extend the tram line to the harbour, ending a debate that
lasted more than ten years and divided the neighbourhoods along the route.</p>
<p>Construction starts next spring. The council expects the first trams to run in three years,
and says the line will carry twenty thousand passengers a day once it is complete.</p>
<script>trackPageView();</script>
</div>
<div class="footer">Contact | Privacy</div>
</body></html>"""


def test_readable_text_of_an_article():
    result = readable_text(ARTICLE)

    assert result.text == (
        "The city council voted on Tuesday to extend the tram line to the harbour, ending a debate that "
        "lasted more than ten years and divided the neighbourhoods along the route.\n\n"
        "Construction starts next spring. The council expects the first trams to run in three years, "
        "and says the line will carry twenty thousand passengers a day once it is complete."
    )
    assert result.word_count == 60
    assert result.reading_minutes == 1


def test_bytes_are_decoded_by_their_meta_charset():
    page = "<html><head><meta charset='iso-8859-1'></head><body><p>Crème brûlée à la française.</p></body></html>"

    assert readable_text(page.encode("latin-1")).text == "Crème brûlée à la française."


@pytest.mark.parametrize(
    "page",
    ["", "   ", "<html></html>", "\x00\x01binary\xff", "<p>unclosed <div><table><td>x", "<html>" + "<div>" * 3000 + "deep"],
)
def test_a_bad_page_gives_text_or_nothing_never_an_error(page):
    result = readable_text(page)

    assert isinstance(result.text, str)
    assert result.word_count == count_words(result.text)


@pytest.mark.parametrize(
    ("text", "words"),
    [
        ("", 0),
        ("one", 1),
        ("Hello, world! It's 2024.", 5),
        ("snake_case and hyphen-ated", 4),
        ("東京の天気", 5),
        ("Tokyo 東京 weather", 4),
        ("한국어 텍스트", 6),
    ],
)
def test_word_count(text, words):
    assert count_words(text) == words


@pytest.mark.parametrize(("words", "minutes"), [(0, 0), (1, 1), (230, 1), (231, 2), (2300, 10)])
def test_reading_minutes_at_230_words_a_minute(words, minutes):
    assert text_stats(" ".join(["word"] * words)).reading_minutes == minutes


@settings(max_examples=60, deadline=None)
@example(page="\x1b<p>-->")
@given(
    page=st.lists(
        st.sampled_from(["<p>", "</p>", "<div>", "<br>", "<pre>", "</pre>", "<td>", "<!--", "-->", "<head>", "\x00", "\x1b", " ", "\n"])
        | st.text(max_size=15),
        max_size=40,
    ).map("".join)
)
def test_any_markup_gives_clean_text_never_an_error(page):
    result = readable_text(page)
    fragment_text = html_to_text(page)

    for text in (result.text, fragment_text):
        assert text == text.strip("\n")
        assert not any(ord(c) < 32 and c not in "\n\t" for c in text)
    assert result.word_count == count_words(result.text)


def test_combined_article_starts_from_trafilatura_and_restores_readability_prose_in_place():
    prose = "This paragraph only readability kept is long enough to be article prose, " * 3 + "and it ends like one."
    intro, second, third = (f"The {n} paragraph both extractors kept, with a few more words in it." for n in ("first", "second", "third"))
    base = f"{intro}\n\n{second}\n\n{third}"
    other = f"{intro}\n\n{prose}\n\nShare this\n\n{second}"

    assert combine_articles(base, other) == f"{intro}\n\n{prose}\n\n{second}\n\n{third}"


def test_short_or_unfinished_blocks_only_readability_kept_are_left_out():
    base = "The article's one paragraph, long enough not to be replaced by the other. " * 3
    other = "Related: ten things you missed\n\n" + "A long line of teaser titles without an end " * 6

    assert combine_articles(base, other) == base


def test_a_much_longer_readability_article_replaces_a_fragment():
    fragment = "A photo caption."
    article = "\n\n".join(f"Paragraph {i} of the article, with enough words to read." for i in range(5))

    assert combine_articles(fragment, article).startswith("Paragraph 0 of the article")
    assert combine_articles(fragment, article).count("Paragraph") == 5
    assert combine_articles(article, "") == article
    assert combine_articles("", "") == ""
