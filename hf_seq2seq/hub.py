"""Share a trained model: the folder that `push_to_hub` uploads, built with transformers' own machinery, and its
model card.

`save_bundle(model, tokenizer, folder, task)` writes safetensors weights, `config.json` (with `auto_map`, and
`custom_pipelines` for the text-to-text tasks), the code files (configuration, modeling, pipeline), the tokenizer
files and `generation_config.json`. `push_bundle(...)` uploads the same through `huggingface_hub`. Either way
`pipeline(task, model=folder_or_repo, trust_remote_code=True)` and `AutoModelFor...from_pretrained(folder_or_repo,
trust_remote_code=True)` work without this package.
"""

from huggingface_hub import EvalResult, ModelCard, ModelCardData
from transformers import AutoModelForSeq2SeqLM, pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .pipeline_hf_seq2seq import QuestionAnsweringPipeline, SummarizationPipeline, TranslationPipeline

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
    else:  # served by one of transformers' own pipelines: nothing to add
        model.save_pretrained(folder)
        tokenizer.save_pretrained(folder)


def push_bundle(model, tokenizer, repo_id: str, task: str = "translation", **kwargs):
    """Upload the bundle (`kwargs` go to `PushToHubMixin.push_to_hub`: `private`, `token`, `commit_message`, ...)."""
    if task in PIPELINES:
        return PIPELINES[task](model=model, tokenizer=tokenizer).push_to_hub(repo_id, **kwargs)
    tokenizer.push_to_hub(repo_id, **kwargs)
    return model.push_to_hub(repo_id, **kwargs)


def model_card(template_path: str, *, model_name: str, task, languages: list[str], dataset: str, split: str,
               scores: dict, tags: list[str] = (), **template_values) -> ModelCard:
    """The model card: YAML metadata (with the scores in `model-index`, as the Hub reads them) by huggingface_hub's
    ModelCardData, and a body from the Jinja template `template_path` (the project's model_card.md)."""
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
