"""The bounded-precision gradient oracle, its roundings, and the sample channel."""

import pytest
import torch

from learnlab.models.mlp import MLPConfig, TwoLayerMLP
from learnlab.train.losses import hinge_loss, square_loss
from learnlab.train.optim import TrainConfig
from learnlab.train.precision import (GradientOracle, PrecisionConfig, SampleChannel, channel_loss, decode_channel,
                                      per_example_gradients, round_to_lattice, solve_parity_gf2)


def _signs(*shape, seed=0):
    return (torch.randint(0, 2, shape, generator=torch.Generator().manual_seed(seed)) * 2 - 1).float()


def test_deterministic_roundings_land_on_the_lattice_where_the_definitions_say():
    rho = 0.3
    values = torch.tensor([-0.5, -0.2, -0.1, 0.0, 0.1, 0.2, 0.23, 0.4, 0.7])
    on_lattice = lambda v: torch.allclose(v / rho, torch.round(v / rho), atol=1e-6)  # noqa: E731
    nearest = round_to_lattice(values, rho, "nearest")
    assert on_lattice(nearest) and (nearest - values).abs().max() <= rho / 2 + 1e-6
    trunc = round_to_lattice(values, rho, "trunc")
    assert on_lattice(trunc) and bool((trunc.abs() <= values.abs() + 1e-6).all())
    adversarial = round_to_lattice(values, rho, "adv_zero")
    assert on_lattice(adversarial) and (adversarial - values).abs().max() <= 0.75 * rho + 1e-6
    # Every |g| <= 3 rho / 4 is erased; above it, the admissible point nearest zero.
    assert torch.equal(adversarial[values.abs() <= 0.75 * rho], torch.zeros(int((values.abs() <= 0.225).sum())))
    assert adversarial[values == 0.4].item() == pytest.approx(0.3)  # 0.3 is within 0.225 of 0.4 and nearer 0 than 0.6
    assert adversarial[values == 0.7].item() == pytest.approx(0.6)
    assert torch.equal(round_to_lattice(values, rho, "exact"), values)


def test_stochastic_rounding_is_unbiased_and_on_the_lattice():
    g = torch.Generator().manual_seed(0)
    values = torch.full((200_000,), 0.07)
    rounded = round_to_lattice(values, 0.3, "stochastic", g)
    assert set(torch.round(rounded / 0.3).unique().tolist()) == {0.0, 1.0}
    assert rounded.mean().item() == pytest.approx(0.07, abs=0.003)


@pytest.mark.parametrize("bias,output_bias", [(True, False), (False, True)])
@pytest.mark.parametrize("loss", [square_loss, hinge_loss])
def test_closed_form_per_example_gradients_match_autograd(bias, output_bias, loss):
    model = TwoLayerMLP(5, MLPConfig(width=6, bias=bias, output_bias=output_bias), seeds=[0, 1])
    x, y = torch.randn(2, 7, 5), _signs(2, 7)
    closed, _ = per_example_gradients(model, x, y, loss, method="closed_form")
    mapped, _ = per_example_gradients(model, x, y, loss, method="vmap")
    for example in (0, 3):  # and against plain autograd on one example at a time
        model.zero_grad()
        loss(model(x[:, example:example + 1]), y[:, example:example + 1]).sum().backward()
        for name, p in model.named_parameters():
            assert torch.allclose(closed[name][example], p.grad, atol=1e-6)
    for name in closed:
        assert torch.allclose(closed[name], mapped[name], atol=1e-6)


def test_the_fast_clipped_mean_equals_clipping_each_example():
    model = TwoLayerMLP(6, MLPConfig(width=5, output_bias=True), seeds=[0, 1])
    x, y = _signs(2, 9, 6), _signs(2, 9, seed=1)
    oracle = GradientOracle(PrecisionConfig(mode="nearest", scale=7.0), square_loss)
    fast, _ = oracle.clipped_means(model, x, y)
    oracle.method = "vmap"
    slow, _ = oracle.clipped_means(model, x, y)
    for name in slow:
        assert torch.allclose(fast[name], slow[name], atol=1e-6)


def test_exact_oracle_without_clipping_is_plain_sgd():
    model = TwoLayerMLP(4, MLPConfig(width=3), seeds=[0])
    x, y = _signs(1, 8, 4), _signs(1, 8, seed=2)
    oracle = GradientOracle(PrecisionConfig(mode="exact", scale=3.0, clip=False), square_loss)
    oracle(model, x, y)
    answers = {name: p.grad.clone() for name, p in model.named_parameters()}
    model.zero_grad()
    square_loss(model(x), y).sum().backward()
    for name, p in model.named_parameters():
        assert torch.allclose(answers[name], p.grad, atol=1e-6)


def test_per_replica_precisions_round_each_replica_on_its_own_lattice():
    model = TwoLayerMLP(4, MLPConfig(width=3), seeds=[0, 0])  # identical replicas
    x, y = _signs(1, 16, 4).expand(2, -1, -1), _signs(1, 16, seed=3).expand(2, -1)
    oracle = GradientOracle(PrecisionConfig(mode="nearest", scale=10.0), square_loss,
                            replica_rho=torch.tensor([0.01, 0.5]))
    answers, _ = oracle.answer(model, x, y)
    for rho, replica in ((0.01, 0), (0.5, 1)):
        value = answers["weight"][replica] / rho
        assert torch.allclose(value, torch.round(value), atol=1e-4)
    assert not torch.equal(answers["weight"][0], answers["weight"][1])


def test_fit_through_a_stochastic_oracle_is_deterministic_and_resumes_exactly(store):
    from learnlab.runner import Run
    from learnlab.train import ReplicaStream, fit

    store.create_run("r", experiment="x", preset=None, config={}, config_hash="h", seed=0, git_commit=None,
                     versions={}, device="cpu")
    sampler = lambda g, n: (torch.randint(0, 2, (n, 8, 5), generator=g).float() * 2 - 1,  # noqa: E731
                            torch.randint(0, 2, (n, 8), generator=g).float() * 2 - 1)

    def train(scope, steps, checkpoint_every=None):
        run = Run(store, "r", None, device=torch.device("cpu"), quiet=True).scoped(scope)
        model = TwoLayerMLP(5, MLPConfig(width=4), seeds=[1, 2])
        oracle = GradientOracle(PrecisionConfig(rho=0.1, mode="stochastic", scale=5.0), square_loss, seed=3)
        cfg = TrainConfig(lr=0.1, max_steps=steps, log_every=5, checkpoint_every=checkpoint_every)
        fit(model, ReplicaStream([sampler] * 2, [4, 5], "cpu", block=4), square_loss, cfg, run, gradient=oracle)
        run.flush()
        return model

    reference = train("a", 30)
    assert all(torch.equal(p, q) for p, q in zip(reference.parameters(), train("b", 30).parameters()))
    train("c", 17, checkpoint_every=10)  # "killed" after step 17; the checkpoint is at step 10
    resumed = train("c", 30, checkpoint_every=10)
    assert all(torch.equal(p, q) for p, q in zip(reference.parameters(), resumed.parameters()))


# ----------------------------------------------------------------------------- the sample channel


def test_the_channel_gradient_closed_form_matches_per_example_autograd():
    model = SampleChannel(6, 32, n_replicas=2)
    with torch.no_grad():
        model.blocks.normal_()
    x, y = _signs(2, 10, 6), _signs(2, 10, seed=1)
    oracle = GradientOracle(PrecisionConfig(mode="exact", scale=1.0), channel_loss)
    fast, _ = oracle.clipped_means(model, x, y)
    oracle.method = "vmap"
    slow, _ = oracle.clipped_means(model, x, y)
    assert torch.allclose(fast["blocks"], slow["blocks"], atol=1e-6)


def test_small_batches_leak_every_example_and_large_ones_under_adversarial_rounding_leak_none():
    n, b = 20, 8
    model = SampleChannel(n, 4096)
    x, y = _signs(1, b, n), _signs(1, b, seed=4)
    assert len(set(model.block_of(x[0]).tolist())) == b  # no collision in this draw
    fine = GradientOracle(PrecisionConfig(rho=0.05, mode="nearest", scale=1.0), channel_loss)
    answers, _ = fine.answer(model, x, y)
    got_x, got_y = decode_channel(answers["blocks"][0])
    order = torch.argsort(model.block_of(got_x))
    truth = torch.argsort(model.block_of(x[0]))
    assert torch.equal(got_x[order], x[0][truth]) and torch.equal(got_y[order], y[0][truth])
    coarse = GradientOracle(PrecisionConfig(rho=0.05, mode="adv_zero", scale=1.0), channel_loss)
    big = _signs(1, 64, n, seed=5), _signs(1, 64, seed=6)  # 1/b = 0.016 <= 3 rho / 4
    answers, _ = coarse.answer(model, *big)
    assert decode_channel(answers["blocks"][0])[0].shape[0] == 0
    assert not answers["blocks"].any()


def test_colliding_examples_are_not_decoded_as_examples():
    model = SampleChannel(6, 1)  # one block: every example collides
    x, y = _signs(1, 3, 6), _signs(1, 3, seed=1)
    answers, _ = GradientOracle(PrecisionConfig(mode="exact", scale=1.0), channel_loss).answer(model, x, y)
    assert decode_channel(answers["blocks"][0])[0].shape[0] == 0


def test_gaussian_elimination_recovers_a_full_parity_and_reports_rank():
    n = 40
    subset = torch.rand(n, generator=torch.Generator().manual_seed(0)) < 0.5
    x = _signs(100, n)
    y = torch.where(subset, x, torch.ones_like(x)).prod(dim=1)
    solution, rank = solve_parity_gf2(x, y)
    assert rank == n and torch.equal(solution.bool(), subset)
    _, short = solve_parity_gf2(x[:10], y[:10])
    assert short == 10
    # Noise-free but fewer equations: any returned solution is consistent with them.
    solution, _ = solve_parity_gf2(x[:10], y[:10])
    assert torch.equal(torch.where(solution.bool(), x[:10], torch.ones_like(x[:10])).prod(1), y[:10])


@pytest.mark.parametrize("mode", ["nearest", "adv_zero", "trunc", "exact"])
def test_the_channel_answers_on_touched_rows_are_the_whole_answer(mode):
    model = SampleChannel(12, 64, n_replicas=3, hash_seed=1)
    g = torch.Generator().manual_seed(0)
    x = torch.where(torch.rand(3, 40, 12, generator=g) < 0.5, 1.0, -1.0)  # 40 examples in 64 blocks: collisions
    y = torch.where(torch.rand(3, 40, generator=g) < 0.5, 1.0, -1.0)
    oracle = GradientOracle(PrecisionConfig(rho=0.02, mode=mode), channel_loss)
    whole = oracle.answer(model, x, y)[0]["blocks"].view(-1, 13)
    rows, answers = oracle.answer_rows(model, x, y)
    assert torch.equal(rows, torch.unique(torch.arange(3).unsqueeze(1) * 64 + model.block_of(x)))
    assert torch.equal(model.touched_rows(x)[0], rows)
    assert torch.equal(whole[rows], answers)
    rest = torch.ones(len(whole), dtype=torch.bool)
    rest[rows] = False
    assert not whole[rest].any()
    with pytest.raises(ValueError, match="deterministic"):
        GradientOracle(PrecisionConfig(rho=0.02, mode="stochastic"), channel_loss).answer_rows(model, x, y)
