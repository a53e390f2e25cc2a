"""Evaluate a pretrained Hugging Face causal LM by greedy decoding (phone-book and text-copy harnesses).

``load_causal_lm(path)`` loads a model and tokenizer from a local directory only (nothing is
downloaded: ``local_files_only``); any ``AutoModelForCausalLM`` works (Pythia / GPT-NeoX,
Mamba, Llama ...) whose architecture transformers itself implements: code shipped in the
folder (``auto_map`` in its config) is never run (``trust_remote_code=False``, pinned, so
transformers never asks either). ``greedy_answers`` decodes a batch of prompts with left padding and
returns the continuations; ``exact_match`` scores them against the answers.
"""

from __future__ import annotations

from pathlib import Path

import torch

from learnlab.errors import LearnlabError

__all__ = ["load_causal_lm", "greedy_answers", "exact_match", "prefix_match"]


def load_causal_lm(path: str | Path, device: torch.device | str = "cpu"):
    """(model, tokenizer) from a directory written by ``save_pretrained``; one clear error otherwise."""
    try:
        from transformers import AutoModelForCausalLM, AutoTokenizer
    except ImportError as error:
        raise LearnlabError("the pretrained-model harness needs transformers: pip install learnlab[hf]") from error
    path = Path(path)
    if not (path / "config.json").is_file():
        raise LearnlabError(f"--model {path}: no Hugging Face checkpoint there (config.json is missing)")
    try:  # trust_remote_code=False: never run the folder's own Python, and never ask whether to
        tokenizer = AutoTokenizer.from_pretrained(path, local_files_only=True, trust_remote_code=False)
        model = AutoModelForCausalLM.from_pretrained(path, local_files_only=True,
                                                     trust_remote_code=False).to(device).eval()
    except (OSError, ValueError, KeyError, ImportError) as error:
        first = (str(error).strip().splitlines() or [type(error).__name__])[0]
        raise LearnlabError(f"--model {path}: cannot load it as a causal LM ({first})") from None
    tokenizer.padding_side = "left"  # decoder-only: new tokens must follow every prompt directly
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token or tokenizer.unk_token
    return model, tokenizer


@torch.no_grad()
def greedy_answers(model, tokenizer, prompts: list[str], *, max_new_tokens: int, batch_size: int = 8) -> list[str]:
    """Greedy continuations of ``prompts`` (batched, left-padded), decoded to text."""
    out = []
    device = next(model.parameters()).device
    for start in range(0, len(prompts), batch_size):
        batch = tokenizer(prompts[start:start + batch_size], return_tensors="pt", padding=True).to(device)
        batch.pop("token_type_ids", None)  # causal LMs take none; generate() refuses unused inputs
        generated = model.generate(**batch, max_new_tokens=max_new_tokens, do_sample=False,
                                   pad_token_id=tokenizer.pad_token_id)
        out += tokenizer.batch_decode(generated[:, batch["input_ids"].shape[1]:], skip_special_tokens=True)
    return out


def exact_match(generated: list[str], answers: list[str]) -> torch.Tensor:
    """1 where the continuation's first whitespace-separated word is the answer (phone numbers)."""
    return torch.tensor([float((g.split() or [""])[0].rstrip(".,") == a) for g, a in zip(generated, answers)])


def prefix_match(generated: list[str], answers: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(string match (N,), fraction of the answer's characters reproduced before the first error)."""
    exact, fraction = [], []
    for g, a in zip(generated, answers):
        agree = next((i for i, (x, y) in enumerate(zip(g, a)) if x != y), min(len(g), len(a)))
        exact.append(float(agree == len(a)))
        fraction.append(agree / max(1, len(a)))
    return torch.tensor(exact), torch.tensor(fraction)
