"""The copying experiment: packed training rows, counting, evaluation lengths past the training
context, resume, the pretrained-LM harness on tiny random checkpoints, and the claims table."""

import pytest
import torch

from learnlab import config as config_lib
from learnlab.config import ConfigError
from learnlab.experiments import copying, resolve_preset
from learnlab.runner import execute
from learnlab.runtime import generator
from learnlab.tasks import copying as tasks
from learnlab.train.data import SamplerStream


def _sampler(context_len=24, batch=3):
    vocab = tasks.Vocab()
    examples = lambda count, g: tasks.sample_copy(count, min_len=2, max_len=6, vocab=vocab, generator=g)  # noqa: E731
    return copying.packed_sampler(examples, 7, context_len, batch, vocab), vocab


def test_packed_rows_score_only_complete_answers():
    draw, vocab = _sampler()
    inputs, targets = draw(generator(0), 5)
    assert inputs.shape == targets.shape == (5, 3, 24)
    scored = targets != -100
    # every scored target is the next input token, and is a letter or EOS (never BOS, '|' or padding)
    flat_in, flat_t = inputs.reshape(-1, 24), targets.reshape(-1, 24)
    assert torch.equal(flat_t[scored.reshape(-1, 24)], torch.roll(flat_in, -1, 1)[scored.reshape(-1, 24)])
    assert bool((flat_t[scored.reshape(-1, 24)] <= vocab.eos).all())
    assert not bool((flat_t[scored.reshape(-1, 24)] == vocab.sep).any())
    # a row's scored answers end with EOS: as many answers as EOS targets, each preceded by '|' in the row
    for row_in, row_t in zip(flat_in, flat_t):
        eos = (row_t == vocab.eos).sum()
        assert eos <= (row_in == vocab.sep).sum()
    assert int((targets == vocab.eos).sum()) > 0


def test_counting_stream_counts_examples_and_resumes():
    draw, vocab = _sampler()
    stream = copying.CountingStream(SamplerStream(draw, 3, "cpu", block=4), vocab.eos)
    served = [stream.next_batch() for _ in range(6)]
    assert stream.examples == sum(int((t == vocab.eos).sum()) for _, t in served)
    state = stream.state_dict()
    after = [stream.next_batch() for _ in range(3)]
    resumed = copying.CountingStream(SamplerStream(draw, 3, "cpu", block=4), vocab.eos)
    resumed.load_state_dict(state)
    again = [resumed.next_batch() for _ in range(3)]
    assert all(torch.equal(a[0], b[0]) and torch.equal(a[1], b[1]) for a, b in zip(after, again))
    assert resumed.examples == stream.examples


def test_evaluation_lengths_exceed_the_training_context(store):
    cfg = config_lib.apply_overrides(resolve_preset(copying, "smoke"), [
        "parts=copy", "models=hard_alibi,lstm", "context_len=16", "max_len=6", "eval_lengths=6,30"])
    outcome = execute(copying, cfg, store=store, device="cpu", quiet=True)
    assert outcome.status == "completed", outcome.error
    record = store.get_run(outcome.run_id)
    series = record.series("hard_alibi_s0_length/acc")
    assert series.steps.tolist() == [6, 30]  # 30 letters = 63 tokens in a model trained on rows of 16
    assert all(0.0 <= float(v) <= 1.0 for v in series.values.ravel())


def test_a_small_hard_alibi_transformer_learns_to_copy(store):
    """Not a smoke test: a tiny model trained briefly on short strings must copy them."""
    cfg = config_lib.apply_overrides(resolve_preset(copying, "smoke"), [
        "parts=copy", "models=hard_alibi", "n_seeds=1", "min_len=2", "max_len=4", "eval_lengths=4", "context_len=16",
        "transformer.d_model=64", "transformer.n_head=8", "transformer.hard_alibi_heads=4", "transformer.n_layer=2",
        "train.max_steps=350", "train.batch_size=32", "train.lr=0.003", "train.warmup_steps=50",
        "train.eval_every=350"])
    outcome = execute(copying, cfg, store=store, device="cpu", quiet=True)
    record = store.get_run(outcome.run_id)
    accuracy = float(record.series("hard_alibi_s0_length/acc").values.ravel()[-1])
    assert accuracy >= 0.9, accuracy  # (1.00 when measured; 0.0 at step 0)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(store):
    cfg = config_lib.apply_overrides(resolve_preset(copying, "smoke"), [
        "parts=copy", "models=mamba", "n_seeds=1", "train.checkpoint_every=4", "mamba_steps=10"])
    reference = execute(copying, cfg, store=store, device="cpu", quiet=True).run_id
    crashed = execute(copying, cfg, store=store, device="cpu", quiet=True).run_id
    store.set_status(crashed, "failed", "pretend it crashed")  # resume reloads the checkpoint at step 8
    assert execute(copying, None, store=store, resume=crashed, device="cpu", quiet=True).run_id == crashed
    assert store.all_metrics(crashed) == store.all_metrics(reference)
    assert store.series(crashed, "mamba_s0/examples_seen").values.ravel()[-1] > 0


def test_invalid_configs_name_the_problem():
    smoke = resolve_preset(copying, "smoke")
    for override, message in [("models=gpt5", "'models'"), ("context_len=8", "'context_len'"),
                              ("parts=copy,dance", "'parts'"), ("lookup.keys=middle", "'lookup.keys'"),
                              ("pretrained.model_path=/nonexistent", "model_path")]:
        with pytest.raises(ConfigError, match=message):
            config_lib.validate(config_lib.apply_overrides(smoke, [override, "parts=copy,pretrained"]
                                                          if "model_path" in override else [override]))


# ----------------------------------------------------------------------------- the pretrained-LM harness


def _char_tokenizer(path):
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    chars = sorted(set("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789 \n:.,;'\"()[]_-*=/<>`’"))
    vocab = {token: i for i, token in enumerate(["<unk>", "<eos>"] + chars)}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tokenizer.decoder = decoders.Fuse()
    fast = PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>", eos_token="<eos>")
    fast.save_pretrained(path)
    return len(vocab)


@pytest.fixture(params=["gpt_neox", "mamba"])
def tiny_checkpoint(request, tmp_path):
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    path = tmp_path / request.param
    vocab_size = _char_tokenizer(path)
    if request.param == "gpt_neox":
        model = transformers.GPTNeoXForCausalLM(transformers.GPTNeoXConfig(
            vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
            max_position_embeddings=4096, eos_token_id=1, pad_token_id=1, bos_token_id=1))
    else:
        model = transformers.MambaForCausalLM(transformers.MambaConfig(
            vocab_size=vocab_size, hidden_size=32, num_hidden_layers=2, state_size=4, eos_token_id=1, pad_token_id=1,
            bos_token_id=1))
    model.save_pretrained(path)
    return path


def test_the_harness_runs_end_to_end_on_tiny_random_checkpoints(tiny_checkpoint, store):
    cfg = config_lib.apply_overrides(resolve_preset(copying, "smoke"), [
        "parts=pretrained", f"pretrained.model_path={tiny_checkpoint}", "pretrained.book_sizes=3,6",
        "pretrained.text_lengths=8", "pretrained.queries=3", "pretrained.batch_size=2"])
    outcome = execute(copying, cfg, store=store, device="cpu", quiet=True)
    assert outcome.status == "completed", outcome.error
    record = store.get_run(outcome.run_id)
    book = record.series("pretrained/phonebook_acc")
    assert book.steps.tolist() == [3, 6] and all(0 <= float(v) <= 1 for v in book.values.ravel())
    assert len(record.series("pretrained/text_shuffled_prefix")) == 1
    assert record.claims() == []  # E5 reports measurements; the paper's contrast is between models


def test_batched_greedy_decoding_with_left_padding_equals_one_prompt_at_a_time(tiny_checkpoint):
    from learnlab.probes.lm_harness import greedy_answers, load_causal_lm

    model, tokenizer = load_causal_lm(tiny_checkpoint)
    prompts = ["Mary Smith: 6", "A much longer prompt: James Brown: 9"]
    batched = greedy_answers(model, tokenizer, prompts, max_new_tokens=6, batch_size=2)
    single = [greedy_answers(model, tokenizer, [p], max_new_tokens=6)[0] for p in prompts]
    assert batched == single


def test_harness_scoring_and_prompts():
    from learnlab.probes.lm_harness import exact_match, prefix_match
    from learnlab.tasks.phonebook import phonebook_prompts, text_copy_prompts

    prompts, answers = phonebook_prompts(10, 4, seed=0)
    for prompt, answer in zip(prompts, answers):
        book, query = prompt.split("\n\n")
        entries = dict(line.split(": ") for line in book.splitlines())
        assert len(entries) == 10 and answer in entries.values() and answer[0] in "6789" and len(answer) == 10
        name = query.splitlines()[-1].rstrip(":")
        assert entries[name] == answer
    assert exact_match([" 6123456789\nJohn", "612"], ["6123456789", "6123456789"]).tolist() == [1.0, 0.0]
    exact, fraction = prefix_match([" the cat sat", " the dog"], [" the cat sat", " the cat"])
    assert exact.tolist() == [1.0, 0.0] and fraction.tolist() == [1.0, 5 / 8]
    text, rest = text_copy_prompts(12, 2, shown=4, seed=1)
    first, repeat = text[0].split("\n\n")
    assert first.split()[:4] == repeat.split() and (repeat + rest[0]) == first


def test_a_missing_model_directory_is_one_clear_error(tmp_path):
    from learnlab.errors import LearnlabError
    from learnlab.probes.lm_harness import load_causal_lm

    pytest.importorskip("transformers")
    with pytest.raises(LearnlabError, match="config.json"):
        load_causal_lm(tmp_path)


# ----------------------------------------------------------------------------- claims


class _Stub:
    """A stored run reduced to the readers the claims use: {name: {step: value}}."""

    def __init__(self, metrics):
        self.metrics = metrics

    def steps(self, name):
        import numpy as np

        from learnlab.claims import NotMeasured

        if name not in self.metrics:
            raise NotMeasured(name)
        return np.array(sorted(self.metrics[name]))

    def at(self, name, step):
        return self.metrics[name][max(s for s in self.metrics[name] if s <= step)]


def _length_metrics(cfg, model, at_top, at_far):
    from learnlab.experiments.copying import schema

    return {schema.metric(schema.length(model, s)): {cfg.max_len: at_top, 2 * cfg.max_len: at_far}
            for s in range(cfg.n_seeds)}


def test_length_generalisation_is_scored_only_for_a_model_that_copies():
    cfg = resolve_preset(copying, "quick")
    specs = {s.name: s for s in copying.claims(cfg)}
    never_copied = _Stub(_length_metrics(cfg, "lstm", 0.02, 0.0))
    assert specs["length-generalisation-lstm"].check(never_copied).verdict == "inconclusive"
    copied_then_failed = _Stub(_length_metrics(cfg, "lstm", 0.97, 0.0))
    assert specs["length-generalisation-lstm"].check(copied_then_failed).verdict == "reproduced"
    generalised = _Stub(_length_metrics(cfg, "hard_alibi", 0.99, 0.97))
    assert specs["length-generalisation-hard_alibi"].check(generalised).verdict == "reproduced"


def test_the_key_length_is_predicted_from_the_configuration():
    from learnlab.experiments.copying.evidence import predicted_key_length

    cfg = resolve_preset(copying, "quick")
    # two layers: the widest window (4 tokens) less the letter the matching head reads out
    assert predicted_key_length(cfg) == cfg.transformer.hard_alibi_heads - 1 == 3
    deeper = config_lib.apply_overrides(cfg, ["transformer.n_layer=3", "transformer.hard_alibi_heads=3"])
    assert predicted_key_length(deeper) == 4  # windows of 3 composed twice span 3 + 2 = 5 tokens, less one


def test_stop_at_copy_ends_every_model_of_a_seed_where_the_lead_copies(store, monkeypatch):
    from learnlab.experiments.copying import parts

    monkeypatch.setattr(parts, "COPIES", 0.0)  # the lead "copies" at its first evaluation (step 0)
    cfg = config_lib.apply_overrides(resolve_preset(copying, "smoke"), [
        "parts=copy", "models=mamba,hard_alibi", "n_seeds=1", "stop_at_copy=true"])
    outcome = execute(copying, cfg, store=store, device="cpu", quiet=True)
    assert outcome.status == "completed", outcome.error
    record = store.get_run(outcome.run_id)
    for model in ("hard_alibi", "mamba"):  # the lead is trained first, whatever the order of 'models'
        assert record.series(f"{model}_s0/acc").steps.tolist() == [0]
        assert record.series(f"{model}_s0_length/acc").steps.tolist() == list(cfg.eval_lengths)
