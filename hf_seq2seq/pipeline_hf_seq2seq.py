"""A `translation` pipeline for hf_seq2seq models (transformers 5 removed its own).

This file travels to the Hub beside the weights (remote code) and is named in the config's `custom_pipelines`, so

    pipeline("translation", model="folder_or_repo", trust_remote_code=True)

works where this package is not installed. It imports only transformers.
"""

import warnings

import torch
from transformers import Pipeline


class TranslationPipeline(Pipeline):
    """Translate text with `generate()`; returns `[{"translation_text": ...}]` per input, as the old pipeline did.

    Generation arguments (`num_beams`, `max_new_tokens`, `num_return_sequences`, `do_sample`, ...) pass through
    to `generate()`; `truncation` ("warn", the default, truncates long inputs with a warning; "error" rejects them).
    """

    _pipeline_calls_generate = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    def __call__(self, text, **kwargs):
        """`text`: a string or a list of strings. A list with one output each gives one dict per input, as
        transformers 4's translation pipeline did; otherwise a list of dicts per input."""
        result = super().__call__(text, **kwargs)
        if isinstance(text, list) and all(len(outputs) == 1 for outputs in result):
            return [outputs[0] for outputs in result]
        return result

    def _sanitize_parameters(self, truncation=None, clean_up_tokenization_spaces=None, **generate_kwargs):
        preprocess_params = {} if truncation is None else {"truncation": truncation}
        postprocess_params = {}
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess_params, generate_kwargs, postprocess_params

    def preprocess(self, text, truncation="warn"):
        if not isinstance(text, str):
            raise ValueError(f"TranslationPipeline translates strings, got {type(text).__name__}.")
        max_length = self.model.config.max_position_embeddings
        inputs = self.tokenizer(text, return_tensors="pt")
        length = inputs["input_ids"].shape[1]
        if length > max_length:
            if truncation == "error":
                raise ValueError(
                    f"The input has {length} tokens but the model takes at most {max_length}. Shorten it, or pass "
                    "truncation='warn' to translate its first part."
                )
            warnings.warn(f"Input of {length} tokens truncated to the model's {max_length} positions.", UserWarning)
            inputs = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
        inputs["is_empty"] = torch.tensor([not text.strip()])  # a tensor, so that batching stacks it
        return inputs

    def _forward(self, model_inputs, **generate_kwargs):
        is_empty = model_inputs.pop("is_empty")
        # The call's generation arguments on top of those given at construction and the model's generation config.
        output_ids = self.model.generate(**model_inputs, **self._prepare_generate_kwargs(generate_kwargs))
        # [batch * num_return_sequences, length] -> [batch, num_return_sequences, length]: one row per input.
        batch_size = model_inputs["input_ids"].shape[0]
        output_ids = output_ids.reshape(batch_size, -1, *output_ids.shape[1:])
        return {"output_ids": output_ids, "is_empty": is_empty}

    def postprocess(self, model_outputs, clean_up_tokenization_spaces=False):
        texts = self.tokenizer.batch_decode(
            model_outputs["output_ids"][0], skip_special_tokens=True, clean_up_tokenization_spaces=clean_up_tokenization_spaces
        )
        if model_outputs["is_empty"].item():
            texts = ["" for _ in texts]  # nothing to translate: nothing comes out
        return [{"translation_text": text} for text in texts]
