"""Pipelines for hf_seq2seq models: `translation`, `summarization` and `question-answering` (transformers 5 removed
its own seq2seq pipelines; classifiers use transformers' `text-classification` pipeline as they are).

This file travels to the Hub beside the weights (remote code) and is named in the config's `custom_pipelines`, so

    pipeline("translation", model="folder_or_repo", trust_remote_code=True)

works where this package is not installed. It imports only torch and transformers.
"""

import warnings

import torch
from transformers import Pipeline

# How a question and its context are put into one source text, in training and here.
QUESTION_ANSWERING_INPUT = "question: {question} context: {context}"


def question_answering_input(question: str, context: str) -> str:
    return QUESTION_ANSWERING_INPUT.format(question=question.strip(), context=context.strip())


def question_answering_windows(tokenizer, questions: list[str], contexts: list[str], max_seq_length: int = 384,
                               doc_stride: int = 128):
    """transformers' run_qa.py features: each question with its context, the context cut into windows of at most
    `max_seq_length` tokens (question included) that overlap by `doc_stride` tokens, so that an answer near a cut is
    whole in some window. Returns the tokenizer's BatchEncoding with `example_index` (the question each window
    belongs to) and `offset_mapping` holding each context token's (start, end) characters in its context, and None
    for the question and special tokens, where an answer cannot be."""
    encoded = tokenizer([question.lstrip() for question in questions], contexts, truncation="only_second",
                        max_length=max_seq_length, stride=doc_stride, return_overflowing_tokens=True,
                        return_offsets_mapping=True)
    encoded["example_index"] = encoded.pop("overflow_to_sample_mapping")
    encoded["offset_mapping"] = [
        [tuple(offset) if sequence == 1 else None for offset, sequence in zip(offsets, encoded.sequence_ids(i))]
        for i, offsets in enumerate(encoded["offset_mapping"])
    ]
    return encoded


def best_answers(example_index: list[int], offset_mapping: list[list], start_logits, end_logits, contexts: list[str],
                 n_best_size: int = 20, max_answer_length: int = 30) -> list[dict]:
    """run_qa.py's post-processing: for each question, over all its windows, among the `n_best_size` best starts and
    ends of each window, the span inside the context (start <= end, at most `max_answer_length` tokens) with the
    highest start + end score. Returns `{"answer", "score", "start", "end"}` per question, as transformers'
    question-answering pipeline did: characters [start, end) of its context, and the span's probability in its window
    (softmax over the window's context tokens, start times end)."""
    best = [None] * len(contexts)
    for window, (example, offsets) in enumerate(zip(example_index, offset_mapping)):
        context_tokens = torch.tensor([i for i, offset in enumerate(offsets) if offset is not None], dtype=torch.long)
        if len(context_tokens) == 0:
            continue
        # Scores of the window's real positions (a padded batch pads them), and log-probabilities over its context.
        starts = torch.as_tensor(start_logits[window][: len(offsets)], dtype=torch.float32)
        ends = torch.as_tensor(end_logits[window][: len(offsets)], dtype=torch.float32)
        start_logp = starts[context_tokens] - torch.logsumexp(starts[context_tokens], 0)
        end_logp = ends[context_tokens] - torch.logsumexp(ends[context_tokens], 0)
        top = min(n_best_size, len(context_tokens))
        for s in start_logp.topk(top).indices.tolist():
            for e in end_logp.topk(top).indices.tolist():
                if e < s or e - s + 1 > max_answer_length:
                    continue
                score = float(starts[context_tokens[s]] + ends[context_tokens[e]])
                if best[example] is not None and score <= best[example][0]:
                    continue
                start, end = offsets[context_tokens[s]][0], offsets[context_tokens[e]][1]
                context = contexts[example]
                while start < end and context[start].isspace():  # byte-level BPE tokens carry the space before a word
                    start += 1
                if start < end:  # (a span of whitespace alone is no answer)
                    best[example] = (score, start, end, float((start_logp[s] + end_logp[e]).exp()))
    answers = []
    for context, found in zip(contexts, best):
        if found is None:  # no context token in any window
            answers.append({"answer": "", "score": 0.0, "start": 0, "end": 0})
            continue
        _, start, end, probability = found
        answers.append({"answer": context[start:end], "score": probability, "start": start, "end": end})
    return answers


class Seq2SeqPipeline(Pipeline):
    """Text in, `generate()`, text out. Subclasses say which task they serve (`task`, the key of the model config's
    `task_specific_params` holding the training-time `prefix` and `max_source_length`), what the output is called
    (`output_key`) and how an input becomes the source text (`source_text`).

    Generation arguments (`num_beams`, `max_new_tokens`, `num_return_sequences`, `do_sample`, ...) pass through to
    `generate()`, on top of the model's generation config; `truncation`: "warn" (the default) truncates inputs longer
    than the model was trained on, with a warning; "error" rejects them.

    `engine="onnxruntime"` runs the model with ONNX Runtime behind the same `generate()`: an export of the model folder
    made on first use, kept beside it and rebuilt when the weights change. It needs this package and onnxruntime
    (`pip install "hf_seq2seq[onnx]"`) and a model folder on disk.
    """

    task = ""
    output_key = "generated_text"
    _pipeline_calls_generate = True
    _load_processor = False
    _load_image_processor = False
    _load_feature_extractor = False
    _load_tokenizer = True

    engines = ("transformers", "onnxruntime")

    def __init__(self, *args, engine: str = "transformers", **kwargs):
        super().__init__(*args, **kwargs)
        if engine not in self.engines:
            raise ValueError(f"engine must be one of {', '.join(map(repr, self.engines))}; got {engine!r}.")
        if engine == "onnxruntime":
            try:  # (transformers skips imports inside `try` when it checks what remote code needs)
                from hf_seq2seq.export_onnx import onnxruntime_model
            except ImportError as error:
                raise ImportError(f'engine="onnxruntime" needs hf_seq2seq and onnxruntime: pip install '
                                  f'"hf_seq2seq[onnx]" ({error})') from None
            self.model = onnxruntime_model(self.model.name_or_path)

    def __call__(self, inputs, **kwargs):
        """A list of inputs with one output each gives one dict per input, as transformers 4's pipelines did;
        otherwise a list of dicts per input."""
        result = super().__call__(inputs, **kwargs)
        if isinstance(inputs, list) and all(len(outputs) == 1 for outputs in result):
            return [outputs[0] for outputs in result]
        return result

    def _sanitize_parameters(self, truncation=None, clean_up_tokenization_spaces=None, **generate_kwargs):
        preprocess_params = {} if truncation is None else {"truncation": truncation}
        postprocess_params = {}
        if clean_up_tokenization_spaces is not None:
            postprocess_params["clean_up_tokenization_spaces"] = clean_up_tokenization_spaces
        return preprocess_params, generate_kwargs, postprocess_params

    @property
    def task_params(self) -> dict:
        return (getattr(self.model.config, "task_specific_params", None) or {}).get(self.task, {})

    def source_text(self, inputs) -> str:
        if not isinstance(inputs, str):
            raise ValueError(f"{type(self).__name__} takes strings, got {type(inputs).__name__}.")
        return self.task_params.get("prefix", "") + inputs if inputs.strip() else ""

    def preprocess(self, inputs, truncation="warn"):
        text = self.source_text(inputs)
        max_length = min(self.task_params.get("max_source_length", 10**9), self.model.config.max_position_embeddings)
        encoded = self.tokenizer(text, return_tensors="pt")
        length = encoded["input_ids"].shape[1]
        if length > max_length:
            if truncation == "error":
                raise ValueError(f"The input has {length} tokens but the model takes at most {max_length}. Shorten it, "
                                 "or pass truncation='warn' to use its first part.")
            warnings.warn(f"Input of {length} tokens truncated to the model's limit of {max_length} tokens.", UserWarning)
            encoded = self.tokenizer(text, return_tensors="pt", truncation=True, max_length=max_length)
        encoded["is_empty"] = torch.tensor([not text.strip()])  # a tensor, so that batching stacks it
        return encoded

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
            texts = ["" for _ in texts]  # nothing in: nothing out
        return [{self.output_key: text} for text in texts]


class TranslationPipeline(Seq2SeqPipeline):
    """`pipeline("translation", ...)(text)` -> `[{"translation_text": ...}]`, as transformers 4's pipeline did.

    `pipeline("translation", model=folder, engine="ctranslate2")` translates with CTranslate2 instead of
    `generate()`: the same translations, faster on CPU, from an export built on first use and cached beside the model
    (rebuilt when the weights change). It needs this package and ctranslate2 (`pip install "hf_seq2seq[ctranslate2]"`)
    and a model folder on disk; `num_beams`, `max_new_tokens` and `num_return_sequences` apply."""

    task = "translation"
    output_key = "translation_text"

    engines = ("transformers", "onnxruntime", "ctranslate2")

    def __init__(self, *args, engine: str = "transformers", **kwargs):
        # the base class checks the name and sets up ONNX Runtime; CTranslate2 is this class's
        super().__init__(*args, engine="transformers" if engine == "ctranslate2" else engine, **kwargs)
        self.ctranslate2 = None
        if engine == "ctranslate2":
            try:  # (transformers skips imports inside `try` when it checks what remote code needs)
                from hf_seq2seq.export_ctranslate2 import ctranslate2_translator, decoding_options, translate_tokens
            except ImportError as error:
                raise ImportError(f"engine='ctranslate2' needs hf_seq2seq and ctranslate2: pip install "
                                  f'"hf_seq2seq[ctranslate2]" ({error})') from None
            self.ctranslate2 = ctranslate2_translator(self.model.name_or_path)
            self.decoding_options, self.translate_tokens = decoding_options, translate_tokens

    def _forward(self, model_inputs, **generate_kwargs):
        if self.ctranslate2 is None:
            return super()._forward(model_inputs, **generate_kwargs)
        is_empty = model_inputs.pop("is_empty")
        kwargs = self._prepare_generate_kwargs(generate_kwargs)
        sources = [self.tokenizer.convert_ids_to_tokens(ids[mask.bool()].tolist())
                   for ids, mask in zip(model_inputs["input_ids"], model_inputs["attention_mask"])]
        options = self.decoding_options(self.model.name_or_path, kwargs.get("num_beams"), kwargs.get("max_new_tokens"))
        hypotheses = self.translate_tokens(self.ctranslate2, self.model.name_or_path, sources, options,
                                           num_hypotheses=kwargs.get("num_return_sequences") or 1,
                                           return_alternatives=False)
        rows = [[self.tokenizer.convert_tokens_to_ids(h) for h in best] for best in hypotheses]
        width = max(len(ids) for hypotheses in rows for ids in hypotheses)
        pad = self.tokenizer.pad_token_id
        output_ids = torch.tensor([[ids + [pad] * (width - len(ids)) for ids in hypotheses] for hypotheses in rows])
        return {"output_ids": output_ids, "is_empty": is_empty}


class SummarizationPipeline(Seq2SeqPipeline):
    """`pipeline("summarization", ...)(text)` -> `[{"summary_text": ...}]`, as transformers 4's pipeline did."""

    task = "summarization"
    output_key = "summary_text"


class QuestionAnsweringPipeline(Seq2SeqPipeline):
    """`pipeline("question-answering", ...)(question=..., context=...)` -> `{"answer": ...}`: the call and output key
    of transformers 4's question-answering pipeline, so code written for it keeps working. Also takes
    `{"question": ..., "context": ...}` dicts, and lists of questions and contexts (one dict per question).

    A generative reader (HFSeq2SeqForConditionalGeneration) generates the answer. A span reader
    (HFSeq2SeqForQuestionAnswering) points at it in the context, as transformers' extractive pipeline did, and returns
    `{"answer", "score", "start", "end"}` (characters of the context); long contexts are read in windows
    (`max_seq_length`, `doc_stride`), and `n_best_size`, `max_answer_length` bound the search (`best_answers`)."""

    task = "question-answering"
    output_key = "answer"

    @property
    def reads_spans(self) -> bool:
        return not self.model.can_generate()

    def _sanitize_parameters(self, max_seq_length=None, doc_stride=None, n_best_size=None, max_answer_length=None,
                             **kwargs):
        preprocess_params, forward_params, postprocess_params = super()._sanitize_parameters(**kwargs)
        for params, name, value in ((preprocess_params, "max_seq_length", max_seq_length),
                                    (preprocess_params, "doc_stride", doc_stride),
                                    (postprocess_params, "n_best_size", n_best_size),
                                    (postprocess_params, "max_answer_length", max_answer_length)):
            if value is not None:
                params[name] = value
        return preprocess_params, forward_params, postprocess_params

    def preprocess(self, inputs, truncation="warn", max_seq_length=None, doc_stride=None):
        if not self.reads_spans:
            return super().preprocess(inputs, truncation)
        self.source_text(inputs)  # the same checks of the input
        defaults = self.task_params
        windows = question_answering_windows(
            self.tokenizer, [inputs["question"] or ""], [inputs["context"]],
            max_seq_length or defaults.get("max_seq_length", 384), doc_stride or defaults.get("doc_stride", 128))
        padded = self.tokenizer.pad({"input_ids": windows["input_ids"], "attention_mask": windows["attention_mask"]},
                                    return_tensors="pt")
        return {**padded, "offset_mapping": windows["offset_mapping"], "context": inputs["context"],
                "is_empty": not (inputs["question"] or "").strip()}

    def _forward(self, model_inputs, **generate_kwargs):
        if not self.reads_spans:
            return super()._forward(model_inputs, **generate_kwargs)
        outputs = self.model(input_ids=model_inputs["input_ids"], attention_mask=model_inputs["attention_mask"])
        return {"start_logits": outputs.start_logits, "end_logits": outputs.end_logits,
                **{key: model_inputs[key] for key in ("offset_mapping", "context", "is_empty")}}

    def postprocess(self, model_outputs, clean_up_tokenization_spaces=False, n_best_size=None, max_answer_length=None):
        if not self.reads_spans:
            return super().postprocess(model_outputs, clean_up_tokenization_spaces)
        if model_outputs["is_empty"]:
            return [{"answer": "", "score": 0.0, "start": 0, "end": 0}]  # nothing asked: nothing answered
        offsets = model_outputs["offset_mapping"]
        return best_answers([0] * len(offsets), offsets, model_outputs["start_logits"], model_outputs["end_logits"],
                            [model_outputs["context"]], n_best_size or self.task_params.get("n_best_size", 20),
                            max_answer_length or self.task_params.get("max_answer_length", 30))

    def __call__(self, inputs=None, question=None, context=None, **kwargs):
        if inputs is None:
            if question is None or context is None:
                raise ValueError("Give `question=` and `context=` (strings, or lists of the same length).")
            if isinstance(question, list) != isinstance(context, list) or (
                isinstance(question, list) and len(question) != len(context)
            ):
                raise ValueError("`question` and `context` must be two strings or two lists of the same length.")
            inputs = (
                [{"question": q, "context": c} for q, c in zip(question, context)]
                if isinstance(question, list)
                else {"question": question, "context": context}
            )
        result = super().__call__(inputs, **kwargs)
        if isinstance(inputs, dict) and len(result) == 1:
            return result[0]  # one question, one answer: a dict, as before
        return result

    def source_text(self, inputs) -> str:
        if not isinstance(inputs, dict) or not {"question", "context"} <= inputs.keys():
            raise ValueError(f"Each input is a dict with `question` and `context`, got {inputs!r:.80}.")
        if not (inputs["context"] or "").strip():
            raise ValueError("The context is empty: the answer has to come from it.")
        if not (inputs["question"] or "").strip():
            return ""
        return question_answering_input(inputs["question"], inputs["context"])
