from dataclasses import replace

from learnlab.experiments import ar_learners
from learnlab.runner import execute


def test_a_linear_predictor_learns_parity_only_with_the_chain(store):
    quick = ar_learners.presets()["quick"]
    cfg = replace(quick, parts=("parity",), parity=replace(
        quick.parity, n_bits=(10,), n_train=2000, n_test=1000, d=16,
        train=replace(quick.parity.train, max_steps=300, eval_every=300)))
    record = store.get_run(execute(ar_learners, cfg, store=store, device="cpu", quiet=True).run_id)
    direct = record.series("parity_n10_none/final_token_acc").values[-1]
    chained = record.series("parity_n10_count/final_token_acc").values[-1]
    assert 0.4 <= direct <= 0.6  # a parity of 5 bits is no linear threshold
    assert chained >= 0.98
    (claim,) = ar_learners.claims(record)
    assert claim.passed, claim.measured
