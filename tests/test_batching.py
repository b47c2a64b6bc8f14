"""Token-budget batching: the sampler on real sentence lengths, under Accelerate's sharding and resuming, and in a real
`Seq2SeqTrainer` run."""

import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from accelerate.data_loader import prepare_data_loader, skip_first_batches
from datasets import Dataset
from torch.utils.data import DataLoader
from transformers import DataCollatorForSeq2Seq, Seq2SeqTrainingArguments
from transformers.trainer_pt_utils import LengthGroupedSampler

from hf_seq2seq.batching import TokenBudgetBatchSampler, TokenBudgetSeq2SeqTrainer, forward_set_epoch, sequence_lengths
from hf_seq2seq.vocabulary import train_tokenizer

from conftest import ROOT, SHARED_DATA, require_shared, tiny_model

TATOEBA = os.path.join(SHARED_DATA, "tatoeba-en-fr", "train.tsv")


@pytest.fixture(scope="module")
def pairs() -> list[tuple[str, str]]:
    """5,000 English–French pairs: every 30th line of Tatoeba, whose export is sorted by length, so the sample covers
    its whole range of lengths (3 to 27 English words)."""
    require_shared(TATOEBA, "Tatoeba's training split (../shared/data/tatoeba-en-fr/train.tsv)")
    with open(TATOEBA, encoding="utf-8") as f:
        lines = f.read().splitlines()[::30]
    return [tuple(line.split("\t")[:2]) for line in lines if line.count("\t") >= 1]


@pytest.fixture(scope="module")
def lengths(pairs) -> tuple[np.ndarray, np.ndarray]:
    """Token counts of sources and targets, estimated as 1.3 subwords a word plus </s>."""
    count = lambda text: math.ceil(1.3 * len(text.split())) + 1  # noqa: E731
    return np.array([count(s) for s, _ in pairs]), np.array([count(t) for _, t in pairs])


def padded_tokens(batch, source, target) -> int:
    return len(batch) * (source[batch].max() + target[batch].max())


def test_batches_fit_the_budget_and_are_nearly_full(lengths):
    source, target = lengths
    sampler = TokenBudgetBatchSampler(source, target, max_tokens=1024, seed=0)
    batches = list(sampler)
    padded = [padded_tokens(batch, source, target) for batch in batches]
    assert max(padded) <= 1024
    assert sum(padded) / (len(batches) * 1024) > 0.97, "batches are not filled up to the budget"
    # Short pairs come many to a batch, long ones few: the point of a token budget.
    sizes = [len(batch) for batch in batches]
    assert max(sizes) >= 4 * min(sizes)
    assert sampler.num_oversized == 0 and len(sampler) == len(batches)


def test_less_padding_than_length_grouped_batches(lengths):
    """Against train.py's default, transformers' `LengthGroupedSampler` (source lengths, mega-batches of 50 batches)
    with as many pairs a batch as the token budget gives on average."""
    source, target = lengths
    ours = list(TokenBudgetBatchSampler(source, target, max_tokens=1024, seed=0))
    batch_size = round(len(source) / len(ours))
    order = list(LengthGroupedSampler(batch_size, lengths=source.tolist(), generator=torch.Generator().manual_seed(0)))
    grouped = [np.array(order[i : i + batch_size]) for i in range(0, len(order), batch_size)]

    def padding_fraction(batches):
        real = sum(source[batch].sum() + target[batch].sum() for batch in batches)
        return 1 - real / sum(padded_tokens(batch, source, target) for batch in batches)

    # Measured on these 5,000 pairs: 4.7% of the padded tokens are padding with the token budget, 24% with
    # length-grouped batches (on all 150,000 Tatoeba pairs the budget's padding falls to 0.3%).
    assert padding_fraction(ours) < 0.06
    assert padding_fraction(ours) < padding_fraction(grouped) / 4
    # And the biggest length-grouped batch is 3.6 times the budget (memory peaks), for the same average batch size.
    assert max(padded_tokens(batch, source, target) for batch in grouped) > 3 * 1024


def test_epochs_are_shuffled_and_a_seed_and_epoch_give_the_same_batches(lengths):
    source, target = lengths
    sampler = TokenBudgetBatchSampler(source, target, max_tokens=1024, seed=3)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch0 != epoch1 and list(sampler) == epoch1  # iterating again does not move on
    # The batch order changes, and so does which pairs of equal lengths share a batch.
    assert [len(b) for b in epoch0] != [len(b) for b in epoch1]
    assert {frozenset(b) for b in epoch0} != {frozenset(b) for b in epoch1}

    again = TokenBudgetBatchSampler(source, target, max_tokens=1024, seed=3)
    again.set_epoch(1)
    assert list(again) == epoch1
    other_seed = TokenBudgetBatchSampler(source, target, max_tokens=1024, seed=4)
    other_seed.set_epoch(1)
    assert list(other_seed) != epoch1


def test_every_example_once_per_epoch(lengths):
    source, target = lengths
    sampler = TokenBudgetBatchSampler(source, target, max_tokens=700, seed=0)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        assert sorted(i for batch in sampler for i in batch) == list(range(len(source)))


def test_a_pair_over_the_budget_gets_a_batch_of_its_own(caplog):
    source, target = [3, 3, 50, 3, 4], [3, 3, 60, 3, 4]
    with caplog.at_level("WARNING"):
        sampler = TokenBudgetBatchSampler(source, target, max_tokens=24, seed=0)
    assert "1 example(s) are longer than max_tokens=24 (the longest has 110" in caplog.text
    assert sampler.num_oversized == 1
    # (3, 3) × 3 = 18 tokens; (4, 4) would make it 4 × 8 = 32: a batch of its own, under the budget.
    assert sorted(sorted(batch) for batch in sampler) == [[0, 1, 3], [2], [4]]


def test_empty_and_mismatched_lengths():
    assert list(TokenBudgetBatchSampler([], [], max_tokens=10)) == []
    with pytest.raises(ValueError, match="one source and one target length per example"):
        TokenBudgetBatchSampler([1, 2], [1], max_tokens=10)


def shard(sampler, rank, world_size):
    """The data loader Accelerate makes for process `rank` of `world_size` (what `accelerator.prepare` returns there),
    over a dataset whose examples are their own indices."""
    loader = DataLoader(list(range(len(sampler.source_lengths))), batch_sampler=sampler, collate_fn=list)
    return forward_set_epoch(prepare_data_loader(loader, num_processes=world_size, process_index=rank), sampler)


def trainer_set_epoch(dataloader, epoch):
    """What `Trainer._run_epoch` does at the start of an epoch (transformers 5.24, trainer.py:1859-1866)."""
    dataloader.set_epoch(epoch)
    inner = getattr(getattr(dataloader, "batch_sampler", None), "batch_sampler", None)
    if hasattr(inner, "set_epoch"):
        inner.set_epoch(epoch)


@pytest.mark.parametrize("max_tokens", [512, 1024])
def test_two_processes_get_their_own_batches(lengths, max_tokens):
    """`accelerator.prepare` shards a loader built with `batch_sampler=`: batch i of the epoch goes to process i mod 2.
    With an odd number of batches, process 1 ends with the epoch's first batch again (`even_batches`), so that both
    take the same number of steps."""
    source, target = lengths
    reference = TokenBudgetBatchSampler(source, target, max_tokens=max_tokens, seed=0)
    reference.set_epoch(2)
    epoch = list(reference)
    assert len(epoch) % 2 == (max_tokens == 1024)  # 202 and 103 batches: one case of each parity
    per_rank = []
    for rank in (0, 1):
        loader = shard(TokenBudgetBatchSampler(source, target, max_tokens=max_tokens, seed=0), rank, 2)
        trainer_set_epoch(loader, 2)
        per_rank.append(list(loader))
        assert len(loader) == len(per_rank[rank]) == math.ceil(len(epoch) / 2)
    assert per_rank[0] == epoch[0::2]
    assert per_rank[1] == epoch[1::2] + epoch[:1] * (len(epoch) % 2)
    if len(epoch) % 2 == 0:
        seen = [i for batches in per_rank for batch in batches for i in batch]
        assert sorted(seen) == list(range(len(source))), "the ranks' batches are not disjoint or miss examples"


@pytest.mark.parametrize("world_size", [1, 2])
def test_resuming_after_k_batches_gives_the_rest_of_the_epoch(lengths, world_size):
    """A resumed run starts a new process, builds a new sampler, skips the batches already trained on
    (`skip_first_batches`) and sets the epoch: it must see what the uninterrupted run saw after those batches."""
    source, target, skipped = *lengths, 5
    for rank in range(world_size):
        uninterrupted = shard(TokenBudgetBatchSampler(source, target, max_tokens=1024, seed=0), rank, world_size)
        trainer_set_epoch(uninterrupted, 1)
        expected = list(uninterrupted)[skipped:]

        fresh = shard(TokenBudgetBatchSampler(source, target, max_tokens=1024, seed=0), rank, world_size)
        resumed = skip_first_batches(fresh, skipped)
        trainer_set_epoch(resumed, 1)
        assert list(resumed) == expected


def test_without_forwarding_set_epoch_a_resumed_process_would_replay_epoch_0(lengths):
    """Why `forward_set_epoch` exists: with two processes and `skip_first_batches`, `set_epoch` does not reach a batch
    sampler (accelerate 1.15 `DataLoaderShard.set_epoch`, transformers 5.24 `Trainer._run_epoch`)."""
    source, target = lengths
    sampler = TokenBudgetBatchSampler(source, target, max_tokens=1024, seed=0)
    loader = DataLoader(list(range(len(source))), batch_sampler=sampler, collate_fn=list)
    resumed = skip_first_batches(prepare_data_loader(loader, num_processes=2, process_index=0), 5)
    trainer_set_epoch(resumed, 1)
    assert sampler.epoch == 0


def test_lengths_come_from_arrow_offsets_through_the_indices_mapping():
    dataset = Dataset.from_dict(
        {"input_ids": [[1] * n for n in range(1, 11)], "labels": [[2] * (n % 3 + 1) for n in range(10)]}
    )
    filtered = dataset.filter(lambda row: len(row["input_ids"]) % 2 == 0).select([4, 0, 2])  # an indices mapping
    source, target = sequence_lengths(filtered, ("input_ids", "labels"), batch_size=2)
    assert source.tolist() == [len(row) for row in filtered["input_ids"]] == [10, 2, 6]
    assert target.tolist() == [len(row) for row in filtered["labels"]]
    assert [a.tolist() for a in sequence_lengths(list(filtered), ("input_ids",))] == [[10, 2, 6]]
    # A classifier's integer label is no sequence: it counts no target tokens.
    classified = Dataset.from_dict({"input_ids": [[1, 2], [3]], "labels": [0, 1]})
    assert [a.tolist() for a in sequence_lengths(classified)] == [[2, 1], [0, 0]]
    assert [a.tolist() for a in sequence_lengths(list(classified))] == [[2, 1], [0, 0]]


# --- a real Seq2SeqTrainer run --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenized(pairs):
    """(tokenizer, 400 tokenized pairs of every length) for training a tiny model."""
    tokenizer = train_tokenizer((text for pair in pairs for text in pair), vocab_size=400)
    sample = pairs[::12][:400]
    dataset = Dataset.from_dict({"en": [s for s, _ in sample], "fr": [t for _, t in sample]})
    dataset = dataset.map(
        lambda batch: {**tokenizer(batch["en"]), "labels": tokenizer(text_target=batch["fr"])["input_ids"]},
        batched=True, remove_columns=["en", "fr"],
    )
    return tokenizer, dataset


class RecordingTrainer(TokenBudgetSeq2SeqTrainer):
    """Keeps each training batch's unpadded source rows and padded shapes (as tests/ddp_probe.py records batches)."""

    def training_step(self, model, inputs, *args, **kwargs):
        rows = [tuple(row[mask.bool()].tolist()) for row, mask in zip(inputs["input_ids"], inputs["attention_mask"])]
        shapes = {"source": tuple(inputs["input_ids"].shape), "labels": tuple(inputs["labels"].shape)}
        self.recorded.append({"rows": rows, **shapes})
        return super().training_step(model, inputs, *args, **kwargs)


def make_trainer(tokenized, output_dir, max_tokens=400, **arguments):
    tokenizer, dataset = tokenized
    model = tiny_model(
        vocab_size=len(tokenizer), pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id, decoder_start_token_id=tokenizer.bos_token_id,
    ).train()
    args = Seq2SeqTrainingArguments(
        output_dir=str(output_dir), learning_rate=1e-3, report_to="none", use_cpu=True, dataloader_pin_memory=False,
        disable_tqdm=True, seed=7, logging_steps=1, **{"save_strategy": "no", **arguments},
    )
    trainer = RecordingTrainer(
        model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        max_tokens_per_batch=max_tokens,
    )
    trainer.recorded = []
    return trainer


def test_trainer_trains_on_token_budget_batches(tokenized, tmp_path):
    tokenizer, dataset = tokenized
    trainer = make_trainer(tokenized, tmp_path, max_steps=5)
    trainer.train()
    assert len(trainer.recorded) == 5
    for batch in trainer.recorded:
        assert batch["source"][0] == batch["labels"][0]
        assert batch["source"][0] * (batch["source"][1] + batch["labels"][1]) <= 400
    assert len({batch["source"][0] for batch in trainer.recorded}) > 1, "every batch had the same number of pairs"
    # They are the sampler's batches of epoch 0, seeded by the training arguments.
    source, target = sequence_lengths(dataset)
    expected = list(TokenBudgetBatchSampler(source, target, max_tokens=400, seed=7))[:5]
    expected_rows = [[tuple(dataset[i]["input_ids"]) for i in batch] for batch in expected]
    assert [batch["rows"] for batch in trainer.recorded] == expected_rows
    losses = [entry["loss"] for entry in trainer.state.log_history if "loss" in entry]
    assert len(losses) == 5 and all(np.isfinite(losses))


def test_trainer_resumes_mid_epoch_on_the_same_batches(tokenized, tmp_path):
    """Checkpoint 3 batches into the second epoch, resume from it in a new Trainer: the same batches follow."""
    steps_per_epoch = len(make_trainer(tokenized, tmp_path).get_train_dataloader())
    checkpoint, stop = steps_per_epoch + 3, steps_per_epoch + 6
    first = make_trainer(tokenized, tmp_path, max_steps=stop, save_strategy="steps", save_steps=checkpoint)
    first.train()
    resumed = make_trainer(tokenized, tmp_path, max_steps=stop, save_strategy="steps", save_steps=checkpoint)
    resumed.train(resume_from_checkpoint=str(tmp_path / f"checkpoint-{checkpoint}"))
    assert [b["rows"] for b in resumed.recorded] == [b["rows"] for b in first.recorded[checkpoint:]]
    assert [b["rows"] for b in first.recorded[:3]] != [b["rows"] for b in first.recorded[steps_per_epoch:][:3]]
    # ... from the checkpoint's weights (W^Q, W^K, W^V are saved apart and the model holds them stacked: none may be
    # left at its random initialisation), so it trains with the same losses and ends with the same weights.
    def losses(trainer):
        return {entry["step"]: entry["loss"] for entry in trainer.state.log_history if "loss" in entry}

    after = range(checkpoint + 1, stop + 1)
    np.testing.assert_allclose([losses(resumed)[s] for s in after], [losses(first)[s] for s in after], rtol=1e-4)
    for name, weight in first.model.state_dict().items():
        torch.testing.assert_close(resumed.model.state_dict()[name], weight, msg=name)


# --- two processes, through train.py --------------------------------------------------------------------------------

TWO_PROCESSES = [
    "--preset", "tiny", "--dataset_name", "builtin:grammar", "--builtin_train_size", "1000", "--vocab_size", "400", "--max_eval_samples", "20",
    "--max_predict_samples", "20", "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "1",
    "--save_total_limit", "50", "--generation_max_length", "20", "--logging_steps", "5", "--disable_tqdm", "true",
    "--max_tokens_per_batch", "2000", "--max_steps", "20",
]


def launch_probe(output, *arguments):
    command = [sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
               os.path.join(ROOT, "tests", "token_budget_probe.py"), *TWO_PROCESSES, "--output_dir", output, *arguments]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]


def test_two_processes_train_on_their_own_token_budget_batches_and_resume(tmp_path):
    """train.py's main under `accelerate launch --num_processes 2` with its own `--max_tokens_per_batch 2000`, then
    resumed from a checkpoint a few steps into the second epoch: each process trains on its own batches under the
    budget, and the resumed processes train on the batches of the uninterrupted run."""
    output = str(tmp_path / "run")
    launch_probe(output)
    records = {rank: [json.loads(line) for line in open(os.path.join(output, f"rank{rank}.jsonl"))] for rank in (0, 1)}
    assert [len(records[rank]) for rank in (0, 1)] == [20, 20]
    for first, second in zip(records[0], records[1]):
        assert first["world_size"] == second["world_size"] == 2
        assert first["batch"] != second["batch"], "both ranks trained on the same batch"
    for record in records[0] + records[1]:
        pairs, source_length = len(record["batch"]), len(record["batch"][0])
        assert record["labels"][0] == pairs and pairs * (source_length + record["labels"][1]) <= 2000
    # The budget, not a fixed batch size (train.py's default 8 pairs), decided how many pairs a batch holds.
    assert len({len(record["batch"]) for record in records[0] + records[1]}) > 1
    steps_per_epoch = [record["epoch"] for record in records[0]].index(1.0)  # the first step of the second epoch
    assert 3 <= steps_per_epoch <= 15

    checkpoint = steps_per_epoch + 2
    launch_probe(output, "--resume_from_checkpoint", os.path.join(output, f"checkpoint-{checkpoint}"))
    for rank in (0, 1):
        resumed = [json.loads(line) for line in open(os.path.join(output, f"rank{rank}-resumed.jsonl"))]
        assert [r["step"] for r in resumed] == list(range(checkpoint + 1, 21))
        assert [r["batch"] for r in resumed] == [r["batch"] for r in records[rank][checkpoint:]]
