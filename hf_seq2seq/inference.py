"""Batched inference on lists of texts, shared by the command line (hf_seq2seq.cli), the tasks' evaluation
(Task.predict) and the benchmarks: text-to-text generation, labels from a classifier, and answers from a span reader."""

import torch

from .pipeline_hf_seq2seq import best_answers, question_answering_windows


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


# What a span reader uses when its config does not say (task_specific_params["question-answering"]), run_qa.py's.
SPAN_DEFAULTS = {"max_seq_length": 384, "doc_stride": 128, "n_best_size": 20, "max_answer_length": 30}


@torch.inference_mode()
def answer_spans(model, tokenizer, questions: list[str], contexts: list[str], batch_size: int = 32, **settings) -> list[dict]:
    """A span reader's `{"answer", "score", "start", "end"}` for each question over its context, read in windows as
    the pipeline reads them; `settings` override the model's own (`SPAN_DEFAULTS`)."""
    params = (getattr(model.config, "task_specific_params", None) or {}).get("question-answering", {})
    params = {name: settings.get(name) or params.get(name) or default for name, default in SPAN_DEFAULTS.items()}
    windows = question_answering_windows(tokenizer, questions, contexts, params["max_seq_length"], params["doc_stride"])
    start_logits, end_logits = [], []
    for start in range(0, len(windows["input_ids"]), batch_size):
        batch = tokenizer.pad({"input_ids": windows["input_ids"][start : start + batch_size],
                               "attention_mask": windows["attention_mask"][start : start + batch_size]}, return_tensors="pt")
        outputs = model(**batch.to(model.device))
        start_logits += list(outputs.start_logits.float().cpu())
        end_logits += list(outputs.end_logits.float().cpu())
    return best_answers(windows["example_index"], windows["offset_mapping"], start_logits, end_logits, contexts,
                        params["n_best_size"], params["max_answer_length"])
