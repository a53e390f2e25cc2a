"""The metric names of ar-learners: written by the parts, read by the claims and figures."""

from __future__ import annotations

from learnlab.store import scoped_name

# parity and length complexity (per scope)
FINAL_TOKEN_ACC = "final_token_acc"  # the answer token after a greedy roll-out from x and '='
TEACHER_FORCED_ACC = "teacher_forced_acc"
CHAIN_TOKENS = "chain_tokens"
SUBSET_SIZE = "subset_size"
TEST_EXAMPLES = "test_examples"
# multiplication
EXACT_MATCH = "exact_match"
WELL_FORMED = "well_formed"
CONSISTENT = "consistent"
ANSWER_DIGIT_ACC = "answer_digit_acc"  # (answer digits,) per evaluation
EFFECTIVE_PARAMETERS = "effective_parameters"
SEQUENCE_TOKENS = "sequence_tokens"
MULT_COT, MULT_DIRECT = "mult_cot", "mult_direct"
# text
VAL_PERPLEXITY = "val_perplexity"
VAL_CHUNK_NLL = "val_chunk_nll"  # (20,) mean token loss on chunks of the validation windows
VAL_CHUNK_BIGRAM_NLL = "val_chunk_bigram_nll"  # (20,) the add-k bigram's mean token loss on the same chunks
UNIGRAM_PERPLEXITY = "unigram_perplexity"
BIGRAM_PERPLEXITY = "bigram_perplexity"
BIGRAM_ADD_K = "bigram_add_k"
PARSE_RATE = "parse_rate"
SAMPLED_SENTENCES = "sampled_sentences"
SAMPLES = "samples"  # artifact


def parity_scope(n: int, chain: str) -> str:
    return f"parity_n{n}_{chain}"


def length_mlp_scope(k: int) -> str:
    """The MLP variant, chains of ceil(|A| / k) running parities."""
    return f"length_k{k}"


def length_linear_scope(tokens: int) -> str:
    """The linear model, the binary-count chain cut to its last ``tokens`` bits."""
    return f"length_linear_l{tokens}"


def text_scope(corpus: str) -> str:
    return f"text_{corpus}"


scoped = scoped_name  # "scope/name"
