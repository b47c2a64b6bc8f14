"""Token-budget batching, fairseq's `--max-tokens`: batches of sentence pairs of similar lengths, each holding up to a
fixed number of padded tokens, so that short sentences come in big batches and long ones in small batches, and every
step costs about the same memory and time.

    trainer = TokenBudgetSeq2SeqTrainer(model=model, args=args, max_tokens_per_batch=8192, ...)  # else Seq2SeqTrainer

A batch of `n` pairs costs n × (longest source + longest target) padded tokens: what `DataCollatorForSeq2Seq` builds
(the decoder input is the shifted labels, as long as they). fairseq counts n × max(longest source, longest target), so
`--max-tokens 4096` of a fairseq recipe is about `max_tokens_per_batch=8192` here.

Under Accelerate (DDP, several machines) the sampler yields the batches of the whole epoch and `accelerator.prepare`
deals them out: batch i goes to process i mod world size (`BatchSamplerShard`). When the number of batches is not a
multiple of the world size, the last processes get the first batches of the epoch again, so that every process takes
the same number of steps (`even_batches`, as `DistributedSampler` pads).
"""

import copy
import logging
from functools import partial

import numpy as np
from torch.utils.data import DataLoader, IterableDataset, Sampler
from transformers import Seq2SeqTrainer
from transformers.trainer_utils import seed_worker
from transformers.utils import is_datasets_available

logger = logging.getLogger(__name__)


class TokenBudgetBatchSampler(Sampler[list[int]]):
    """Batches of dataset indices holding at most `max_tokens` padded source + target tokens each.

    The pairs are sorted by (source length, target length) and cut greedily into the fullest batches that fit. The
    batch boundaries are fixed; each epoch shuffles which pairs of the same lengths share a batch and the order of
    the batches, from `seed + epoch` (call `set_epoch`, as with `DistributedSampler`). The same seed and epoch always
    give the same batches, which is what resuming mid-epoch needs: the Trainer skips the batches already trained on.

    A pair longer than `max_tokens` on its own gets a batch of its own: one pair is not worth stopping a run for, and
    dropping it would change the data silently. Such pairs are counted in `num_oversized`, with a warning.
    """

    def __init__(self, source_lengths, target_lengths, max_tokens: int, seed: int = 0, shuffle: bool = True):
        self.source_lengths = np.asarray(source_lengths, dtype=np.int64)
        self.target_lengths = np.asarray(target_lengths, dtype=np.int64)
        if self.source_lengths.shape != self.target_lengths.shape or self.source_lengths.ndim != 1:
            raise ValueError(
                f"Give one source and one target length per example (got {self.source_lengths.shape} and "
                f"{self.target_lengths.shape})."
            )
        if max_tokens <= 0:
            raise ValueError(f"max_tokens must be positive, got {max_tokens}.")
        self.max_tokens, self.seed, self.shuffle, self.epoch = max_tokens, seed, shuffle, 0
        self.batch_sizes, self.num_oversized = self._pack()
        if self.num_oversized:
            longest = int((self.source_lengths + self.target_lengths).max())
            logger.warning(
                "%d example(s) are longer than max_tokens=%d (the longest has %d source + target tokens): each gets a "
                "batch of its own. Raise the budget, or lower --max_source_length/--max_target_length.",
                self.num_oversized, max_tokens, longest,
            )

    def _pack(self) -> tuple[np.ndarray, int]:
        """Sizes of the batches, in sorted order. The loop runs over distinct (source, target) lengths, not examples:
        a few thousand iterations for millions of sentence pairs."""
        span = int(self.target_lengths.max(initial=0)) + 1  # (source, target) as one integer, in the same order
        keys, counts = np.unique(self.source_lengths * span + self.target_lengths, return_counts=True)
        sizes, oversized = [], 0
        size = longest_source = longest_target = 0
        sources, targets = np.divmod(keys, span)
        for source, target, count in zip(sources.tolist(), targets.tolist(), counts.tolist()):
            while count:
                padded_length = max(longest_source, source) + max(longest_target, target)
                room = self.max_tokens // max(padded_length, 1) - size
                if room > 0:
                    taken = min(room, count)
                    size, count = size + taken, count - taken
                    longest_source, longest_target = max(longest_source, source), max(longest_target, target)
                elif size:  # full: close this batch
                    sizes.append(size)
                    size = longest_source = longest_target = 0
                else:  # one pair over the budget
                    sizes.append(1)
                    count, oversized = count - 1, oversized + 1
        if size:
            sizes.append(size)
        return np.array(sizes, dtype=np.int64), oversized

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return len(self.batch_sizes)

    def __iter__(self):
        if not len(self.batch_sizes):
            return
        rng = np.random.default_rng(self.seed + self.epoch)
        # Sorting by lengths with a random tie-break mixes the pairs of equal lengths between batches; the sorted
        # lengths, hence the batch boundaries, stay the same.
        tie_break = rng.permutation(len(self.source_lengths)) if self.shuffle else np.arange(len(self.source_lengths))
        order = np.lexsort((tie_break, self.target_lengths, self.source_lengths))
        batches = np.split(order, np.cumsum(self.batch_sizes)[:-1])
        for index in rng.permutation(len(batches)) if self.shuffle else range(len(batches)):
            yield batches[index].tolist()


def is_arrow_dataset(dataset) -> bool:
    if not is_datasets_available():
        return False
    import datasets

    return isinstance(dataset, datasets.Dataset)


def sequence_lengths(dataset, columns=("input_ids", "labels"), batch_size: int = 100_000) -> list[np.ndarray]:
    """Lengths of the list columns of a `datasets.Dataset`, read from the Arrow offsets batch by batch (no Python loop
    over rows; a `select`ed or `filter`ed dataset is read through its indices). Other datasets are read row by row.
    A column that is missing or holds no lists (a classifier's label) counts 0 tokens."""
    if not is_arrow_dataset(dataset):
        return [np.array([len(row[c]) if c in row and np.ndim(row[c]) else 0 for row in dataset], dtype=np.int64)
                for c in columns]
    import pyarrow as pa
    import pyarrow.compute as pc

    types = {field.name: field.type for field in dataset.data.schema}
    lists = [c for c in columns if c in types and (pa.types.is_list(types[c]) or pa.types.is_large_list(types[c]))]
    lengths = {c: [] for c in lists}
    if lists:
        for batch in dataset.select_columns(lists).with_format("arrow").iter(batch_size=batch_size):
            for c in lists:
                lengths[c].append(pc.list_value_length(batch[c]).to_numpy(zero_copy_only=False))
    return [np.concatenate(lengths[c]).astype(np.int64) if lengths.get(c) else np.zeros(len(dataset), np.int64)
            for c in columns]


def forward_set_epoch(dataloader, sampler: TokenBudgetBatchSampler):
    """Make `set_epoch` reach `sampler` through the wrappers Accelerate puts around it.

    With several processes, `accelerator.prepare` wraps a batch sampler in a `BatchSamplerShard`, which has no
    `set_epoch`; the Trainer reaches one level down to call the sampler's (transformers trainer.py `_run_epoch`). When
    it resumes mid-epoch, `skip_first_batches` adds a `SkipBatchSampler` around the shard, one level more, and neither
    the Trainer nor `DataLoaderShard.set_epoch` reach the sampler: it would replay the order of epoch 0. Giving the
    shard the sampler's `set_epoch` covers both cases."""
    from accelerate.data_loader import BatchSamplerShard

    shard = getattr(dataloader, "batch_sampler", None)
    if isinstance(shard, BatchSamplerShard) and shard.batch_sampler is sampler:
        shard.set_epoch = sampler.set_epoch
    return dataloader


class TokenBudgetSeq2SeqTrainer(Seq2SeqTrainer):
    """`Seq2SeqTrainer` whose training batches hold up to `max_tokens_per_batch` padded source + target tokens
    (`TokenBudgetBatchSampler`) instead of `per_device_train_batch_size` pairs. The budget is per process and per
    forward pass: a step trains on about budget × gradient accumulation steps × processes tokens.

    `max_tokens_per_batch` defaults to `args.max_tokens_per_batch` when the training arguments have that field; without
    a budget this is `Seq2SeqTrainer`. With one, `per_device_train_batch_size`, `train_sampling_strategy` and
    `dataloader_drop_last` do not apply to training; evaluation batches are unchanged (`per_device_eval_batch_size`).
    The budget counts the lengths the collator pads to (with `pad_to_multiple_of`, leave room for the rounding); for a
    classifier, whose labels are no sequences, it counts the source tokens alone."""

    def __init__(self, *args, max_tokens_per_batch: int | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.max_tokens_per_batch = max_tokens_per_batch or getattr(self.args, "max_tokens_per_batch", None)

    def get_train_dataloader(self) -> DataLoader:
        if not self.max_tokens_per_batch:
            return super().get_train_dataloader()
        if self.train_dataset is None:
            raise ValueError("Trainer: training requires a train_dataset.")
        if isinstance(self.train_dataset, IterableDataset):
            raise ValueError("max_tokens_per_batch sorts the training pairs by length: the dataset needs a length.")
        # As `Trainer._get_dataloader` does, except that the sampler makes whole batches (`batch_sampler=`), which
        # `accelerator.prepare` then deals out to the processes.
        dataset, collator = self.train_dataset, self.data_collator
        if is_arrow_dataset(dataset):
            dataset = self._remove_unused_columns(dataset, description="Training")
        else:
            collator = self._get_collator_with_removed_columns(collator, description="Training")
        # A classifier's labels are no sequences: its budget counts the source tokens alone.
        source_lengths, target_lengths = sequence_lengths(dataset, ("input_ids", "labels"))
        if not source_lengths.any():
            raise ValueError("max_tokens_per_batch needs the tokenized training set's `input_ids`.")
        seed = self.args.data_seed if self.args.data_seed is not None else self.args.seed
        sampler = TokenBudgetBatchSampler(source_lengths, target_lengths, self.max_tokens_per_batch, seed=seed)
        logger.info(
            "Token-budget batches: %d of up to %d padded tokens, %.1f pairs on average (per process: %d).",
            len(sampler), self.max_tokens_per_batch, len(source_lengths) / max(len(sampler), 1),
            -(-len(sampler) // self.args.world_size),
        )
        dataloader = DataLoader(
            dataset,
            batch_sampler=sampler,
            collate_fn=collator,
            num_workers=self.args.dataloader_num_workers,
            pin_memory=self.args.dataloader_pin_memory,
            persistent_workers=self.args.dataloader_persistent_workers,
            multiprocessing_context=self.args.dataloader_multiprocessing_context,
            prefetch_factor=self.args.dataloader_prefetch_factor,
            in_order=self.args.dataloader_in_order,
            worker_init_fn=partial(
                seed_worker, num_workers=self.args.dataloader_num_workers, rank=self.args.process_index
            ),
        )
        return forward_set_epoch(self.accelerator.prepare(dataloader), sampler)

    def prediction_step(self, model, inputs, prediction_loss_only, ignore_keys=None, **gen_kwargs):
        # Seq2SeqTrainer fills every GenerationConfig default into the model's own config after each generate()
        # (max_length 20 beside the task's max_new_tokens, top_k 50, ...): each later call would warn that both
        # lengths are set, and checkpoints and the saved bundle would carry the defaults. Keep the task's settings.
        generation_config = copy.deepcopy(getattr(self.model, "generation_config", None))
        try:
            return super().prediction_step(model, inputs, prediction_loss_only, ignore_keys=ignore_keys, **gen_kwargs)
        finally:
            if generation_config is not None:
                self.model.generation_config = generation_config
