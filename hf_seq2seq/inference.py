"""Batched inference on lists of texts, shared by the command line (hf_seq2seq.cli), the tasks' evaluation
(Task.predict) and the benchmarks: text-to-text generation, and labels from a classifier."""

import torch


@torch.inference_mode()
def generate_texts(model, tokenizer, sources: list[str], num_beams: int | None = None, max_new_tokens: int | None = None,
                   batch_size: int = 32, **generate_kwargs) -> list[str]:
    """`generate()` on source texts in batches of similar length (less padding); empty sources give empty outputs.
    Beam size and length default to the model's generation config; other `generate()` arguments pass through."""
    order = sorted(range(len(sources)), key=lambda i: len(sources[i]))
    results = [""] * len(sources)
    max_length = (getattr(model.config, "task_specific_params", None) or {})
    max_length = min([model.config.max_position_embeddings] + [p["max_source_length"] for p in max_length.values()
                                                               if p.get("max_source_length")])
    settings = {k: v for k, v in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens)) if v is not None}
    settings.update(generate_kwargs)
    for start in range(0, len(order), batch_size):
        indices = [i for i in order[start : start + batch_size] if sources[i].strip()]
        if not indices:
            continue
        batch = tokenizer([sources[i] for i in indices], return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        outputs = model.generate(**batch, **settings)
        for i, text in zip(indices, tokenizer.batch_decode(outputs, skip_special_tokens=True)):
            results[i] = text
    return results


@torch.inference_mode()
def classify(model, tokenizer, texts: list[str], batch_size: int = 32) -> list[str]:
    """The label name (config `id2label`) a classifier gives each text."""
    labels = []
    for start in range(0, len(texts), batch_size):
        batch = tokenizer(texts[start : start + batch_size], return_tensors="pt", padding=True, truncation=True,
                          max_length=model.config.max_position_embeddings)
        labels += [model.config.id2label[i] for i in model(**batch).logits.argmax(-1).tolist()]
    return labels
