"""The uses of the encoder–decoder, and everything that differs between them, in one place.

`train.py --task NAME` takes its task from `TASKS`. A task says
- which data it reads: the columns of each common layout, and how a record becomes an example: `source` -> `target`
  text for the text-to-text tasks (translation, summarisation, question answering), `text` -> `label` for
  classification; which records are bad input;
- how an example is formatted and cut to length (translation drops over-long training pairs; the others truncate);
- which model it trains, how it is scored (metric), how it decodes (`generate()` defaults), which pipeline serves
  it, and what the model card says.
Everything else (the Trainer, the tokenizer, checkpoints, the time budget) is shared by train.py.
"""

import logging
from collections.abc import Callable, Iterator
from itertools import islice

import numpy as np
import pyarrow.compute as pc
import torch
from datasets import ClassLabel, Dataset, DatasetDict, Value
from transformers import (
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
    DataCollatorForSeq2Seq,
    DataCollatorWithPadding,
)

from . import data, metrics
from .denoising import DenoisingCollator
from .data import (
    BUILTIN_CORPORA,
    DataArguments,
    DataError,
    RunningCount,
    column_names,
    drop_unusable,
    first,
    head,
    is_stream,
    load_hub_dataset,
    load_raw_datasets,
    map_options,
    read_table,
    read_text_files,
    require_columns,
    streams,
)
from .inference import SPAN_DEFAULTS, answer_spans, classify, generate_texts
from .modeling_hf_seq2seq import (
    HFSeq2SeqForConditionalGeneration,
    HFSeq2SeqForQuestionAnswering,
    HFSeq2SeqForSequenceClassification,
)
from .pipeline_hf_seq2seq import (
    QuestionAnsweringPipeline,
    SummarizationPipeline,
    TranslationPipeline,
    best_answers,
    question_answering_input,
    question_answering_windows,
)

logger = logging.getLogger(__name__)


def count_true(dataset: Dataset, column: str) -> int:
    """How many rows of a boolean column are true, read from Arrow in batches (not as a Python list)."""
    batches = dataset.select_columns(column).with_format("arrow").iter(batch_size=100_000)
    return sum(pc.sum(batch[column]).as_py() or 0 for batch in batches)


class Task:
    name: str
    pipeline_tag: str  # the Hub's name for the task
    auto_class: type = AutoModelForSeq2SeqLM
    model_class: type = HFSeq2SeqForConditionalGeneration  # what auto_class builds; config.json's `architectures`
    pipeline_class: type | None = None  # our own pipeline (None: transformers' own serves the task)
    metric_loader: Callable = staticmethod(metrics.load_bleu_chrf)
    main_metric: str = "bleu"  # plotted against time; named `eval_<main_metric>` in the Trainer's metrics
    # (metric key, name on the model card) in the order the card lists them.
    card_metrics: tuple[tuple[str, str], ...] = ()
    sample_headers: tuple[str, ...] = ("input", "output", "reference")  # the model card's table of examples
    # DataArguments fields this task sets when they are not given.
    data_defaults: dict = {"max_source_length": 128, "max_target_length": 128}
    needs_mask_token: bool = False  # a new vocabulary gets BART's <mask> (denoising)
    read_file: Callable = staticmethod(read_table)  # a data file -> its records (a stream with streaming=True)
    preprocess_logits_for_metrics: Callable | None = None  # Trainer's hook: what of the logits compute_metrics needs

    def apply_defaults(self, args: DataArguments) -> None:
        for name, value in self.data_defaults.items():
            if getattr(args, name) is None:
                setattr(args, name, value)

    # --- data ---------------------------------------------------------------------------------------------------

    def load(self, args: DataArguments) -> DatasetDict:
        """The splits the arguments name ({"train", "validation", "test"}, those that exist), as examples. With
        --streaming, "train" is an IterableDataset: every step below applies to it lazily, as it is read."""
        files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
        if args.dataset_name in BUILTIN_CORPORA:
            raise DataError(f"--dataset_name {args.dataset_name} is English–French translation data; --task {self.name} "
                            "needs data of its own: give --train_file (and --validation_file) or --dataset_name.")
        if args.dataset_name is not None:
            raw = load_hub_dataset(args)
            splits = {name: self.examples(split, args, f"{args.dataset_name}[{name}]") for name, split in raw.items()}
        elif any(files.values()):
            splits = {name: self.examples(self.read_file(path, streams(args, name)), args, path)
                      for name, path in files.items() if path}
        else:
            raise DataError(f"--task {self.name} needs data: give --train_file (and --validation_file) or --dataset_name.")
        limits = {"train": args.max_train_samples, "validation": args.max_eval_samples, "test": args.max_predict_samples}
        for name, limit in limits.items():
            if name in splits and limit is not None:
                splits[name] = first(splits[name], limit)
        return DatasetDict({name: self.check(split, args, name) for name, split in splits.items()})

    def examples(self, raw: Dataset, args: DataArguments, where: str) -> Dataset:
        """Raw records of any supported layout -> this task's examples."""
        raise NotImplementedError

    def check(self, split: Dataset, args: DataArguments, name: str) -> Dataset:
        """Drop (and count) or reject bad examples of a split."""
        return split

    def builtin_corpus(self, args: DataArguments) -> str | None:
        """The package's corpus the arguments name, if this task trains on one (none by default)."""
        return None

    def showcase(self, model, tokenizer, args: DataArguments) -> list[tuple[str, str]]:
        """(input, output) for inputs of the task's own choosing, not from the data: shown at the end of training and
        on the model card. None by default."""
        return []

    def corpus(self, split: Dataset, max_examples: int | None = None) -> Iterator[str]:
        """The texts a new vocabulary is trained on, from the first `max_examples` examples (all: None)."""
        raise NotImplementedError

    @staticmethod
    def corpus_batches(split, max_examples: int | None = None, batch_size: int = 1000) -> Iterator[dict]:
        """The first `max_examples` examples of a Dataset or a stream, `batch_size` at a time: the texts are never
        one Python list. Logs how many examples were read once they all were."""
        batches = split.iter(batch_size=batch_size)
        if max_examples is not None:
            batches = islice(batches, -(-max_examples // batch_size))
        read = 0
        for batch in batches:
            if max_examples is not None:
                batch = {key: values[: max_examples - read] for key, values in batch.items()}
            read += len(next(iter(batch.values()), []))
            yield batch
        logger.info("Tokenizer training texts: the first %d training examples (--tokenizer_train_samples %s).",
                    read, max_examples)

    # --- model and training -------------------------------------------------------------------------------------

    def config_kwargs(self, splits: DatasetDict, args: DataArguments) -> dict:
        """Config fields a new model of this task needs (the labels of a classifier)."""
        return {}

    def collator(self, tokenizer, model):
        raise NotImplementedError

    def configure_training(self, training_args) -> None:
        """Adjust Seq2SeqTrainingArguments for this task."""

    def generation_config(self, model, tokenizer, training_args, args: DataArguments) -> dict | None:
        """`generate()` defaults for generation_config.json; None for a task that does not generate."""
        return None

    def pipeline_params(self, args: DataArguments) -> dict | None:
        """What the pipeline must do to an input as training did, saved in the config's `task_specific_params` under
        the pipeline's task (transformers' place for per-task settings); None: nothing."""
        return None

    # --- evaluating a trained model (`hf-seq2seq evaluate`) -----------------------------------------------------

    def test_set(self, args: DataArguments, model_config) -> tuple[list, list]:
        """(inputs, references) of `args.test_file`, for a trained model with config `model_config`."""
        raise NotImplementedError

    def predict(self, model, tokenizer, inputs: list, batch_size: int = 32, **generate_kwargs) -> list:
        """The model's outputs for `inputs`, as the metric takes them."""
        raise NotImplementedError

    def evaluate(self, model, tokenizer, args: DataArguments, batch_size: int = 32, **generate_kwargs) -> dict:
        """The card's metrics of a trained model on `args.test_file`, the metric's signatures where it has them
        (sacreBLEU's), and how many examples were scored."""
        inputs, references = self.test_set(args, model.config)
        predictions = self.predict(model, tokenizer, inputs, batch_size, **generate_kwargs)
        scores = self.metric_loader().compute(predictions=predictions, references=references)
        signatures = {key: value for key, value in scores.items() if key.endswith("_signature")}
        return {key: round(scores[key], 2) for key, _ in self.card_metrics} | signatures | {"examples": len(inputs)}

    # --- the model card -----------------------------------------------------------------------------------------

    def languages(self, args: DataArguments) -> list[str]:
        """The languages the model card lists."""
        return [args.source_lang]

    def title(self, args: DataArguments) -> str:
        """What the model card's heading calls the task."""
        return self.name

    def model_card_usage(self, model_id: str) -> str:
        raise NotImplementedError


# --- text to text -------------------------------------------------------------------------------------------------


class TextToTextTask(Task):
    """Examples are `source` -> `target` text; evaluation generates and scores against `target` (or several
    `references`)."""

    drop_long_training_pairs = False  # translation drops them; summarisers and readers truncate
    generation_defaults: dict = {}

    def check(self, split, args, name):
        def usable(sources, targets) -> list[bool]:
            return [bool(source.strip() and target.strip()) for source, target in zip(sources, targets)]

        return drop_unusable(split, usable, ["source", "target"], name, "example", "with an empty source or target",
                             args.preprocessing_num_workers)

    def corpus(self, split, max_examples=None):
        for batch in self.corpus_batches(split, max_examples):
            yield from batch["source"]
            yield from batch["target"]

    def tokenize(self, splits: DatasetDict, tokenizer, args: DataArguments) -> DatasetDict:
        """`input_ids`/`attention_mask` from `source`, `labels` from `target`, cut to the length limits: training
        pairs of translation that do not fit are dropped, everything else is truncated; both are counted."""
        eos = tokenizer.eos_token_id

        def cut(ids: list[int], limit: int) -> list[int]:
            # What the tokenizer's truncation does: keep the first tokens, end with </s>.
            return ids if len(ids) <= limit else ids[: limit - 1] + [eos]

        def encode(batch):
            sources = tokenizer(batch["source"])["input_ids"]
            targets = tokenizer(text_target=batch["target"])["input_ids"]
            long_source = [len(ids) > args.max_source_length for ids in sources]
            long_target = [len(ids) > args.max_target_length for ids in targets]
            sources = [cut(ids, args.max_source_length) for ids in sources]
            targets = [cut(ids, args.max_target_length) for ids in targets]
            return {"input_ids": sources, "attention_mask": [[1] * len(ids) for ids in sources], "labels": targets,
                    "long_source": long_source, "long_target": long_target}

        tokenized = DatasetDict()
        for name, split in splits.items():
            drop = name == "train" and self.drop_long_training_pairs
            if is_stream(split):
                tokenized[name] = split.map(self._encode_stream(encode, drop, name, args), batched=True,
                                            remove_columns=column_names(split))
                continue
            encoded = split.map(encode, batched=True, remove_columns=split.column_names,
                                num_proc=args.preprocessing_num_workers, desc=f"Tokenizing {name}")
            long_sources, long_targets = count_true(encoded, "long_source"), count_true(encoded, "long_target")
            if drop:
                kept = encoded.filter(lambda sources, targets: [not (s or t) for s, t in zip(sources, targets)],
                                      input_columns=["long_source", "long_target"], batched=True,
                                      num_proc=args.preprocessing_num_workers, desc="Dropping over-long pairs")
                if len(kept) < len(encoded):
                    logger.warning("train: dropped %d pair(s) longer than --max_source_length %d / --max_target_length %d "
                                   "tokens.", len(encoded) - len(kept), args.max_source_length, args.max_target_length)
                if len(kept) == 0:
                    raise DataError("No training pair fits --max_source_length/--max_target_length: raise them.")
                encoded = kept
            elif long_sources or long_targets:
                logger.warning("%s: truncated %d source(s) to --max_source_length %d and %d target(s) to "
                               "--max_target_length %d tokens.", name, long_sources, args.max_source_length,
                               long_targets, args.max_target_length)
            tokenized[name] = encoded.remove_columns(["long_source", "long_target"])
        return tokenized

    @staticmethod
    def _encode_stream(encode, drop: bool, name: str, args: DataArguments) -> Callable:
        """`encode` for a stream, which cannot be counted up front: over-long examples are dropped (or truncated)
        and counted as they are read."""
        limits = f"--max_source_length {args.max_source_length} / --max_target_length {args.max_target_length} tokens"
        over_long = RunningCount(f"{name}: {'dropped' if drop else 'truncated'} %d example(s) longer than {limits} so far.")

        def encode_stream(batch):
            encoded = encode(batch)
            too_long = [s or t for s, t in zip(encoded.pop("long_source"), encoded.pop("long_target"))]
            over_long.add(sum(too_long))
            if drop:
                encoded = {key: [v for v, cut in zip(values, too_long) if not cut] for key, values in encoded.items()}
            return encoded

        return encode_stream

    def collator(self, tokenizer, model):
        return DataCollatorForSeq2Seq(tokenizer, model=model, label_pad_token_id=-100)

    def pipeline_params(self, args):
        return {"prefix": args.source_prefix or "", "max_source_length": args.max_source_length}

    def generation_config(self, model, tokenizer, training_args, args):
        settings = dict(self.generation_defaults)
        if training_args.generation_num_beams is not None:
            settings["num_beams"] = training_args.generation_num_beams
        if training_args.generation_max_length is not None:
            settings.pop("max_new_tokens", None)
            settings["max_length"] = training_args.generation_max_length
        return settings

    # --- scoring ------------------------------------------------------------------------------------------------

    def compute_metrics(self, tokenizer, splits: DatasetDict, tokenized: DatasetDict) -> Callable:
        """`compute_metrics` for Seq2SeqTrainer: decode the generated ids and score them against the references."""
        metric = self.metric_loader()

        def compute(eval_preds):
            predictions = eval_preds.predictions[0] if isinstance(eval_preds.predictions, tuple) else eval_preds.predictions
            predictions = np.where(predictions != -100, predictions, tokenizer.pad_token_id)
            hypotheses = tokenizer.batch_decode(predictions, skip_special_tokens=True)
            scores = self.score(metric, hypotheses, self.references(eval_preds, tokenizer))
            lengths = [np.count_nonzero(row != tokenizer.pad_token_id) for row in predictions]
            return {**scores, "gen_len": round(float(np.mean(lengths)), 2)}

        return compute

    def references(self, eval_preds, tokenizer) -> list:
        """The reference of each evaluated row, decoded from its labels (so any evaluation order stays aligned)."""
        labels = np.where(eval_preds.label_ids != -100, eval_preds.label_ids, tokenizer.pad_token_id)
        return tokenizer.batch_decode(labels, skip_special_tokens=True)

    def test_set(self, args, model_config):
        examples = self.load(args)["test"]
        references = examples["references"] if "references" in examples.column_names else examples["target"]
        return list(examples["source"]), list(references)

    def predict(self, model, tokenizer, inputs, batch_size=32, **generate_kwargs):
        return generate_texts(model, tokenizer, inputs, batch_size=batch_size, **generate_kwargs)

    def score(self, metric, hypotheses: list[str], references: list) -> dict:
        scores = metric.compute(predictions=hypotheses, references=references)
        return {key: round(scores[key], 2) for key, _ in self.card_metrics}

    def samples(self, model, tokenizer, split: Dataset, n: int = 5) -> list[tuple[str, str, str]]:
        """(input, output, reference) for the model card."""
        rows = head(split, n)
        batch = tokenizer(list(rows["source"]), return_tensors="pt", padding=True, truncation=True,
                          max_length=model.config.max_position_embeddings).to(model.device)
        outputs = tokenizer.batch_decode(model.eval().generate(**batch), skip_special_tokens=True)
        return [(source, output, target) for source, output, target in zip(rows["source"], outputs, rows["target"])]


class TranslationTask(TextToTextTask):
    name = pipeline_tag = "translation"
    pipeline_class = TranslationPipeline
    main_metric = "bleu"
    card_metrics = (("bleu", "sacreBLEU"), ("chrf", "chrF"))
    sample_headers = ("source", "translation", "reference")
    drop_long_training_pairs = True
    # fairseq's source-length bound (the model's SourceLengthBound): at most 2 x the source's tokens + 10, which
    # every pair of Tatoeba and Multi30k (train and dev) fits, so that a confused model stops a few words after its
    # source instead of repeating itself to max_length. Chosen and timed in bench/README.md.
    generation_defaults = {"num_beams": 4, "max_length": 128, "max_len_a": 2.0, "max_len_b": 10}

    def load(self, args):
        # Parallel text has formats of its own (TSV without a header, line-aligned files) and a built-in corpus.
        pairs = load_raw_datasets(args)
        source, target = args.source_lang, args.target_lang
        return DatasetDict({
            name: split.map(lambda pairs: {"source": [p[source] for p in pairs], "target": [p[target] for p in pairs]},
                            input_columns="translation", batched=True, remove_columns=column_names(split),
                            **map_options(split, f"Reading {name}"))
            for name, split in pairs.items()
        })

    def check(self, split, args, name):
        return split  # load_raw_datasets dropped and counted the empty pairs

    def builtin_corpus(self, args):
        return data.builtin_corpus(args)  # the built-in corpora are English–French pairs

    def languages(self, args):
        return [args.source_lang, args.target_lang]

    def title(self, args):
        return f"{args.source_lang}→{args.target_lang} translation"

    # What a user first asks of a translator: everyday sentences. Of these, only "Where is the train station?" is in
    # Tatoeba's training split.
    showcase_sources = {("en", "fr"): (
        "The cat sleeps.", "Where is the train station?", "I like green tea very much.", "Can you help me, please?",
        "We are going to the beach tomorrow.", "My brother works in a hospital.", "I don't understand the question.",
        "She bought a new car last week.", "It's raining, so take your umbrella.", "The children are playing in the garden.",
    )}

    def showcase(self, model, tokenizer, args):
        sources = list(self.showcase_sources.get((args.source_lang, args.target_lang), ()))
        if not sources:
            return []
        batch = tokenizer(sources, return_tensors="pt", padding=True).to(model.device)
        return list(zip(sources, tokenizer.batch_decode(model.eval().generate(**batch), skip_special_tokens=True)))

    def model_card_usage(self, model_id):
        return (f'translator = pipeline("translation", model="{model_id}", trust_remote_code=True)\n'
                'print(translator("The cat sleeps.", num_beams=4))  # [{\'translation_text\': ...}]')


class SummarizationTask(TextToTextTask):
    name = pipeline_tag = "summarization"
    pipeline_class = SummarizationPipeline
    metric_loader = staticmethod(metrics.load_rouge)
    main_metric = "rouge1"
    card_metrics = (("rouge1", "ROUGE-1"), ("rouge2", "ROUGE-2"), ("rougeL", "ROUGE-L"), ("rougeLsum", "ROUGE-Lsum"))
    sample_headers = ("text", "summary", "reference")
    data_defaults = {"max_source_length": 512, "max_target_length": 128}
    # Usual names of the text and summary columns: DialogSum, XSum and the like, CNN/DailyMail, arXiv/PubMed.
    text_columns = ("dialogue", "document", "article", "text")
    summary_columns = ("summary", "highlights", "abstract")
    # Measured on DialogSum dev (bench/README.md): beam 4 is +2.1 ROUGE-1 over greedy; 96 new tokens hold 499 of the 500
    # dev references (64 would cut 20); length_penalty 0.6-1.5 and min_new_tokens 15 moved ROUGE by 0.2 or less, so
    # they stay unset; no repeated trigram changed nothing on a trained model and stops the loops of a weak one.
    generation_defaults = {"num_beams": 4, "max_new_tokens": 96, "no_repeat_ngram_size": 3}

    def examples(self, raw, args, where):
        columns = column_names(raw)
        text = args.text_column or next((c for c in self.text_columns if c in columns), self.text_columns[0])
        summary = args.summary_column or next((c for c in self.summary_columns if c in columns), self.summary_columns[0])
        require_columns(raw, {"text": text, "summary": summary}, where)
        prefix = args.source_prefix or ""
        return raw.map(lambda row: {"source": prefix + (row[text] or ""), "target": row[summary] or ""},
                       remove_columns=columns, **map_options(raw, f"Reading {where}"))

    def model_card_usage(self, model_id):
        return (f'summarizer = pipeline("summarization", model="{model_id}", trust_remote_code=True)\n'
                'print(summarizer("#Person1#: Shall we go out tonight?\\n#Person2#: Yes, to the cinema."))  '
                "# [{'summary_text': ...}]")


def question_answering_columns(raw, args: DataArguments, where: str) -> tuple[list[str], dict]:
    """(the columns `raw` has, its question/context/answer columns), the answers under `answers` (SQuAD, the Hub)
    or `answer`; a missing one is a DataError naming those that exist. Both readers read the same data."""
    found = column_names(raw)
    columns = {"question": args.question_column or "question", "context": args.context_column or "context",
               "answer": args.answer_column or ("answers" if "answers" in found else "answer")}
    require_columns(raw, columns, where)
    return found, columns


class QuestionAnsweringTask(TextToTextTask):
    """Generative question answering: `question: ... context: ...` -> the answer's text (as transformers'
    run_seq2seq_qa.py and T5 do). Scored with SQuAD's exact match and F1, against every reference answer."""

    name = pipeline_tag = "question-answering"
    pipeline_class = QuestionAnsweringPipeline
    metric_loader = staticmethod(metrics.load_squad)
    main_metric = "f1"
    card_metrics = (("exact_match", "Exact match"), ("f1", "F1"))
    sample_headers = ("input", "answer", "reference answers")
    data_defaults = {"max_source_length": 384, "max_target_length": 32}
    # 32 new tokens hold 99.2% of SQuAD's training answers (631 of 82,211 are longer). Beam settings are not tuned:
    # the one-hour model cannot answer yet (bench/README.md), so there is nothing on dev to tune them against.
    generation_defaults = {"num_beams": 4, "max_new_tokens": 32}

    def examples(self, raw, args, where):
        found, columns = question_answering_columns(raw, args, where)

        def example(row):
            answers = row[columns["answer"]]
            if isinstance(answers, dict):  # the Hub's layout: {"text": [...], "answer_start": [...]}
                answers = answers.get("text") or []
            elif isinstance(answers, str) or answers is None:
                answers = [answers] if answers else []
            answers = [a for a in answers if a and a.strip()]
            context = row[columns["context"]] or ""
            return {"source": question_answering_input(row[columns["question"]] or "", context),
                    "target": answers[0] if answers else "", "references": answers, "context_is_empty": not context.strip()}

        return raw.map(example, remove_columns=found, **map_options(raw, f"Reading {where}"))

    def check(self, split, args, name):
        if is_stream(split):  # the same rules, applied as the training questions are read
            def checked(row):
                if row["context_is_empty"] or not row["references"]:
                    problem = "has an empty context" if row["context_is_empty"] else "has no answer"
                    raise DataError(f"{name}: the question {row['source'][:200]!r} {problem}. Every training question "
                                    "needs the text its answer comes from and its answer: fix or remove such records.")
                return row

            return split.map(checked).remove_columns("context_is_empty")
        empty = list(split["context_is_empty"])
        if any(empty):
            raise DataError(f"{name}: question {empty.index(True) + 1} has an empty context. Every question needs the "
                            "text its answer comes from: fix or remove these records.")
        unanswered = [i for i, references in enumerate(split["references"]) if not references]
        if unanswered and name == "train":
            raise DataError(f"train: {len(unanswered)} question(s) have no answer (the first is record "
                            f"{unanswered[0] + 1}). A model learns to answer from answered questions: give each one its "
                            "answer text, or remove them.")
        if unanswered:  # nothing to score them against (SQuAD v1.1 answers every question)
            logger.warning("%s: left out %d question(s) without a reference answer.", name, len(unanswered))
            split = split.filter(lambda row: bool(row["references"]))
        return split.remove_columns("context_is_empty")

    def corpus(self, split, max_examples=None):
        seen = set()  # a context comes with several questions: count it once
        for batch in self.corpus_batches(split, max_examples):
            for source, target in zip(batch["source"], batch["target"]):
                question, _, context = source.partition(" context: ")
                yield question
                yield target
                if context not in seen:
                    seen.add(context)
                    yield context

    def configure_training(self, training_args):
        # Each question is scored against all its reference answers: compute_metrics finds them by the input ids.
        if "inputs" not in training_args.include_for_metrics:
            training_args.include_for_metrics = [*training_args.include_for_metrics, "inputs"]

    def compute_metrics(self, tokenizer, splits, tokenized):
        self._references = {}  # input ids -> reference answers (the same question twice: all answers of both)
        for name, split in tokenized.items():
            if name != "train":
                for ids, references in zip(split["input_ids"], splits[name]["references"]):
                    known = self._references.setdefault(tuple(ids), [])
                    known.extend(r for r in references if r not in known)
        return super().compute_metrics(tokenizer, splits, tokenized)

    def references(self, eval_preds, tokenizer):
        pad = tokenizer.pad_token_id
        return [self._references[tuple(int(t) for t in row if t not in (pad, -100))] for row in eval_preds.inputs]

    def samples(self, model, tokenizer, split, n=5):
        rows = head(split, n)
        return [(source, output, " | ".join(references)) for (source, output, _), references
                in zip(super().samples(model, tokenizer, rows, n), rows["references"])]

    def model_card_usage(self, model_id):
        return (f'reader = pipeline("question-answering", model="{model_id}", trust_remote_code=True)\n'
                'print(reader(question="Where is the cat?", context="The cat sleeps on the mat."))  '
                "# {'answer': ...}")


class ExtractiveQuestionAnsweringTask(Task):
    """Extractive question answering, as transformers' run_qa.py trains it: each question with its context, cut into
    overlapping windows (--max_seq_length, --doc_stride), labelled with the answer's first and last token in the
    window that holds it whole (a window without it points at its first token); a span reader
    (HFSeq2SeqForQuestionAnswering) learns to score them. Evaluation reads every window of a question and keeps the
    best span (--n_best_size, --max_answer_length; `best_answers`), scored with SQuAD's exact match and F1."""

    name = "extractive-question-answering"
    pipeline_tag = "question-answering"
    auto_class = AutoModelForQuestionAnswering
    model_class = HFSeq2SeqForQuestionAnswering
    pipeline_class = QuestionAnsweringPipeline
    metric_loader = staticmethod(metrics.load_squad)
    main_metric = "f1"
    card_metrics = (("exact_match", "Exact match"), ("f1", "F1"))
    sample_headers = ("question", "answer", "reference answers")
    data_defaults = {"max_source_length": 384, "max_target_length": 32, **SPAN_DEFAULTS}

    def examples(self, raw, args, where):
        found, columns = question_answering_columns(raw, args, where)

        def example(row):
            answers, context = row[columns["answer"]], row[columns["context"]] or ""
            if isinstance(answers, dict):  # the Hub's layout: {"text": [...], "answer_start": [...]}
                texts, starts = answers.get("text") or [], answers.get("answer_start") or []
            else:  # answer texts alone: found in the context
                texts, starts = ([answers] if isinstance(answers, str) else answers or []), []
            texts = [text for text in texts if text and text.strip()]
            starts = [start if 0 <= start and context[start : start + len(text)] == text else context.find(text)
                      for text, start in zip(texts, list(starts) + [-1] * len(texts))]
            return {"question": (row[columns["question"]] or "").strip(), "context": context, "references": texts,
                    "answer_start": starts}

        return raw.map(example, remove_columns=found, **map_options(raw, f"Reading {where}"))

    def check(self, split, args, name):
        if is_stream(split):
            raise DataError("--task extractive-question-answering reads its data into memory: --streaming is for the "
                            "text-to-text tasks.")
        empty = [not context.strip() for context in split["context"]]
        if any(empty):
            raise DataError(f"{name}: question {empty.index(True) + 1} has an empty context. Every question needs the "
                            "text its answer comes from: fix or remove these records.")
        located = [bool(references) and starts[0] >= 0 for references, starts in zip(split["references"], split["answer_start"])]
        if name == "train" and not any(located):
            raise DataError("train: no answer is found in its context. A span reader learns from answers that are "
                            "spans of their context: give each question its answer text (and answer_start).")
        if not all(located):
            what = "without an answer found in its context" if name == "train" else "without a reference answer"
            keep = located if name == "train" else [bool(r) for r in split["references"]]
            logger.warning("%s: left out %d question(s) %s.", name, len(keep) - sum(keep), what)
            split = split.select([i for i, kept in enumerate(keep) if kept])
        return split

    def corpus(self, split, max_examples=None):
        seen = set()  # a context comes with several questions: count it once
        for batch in self.corpus_batches(split, max_examples):
            for question, context in zip(batch["question"], batch["context"]):
                yield question
                if context not in seen:
                    seen.add(context)
                    yield context

    def pipeline_params(self, args):
        return {name: getattr(args, name) for name in SPAN_DEFAULTS}

    def tokenize(self, splits, tokenizer, args):
        self.span_params = self.pipeline_params(args)  # evaluation searches spans as the pipeline will

        def encode(batch):
            windows = question_answering_windows(tokenizer, batch["question"], batch["context"], args.max_seq_length,
                                                 args.doc_stride)
            starts, ends = [], []
            for offsets, example in zip(windows["offset_mapping"], windows["example_index"]):
                first_char = batch["answer_start"][example][0] if batch["references"][example] else -1
                last_char = first_char + len(batch["references"][example][0]) if first_char >= 0 else -1
                context = [(i, offset) for i, offset in enumerate(offsets) if offset is not None]
                if first_char < 0 or not (context[0][1][0] <= first_char and last_char <= context[-1][1][1]):
                    starts.append(0)  # the answer is not whole in this window
                    ends.append(0)
                    continue
                starts.append(max(i for i, offset in context if offset[0] <= first_char))
                ends.append(min(i for i, offset in context if offset[1] >= last_char))
            return {"input_ids": windows["input_ids"], "attention_mask": windows["attention_mask"],
                    "start_positions": starts, "end_positions": ends, "example_index": windows["example_index"],
                    "offset_mapping": windows["offset_mapping"]}

        tokenized = DatasetDict()
        for name, split in splits.items():
            if name == "train":  # in batches; the windows' example indices and offsets are for evaluation only
                tokenized[name] = split.map(encode, batched=True, remove_columns=split.column_names,
                                            num_proc=args.preprocessing_num_workers, desc="Windows of train")
                tokenized[name] = tokenized[name].remove_columns(["example_index", "offset_mapping"])
            else:  # one batch, so that example_index (counted within a batch) indexes the split
                tokenized[name] = split.map(encode, batched=True, batch_size=None, remove_columns=split.column_names,
                                            desc=f"Windows of {name}")
        return tokenized

    def collator(self, tokenizer, model):
        return DataCollatorWithPadding(tokenizer)

    def configure_training(self, training_args):
        training_args.predict_with_generate = False  # spans, not generated text
        # Evaluation may batch windows by length (group_by_length): compute_metrics finds each by its input ids.
        if "inputs" not in training_args.include_for_metrics:
            training_args.include_for_metrics = [*training_args.include_for_metrics, "inputs"]

    def compute_metrics(self, tokenizer, splits, tokenized):
        metric = self.metric_loader()
        evaluated = {name: split for name, split in tokenized.items() if name != "train"}

        def compute(eval_preds):
            rows = [[int(t) for t in row if t not in (tokenizer.pad_token_id, -100)] for row in eval_preds.inputs]
            # Which split this is: the one with as many windows; then each row's window, by its ids (equal windows
            # get equal scores, so which of them a row stands for does not matter).
            name = next(name for name, split in evaluated.items() if len(split) == len(rows))
            windows, examples = evaluated[name], splits[name]
            positions = {}
            for index, ids in enumerate(windows["input_ids"]):
                positions.setdefault(tuple(ids), []).append(index)
            order = [positions[tuple(ids)].pop() for ids in rows]
            start_logits, end_logits = ([None] * len(rows) for _ in range(2))
            for row, window in enumerate(order):
                start_logits[window] = eval_preds.predictions[0][row]
                end_logits[window] = eval_preds.predictions[1][row]
            answers = best_answers(windows["example_index"], windows["offset_mapping"], start_logits, end_logits,
                                   list(examples["context"]), self.span_params["n_best_size"],
                                   self.span_params["max_answer_length"])
            scores = metric.compute(predictions=[a["answer"] for a in answers], references=list(examples["references"]))
            return {key: round(scores[key], 2) for key, _ in self.card_metrics}

        return compute

    def test_set(self, args, model_config):
        examples = self.load(args)["test"]
        return [{"question": q, "context": c} for q, c in zip(examples["question"], examples["context"])], list(examples["references"])

    def predict(self, model, tokenizer, inputs, batch_size=32, **generate_kwargs):
        answers = answer_spans(model, tokenizer, [i["question"] for i in inputs], [i["context"] for i in inputs], batch_size)
        return [answer["answer"] for answer in answers]

    def samples(self, model, tokenizer, split, n=5):
        rows = head(split, n)
        answers = answer_spans(model.eval(), tokenizer, list(rows["question"]), list(rows["context"]))
        return [(question, answer["answer"], " | ".join(references))
                for question, answer, references in zip(rows["question"], answers, rows["references"])]

    def model_card_usage(self, model_id):
        return (f'reader = pipeline("question-answering", model="{model_id}", trust_remote_code=True)\n'
                'print(reader(question="Where is the cat?", context="The cat sleeps on the mat."))  '
                "# {'answer': ..., 'score': ..., 'start': ..., 'end': ...}")


# --- sentence -> label --------------------------------------------------------------------------------------------


class TextClassificationTask(Task):
    """Examples are `text` -> `label` (an index into the label names, which come from the data)."""

    name = pipeline_tag = "text-classification"
    auto_class = AutoModelForSequenceClassification
    model_class = HFSeq2SeqForSequenceClassification
    metric_loader = staticmethod(metrics.load_accuracy_f1)
    main_metric = "accuracy"
    card_metrics = (("accuracy", "Accuracy"), ("f1", "F1"))
    sample_headers = ("text", "predicted", "label")
    text_columns = ("sentence", "text")

    def examples(self, raw, args, where):
        text = args.text_column or next((c for c in self.text_columns if c in column_names(raw)), self.text_columns[0])
        label = args.label_column or "label"
        require_columns(raw, {"text": text, "label": label}, where)
        dataset = raw.select_columns([text, label])
        renames = {name: role for name, role in ((text, "text"), (label, "label")) if name != role}
        dataset = dataset.rename_columns(renames) if renames else dataset
        return dataset.map(lambda row: {"text": (row["text"] or "").strip()}, **map_options(dataset, f"Reading {where}"))

    def load(self, args):
        splits = super().load(args)
        if "train" not in splits:
            raise DataError("--task text-classification needs training data (--train_file or --dataset_name) to know "
                            "its labels.")
        train = splits["train"]
        if not is_stream(train):
            train_labels = set(train["label"])
            if len(train_labels) < 2:
                raise DataError(f"train: every example has the label {train_labels.pop()!r}. A classifier needs at "
                                "least two classes in its training data.")
        feature = (train.features or {}).get("label")
        if isinstance(feature, ClassLabel):  # the Hub's layout names its labels
            self.label_names = list(feature.names)
        elif args.class_names:
            self.label_names = [name.strip() for name in args.class_names.split(",")]
        elif is_stream(train):
            raise DataError("--streaming: a classifier's labels must be known before its training data is read. Name "
                            "them with --class_names (in the order of integer labels), or use a data set whose label "
                            "column is a ClassLabel.")
        else:  # the values themselves (integers in numeric order)
            self.label_names = [str(value) for value in sorted(train_labels)]
        return DatasetDict({name: self._label_ids(split, args, name) for name, split in splits.items()})

    def _label_ids(self, split: Dataset, args, name: str) -> Dataset:
        """Labels as indices into `label_names`; a value outside them is an error."""
        if isinstance((split.features or {}).get("label"), ClassLabel):
            return split.cast_column("label", Value("int64"))
        ids = {label: i for i, label in enumerate(self.label_names)}

        def label_id(value) -> int:
            # Integer labels with --class_names are indices into them; any other value is looked up by its text.
            if args.class_names and isinstance(value, int) and not isinstance(value, bool):
                return value if 0 <= value < len(ids) else -1
            return ids.get(str(value), -1)

        if is_stream(split):  # checked as the stream is read
            def label_ids(values):
                labels = [label_id(value) for value in values]
                if -1 in labels:
                    raise DataError(f"{name}: the label {values[labels.index(-1)]!r} is not among the labels "
                                    f"{self.label_names}. Fix the data, or name every label with --class_names.")
                return {"label": labels}

            return split.map(label_ids, input_columns="label", batched=True)
        values = list(split["label"])
        labels = [label_id(value) for value in values]
        if -1 in labels:
            bad = values[labels.index(-1)]
            raise DataError(f"{name}: the label {bad!r} (example {labels.index(-1) + 1}) is not among the labels "
                            f"{self.label_names}. Fix the data, or name every label with --class_names.")
        return split.remove_columns("label").add_column("label", labels)

    def check(self, split, args, name):
        return drop_unusable(split, lambda texts: [bool(text) for text in texts], "text", name, "example",
                             "with an empty text", args.preprocessing_num_workers)

    def corpus(self, split, max_examples=None):
        for batch in self.corpus_batches(split, max_examples):
            yield from batch["text"]

    def config_kwargs(self, splits, args):
        names = self.label_names
        return {"num_labels": len(names), "id2label": dict(enumerate(names)), "label2id": {n: i for i, n in enumerate(names)}}

    def tokenize(self, splits, tokenizer, args):
        def encode(batch):
            encoded = tokenizer(batch["text"], truncation=True, max_length=args.max_source_length)
            return {**encoded, "labels": batch["label"]}

        return DatasetDict({name: split.map(encode, batched=True, remove_columns=column_names(split),
                                            **map_options(split, f"Tokenizing {name}")) for name, split in splits.items()})

    def collator(self, tokenizer, model):
        return DataCollatorWithPadding(tokenizer)

    def configure_training(self, training_args):
        training_args.predict_with_generate = False  # a label, not a sentence

    def compute_metrics(self, tokenizer, splits, tokenized):
        metric = self.metric_loader()

        def compute(eval_preds):
            logits = eval_preds.predictions[0] if isinstance(eval_preds.predictions, tuple) else eval_preds.predictions
            scores = metric.compute(predictions=logits.argmax(-1), references=eval_preds.label_ids,
                                    num_labels=len(self.label_names))
            return {key: round(scores[key], 2) for key, _ in self.card_metrics}

        return compute

    def test_set(self, args, model_config):
        # The labels are the model's own (its names, or their indices), not those of training data read again.
        examples = self.examples(read_table(args.test_file), args, args.test_file)
        if args.max_predict_samples is not None:
            examples = first(examples, args.max_predict_samples)
        label2id = {str(name): i for name, i in model_config.label2id.items()}
        ids = {str(i): i for i in model_config.id2label} | label2id
        labels = list(examples["label"])
        references = [ids.get(str(label), -1) for label in labels]
        if -1 in references:
            raise DataError(f"the label {labels[references.index(-1)]!r} is not one of the model's labels "
                            f"{list(label2id)}.")
        return list(examples["text"]), references

    def predict(self, model, tokenizer, inputs, batch_size=32, **generate_kwargs):
        return [model.config.label2id[name] for name in classify(model, tokenizer, inputs, batch_size)]

    def samples(self, model, tokenizer, split, n=5):
        import torch

        rows = head(split, n)
        batch = tokenizer(list(rows["text"]), return_tensors="pt", padding=True).to(model.device)
        with torch.no_grad():
            predicted = model.eval()(**batch).logits.argmax(-1).tolist()
        names = model.config.id2label
        return [(text, names[p], names[label]) for text, p, label in zip(rows["text"], predicted, rows["label"])]

    def model_card_usage(self, model_id):
        return (f'classifier = pipeline("text-classification", model="{model_id}", trust_remote_code=True)\n'
                'print(classifier("A gripping, beautifully acted film."))  # [{\'label\': ..., \'score\': ...}]')


# --- plain text -> itself (pretraining) ---------------------------------------------------------------------------


def pack_passages(lines: list[list[int]], limit: int) -> list[list[int]]:
    """Consecutive lines (token ids) packed into passages of at most `limit` tokens: whole lines while they fit, a
    longer line cut into pieces of `limit` tokens. Every token is kept, in order."""
    passages, current = [], []
    for ids in lines:
        while len(ids) > limit:
            passages += [current] if current else []
            passages.append(ids[:limit])
            current, ids = [], ids[limit:]
        if current and len(current) + len(ids) > limit:
            passages.append(current)
            current = []
        current.extend(ids)
    return passages + [current] if current else passages


class DenoisingTask(Task):
    """BART's pretraining (Lewis et al., 2020) on plain text: passages of consecutive lines packed up to
    --max_source_length tokens, noised by `DenoisingCollator` (sentence permutation and text infilling, new noise
    each time a passage is batched), and restored by the encoder–decoder. Evaluation sets are noised once (the same
    noise at every evaluation): dev loss, and `restored`, the share of the tokens taken out that the model predicts
    exactly (teacher-forced, as BART's masked-token accuracy). The model then starts any other task
    (`--model_name_or_path`)."""

    name = "denoising"
    pipeline_tag = "text2text-generation"
    main_metric = "restored"
    card_metrics = (("restored", "Masked tokens restored (%)"), ("loss", "Loss"))
    sample_headers = ("noised passage", "restored", "passage")
    data_defaults = {"max_source_length": 256, "max_target_length": 256}
    needs_mask_token = True
    read_file = staticmethod(read_text_files)  # .txt/.txt.gz files, comma-separated
    evaluation_seed = 0  # the noise of evaluation sets, the same in every run

    def examples(self, raw, args, where):
        columns = column_names(raw)
        text = args.text_column or "text"
        if text not in columns:
            raise DataError(f"{where}: no column {text!r}; the columns are {columns}. Name the text with --text_column.")
        raw = raw.select_columns([text])
        if text != "text":
            raw = raw.rename_column(text, "text")
        # Blank lines (between paragraphs, at the end of a file) are no passages.
        return raw.filter(lambda texts: [bool(t and t.strip()) for t in texts], input_columns="text", batched=True,
                          **map_options(raw, f"Dropping blank lines ({where})"))

    def corpus(self, split, max_examples=None):
        for batch in self.corpus_batches(split, max_examples):
            yield from batch["text"]

    def tokenize(self, splits, tokenizer, args):
        if tokenizer.mask_token_id is None:
            raise DataError("--task denoising needs a vocabulary with a <mask> token: leave out --tokenizer_name (a new "
                            "vocabulary gets one) or name a tokenizer that has one.")
        limit = args.max_source_length - 1  # and </s>

        def passages(batch):
            lines = tokenizer(batch["text"], add_special_tokens=False)["input_ids"]
            return {"input_ids": [ids + [tokenizer.eos_token_id] for ids in pack_passages(lines, limit)]}

        tokenized = DatasetDict()
        for name, split in splits.items():
            packed = split.map(passages, batched=True, remove_columns=column_names(split),
                               **map_options(split, f"Packing {name} into passages", args.preprocessing_num_workers))
            if name != "train":  # noised once, here: the same noise at every evaluation
                noiser = DenoisingCollator(tokenizer, seed=self.evaluation_seed)

                def noised(ids):
                    source, masked = noiser.noise_with_mask(ids)
                    return {"input_ids": source, "attention_mask": [1] * len(source), "labels": ids, "masked": masked}

                packed = packed.map(noised, input_columns="input_ids", desc=f"Noising {name}")
            tokenized[name] = packed
        return tokenized

    def collator(self, tokenizer, model):
        return DenoisingCollator(tokenizer, seed=self.seed)

    def configure_training(self, training_args):
        training_args.predict_with_generate = False  # scored on the restored tokens, teacher-forced
        self.seed = training_args.seed if training_args.data_seed is None else training_args.data_seed
        # compute_metrics finds each evaluated row by its ids (evaluation may batch rows by length).
        if "inputs" not in training_args.include_for_metrics:
            training_args.include_for_metrics = [*training_args.include_for_metrics, "inputs"]

    def generation_config(self, model, tokenizer, training_args, args):
        return {"num_beams": training_args.generation_num_beams or 4, "max_new_tokens": args.max_source_length}

    def pipeline_params(self, args):
        return {"max_source_length": args.max_source_length}

    def passage_length(self, model, default: int) -> int:
        """The passage length the model was trained on (its saved settings), else `default`."""
        return (model.config.task_specific_params or {}).get(self.pipeline_tag, {}).get("max_source_length", default)

    @staticmethod
    def restored_counts(predicted: np.ndarray, target: np.ndarray, masked: np.ndarray) -> tuple[int, int]:
        """(masked tokens predicted exactly, masked tokens) of one passage; `predicted` may run past its end."""
        return int((predicted[: len(target)][masked] == target[masked]).sum()), int(masked.sum())

    @staticmethod
    def preprocess_logits_for_metrics(logits, labels):
        """The predicted token at each position: the share restored needs no more than that of the logits."""
        return (logits[0] if isinstance(logits, tuple) else logits).argmax(-1)

    def compute_metrics(self, tokenizer, splits, tokenized):
        masks = {}  # (noised ids, passage ids) -> which passage tokens were taken out
        for name, split in tokenized.items():
            if name != "train":
                for source, target, masked in zip(split["input_ids"], split["labels"], split["masked"]):
                    masks[(tuple(source), tuple(target))] = np.array(masked)

        def compute(eval_preds):
            restored = masked_total = 0
            for source, labels, predicted in zip(eval_preds.inputs, eval_preds.label_ids, eval_preds.predictions):
                source = source[(source != tokenizer.pad_token_id) & (source != -100)]
                target = labels[labels != -100]
                masked = masks[(tuple(source.tolist()), tuple(target.tolist()))]
                hits, count = self.restored_counts(predicted, target, masked)
                restored, masked_total = restored + hits, masked_total + count
            return {"restored": round(100 * restored / max(masked_total, 1), 2)}

        return compute

    @torch.inference_mode()
    def evaluate(self, model, tokenizer, args, batch_size=32, **generate_kwargs):
        """Loss and share restored on `args.test_file`, in passages of the length the model was trained on, noised as
        evaluation during training noises them."""
        args.max_source_length = self.passage_length(model, args.max_source_length)
        test = self.tokenize(DatasetDict({"test": self.load(args)["test"]}), tokenizer, args)["test"]
        collator, model = DenoisingCollator(tokenizer), model.eval()
        loss = tokens = restored = masked_total = 0
        for start in range(0, len(test), batch_size):
            rows = test.select(range(start, min(start + batch_size, len(test))))
            batch = collator([{"input_ids": s, "labels": t} for s, t in zip(rows["input_ids"], rows["labels"])])
            outputs = model(**batch)  # the loss as training reports it (label smoothing included)
            labelled = int((batch["labels"] != -100).sum())
            loss, tokens = loss + outputs.loss.item() * labelled, tokens + labelled
            for predicted, target, masked in zip(outputs.logits.argmax(-1).numpy(), rows["labels"], rows["masked"]):
                hits, count = self.restored_counts(predicted, np.array(target), np.array(masked))
                restored, masked_total = restored + hits, masked_total + count
        return {"restored": round(100 * restored / max(masked_total, 1), 2), "loss": round(loss / max(tokens, 1), 4),
                "examples": len(test)}

    def samples(self, model, tokenizer, split, n=5):
        """(noised passage, the model's restoration, passage) for the model card."""
        texts = list(head(split, n)["text"])
        passages = self.tokenize(DatasetDict({"samples": Dataset.from_dict({"text": texts})}), tokenizer,
                                 DataArguments(max_source_length=self.passage_length(model, self.data_defaults["max_source_length"])))["samples"]
        passages = passages.select(range(min(n, len(passages))))
        noised = [tokenizer.decode(ids[:-1]) for ids in passages["input_ids"]]
        outputs = generate_texts(model.eval(), tokenizer, noised)
        return [(source, output, tokenizer.decode(ids, skip_special_tokens=True))
                for source, output, ids in zip(noised, outputs, passages["labels"])]

    def title(self, args):
        return "denoising pretraining (BART's text infilling and sentence permutation)"

    def model_card_usage(self, model_id):
        return ("from transformers import AutoModelForSeq2SeqLM, AutoTokenizer\n\n"
                f'model = AutoModelForSeq2SeqLM.from_pretrained("{model_id}", trust_remote_code=True)\n'
                f'tokenizer = AutoTokenizer.from_pretrained("{model_id}")\n'
                'ids = model.generate(**tokenizer("The old man <mask> the letter and put it in his pocket.", '
                'return_tensors="pt"))\n'
                'print(tokenizer.decode(ids[0], skip_special_tokens=True))  # the sentence, the <mask> filled in')


TASKS: dict[str, type[Task]] = {
    task.name: task
    for task in (TranslationTask, SummarizationTask, QuestionAnsweringTask, ExtractiveQuestionAnsweringTask,
                 TextClassificationTask, DenoisingTask)
}


def get_task(name: str) -> Task:
    if name not in TASKS:
        raise ValueError(f"Unknown --task {name!r}; choose one of {sorted(TASKS)}.")
    return TASKS[name]()


def saved_model_task(config: dict) -> str:
    """The name of the task a saved model (its config.json, as a dict) was trained for: the pipeline the config
    names (`custom_pipelines`, which the text-to-text tasks write), else the first task whose model class it is
    (translation for an encoder–decoder without a pipeline, a Marian model's included)."""
    named = next(iter(config.get("custom_pipelines") or {}), None)
    architectures = config.get("architectures") or []
    # A head of its own names its task (a span reader's pipeline is question-answering, as a generative reader's).
    by_head = next((name for name, task in TASKS.items() if task.model_class is not HFSeq2SeqForConditionalGeneration
                    and task.model_class.__name__ in architectures), None)
    # A denoiser has no pipeline of its own: its settings name it.
    denoiser = DenoisingTask.name if DenoisingTask.pipeline_tag in (config.get("task_specific_params") or {}) else None
    return by_head or named or denoiser or next(
        (name for name, task in TASKS.items() if task.model_class.__name__ in architectures), TranslationTask.name)
