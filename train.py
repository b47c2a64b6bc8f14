#!/usr/bin/env python
"""Train an hf_seq2seq model: data -> vocabulary -> Transformer -> evaluated, saved, shareable model.

    python train.py                                   # configs/default.json: an English→French translator on
                                                      # the Tatoeba pairs shipped with the package, ~8 min on 2 cores
    python train.py --train_file ../shared/data/tatoeba-en-fr/train.tsv \
        --validation_file ../shared/data/tatoeba-en-fr/dev.tsv --preset small --max_train_minutes 60
    python train.py --task summarization --train_file ../shared/data/dialogsum/train.jsonl \
        --validation_file ../shared/data/dialogsum/dev.jsonl
    python train.py --task question-answering --train_file ../shared/data/squad-v1.1/train.json ...
    python train.py --task text-classification --train_file ../shared/data/sst2/train.tsv ...
    python train.py --task denoising --train_file books.txt.gz --streaming --max_steps 100000 ...  # pretraining;
                                                      # then any task with --model_name_or_path outputs/pretrained
    accelerate launch --multi_gpu --num_processes 2 train.py ...   # data-parallel on 2 GPUs (or 2 CPU processes)
    python train.py args.json                         # the same arguments from a JSON or YAML file

Arguments are those of transformers' example scripts where they apply (`run_translation.py`, `run_summarization.py`,
`run_seq2seq_qa.py`, `run_classification.py`), plus `--task`, `--preset`, `--vocab_size`, `--config_overrides`,
`--init_embeddings` and `--max_train_minutes`; `python train.py --help` lists them all. What differs between the
tasks lives in `hf_seq2seq/tasks.py`.
"""

import itertools
import logging
import os
import shutil
import sys
from pathlib import Path

import transformers
from transformers import AutoTokenizer, GenerationConfig, HfArgumentParser, IntervalStrategy, set_seed

from hf_seq2seq import HFSeq2SeqConfig
from hf_seq2seq.averaging import average_checkpoints, last_checkpoints
from hf_seq2seq.batching import TokenBudgetSeq2SeqTrainer
from hf_seq2seq.data import DataArguments, check_streaming, read_text_files, split_summary
from hf_seq2seq.hub import push_folder, save_bundle, write_model_card
from hf_seq2seq.tasks import Task, get_task
from hf_seq2seq.training import (
    ModelArguments,
    TimeBudgetCallback,
    TrainingArguments,
    parse_config_overrides,
    plot_training_curve,
    resolve_resume,
)
from hf_seq2seq.vocabulary import train_tokenizer

logger = logging.getLogger("train")
# With no arguments: the recipe measured to give the best translator in about 8 minutes of 2 CPU cores (bench/README.md).
DEFAULT_ARGS = Path(__file__).with_name("configs") / "default.json"


def parse_args(argv=None):
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if not argv and DEFAULT_ARGS.is_file():
        print(f"No arguments: the recipe of {DEFAULT_ARGS}, an English→French translator trained on the Tatoeba pairs "
              "that ship with hf_seq2seq (about 8 minutes on 2 CPU cores).", flush=True)
        argv = [str(DEFAULT_ARGS)]
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(argv[0])
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(argv[0])
    return parser.parse_args_into_dataclasses(argv)


def load_or_train_tokenizer(model_args, training_args, texts, mask_token: bool = False):
    """The tokenizer of the model being continued, a named one, the one of an interrupted run in output_dir, or a
    new byte-level BPE vocabulary trained on `texts` and the lines of --tokenizer_train_file (by the main process;
    the others load it), with BART's <mask> when `mask_token`."""
    name = model_args.model_name_or_path or model_args.tokenizer_name
    if name:
        return AutoTokenizer.from_pretrained(name)
    saved = os.path.join(training_args.output_dir, "tokenizer")
    with training_args.main_process_first(desc="training the tokenizer"):
        if os.path.isfile(os.path.join(saved, "tokenizer.json")):
            return AutoTokenizer.from_pretrained(saved)
        if model_args.tokenizer_train_file:
            extra = read_text_files(model_args.tokenizer_train_file, streaming=True)
            texts = itertools.chain(texts, (row["text"] for row in extra))
        tokenizer = train_tokenizer(texts, vocab_size=model_args.vocab_size, mask_token=mask_token)
        if training_args.should_save:
            tokenizer.save_pretrained(saved)
        logger.info("Trained a byte-level BPE vocabulary of %d tokens.", len(tokenizer))
        return tokenizer


def build_model(task: Task, model_args, tokenizer, task_config: dict):
    """The model being continued (a translator can start a summariser or a classifier: the encoder–decoder weights
    load, a new head starts from scratch), or a new one of the preset's size."""
    overrides = parse_config_overrides(model_args.config_overrides)  # e.g. a dropout of its own for the new task
    if model_args.model_name_or_path:
        return task.auto_class.from_pretrained(
            model_args.model_name_or_path, attn_implementation=model_args.attn_implementation, **task_config, **overrides
        )
    config = HFSeq2SeqConfig.from_preset(
        model_args.preset,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
        attn_implementation=model_args.attn_implementation,
        **task_config,
        **overrides,
    )
    return task.auto_class.from_config(config)


def main(argv=None, trainer_class=TokenBudgetSeq2SeqTrainer):
    model_args, data_args, training_args = parse_args(argv)
    command = " ".join(["python", "train.py", *(sys.argv[1:] if argv is None else argv)])
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    for noisy in ("datasets", "evaluate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    task = get_task(data_args.task)
    task.apply_defaults(data_args)
    check_streaming(data_args, training_args)
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    set_seed(training_args.seed)

    splits = task.load(data_args)
    logger.info("Data: %s", split_summary(splits))
    if "train" not in splits:
        raise SystemExit("No training data: give --train_file or --dataset_name (or nothing, for the built-in corpus).")
    texts = task.corpus(splits["train"], max_examples=model_args.tokenizer_train_samples)
    tokenizer = load_or_train_tokenizer(model_args, training_args, texts, task.needs_mask_token)
    model = build_model(task, model_args, tokenizer, task.config_kwargs(splits, data_args))
    if model_args.init_embeddings:
        from hf_seq2seq.word_vectors import init_token_embeddings, load_word_vectors

        logger.info("Embeddings: %s", init_token_embeddings(model, tokenizer, load_word_vectors(model_args.init_embeddings)))
    generation = task.generation_config(model, tokenizer, training_args, data_args)
    if generation is not None:
        model.generation_config = GenerationConfig(
            **generation,
            decoder_start_token_id=model.config.decoder_start_token_id,
            bos_token_id=tokenizer.bos_token_id,
            eos_token_id=tokenizer.eos_token_id,
            pad_token_id=tokenizer.pad_token_id,
        )
        # The model computes the label-smoothed loss itself, on the labelled positions only. Trainer's own smoother
        # would take the labels away from the model and need logits for every position, padding included.
        model.config.label_smoothing, training_args.label_smoothing_factor = training_args.label_smoothing_factor, 0.0
    pipeline_params = task.pipeline_params(data_args)
    if pipeline_params is not None:  # what the pipeline must do to an input as training did
        model.config.task_specific_params = {task.pipeline_tag: pipeline_params}
    task.configure_training(training_args)
    logger.info("Model: %s, %.1fM parameters.", model_args.model_name_or_path or f"{model_args.preset} preset",
                model.num_parameters() / 1e6)

    with training_args.main_process_first(desc="tokenizing"):
        tokenized = task.tokenize(splits, tokenizer, data_args)
    if data_args.streaming:  # a stream is shuffled as it is read, within a buffer; set_epoch reseeds it every epoch
        seed = training_args.seed if training_args.data_seed is None else training_args.data_seed
        tokenized["train"] = tokenized["train"].shuffle(seed=seed, buffer_size=data_args.shuffle_buffer_size)
    eval_dataset = tokenized.get("validation")
    if eval_dataset is None:
        training_args.eval_strategy = IntervalStrategy.NO

    budget = TimeBudgetCallback(training_args.max_train_minutes)
    # Trainer would push at every save and write its own model card: push the finished bundle ourselves instead.
    push_to_hub, training_args.push_to_hub = training_args.push_to_hub, False
    trainer = trainer_class(
        model=model,
        args=training_args,
        train_dataset=tokenized["train"],
        eval_dataset=eval_dataset,
        processing_class=tokenizer,
        data_collator=task.collator(tokenizer, model),
        compute_metrics=task.compute_metrics(tokenizer, splits, tokenized),
        preprocess_logits_for_metrics=task.preprocess_logits_for_metrics,
        callbacks=[budget],
    )
    train_result = trainer.train(resume_from_checkpoint=resume)
    if training_args.average_checkpoints > 1:
        load_average_of_last_checkpoints(trainer, task, training_args)
    if trainer.is_world_process_zero():
        # Weights, config (auto_map, custom_pipelines), code files, tokenizer, generation config: the Hub bundle.
        save_bundle(trainer.model, tokenizer, training_args.output_dir, task.pipeline_tag)
    metrics = dict(train_result.metrics, global_step=train_result.global_step)
    if not data_args.streaming:  # a stream's length is unknown
        metrics["train_samples"] = len(tokenized["train"])
    trainer.log_metrics("train", metrics)
    trainer.save_metrics("train", metrics)

    # The held-out split (test, else validation) is scored in full at the end; the validation split was already
    # evaluated during training (curve.json).
    results = {}
    split = "test" if "test" in tokenized else "validation" if "validation" in tokenized else None
    if split is not None:
        prediction = trainer.predict(tokenized[split], metric_key_prefix=split)
        trainer.log_metrics(split, prediction.metrics)
        trainer.save_metrics(split, prediction.metrics)
        results[split] = prediction.metrics
    trainer.save_state()

    if trainer.is_world_process_zero():
        plot_training_curve(training_args.output_dir, metric=task.main_metric)
        samples = task.samples(trainer.model, tokenizer, splits[split or "train"])
        print(f"\nExamples ({split or 'train'}):")
        for source, output, reference in samples:
            print(f"  {source[:300]}\n    -> {output}\n    ({task.sample_headers[2]}: {reference})")
        showcase = task.showcase(trainer.model, tokenizer, data_args)
        if showcase:
            print("\nEveryday sentences:")
            for source, output in showcase:
                print(f"  {source}\n    -> {output}")
        write_model_card(training_args, model_args, data_args, task, trainer.model, results, metrics, samples, command,
                         showcase)
        if push_to_hub:
            push_folder(training_args.output_dir, training_args.hub_model_id, private=training_args.hub_private_repo)
    leave_process_group(trainer)
    return results


def leave_process_group(trainer) -> None:
    """Under `accelerate launch`, the other processes wait for the main one's card, then all leave the process group
    together. In a single process there is no group to leave, and no wrapper to free."""
    trainer.accelerator.wait_for_everyone()
    # Free DDP's wrapper first: its reducer holds the process group, and if the reducer is the group's last holder
    # the group is destroyed with the GIL held, while gloo's worker thread needs the GIL to free the last
    # collective's tensors: a deadlock at exit (pytorch#56297). Freed here, the group dies in destroy_process_group,
    # whose destructor releases the GIL. A process that exits with the group open aborts in teardown instead
    # ("terminate called without an active exception").
    trainer.model_wrapped = trainer.model
    trainer.accelerator.free_memory()
    trainer.accelerator.end_training()


def load_average_of_last_checkpoints(trainer, task: Task, training_args) -> None:
    """Replace the trained weights by the mean of the run's last `--average_checkpoints` checkpoints. The main process
    writes the average (safetensors) beside the checkpoints; every process loads it into its own model."""
    folder = os.path.join(training_args.output_dir, "checkpoint-average")
    with training_args.main_process_first(desc="averaging checkpoints"):
        if training_args.should_save:
            checkpoints = last_checkpoints(training_args.output_dir, training_args.average_checkpoints)
            average_checkpoints(checkpoints, folder)
            logger.info("Final weights: the mean of %s.", ", ".join(os.path.basename(c) for c in checkpoints))
        averaged = task.auto_class.from_pretrained(folder, attn_implementation=trainer.model.config._attn_implementation)
    trainer.model.load_state_dict(averaged.state_dict())
    trainer.accelerator.wait_for_everyone()
    if training_args.should_save:
        shutil.rmtree(folder)  # the bundle saved next holds these weights


if __name__ == "__main__":
    main()
