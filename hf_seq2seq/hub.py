"""Share a trained model: the folder that `push_to_hub` uploads, built with transformers' own machinery, and its
model card.

`save_bundle(model, tokenizer, folder, task)` writes safetensors weights, `config.json` (with `auto_map`, and
`custom_pipelines` for the text-to-text tasks), the code files (configuration, modeling, pipeline), the tokenizer
files and `generation_config.json`. `push_bundle(...)` uploads the same through `huggingface_hub`. Either way
`pipeline(task, model=folder_or_repo, trust_remote_code=True)` and `AutoModelFor...from_pretrained(folder_or_repo,
trust_remote_code=True)` work without this package.

`write_model_card(...)` writes a trained run's README.md from the template model_card.md beside this module, and
`push_folder(folder, repo_id)` uploads a run's output folder (bundle and card, not its checkpoints).
"""

import json
import logging
import os
from pathlib import Path

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import AutoModelForSeq2SeqLM, pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .pipeline_hf_seq2seq import QuestionAnsweringPipeline, SummarizationPipeline, TranslationPipeline

logger = logging.getLogger(__name__)
# Shipped in the package (package data), so that an installed copy writes cards without the source tree.
MODEL_CARD_TEMPLATE = Path(__file__).with_name("model_card.md")

PIPELINES = {cls.task: cls for cls in (TranslationPipeline, SummarizationPipeline, QuestionAnsweringPipeline)}

# Registering sets the class attributes `Pipeline.save_pretrained` reads to write `custom_pipelines` and copy the
# pipeline's code file. (transformers 5 refuses these task names for its own pipelines, but a model's
# `custom_pipelines` entry of the same name is honoured.)
for _task, _pipeline_class in PIPELINES.items():
    PIPELINE_REGISTRY.register_pipeline(_task, pipeline_class=_pipeline_class, pt_model=AutoModelForSeq2SeqLM, type="text")


def seq2seq_pipeline(task: str, model, tokenizer=None, **kwargs):
    """`pipeline(task, ...)` for users of this package (no `trust_remote_code` needed): translation, summarization
    or question-answering."""
    if task not in PIPELINES:
        raise ValueError(f"No hf_seq2seq pipeline for {task!r}; choose one of {sorted(PIPELINES)} (classifiers use "
                         "transformers' own `text-classification` pipeline).")
    return pipeline(task, model=model, tokenizer=tokenizer, pipeline_class=PIPELINES[task], **kwargs)


def translation_pipeline(model, tokenizer=None, **kwargs) -> TranslationPipeline:
    return seq2seq_pipeline("translation", model, tokenizer, **kwargs)


def save_bundle(model, tokenizer, folder: str, task: str = "translation") -> None:
    if task in PIPELINES:
        PIPELINES[task](model=model, tokenizer=tokenizer).save_pretrained(folder)
        if not model.can_generate():
            # A span reader: `pipeline(...)` must build it with its own Auto class (the registry names
            # AutoModelForSeq2SeqLM, which would load the same weights without the span head).
            config_path = os.path.join(folder, "config.json")
            with open(config_path) as f:
                config = json.load(f)
            config["custom_pipelines"][task]["pt"] = ["AutoModelForQuestionAnswering"]
            with open(config_path, "w") as f:
                json.dump(config, f, indent=2, sort_keys=True)
    else:  # served by one of transformers' own pipelines: nothing to add
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def push_bundle(model, tokenizer, repo_id: str, task: str = "translation", **kwargs):
    """Upload the bundle (`kwargs` go to `PushToHubMixin.push_to_hub`: `private`, `token`, `commit_message`, ...)."""
    if task in PIPELINES and not model.can_generate():  # the bundle save_bundle writes, uploaded as it is
        import tempfile

        with tempfile.TemporaryDirectory() as folder:
            save_bundle(model, tokenizer, folder, task)
            return push_folder(folder, repo_id, kwargs.get("private"))
    if task in PIPELINES:
        return PIPELINES[task](model=model, tokenizer=tokenizer).push_to_hub(repo_id, **kwargs)
    tokenizer.push_to_hub(repo_id, **kwargs)
    return model.push_to_hub(repo_id, **kwargs)


def model_card(template_path: str, *, model_name: str, task, languages: list[str], dataset: str, split: str,
               scores: dict, tags: list[str] = (), **template_values) -> ModelCard:
    """The model card: YAML metadata (with the scores in `model-index`, as the Hub reads them) by huggingface_hub's
    ModelCardData, and a body from the Jinja template `template_path` (MODEL_CARD_TEMPLATE)."""
    results = [
        EvalResult(task_type=task.pipeline_tag, task_name=task.pipeline_tag.replace("-", " ").capitalize(),
                   dataset_type=dataset, dataset_name=dataset, dataset_split=split, metric_type=key,
                   metric_value=scores[key], metric_name=name)
        for key, name in task.card_metrics if key in scores
    ]
    card_data = ModelCardData(
        model_name=model_name, language=languages, license="apache-2.0", library_name="transformers",
        pipeline_tag=task.pipeline_tag, tags=[task.pipeline_tag, "hf_seq2seq", "transformer", "custom_code", *tags],
        datasets=[dataset], metrics=sorted({key for key, _ in task.card_metrics}), eval_results=results or None,
    )
    return ModelCard.from_template(card_data, template_path=template_path, model_name=model_name, task=task.name,
                                   dataset=dataset, split=split, scores=scores, card_metrics=task.card_metrics,
                                   **template_values)


def push_folder(folder: str, repo_id: str | None, private: bool | None = None) -> str:
    """Upload the bundle (not the checkpoints) with huggingface_hub."""
    from huggingface_hub import HfApi

    api = HfApi()
    repo_id = api.create_repo(repo_id or os.path.basename(os.path.abspath(folder)), private=private, exist_ok=True).repo_id
    api.upload_folder(
        repo_id=repo_id, folder_path=folder, commit_message="Upload hf_seq2seq model",
        ignore_patterns=["checkpoint-*", "checkpoint-*/**", "tokenizer/**", "training_args.bin", "runs/**",
                         "ctranslate2/**", "onnxruntime/**"],
    )
    logger.info("Pushed %s to https://huggingface.co/%s", folder, repo_id)
    return repo_id


def dataset_label(data_args, task) -> str:
    """What the model card calls the data: the name given, a built-in corpus's name, the Hub id, or the folder of the
    training file."""
    from .data import BUILTIN_CORPORA  # here, not above: `hf-seq2seq translate` needs no `datasets`

    builtin = task.builtin_corpus(data_args)
    if data_args.dataset_label or builtin:
        return data_args.dataset_label or BUILTIN_CORPORA[builtin][0]
    if data_args.dataset_name:
        return data_args.dataset_name
    return os.path.basename(os.path.dirname(os.path.abspath(data_args.train_file))) or data_args.train_file


def scored_split_name(data_args, task, split: str) -> str:
    """The name of the split that was scored: its file's name (`dev` for dev.tsv), else the split's own name."""
    from .data import BUILTIN_CORPORA, BUILTIN_TATOEBA

    path = {"test": data_args.test_file, "validation": data_args.validation_file}.get(split)
    if path and (data_args.dataset_name is None or data_args.dataset_name in BUILTIN_CORPORA):
        return os.path.basename(path).split(".")[0]
    return "dev" if split == "validation" and task.builtin_corpus(data_args) == BUILTIN_TATOEBA else split


def table_cell(text) -> str:
    text = " ".join(str(text).split()).replace("|", "\\|")  # one line, and no column breaks
    return text if len(text) <= 300 else text[:297] + "..."


def write_model_card(training_args, model_args, data_args, task, model, results, train_metrics, samples, command,
                     showcase=()):
    """The model card of a finished run, as `output_dir`/README.md: what was trained, on what, how, and its scores."""
    from .data import BUILTIN_CORPORA

    config, generation = model.config, getattr(model, "generation_config", None)
    split = "test" if "test" in results else "validation"
    # Trainer's losses come with every digit of a float: the card shows four decimals.
    scores = {key.removeprefix(f"{split}_"): round(value, 4) if isinstance(value, float) else value
              for key, value in results.get(split, {}).items()}
    warmup = training_args.warmup_steps
    decoding = None
    if model.can_generate():  # a classifier does not
        settings = {k: getattr(generation, k) for k in ("max_new_tokens", "length_penalty", "no_repeat_ngram_size",
                                                        "min_new_tokens") if getattr(generation, k, None) not in (None, 0, 1.0)}
        decoding = f"beam search, {generation.num_beams} beams" + "".join(f", {k} {v}" for k, v in settings.items())
    card = model_card(
        str(MODEL_CARD_TEMPLATE),
        model_name=os.path.basename(os.path.abspath(training_args.output_dir)),
        task=task,
        languages=task.languages(data_args),
        dataset=dataset_label(data_args, task),
        data_note=BUILTIN_CORPORA[builtin][1] if (builtin := task.builtin_corpus(data_args)) else None,
        split=scored_split_name(data_args, task, split),
        scores=scores,
        task_title=task.title(data_args),
        usage=task.model_card_usage(os.path.basename(os.path.abspath(training_args.output_dir))),
        preset=model_args.model_name_or_path or model_args.preset,
        start=model_args.model_name_or_path,
        parameters=f"{model.num_parameters() / 1e6:.1f}M",
        d_model=config.d_model,
        layers=f"{config.encoder_layers}+{config.decoder_layers}",
        heads=config.encoder_attention_heads,
        ffn=config.encoder_ffn_dim,
        vocab_size=config.vocab_size,
        norm="pre-norm" if getattr(config, "normalize_before", False) else "post-norm",
        train_runtime=round(train_metrics.get("train_runtime", 0) / 60, 1),
        train_steps=train_metrics.get("global_step", "n/a"),
        epochs=round(train_metrics.get("epoch", 0), 2),
        learning_rate=training_args.learning_rate,
        warmup_steps=int(warmup) if float(warmup).is_integer() else warmup,
        scheduler="a linear fall to 0 over the time budget" if training_args.lr_decay_over_time_budget else
        str(getattr(training_args.lr_scheduler_type, "value", training_args.lr_scheduler_type)).replace("_", " "),
        averaged=training_args.average_checkpoints,
        label_smoothing=getattr(config, "label_smoothing", 0) or training_args.label_smoothing_factor,
        batch_size=f"{training_args.max_tokens_per_batch} tokens" if training_args.max_tokens_per_batch else
        f"{training_args.per_device_train_batch_size} examples",
        world_size=training_args.world_size,
        decoding=decoding,
        sample_headers=task.sample_headers,
        samples=[[table_cell(cell) for cell in row] for row in samples],
        showcase=[[table_cell(cell) for cell in row] for row in showcase],
        command=command,
        curve=os.path.isfile(os.path.join(training_args.output_dir, "training_curve.png")),
    )
    card.save(os.path.join(training_args.output_dir, "README.md"))
