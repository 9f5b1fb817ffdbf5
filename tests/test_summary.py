"""Summaries: the offline extractive default, Bedrock through botocore's Stubber, and the per-org choice."""

from __future__ import annotations

import threading

from hypothesis import given, settings
from hypothesis import strategies as st
import pytest
from botocore.stub import ANY

from bedrock_stub import converse_answer, stubbed_bedrock
from chalicelib.links.bedrock import BedrockSummarizer, make_bedrock_client
from chalicelib.links.summary import ExtractiveSummarizer, summarizer_from_setting

TEXT = """Solar power overtook coal in the European Union last year.

Solar panels produced more electricity than coal plants for the first time, according to a new energy report.
The report says solar output grew by a fifth, while coal fell to its lowest level in decades.
Wind power also grew, but more slowly than solar.
Analysts expect solar to keep growing as panel prices fall and more countries build solar farms.
Some coal plants will stay open as a reserve for cold, windless winters.
The report was published by an independent research group on Monday."""

EXPECTED = (
    "Solar power overtook coal in the European Union last year. "
    "Solar panels produced more electricity than coal plants for the first time, according to a new energy report. "
    "The report says solar output grew by a fifth, while coal fell to its lowest level in decades."
)


def test_extractive_summary_picks_the_topical_early_sentences_in_page_order():
    summary = ExtractiveSummarizer().summarize("Solar overtakes coal in the EU", TEXT)

    assert summary == EXPECTED
    assert len(summary) <= 400


def test_extractive_summary_is_deterministic():
    summarizer = ExtractiveSummarizer()

    assert {summarizer.summarize("Solar", TEXT) for _ in range(3)} == {summarizer.summarize("Solar", TEXT)}


def test_a_text_that_fits_is_its_own_summary():
    assert ExtractiveSummarizer().summarize(None, "Short note.\nTwo lines.") == "Short note. Two lines."


def test_nothing_to_summarize():
    assert ExtractiveSummarizer().summarize("Title", "") == ""
    assert ExtractiveSummarizer().summarize(None, "  \n ") == ""


def test_one_huge_sentence_is_cut_at_a_word_with_an_ellipsis():
    sentence = "This sentence never ends and " + "keeps going and " * 60 + "finally stops."

    summary = ExtractiveSummarizer().summarize(None, sentence)

    assert len(summary) <= 400
    assert summary.endswith("and…")
    assert summary.startswith("This sentence never ends and keeps going")


def test_text_starting_after_a_long_blank_stretch_is_still_summarized():
    text = " " * 25_000 + "Late words. " * 50

    # Said again and again, a sentence is still said once.
    assert ExtractiveSummarizer().summarize(None, text) == "Late words."


# Sentences whose words occur nowhere else: they never look topical.
FILLER = " ".join(f"Filler{i} words{i} making{i} this{i} long{i} enough{i} here{i}." for i in range(8))


def test_a_sentence_ending_in_a_colon_weighs_less_than_the_same_one_ending_in_a_full_stop():
    text = "Harbour tram line news from the council meeting today:\nHarbour tram line news from the council meeting today.\n" + FILLER

    summary = ExtractiveSummarizer(max_sentences=1).summarize(None, text)

    assert summary == "Harbour tram line news from the council meeting today."


def test_sentences_under_six_words_are_not_chosen():
    text = "Harbour tram line approved today.\nThe harbour tram line was approved by the council today.\n" + FILLER

    summary = ExtractiveSummarizer(max_sentences=1).summarize(None, text)

    assert summary == "The harbour tram line was approved by the council today."


def test_headings_and_the_title_are_not_summary_sentences():
    text = "Solar overtakes coal\n\n" + TEXT

    summary = ExtractiveSummarizer().summarize("Solar overtakes coal", text)

    assert summary == EXPECTED


def test_summary_of_a_long_article_stays_under_400_characters():
    text = " ".join(f"Sentence number {i} talks about solar power and coal plants in Europe." for i in range(500))

    summary = ExtractiveSummarizer().summarize("Solar power", text)

    assert 0 < len(summary) <= 400
    assert summary.startswith("Sentence number 0 talks about solar power")


@pytest.fixture
def bedrock():
    with stubbed_bedrock() as stubbed:
        yield stubbed


MODEL = "anthropic.claude-3-haiku-20240307-v1:0"


def test_bedrock_summary_comes_from_the_model(bedrock):
    client, stubber = bedrock
    stubber.add_response(
        "converse",
        converse_answer("  Solar beat coal in the EU\nlast year. "),
        {
            "modelId": MODEL,
            "system": [{"text": ANY}],
            "messages": [{"role": "user", "content": [{"text": "Title: Solar wins\n\n" + TEXT}]}],
            "inferenceConfig": {"maxTokens": 200, "temperature": 0.0},
        },
    )

    summary = BedrockSummarizer(client, MODEL, timeout=5).summarize("Solar wins", TEXT)

    assert summary == "Solar beat coal in the EU last year."
    stubber.assert_no_pending_responses()


@pytest.mark.parametrize(
    ("error_code", "status"),
    [("ThrottlingException", 429), ("AccessDeniedException", 403), ("ModelTimeoutException", 408), ("InternalServerException", 500)],
)
def test_bedrock_errors_fall_back_to_the_extractive_summary(bedrock, error_code, status):
    client, stubber = bedrock
    stubber.add_client_error("converse", service_error_code=error_code, http_status_code=status)

    summary = BedrockSummarizer(client, MODEL, timeout=5).summarize("Solar overtakes coal in the EU", TEXT)

    assert summary == EXPECTED


def test_an_empty_model_answer_falls_back(bedrock):
    client, stubber = bedrock
    stubber.add_response("converse", converse_answer("   "))

    assert BedrockSummarizer(client, MODEL, timeout=5).summarize("Solar overtakes coal in the EU", TEXT) == EXPECTED


def test_a_long_model_answer_is_cut_to_400_characters(bedrock):
    client, stubber = bedrock
    stubber.add_response("converse", converse_answer("word " * 200))

    summary = BedrockSummarizer(client, MODEL, timeout=5).summarize("Solar", TEXT)

    assert len(summary) == 400
    assert summary.endswith("…")


def test_a_slow_model_times_out_and_falls_back(bedrock):
    client, stubber = bedrock
    stubber.add_response("converse", converse_answer("Too late."))
    release = threading.Event()
    entered = threading.Event()

    def hold_the_call(**kwargs):
        entered.set()
        release.wait(10)

    client.meta.events.register("provide-client-params.bedrock-runtime.Converse", hold_the_call)
    try:
        summary = BedrockSummarizer(client, MODEL, timeout=0.05).summarize("Solar overtakes coal in the EU", TEXT)
    finally:
        release.set()

    assert entered.wait(5), "the call reached the client"
    assert summary == EXPECTED


def test_no_text_means_no_model_call(bedrock):
    client, stubber = bedrock

    assert BedrockSummarizer(client, MODEL, timeout=5).summarize("Title", "  ") == ""
    stubber.assert_no_pending_responses()


def test_the_default_bedrock_client_has_the_timeout_and_no_retries(monkeypatch):
    monkeypatch.setenv("AWS_DEFAULT_REGION", "eu-west-1")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")

    client = make_bedrock_client(2.5)

    assert client.meta.service_model.service_name == "bedrock-runtime"
    assert (client.meta.config.connect_timeout, client.meta.config.read_timeout) == (2.5, 2.5)
    assert client.meta.config.retries["total_max_attempts"] == 1


@pytest.mark.parametrize("setting", [None, "", "extractive", " extractive "])
def test_setting_extractive(setting):
    assert isinstance(summarizer_from_setting(setting), ExtractiveSummarizer)


def test_setting_bedrock_with_a_model_id_containing_colons():
    made = []

    def client_factory(timeout):
        made.append(timeout)
        return "client"

    summarizer = summarizer_from_setting(f"bedrock:{MODEL}", bedrock_client=client_factory, timeout=3.0)

    assert isinstance(summarizer, BedrockSummarizer)
    assert (summarizer.client, summarizer.model_id, summarizer.timeout) == ("client", MODEL, 3.0)
    assert made == [3.0]


@pytest.mark.parametrize("setting", ["bedrock", "bedrock:", "bedrock:  ", "openai:gpt", "extractive:x", "Extractive"])
def test_bad_settings_are_refused(setting):
    with pytest.raises(ValueError, match="unknown summarizer setting"):
        summarizer_from_setting(setting, bedrock_client=lambda timeout: pytest.fail("no client for a bad setting"))


@settings(max_examples=60, deadline=None)
@given(title=st.none() | st.text(max_size=40), text=st.text(max_size=3000))
def test_any_text_gives_a_short_deterministic_summary(title, text):
    summarizer = ExtractiveSummarizer()

    summary = summarizer.summarize(title, text)

    assert len(summary) <= 400
    assert summary == summarizer.summarize(title, text)
    if not text.split():
        assert summary == ""
    title_line = " ".join((title or "").split()).casefold()
    if summary and title_line:
        # Only what is left of a text after its title lines makes a summary.
        assert summary.casefold() != title_line
