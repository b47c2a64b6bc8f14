#!/usr/bin/env python
"""Train an hf_seq2seq translator: parallel text -> vocabulary -> Transformer -> evaluated, saved model.

    python train.py                                   # the demo: configs/demo.json, on the built-in corpus
    python train.py --train_file ../shared/data/tatoeba-en-fr/train.tsv \
        --validation_file ../shared/data/tatoeba-en-fr/dev.tsv --preset small --max_train_minutes 60
    accelerate launch --multi_gpu --num_processes 2 train.py ...   # data-parallel on 2 GPUs (or 2 CPU processes)
    python train.py args.json                         # the same arguments from a JSON or YAML file

Arguments are those of transformers' `run_translation.py` where they apply, plus `--preset`, `--vocab_size`,
`--config_overrides` and `--max_train_minutes`; `python train.py --help` lists them all.
"""

import json
import logging
import os
import sys
from pathlib import Path

import transformers
from transformers import (
    IntervalStrategy,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    DataCollatorForSeq2Seq,
    GenerationConfig,
    HfArgumentParser,
    Seq2SeqTrainer,
    set_seed,
)

from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForConditionalGeneration
from hf_seq2seq.alignment import plot_training_curve
from hf_seq2seq.data import BUILTIN, DataArguments, load_raw_datasets, tokenize_splits
from hf_seq2seq.hub import save_bundle
from hf_seq2seq.metrics import load_bleu_chrf
from hf_seq2seq.tokenization import train_tokenizer
from hf_seq2seq.training import (
    ModelArguments,
    TimeBudgetCallback,
    TrainingArguments,
    make_compute_metrics,
    parse_config_overrides,
    render_model_card,
    resolve_resume,
)

logger = logging.getLogger("train")
MODEL_CARD_TEMPLATE = Path(__file__).with_name("model_card.md")
# With no arguments: the demonstration recipe, sized to finish within 10 minutes on 2 CPU cores.
DEMO_ARGS = Path(__file__).with_name("configs") / "demo.json"


def parse_args(argv=None):
    parser = HfArgumentParser((ModelArguments, DataArguments, TrainingArguments))
    argv = sys.argv[1:] if argv is None else argv
    if not argv and DEMO_ARGS.is_file():
        print(f"No arguments: training the demo recipe of {DEMO_ARGS} on the built-in corpus.", flush=True)
        argv = [str(DEMO_ARGS)]
    if len(argv) == 1 and argv[0].endswith(".json"):
        return parser.parse_json_file(argv[0])
    if len(argv) == 1 and argv[0].endswith((".yaml", ".yml")):
        return parser.parse_yaml_file(argv[0])
    return parser.parse_args_into_dataclasses(argv)


def load_or_train_tokenizer(model_args, data_args, training_args, splits):
    """The tokenizer of the model being continued, a named one, the one of an interrupted run in output_dir, or a
    new joint BPE vocabulary trained on the training split (by the main process; the others load it)."""
    name = model_args.model_name_or_path or model_args.tokenizer_name
    if name:
        return AutoTokenizer.from_pretrained(name)
    saved = os.path.join(training_args.output_dir, "tokenizer")
    with training_args.main_process_first(desc="training the tokenizer"):
        if os.path.isfile(os.path.join(saved, "tokenizer.json")):
            return AutoTokenizer.from_pretrained(saved)
        source, target = data_args.source_lang, data_args.target_lang
        texts = (text for pair in splits["train"]["translation"] for text in (pair[source], pair[target]))
        tokenizer = train_tokenizer(texts, vocab_size=model_args.vocab_size)
        if training_args.should_save:
            tokenizer.save_pretrained(saved)
        logger.info("Trained a joint BPE vocabulary of %d tokens.", len(tokenizer))
        return tokenizer


def build_model(model_args, tokenizer):
    if model_args.model_name_or_path:
        return AutoModelForSeq2SeqLM.from_pretrained(
            model_args.model_name_or_path, attn_implementation=model_args.attn_implementation
        )
    config = HFSeq2SeqConfig.from_preset(
        model_args.preset,
        vocab_size=len(tokenizer),
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        decoder_start_token_id=tokenizer.bos_token_id,
        attn_implementation=model_args.attn_implementation,
        **parse_config_overrides(model_args.config_overrides),
    )
    return HFSeq2SeqForConditionalGeneration(config)


def main(argv=None, trainer_class=Seq2SeqTrainer):
    model_args, data_args, training_args = parse_args(argv)
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S", level=logging.INFO)
    transformers.utils.logging.set_verbosity_warning()
    for noisy in ("datasets", "evaluate"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    resume = resolve_resume(training_args.resume_from_checkpoint, training_args.output_dir)
    set_seed(training_args.seed)

    splits = load_raw_datasets(data_args)
    logger.info("Data: %s", ", ".join(f"{name} {len(split)} pairs" for name, split in splits.items()))
    if "train" not in splits:
        raise SystemExit("No training data: give --train_file or --dataset_name (or nothing, for the built-in corpus).")
    tokenizer = load_or_train_tokenizer(model_args, data_args, training_args, splits)
    model = build_model(model_args, tokenizer)
    model.generation_config = GenerationConfig(
        num_beams=training_args.generation_num_beams or 4,
        max_length=training_args.generation_max_length or data_args.max_target_length,
        decoder_start_token_id=model.config.decoder_start_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    logger.info("Model: %s preset, %.1fM parameters.", model_args.preset, model.num_parameters() / 1e6)
    # The model computes the label-smoothed loss itself, on the labelled positions only. Trainer's own smoother
    # would take the labels away from the model and need logits for every position, padding included.
    model.config.label_smoothing, training_args.label_smoothing_factor = training_args.label_smoothing_factor, 0.0

    with training_args.main_process_first(desc="tokenizing"):
        tokenized = tokenize_splits(splits, tokenizer, data_args)
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
        data_collator=DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100),
        compute_metrics=make_compute_metrics(tokenizer, load_bleu_chrf()),
        callbacks=[budget],
    )
    train_result = trainer.train(resume_from_checkpoint=resume)
    if trainer.is_world_process_zero():
        # Weights, config (auto_map, custom_pipelines), code files, tokenizer, generation config: the Hub bundle.
        save_bundle(trainer.model, tokenizer, training_args.output_dir)
    metrics = dict(train_result.metrics, train_samples=len(tokenized["train"]), global_step=train_result.global_step)
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
        with open(os.path.join(training_args.output_dir, "curve.json"), "w") as f:
            json.dump(budget.curve, f, indent=1)
        plot_training_curve(training_args.output_dir)
        samples = show_samples(trainer.model, tokenizer, splits, data_args)
        write_model_card(training_args, model_args, data_args, model, results, metrics, samples)
        if push_to_hub:
            push_folder(training_args.output_dir, training_args.hub_model_id, private=training_args.hub_private_repo)
    return results


def push_folder(folder: str, repo_id: str | None, private: bool | None = None) -> str:
    """Upload the bundle (not the checkpoints) with huggingface_hub."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = api.create_repo(repo_id or os.path.basename(os.path.abspath(folder)), private=private, exist_ok=True).repo_id
    api.upload_folder(
        repo_id=repo_id, folder_path=folder, commit_message="Upload hf_seq2seq translator",
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "tokenizer/**", "training_args.bin", "runs/**"],
    )
    logger.info("Pushed %s to https://huggingface.co/%s", folder, repo_id)
    return repo_id


def show_samples(model, tokenizer, splits, data_args, n=5):
    split = splits.get("test") or splits.get("validation") or splits["train"]
    pairs = split.select(range(min(n, len(split))))["translation"]
    sources = [pair[data_args.source_lang] for pair in pairs]
    batch = tokenizer(sources, return_tensors="pt", padding=True).to(model.device)
    outputs = model.eval().generate(**batch)
    translations = tokenizer.batch_decode(outputs, skip_special_tokens=True)
    print("\nSample translations:")
    samples = []
    for pair, translation in zip(pairs, translations):
        print(f"  {pair[data_args.source_lang]}\n    -> {translation}\n    (reference: {pair[data_args.target_lang]})")
        samples.append((pair[data_args.source_lang], translation, pair[data_args.target_lang]))
    return samples


def write_model_card(training_args, model_args, data_args, model, results, train_metrics, samples):
    config = model.config
    evaluated = results.get("test") or results.get("validation") or {}
    prefix = "test" if "test" in results else "validation"
    data_name = data_args.dataset_name or ", ".join(
        os.path.basename(p) for p in (data_args.train_file, data_args.validation_file, data_args.test_file) if p
    ) or BUILTIN
    values = {
        "model_name": os.path.basename(os.path.abspath(training_args.output_dir)),
        "source_lang": data_args.source_lang,
        "target_lang": data_args.target_lang,
        "dataset": data_name,
        "bleu": evaluated.get(f"{prefix}_bleu", "n/a"),
        "chrf": evaluated.get(f"{prefix}_chrf", "n/a"),
        "eval_split": prefix,
        "preset": model_args.preset if not model_args.model_name_or_path else model_args.model_name_or_path,
        "parameters": f"{model.num_parameters() / 1e6:.1f}M",
        "d_model": config.d_model,
        "layers": f"{config.encoder_layers}+{config.decoder_layers}",
        "heads": config.encoder_attention_heads,
        "ffn": config.encoder_ffn_dim,
        "vocab_size": config.vocab_size,
        "norm": "pre-norm" if config.normalize_before else "post-norm",
        "train_runtime": round(train_metrics.get("train_runtime", 0) / 60, 1),
        "train_steps": train_metrics.get("global_step", "n/a"),
        "epochs": round(train_metrics.get("epoch", 0), 2),
        "learning_rate": training_args.learning_rate,
        "warmup_steps": training_args.warmup_steps,
        "batch_size": training_args.per_device_train_batch_size * training_args.world_size,
        "label_smoothing": model.config.label_smoothing,
        "num_beams": model.generation_config.num_beams,
        "curve": "![training curve](training_curve.png)" if os.path.isfile(
            os.path.join(training_args.output_dir, "training_curve.png")) else "",
        "samples": "\n".join(f"| {s} | {t} | {r} |" for s, t, r in samples),
        "command": " ".join(["python", "train.py", *sys.argv[1:]]),
    }
    if MODEL_CARD_TEMPLATE.is_file():
        card = render_model_card(str(MODEL_CARD_TEMPLATE), values)
        Path(training_args.output_dir, "README.md").write_text(card, encoding="utf-8")


if __name__ == "__main__":
    main()
