from dataclasses import replace

import pytest

from learnlab.claims import check_claims
from learnlab.experiments import ar_learners
from learnlab.results import StoredRun
from learnlab.runner import execute

# These tests check runs' numbers, claims and statuses, not their figures.
pytestmark = pytest.mark.usefixtures("no_figures")


def test_a_linear_predictor_learns_parity_only_with_the_chain(store):
    quick = ar_learners.presets()["quick"]
    cfg = replace(quick, parts=("parity",), parity=replace(
        quick.parity, n_bits=(10,), n_train=2000, n_test=1000, d=16,
        train=replace(quick.parity.train, max_steps=300, eval_every=300)))
    run = StoredRun(store.get_run(execute(ar_learners, cfg, store=store, device="cpu", quiet=True).run_id),
                    ar_learners.Config)
    assert 0.4 <= run.last("parity_n10_none/final_token_acc") <= 0.6  # a parity of 5 bits is no linear threshold
    assert run.last("parity_n10_count/final_token_acc") >= 0.98
    verdicts = {c.name: (c.kind, c.verdict) for c in check_claims(ar_learners.claims(cfg), run)}
    assert verdicts == {"parity-n10-cot": ("reproduction", "reproduced"),
                        "parity-n10-no-cot-at-chance": ("sanity", "pass")}


def test_the_linear_length_part_cuts_the_count_chain():
    quick = ar_learners.presets()["quick"]
    names = {s.name for s in ar_learners.claims(quick)}
    assert {"length-linear-count", "length-linear-shorter", "length-mlp-long-chain", "length-mlp-one-token"} <= names
    assert 2 ** len(bin(quick.length.linear_subset_size)[2:]) - 1 == quick.length.linear_subset_size


def test_the_text_claim_pairs_each_validation_chunk_with_the_bigram_on_the_same_tokens(store):
    import numpy as np

    smoke = ar_learners.presets()["smoke"]
    cfg = replace(smoke, parts=("text",), text=replace(smoke.text, corpora=("pydoc",)))
    run = StoredRun(store.get_run(execute(ar_learners, cfg, store=store, device="cpu", quiet=True).run_id),
                    ar_learners.Config)
    model = run.over_seeds("text_pydoc/val_chunk_nll")
    bigram = run.over_seeds("text_pydoc/val_chunk_bigram_nll")
    assert model.shape == bigram.shape == (20,)
    # The chunks cover the validation tokens, so their mean is the overall bigram's log-perplexity
    # (up to the tokens past the last whole window) -- and the chunks differ by topic.
    assert abs(bigram.mean() - np.log(run.last("text_pydoc/bigram_perplexity"))) < 0.05
    assert bigram.std() > 0.05
    claim = {c.name: c for c in check_claims(ar_learners.claims(cfg), run)}["text-pydoc"]
    assert "paired" in claim.detail and claim.n_units == 20


def test_text_corpus_steps_give_each_corpus_its_own_budget(store):
    smoke = ar_learners.presets()["smoke"]
    bad = replace(smoke, text=replace(smoke.text, corpora=("stories",), corpus_steps=(10, 20)))
    assert bad.check() is not None  # one step count per corpus
    cfg = replace(smoke, parts=("text",), text=replace(smoke.text, corpus_steps=(10,)))
    run = StoredRun(store.get_run(execute(ar_learners, cfg, store=store, device="cpu", quiet=True).run_id),
                    ar_learners.Config)
    assert list(run.steps("text_stories/val_perplexity")) == [0, 10]
