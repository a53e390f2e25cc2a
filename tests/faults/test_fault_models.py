"""Hostile model folders (#18): a local Hugging Face folder whose config names its own code
(``auto_map``) must never run it, whatever is typed or piped in; transformers is told
``trust_remote_code=False`` everywhere a local model, tokenizer or config is loaded."""

import io
import json
import sys
from pathlib import Path

import pytest
import torch

from learnlab.errors import LearnlabError

transformers = pytest.importorskip("transformers")

_HOSTILE = """
import pathlib
pathlib.Path({marker!r}).write_text("the folder's code ran")  # transformers runs a copy: an absolute path
"""
_AUTO_MAP = {"AutoConfig": "hostile.HostileConfig", "AutoModel": "hostile.HostileModel",
             "AutoModelForCausalLM": "hostile.HostileModel", "AutoTokenizer": ["hostile.HostileTokenizer", None]}


def _arm(folder: Path) -> None:
    """Give a model folder its own Python and point every config at it."""
    (folder / "hostile.py").write_text(_HOSTILE.format(marker=str(folder / "RAN")))
    for name in ("config.json", "tokenizer_config.json"):
        path = folder / name
        settings = json.loads(path.read_text()) if path.exists() else {}
        path.write_text(json.dumps({**settings, "auto_map": _AUTO_MAP}))


def _tiny_model(folder: Path) -> Path:
    from tokenizers import Tokenizer, models, pre_tokenizers

    vocab = {token: i for i, token in enumerate(["<unk>", "<eos>", *"abcdefgh "])}
    tokenizer = Tokenizer(models.WordLevel(vocab, unk_token="<unk>"))
    tokenizer.pre_tokenizer = pre_tokenizers.Split("", behavior="isolated")
    transformers.PreTrainedTokenizerFast(tokenizer_object=tokenizer, unk_token="<unk>",
                                         eos_token="<eos>").save_pretrained(folder)
    torch.manual_seed(0)
    config = transformers.GPTNeoXConfig(vocab_size=len(vocab), hidden_size=16, num_hidden_layers=1,
                                        num_attention_heads=2, intermediate_size=32, max_position_embeddings=64,
                                        eos_token_id=1, pad_token_id=1, bos_token_id=1)
    transformers.GPTNeoXForCausalLM(config).save_pretrained(folder)
    return folder


@pytest.fixture
def yes_on_stdin(monkeypatch):
    """Whoever is asked 'run this code?' hears yes (a tty user, or `yes | learnlab ...`)."""
    monkeypatch.setattr(sys, "stdin", io.StringIO("y\n" * 10))


def test_a_folder_of_a_known_architecture_loads_without_running_its_code(tmp_path, yes_on_stdin):
    from learnlab.probes.lm_harness import load_causal_lm

    folder = _tiny_model(tmp_path / "model")
    _arm(folder)
    model, tokenizer = load_causal_lm(folder)
    assert type(model).__name__ == "GPTNeoXForCausalLM"  # transformers' own class, not the folder's
    assert not (folder / "RAN").exists()


def test_a_folder_of_an_unknown_architecture_is_refused_without_running_its_code(tmp_path, yes_on_stdin, capsys):
    from learnlab.cli import main
    from learnlab.probes.lm_harness import load_causal_lm

    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps({"model_type": "hostile", "architectures": ["HostileModel"]}))
    _arm(folder)
    with pytest.raises(LearnlabError, match=f"--model {folder}: cannot load it as a causal LM"):
        load_causal_lm(folder)
    assert not (folder / "RAN").exists()
    # Through the command line, piped a yes: the run fails with the reason; the code never ran.
    store = tmp_path / "learnlab.sqlite"
    code = main(["run", "copying", "--preset", "smoke", "--model", str(folder), "parts=pretrained",
                 "pretrained.book_sizes=3", "--quiet", "--store", str(store), "--device", "cpu"])
    err = capsys.readouterr().err
    assert code == 1 and "cannot load it as a causal LM" in err
    assert not (folder / "RAN").exists()


def test_every_local_hugging_face_load_pins_trust_remote_code():
    # The loaders of local models, tokenizers and configs, read as source: each call says
    # trust_remote_code=False (a new call without it fails here).
    import re

    root = Path(__file__).resolve().parents[2] / "src" / "learnlab"
    calls = []
    for path in root.rglob("*.py"):
        source = path.read_text()
        for match in re.finditer(r"\.from_pretrained\(", source):
            depth, end = 1, match.end()
            while depth:
                depth += {"(": 1, ")": -1}.get(source[end], 0)
                end += 1
            calls.append((path.name, source[match.start():end]))
    assert calls, "no from_pretrained calls found"
    unpinned = [(name, call) for name, call in calls if "trust_remote_code=False" not in call]
    assert unpinned == []
