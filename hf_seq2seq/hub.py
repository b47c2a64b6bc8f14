"""Share a trained model: the folder that `push_to_hub` uploads, built with transformers' own machinery.

`save_bundle(model, tokenizer, folder)` writes safetensors weights, `config.json` (with `auto_map` and
`custom_pipelines`), the three code files (configuration, modeling, pipeline), the tokenizer files and
`generation_config.json`. `push_bundle(model, tokenizer, repo_id)` uploads the same through `huggingface_hub`.
Either way `pipeline("translation", model=folder_or_repo, trust_remote_code=True)` and
`AutoModelForSeq2SeqLM.from_pretrained(folder_or_repo, trust_remote_code=True)` work without this package.
"""

from transformers import AutoModelForSeq2SeqLM, pipeline
from transformers.pipelines import PIPELINE_REGISTRY

from .pipeline_hf_seq2seq import TranslationPipeline

# Registering sets the class attributes `Pipeline.save_pretrained` reads to write `custom_pipelines` and copy the
# pipeline's code file. (transformers 5 refuses the task name "translation" for its own pipelines, but a model's
# `custom_pipelines` entry of that name is honoured.)
PIPELINE_REGISTRY.register_pipeline("translation", pipeline_class=TranslationPipeline, pt_model=AutoModelForSeq2SeqLM, type="text")


def translation_pipeline(model, tokenizer=None, **kwargs) -> TranslationPipeline:
    """`pipeline("translation", ...)` for users of this package: no `trust_remote_code` needed."""
    return pipeline("translation", model=model, tokenizer=tokenizer, pipeline_class=TranslationPipeline, **kwargs)


def save_bundle(model, tokenizer, folder: str) -> None:
    TranslationPipeline(model=model, tokenizer=tokenizer).save_pretrained(folder)


def push_bundle(model, tokenizer, repo_id: str, **kwargs):
    """Upload the bundle (`kwargs` go to `PushToHubMixin.push_to_hub`: `private`, `token`, `commit_message`, ...)."""
    return TranslationPipeline(model=model, tokenizer=tokenizer).push_to_hub(repo_id, **kwargs)
