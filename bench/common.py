"""What the speed benchmarks share: the two models built from one configuration, real sentence lengths, the
machine's matmul peak, interleaved timing, and the JSON + table output.

Every comparison runs the contenders in alternating rounds (A B A B ...) after a warm-up and reports medians, so
that a noisy machine slows both alike and the ratio holds.
"""

import itertools
import json
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable

import torch

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForConditionalGeneration  # noqa: E402

RESULTS = os.path.join(ROOT, "bench", "results")
SHARED_DATA = os.path.join(ROOT, "..", "shared", "data")
VOCAB_SIZE = 8000


def our_model(preset: str, **overrides) -> HFSeq2SeqForConditionalGeneration:
    torch.manual_seed(0)
    config = HFSeq2SeqConfig.from_preset(preset, vocab_size=VOCAB_SIZE, **overrides)
    return HFSeq2SeqForConditionalGeneration(config)


def marian_model(config: HFSeq2SeqConfig):
    """transformers' `MarianMTModel` with the same sizes, vocabulary, token ids and tied embeddings."""
    from transformers import MarianConfig, MarianMTModel

    torch.manual_seed(0)
    marian_config = MarianConfig(
        vocab_size=config.vocab_size,
        decoder_vocab_size=config.vocab_size,
        d_model=config.d_model,
        encoder_layers=config.encoder_layers,
        decoder_layers=config.decoder_layers,
        encoder_attention_heads=config.encoder_attention_heads,
        decoder_attention_heads=config.decoder_attention_heads,
        encoder_ffn_dim=config.encoder_ffn_dim,
        decoder_ffn_dim=config.decoder_ffn_dim,
        activation_function=config.activation_function,
        dropout=config.dropout,
        attention_dropout=config.attention_dropout,
        activation_dropout=config.activation_dropout,
        max_position_embeddings=config.max_position_embeddings,
        scale_embedding=config.scale_embedding,
        share_encoder_decoder_embeddings=True,
        tie_word_embeddings=True,
        pad_token_id=config.pad_token_id,
        eos_token_id=config.eos_token_id,
        bos_token_id=config.bos_token_id,
        decoder_start_token_id=config.decoder_start_token_id,
        forced_eos_token_id=None,
    )
    return MarianMTModel(marian_config)


def tatoeba_lengths(limit: int | None = 50_000, seed: int = 0, every: int = 1) -> list[tuple[int, int]]:
    """(source, target) token counts of real Tatoeba pairs, with an 8,000-token BPE vocabulary trained on them.
    The first `limit` pairs (None: the whole train split) of every `every`-th line (train.tsv is sorted by length,
    so `every` > 1 spans all lengths). Falls back to a documented synthetic distribution when ../shared/data is absent."""
    path = os.path.join(SHARED_DATA, "tatoeba-en-fr", "train.tsv")
    if not os.path.exists(path):
        rng = random.Random(seed)  # log-normal around 10 tokens, like short everyday sentences
        return [(max(2, int(rng.lognormvariate(2.3, 0.45))), max(2, int(rng.lognormvariate(2.4, 0.45))))
                for _ in range(limit or 50_000)]
    from hf_seq2seq.vocabulary import train_tokenizer

    with open(path, encoding="utf-8") as f:
        lines = itertools.islice(itertools.islice(f, 0, None, every), limit)
        pairs = [line.rstrip("\n").split("\t")[:2] for line in lines]
    tokenizer = train_tokenizer((text for pair in pairs for text in pair), vocab_size=VOCAB_SIZE)
    sources = tokenizer([p[0] for p in pairs])["input_ids"]
    targets = tokenizer([p[1] for p in pairs])["input_ids"]
    return [(len(s), len(t)) for s, t in zip(sources, targets)]


def matmul_peak_gflops(size: int = 2048, repeats: int = 5) -> float:
    """The machine's fp32 matrix-multiply rate (best of `repeats`), the 100% of model FLOP utilisation."""
    a, b = torch.randn(size, size), torch.randn(size, size)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        best = min(best, time.perf_counter() - start)
    return 2 * size**3 / best / 1e9


def interleaved(contenders: dict[str, Callable[[], object]], rounds: int, warmup: int = 1) -> dict[str, list[float]]:
    """Run each contender `warmup` times, then `rounds` times in alternation; the seconds of each timed run."""
    for fn in contenders.values():
        for _ in range(warmup):
            fn()
    times = {name: [] for name in contenders}
    for _ in range(rounds):
        for name, fn in contenders.items():
            start = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - start)
    return times


def median(values: list[float]) -> float:
    return statistics.median(values)


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "transformers": __import__("transformers").__version__,
    }


def write_results(name: str, result: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(result, f, indent=2)
    print(f"\nwritten: {os.path.relpath(path, ROOT)}")
    return path


def print_table(header: list[str], rows: list[list]) -> None:
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for row in rows:
        print("| " + " | ".join(str(cell) for cell in row) + " |")
