"""Reading data with `datasets`: the arguments every task shares, parallel text for translation, and tables (JSON
lines, CSV, TSV with a header, SQuAD's nested JSON) for the other tasks. `tasks.py` says which columns each task
reads; here are the formats.

Parallel text becomes rows `{"translation": {source_lang: ..., target_lang: ...}}`, the layout of the Hub's
translation data sets. Supported, with the argument names of transformers' `run_translation.py`:
- `--dataset_name NAME [--dataset_config_name CONFIG]`: `load_dataset(NAME, CONFIG)`, a Hub data set such as
  `wmt14 fr-en` or `opus_books en-fr`, or a local folder in the same layout;
- `--train_file/--validation_file/--test_file` with
  - `.json` / `.jsonl`: JSON lines `{"translation": {"en": ..., "fr": ...}}` (or flat `{"en": ..., "fr": ...}`),
  - `.csv`: a header naming the language columns (`en,fr`),
  - `.tsv` / `.txt` with tabs: `en<TAB>fr[<TAB>attribution]` (the Tatoeba / manythings.org export),
  - line-aligned plain text: `train.en` + `train.fr` (Multi30k, WMT releases), given as either file or as the
    common prefix `train`;
- nothing, or `--dataset_name builtin:tatoeba`: Tatoeba English–French, shipped with the package
  (`hf_seq2seq/corpora/tatoeba-en-fr`, CC BY 2.0 FR); `--dataset_name builtin:grammar`: the generated grammar corpus
  (`hf_seq2seq.corpus`), for tests and offline experiments.

Text files may be gzip-compressed (`train.tsv.gz`, `train.jsonl.gz`).

Files become Arrow tables on disk through `datasets`' builders (JSON, CSV) or generators read line by line (TSV, line-
aligned text, SQuAD), memory-mapped and cached: reading WMT14's 36 million pairs never holds them in Python lists.
With `--streaming` the training split is an `IterableDataset` instead, read as training goes; the evaluation splits,
small, are still read into Datasets.
"""

import csv
import gzip
import json
import logging
import os
from dataclasses import dataclass, field
from itertools import zip_longest

from datasets import (
    Dataset,
    DatasetDict,
    Features,
    IterableDataset,
    Value,
    interleave_datasets,
    load_dataset,
)
from datasets.exceptions import DatasetGenerationError

logger = logging.getLogger(__name__)

# The corpora that come with the package, by their --dataset_name. ("builtin:" cannot start a Hub id.)
BUILTIN_TATOEBA, BUILTIN_GRAMMAR = "builtin:tatoeba", "builtin:grammar"
TATOEBA_FOLDER = os.path.join(os.path.dirname(os.path.abspath(__file__)), "corpora", "tatoeba-en-fr")
BUILTIN_CORPORA = {
    # name: (how the model card names the data, what it says of its origin and licence)
    BUILTIN_TATOEBA: ("tatoeba-en-fr", "Tatoeba English–French (https://tatoeba.org, via www.manythings.org/anki), "
                      "CC BY 2.0 FR; shipped with hf_seq2seq: 150,535 training pairs, scored on its 8,152 dev pairs."),
    BUILTIN_GRAMMAR: ("hf_seq2seq-grammar-en-fr", "The English–French corpus that hf_seq2seq generates from a small "
                      "grammar: a demonstration, not a general translator."),
}


@dataclass
class DataArguments:
    task: str = field(
        default="translation",
        metadata={"help": "What to train: translation, summarization, question-answering (generated answers), "
                          "extractive-question-answering (spans), text-classification, or denoising (pretraining "
                          "on plain text)."},
    )
    dataset_name: str | None = field(
        default=None,
        metadata={"help": f"Hub data set name or local data set folder for `load_dataset`, or a corpus of the package: "
                  f"`{BUILTIN_TATOEBA}` (Tatoeba English–French, the default when no file is given) or "
                  f"`{BUILTIN_GRAMMAR}` (generated from a small grammar)."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Data set configuration, e.g. `fr-en`."})
    dataset_label: str | None = field(
        default=None,
        metadata={"help": "How the model card names the data (a Hub id or a name); default: --dataset_name, or the "
                  "folder of --train_file."},
    )
    train_file: str | None = field(
        default=None, metadata={"help": "Training pairs: .json/.jsonl, .csv, .tsv, or train.en + train.fr; for "
                                "denoising, .txt/.txt.gz files of plain text, comma-separated."}
    )
    validation_file: str | None = field(default=None, metadata={"help": "Validation pairs, same formats."})
    test_file: str | None = field(default=None, metadata={"help": "Test pairs, same formats."})
    source_lang: str = field(default="en", metadata={"help": "Source language code, as in the data (the language "
                                                      "of the text for the other tasks)."})
    target_lang: str = field(default="fr", metadata={"help": "Target language code, as in the data."})
    # Column names of transformers' run_summarization.py, run_seq2seq_qa.py and run_classification.py. Unset, the
    # task looks for the usual names (tasks.py).
    text_column: str | None = field(default=None, metadata={"help": "Column of the text to summarise or classify."})
    summary_column: str | None = field(default=None, metadata={"help": "Column of the reference summary."})
    question_column: str | None = field(default=None, metadata={"help": "Column of the question."})
    context_column: str | None = field(default=None, metadata={"help": "Column of the context the answer comes from."})
    answer_column: str | None = field(default=None, metadata={"help": "Column of the answer(s)."})
    label_column: str | None = field(default=None, metadata={"help": "Column of the label (classification)."})
    class_names: str | None = field(
        default=None,
        metadata={"help": "Names of integer labels 0, 1, ... in order, e.g. `negative,positive` (classification)."},
    )
    source_prefix: str | None = field(default=None, metadata={"help": "Text put before every source, e.g. `summarize: `."})
    max_source_length: int | None = field(
        default=None,
        metadata={"help": "Longest source in tokens (default per task: 128 for translation and classification, 512 "
                  "for summarisation, 384 for question answering). Longer training pairs are dropped for "
                  "translation; the other tasks truncate, as summarisers do."},
    )
    max_target_length: int | None = field(
        default=None, metadata={"help": "Longest target in tokens (default per task: 128; 32 for answers)."}
    )
    # Extractive question answering (--task extractive-question-answering), as transformers' run_qa.py names them.
    max_seq_length: int | None = field(
        default=None, metadata={"help": "Span reader: longest window of question + context in tokens (default 384)."}
    )
    doc_stride: int | None = field(
        default=None, metadata={"help": "Span reader: tokens two windows of a long context share (default 128)."}
    )
    n_best_size: int | None = field(
        default=None, metadata={"help": "Span reader: best starts and ends of each window searched (default 20)."}
    )
    max_answer_length: int | None = field(
        default=None, metadata={"help": "Span reader: longest answer in tokens (default 30)."}
    )
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training pairs."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation pairs."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test pairs."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for `datasets.map`."})
    builtin_train_size: int = field(default=40000, metadata={"help": f"Training pairs of `{BUILTIN_GRAMMAR}`."})
    streaming: bool = field(
        default=False,
        metadata={"help": "Read the training split as training goes (a `datasets.IterableDataset`): nothing is "
                  "converted or held up front. Needs --max_steps. Evaluation splits are still read in full. What a "
                  "stream drops or truncates is logged as it is read, not counted up front."},
    )
    shuffle_buffer_size: int = field(
        default=10_000,
        metadata={"help": "With --streaming: training examples are shuffled within a buffer of this many."},
    )


class DataError(ValueError):
    """Unusable input data. The message names the file, the line where it applies, and the fix."""


# --- Datasets and streams alike -------------------------------------------------------------------------------------


def is_stream(dataset) -> bool:
    return isinstance(dataset, IterableDataset)


def streams(args: DataArguments, split: str) -> bool:
    """Whether `split` is read as a stream: the training split, with --streaming."""
    return args.streaming and split == "train"


def map_options(dataset, desc: str, num_proc: int | None = None) -> dict:
    """The options of `Dataset.map`/`filter` that a stream has not: its functions run lazily, as rows are read."""
    return {} if is_stream(dataset) else {"desc": desc, "num_proc": num_proc}


def column_names(dataset) -> list[str]:
    """A stream read by a builder that infers its columns (CSV) or mapped without `features` does not know its
    columns before it is read: the first row tells."""
    if dataset.column_names is not None:
        return dataset.column_names
    row = next(iter(dataset.take(1)), None)
    if row is None:
        raise DataError("The training stream is empty. Check --train_file/--dataset_name.")
    return list(row)


def first(dataset, n: int):
    """The first `n` rows, lazily for a stream."""
    return dataset.take(n) if is_stream(dataset) else dataset.select(range(min(n, len(dataset))))


def head(dataset, n: int | None = None) -> Dataset:
    """The first `n` rows (all: None) as a Dataset, a stream's included."""
    if not is_stream(dataset):
        return dataset if n is None else first(dataset, n)
    return Dataset.from_list(list(dataset if n is None else dataset.take(n)), features=dataset.features)


def split_summary(splits) -> str:
    """`train 1000 examples, validation 100 examples`; a stream has no length until it is read."""
    return ", ".join(f"{name} streamed" if is_stream(split) else f"{name} {len(split)} examples"
                     for name, split in splits.items())


class RunningCount:
    """Counts what is dropped or cut from a stream, which has no length to count up front, and logs the count as it
    grows: at the 1st, 10th, 100th, ... time. `message` has one `%d`, the count so far."""

    def __init__(self, message: str):
        self.message, self.count, self.next_report = message, 0, 1

    def add(self, n: int = 1) -> None:
        self.count += n
        if self.count >= self.next_report:
            logger.warning(self.message, self.count)
            while self.next_report <= self.count:
                self.next_report *= 10


def counted(predicate, message: str):
    """A batched filter for a stream: keeps what `predicate` keeps, and logs how many it dropped as it goes."""
    dropped = RunningCount(message)

    def keep(*columns) -> list[bool]:
        flags = predicate(*columns)
        dropped.add(flags.count(False))
        return flags

    return keep


def drop_unusable(dataset, usable, input_columns, name: str, kind: str, flaw: str, num_proc: int | None = None):
    """The rows of split `name` that `usable` keeps (a batched predicate over `input_columns`, one flag a row), the
    others dropped and counted: as they are read from a stream, else once. A split left empty is a DataError.
    `kind` and `flaw` word the messages: "pair", "with an empty side" -> "dropped 3 pair(s) with an empty side"."""
    if is_stream(dataset):
        return dataset.filter(counted(usable, f"{name}: dropped %d {kind}(s) {flaw} so far."),
                              input_columns=input_columns, batched=True)
    kept = dataset.filter(usable, input_columns=input_columns, batched=True, num_proc=num_proc,
                          desc=f"Dropping {kind}s {flaw} ({name})")
    if len(kept) < len(dataset):
        logger.warning("%s: dropped %d %s(s) %s.", name, len(dataset) - len(kept), kind, flaw)
    if len(kept) == 0:
        raise DataError(f"The {name} split has no usable {kind}: all {len(dataset)} are {kind}s {flaw}. Check the data.")
    return kept


def check_streaming(args: DataArguments, training_args) -> None:
    """What training on a stream needs, checked before any data is read."""
    if not args.streaming:
        return
    if training_args.max_steps <= 0:
        raise DataError("--streaming reads the training data as training goes, so the length of an epoch is unknown: "
                        "set --max_steps to the number of optimizer steps to train.")
    if getattr(training_args, "max_tokens_per_batch", None):
        raise DataError("--max_tokens_per_batch sorts the whole training set by length before training, which a "
                        "stream does not allow: with --streaming, batch by --per_device_train_batch_size.")
    if builtin_corpus(args) == BUILTIN_GRAMMAR:
        raise DataError(f"--streaming reads --train_file or --dataset_name; {BUILTIN_GRAMMAR} is generated in memory.")
    # Under several processes each one reads the stream and pads its own batches: accelerate gives it every
    # num_processes-th batch (`IterableDatasetShard`) or its own shards of the data (`IterableDataset.shard`). Its
    # default for an IterableDataset, dispatch_batches=True, has process 0 read for all and concatenate the batches
    # of the processes, which fails for batches padded to different lengths.
    training_args.accelerator_config.dispatch_batches = False


def _stamp(path: str) -> tuple:
    info = os.stat(path)
    return (os.path.abspath(path), info.st_size, info.st_mtime_ns)


def _from_generator(generator, gen_kwargs: dict, streaming: bool = False, features: Features | None = None):
    """A Dataset (Arrow on disk, cached) or an IterableDataset of `generator(**gen_kwargs)`. datasets caches a Dataset
    by the generator's code and arguments: the arguments include each file's size and time (`_stamp`), so a changed
    file is read again."""
    if streaming:
        return IterableDataset.from_generator(generator, features=features, gen_kwargs=gen_kwargs)
    try:
        return Dataset.from_generator(generator, features=features, gen_kwargs=gen_kwargs)
    except DatasetGenerationError as error:  # datasets wraps what the generator raised: pass that on
        if error.__cause__ is not None:
            raise error.__cause__ from None
        raise


def _check_stream(dataset):
    """Read a stream's first row now, so that an unreadable or empty file is an error before training starts."""
    if is_stream(dataset):
        column_names(dataset)
    return dataset


# --- Parallel text ----------------------------------------------------------------------------------------------------


def file_extension(path: str) -> str:
    """`.tsv` for `train.tsv` and for `train.tsv.gz` (datasets' builders and `_lines` read gzip themselves)."""
    return os.path.splitext(path.removesuffix(".gz"))[1].lower()


def _check_file(path: str) -> None:
    if not os.path.isfile(path):
        raise DataError(f"Data file {path!r} does not exist. Check the path given to --train_file/--validation_file/--test_file.")


def _plain_text_pair(path: str, source_lang: str, target_lang: str) -> tuple[str, str] | None:
    """`train.en` or the prefix `train` -> (`train.en`, `train.fr`) when such line-aligned files exist."""
    stem, ext = os.path.splitext(path)
    if ext.lstrip(".") in (source_lang, target_lang):
        prefix = stem
    elif not os.path.isfile(path):
        prefix = path
    else:
        return None
    source, target = f"{prefix}.{source_lang}", f"{prefix}.{target_lang}"
    if os.path.isfile(source) and os.path.isfile(target):
        return source, target
    if ext.lstrip(".") in (source_lang, target_lang):
        missing = target if os.path.isfile(source) else source
        raise DataError(f"{path!r} looks like line-aligned text, but its partner {missing!r} does not exist.")
    return None


def _lines(path: str):
    """The lines of a UTF-8 file (gzip-compressed if its name ends in .gz), one at a time, split as Python's text files
    split them ("\n", "\r\n", or an old Mac "\r"). Read as bytes so that an encoding error names its line."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
        for number, line in enumerate(f, start=1):
            try:
                text = line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise DataError(f"{path!r} is not UTF-8 text (line {number}: {error}). Convert it, e.g. "
                                "`iconv -t utf-8`.") from None
            yield from text.removesuffix("\n").removesuffix("\r").split("\r")


def _translation_features(source_lang: str, target_lang: str) -> Features:
    return Features({"translation": {source_lang: Value("string"), target_lang: Value("string")}})


def _aligned_rows(source: str, target: str, stamps: tuple, source_lang: str, target_lang: str):
    """Line i of `source` and line i of `target`, read in lockstep; `stamps` only keys the cache."""
    source_lines, target_lines = _lines(source), _lines(target)
    count = 0
    for count, (src, tgt) in enumerate(zip_longest(source_lines, target_lines), start=1):
        if src is None or tgt is None:  # one file ended first: count the rest of the other for the message
            longer = count + sum(1 for _ in (target_lines if src is None else source_lines))
            lengths = (count - 1, longer) if src is None else (longer, count - 1)
            raise DataError(
                f"{source!r} has {lengths[0]} lines but {target!r} has {lengths[1]}: line-aligned files must have one "
                "sentence per line on both sides."
            )
        yield {"translation": {source_lang: src.strip(), target_lang: tgt.strip()}}
    if not count:
        raise DataError(f"{source!r} and {target!r} are empty: line-aligned files need one sentence per line.")


def _tsv_rows(path: str, stamp: tuple, source_lang: str, target_lang: str, streaming: bool = False):
    """`en<TAB>fr[<TAB>attribution...]`, one pair a line; lines without two columns are skipped and counted (as they
    come too, when streaming: a stream may never reach the end of the file)."""
    rows, skipped, first_skipped, running = 0, 0, None, None
    for number, line in enumerate(_lines(path), start=1):
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2:
            skipped += 1
            if first_skipped is None:
                first_skipped = number
                running = RunningCount(f"{path}: skipped %d line(s) without a TAB so far (first at line {number}).")
            if streaming:
                running.add()
            continue
        rows += 1
        yield {"translation": {source_lang: columns[0].strip(), target_lang: columns[1].strip()}}
    if skipped:
        logger.warning("%s: skipped %d line(s) without a TAB between %s and %s (first at line %d).",
                       path, skipped, source_lang, target_lang, first_skipped)
    if not rows:
        raise DataError(
            f"{path!r} has no line of the form `{source_lang}<TAB>{target_lang}`"
            + (f" (line {first_skipped} has no TAB)" if skipped else " (the file is empty)")
            + ". A TSV file needs the source sentence, a TAB, then the target sentence on each line."
        )


def _load_plain_text(source: str, target: str, source_lang: str, target_lang: str, streaming: bool = False):
    gen_kwargs = {"source": source, "target": target, "stamps": (_stamp(source), _stamp(target)),
                  "source_lang": source_lang, "target_lang": target_lang}
    return _from_generator(_aligned_rows, gen_kwargs, streaming, _translation_features(source_lang, target_lang))


def _load_tsv(path: str, source_lang: str, target_lang: str, streaming: bool = False):
    gen_kwargs = {"path": path, "stamp": _stamp(path), "source_lang": source_lang, "target_lang": target_lang,
                  "streaming": streaming}
    return _from_generator(_tsv_rows, gen_kwargs, streaming, _translation_features(source_lang, target_lang))


def _check_translation_column(dataset, path: str, source_lang: str, target_lang: str):
    """Accept `{"translation": {...}}` or flat language columns; name the first bad row otherwise."""
    columns = column_names(dataset)
    if "translation" not in columns:
        missing = [lang for lang in (source_lang, target_lang) if lang not in columns]
        if missing:
            raise DataError(
                f"{path}: no `translation` column and no column named {missing} (columns found: "
                f"{columns}). Name the columns after the languages, or set --source_lang/--target_lang "
                "to the names used in the file."
            )
        return dataset.map(
            lambda batch: {"translation": [{source_lang: s, target_lang: t}
                                           for s, t in zip(batch[source_lang], batch[target_lang])]},
            batched=True, remove_columns=columns,
        )
    # The first records show a wrong language key; later gaps are dropped and counted by `drop_empty_pairs`
    # (scanning a WMT-sized column here would read all of it into memory).
    for index, row in enumerate(first(dataset.select_columns("translation"), 10_000)):
        pair = row["translation"]
        if not isinstance(pair, dict) or pair.get(source_lang) is None or pair.get(target_lang) is None:
            keys = sorted(k for k, v in pair.items() if v is not None) if isinstance(pair, dict) else type(pair).__name__
            raise DataError(
                f"{path}, record {index + 1}: the translation has no {source_lang!r} or {target_lang!r} text "
                f"(it has {keys}). Set --source_lang/--target_lang to the language keys the data uses."
            )
    return dataset


# --- Tables -----------------------------------------------------------------------------------------------------------


def _read_json(path: str, streaming: bool = False, **kwargs):
    try:
        return _check_stream(load_dataset("json", data_files=path, split="train", streaming=streaming, **kwargs))
    except Exception as error:  # datasets raises several types for broken JSON
        raise DataError(f"{path!r} is not JSON lines ({type(error).__name__}: {str(error).splitlines()[0][:200]}).") from None


def read_table(path: str, streaming: bool = False):
    """Records with named columns: JSON lines (or a JSON list), CSV, or TSV with a header line (GLUE's layout).
    SQuAD's nested JSON (`data -> paragraphs -> qas`) becomes one record per question, in the Hub's flat layout.
    With `streaming`, an IterableDataset read as it is iterated."""
    _check_file(path)
    extension = file_extension(path)
    if extension in (".json", ".jsonl"):
        if _is_squad_json(path):
            return read_squad_json(path, streaming)
        return _read_json(path, streaming)
    if extension in (".csv", ".tsv"):
        # GLUE's TSV files quote nothing: a `"` inside a sentence is text.
        options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if extension == ".tsv" else {}
        try:
            return _check_stream(load_dataset("csv", data_files=path, split="train", streaming=streaming, **options))
        except Exception as error:
            raise DataError(f"{path!r} could not be read as {extension[1:].upper()} ({type(error).__name__}: "
                            f"{str(error).splitlines()[0][:200]}). It needs a header line naming the columns.") from None
    raise DataError(f"{path!r}: unknown file format {extension or '(no extension)'!r}. Use .json/.jsonl, .csv or .tsv "
                    "(with a header line).")


def read_text_files(paths: str, streaming: bool = False):
    """Plain text, one passage (paragraph, document) a line: one or more `.txt` / `.txt.gz` files, comma-separated,
    as one split with a `text` column (datasets' `text` builder; with `streaming`, read as it is iterated)."""
    files = [path.strip() for path in paths.split(",") if path.strip()]
    for path in files:
        _check_file(path)
        if file_extension(path) != ".txt":
            raise DataError(f"{path!r}: plain text for denoising is a .txt or .txt.gz file, one passage a line.")
    if not streaming or len(files) == 1:
        return _check_stream(load_dataset("text", data_files=files, split="train", streaming=streaming))
    # A stream reads its files one after the other: a run that stops before the end of the first would never see
    # the others. Interleave them instead, a line of each at random in proportion to its size.
    sizes = [_text_size(path) for path in files]
    streams_ = [load_dataset("text", data_files=path, split="train", streaming=True) for path in files]
    return _check_stream(interleave_datasets(streams_, probabilities=[size / sum(sizes) for size in sizes], seed=0,
                                             stopping_strategy="all_exhausted"))


def _text_size(path: str) -> int:
    """Bytes of text in a file; for gzip, the uncompressed size its trailer records (modulo 4 GiB)."""
    if not path.endswith(".gz"):
        return os.path.getsize(path)
    with open(path, "rb") as f:
        f.seek(-4, os.SEEK_END)
        return int.from_bytes(f.read(4), "little") or 1


def _is_squad_json(path: str) -> bool:
    """SQuAD's official files are one JSON object `{"version": ..., "data": [articles]}`."""
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
        start = f.read(4096).lstrip()
    return start.startswith("{") and '"data"' in start and ('"paragraphs"' in start or '"version"' in start)


def _squad_records(path: str, stamp: tuple):
    with (gzip.open if path.endswith(".gz") else open)(path, "rt", encoding="utf-8") as f:
        articles = json.load(f)["data"]
    for article in articles:
        for paragraph in article["paragraphs"]:
            for qa in paragraph["qas"]:
                answers = qa.get("answers", [])
                yield {
                    "id": str(qa.get("id", "")),
                    "title": article.get("title", ""),
                    "context": paragraph["context"],
                    "question": qa["question"],
                    "answers": {"text": [a["text"] for a in answers], "answer_start": [a.get("answer_start", -1) for a in answers]},
                }


def read_squad_json(path: str, streaming: bool = False):
    """SQuAD v1.1's official layout -> the flat layout of `load_dataset("squad")`: `id, title, context, question,
    answers{text, answer_start}`, one row per question, built by a generator (Arrow on disk, not a Python list)."""
    try:
        return _check_stream(_from_generator(_squad_records, {"path": path, "stamp": _stamp(path)}, streaming))
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise DataError(f"{path!r} is not in SQuAD's layout (data -> paragraphs -> context, qas -> question, answers): "
                        f"{type(error).__name__}: {error}.") from None


def require_columns(dataset, columns: dict[str, str], where: str) -> None:
    """`columns` maps a role ("text", "summary", ...) to the column name chosen for it; name what is missing."""
    found = column_names(dataset)
    missing = {role: name for role, name in columns.items() if name not in found}
    if missing:
        wanted = ", ".join(f"{name!r} ({role})" for role, name in missing.items())
        flags = ", ".join(f"--{role}_column" for role in missing)
        raise DataError(f"{where}: no column {wanted}; the columns are {found}. Name the right ones "
                        f"with {flags}.")


def load_hub_dataset(args: DataArguments) -> dict:
    """`load_dataset(--dataset_name, --dataset_config_name)`, split by split. With --streaming the training split is
    a stream and the evaluation splits, small, are read from their streams into Datasets: `load_dataset(name,
    split="validation")` would download and prepare every split, the training one included."""
    if not args.streaming:
        return dict(load_dataset(args.dataset_name, args.dataset_config_name))
    splits = load_dataset(args.dataset_name, args.dataset_config_name, streaming=True)
    return {name: split if streams(args, name) else head(split) for name, split in splits.items()}


def load_file(path: str, source_lang: str, target_lang: str, streaming: bool = False):
    """One file (or line-aligned pair of files) -> a Dataset with a `translation` column (an IterableDataset with
    `streaming`)."""
    pair = _plain_text_pair(path, source_lang, target_lang)
    if pair is not None:
        return _check_stream(_load_plain_text(*pair, source_lang, target_lang, streaming))
    _check_file(path)
    extension = file_extension(path)
    if extension in (".json", ".jsonl"):
        try:
            dataset = _check_stream(load_dataset("json", data_files=path, split="train", streaming=streaming))
        except Exception as error:  # datasets raises several types for broken JSON
            raise DataError(
                f"{path!r} is not JSON lines ({type(error).__name__}: {str(error).splitlines()[0][:200]}). Each line "
                f'must be an object such as {{"translation": {{"{source_lang}": "...", "{target_lang}": "..."}}}}.'
            ) from None
        return _check_translation_column(dataset, path, source_lang, target_lang)
    if extension == ".csv":
        try:
            dataset = _check_stream(load_dataset("csv", data_files=path, split="train", streaming=streaming))
        except Exception as error:
            raise DataError(f"{path!r} could not be read as CSV ({type(error).__name__}: {error}).") from None
        return _check_translation_column(dataset, path, source_lang, target_lang)
    if extension in (".tsv", ".txt", ".tab"):
        return _check_stream(_load_tsv(path, source_lang, target_lang, streaming))
    raise DataError(
        f"{path!r}: unknown file format {extension or '(no extension)'!r}. Use .json/.jsonl (JSON lines), .csv, "
        f".tsv ({source_lang}<TAB>{target_lang}), or line-aligned `name.{source_lang}` + `name.{target_lang}` files."
    )


def load_raw_datasets(args: DataArguments) -> DatasetDict:
    """The splits named by the arguments, as {"train", "validation", "test"} (those that exist); with --streaming,
    "train" is an IterableDataset."""
    files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
    builtin = builtin_corpus(args)
    if builtin is not None:
        if (args.source_lang, args.target_lang) != ("en", "fr"):
            raise DataError(f"{builtin} is English→French: use --source_lang en --target_lang fr, or give data.")
        splits = load_builtin(builtin, args)
        # Files given beside a built-in corpus add or replace their splits (e.g. a test file of your own).
        splits.update({name: load_file(path, args.source_lang, args.target_lang) for name, path in files.items() if path})
    elif args.dataset_name is not None:
        splits = {name: _check_translation_column(split, f"{args.dataset_name}[{name}]", args.source_lang, args.target_lang)
                  for name, split in load_hub_dataset(args).items()}
    else:
        splits = {name: load_file(path, args.source_lang, args.target_lang, streams(args, name))
                  for name, path in files.items() if path}

    limits = {"train": args.max_train_samples, "validation": args.max_eval_samples, "test": args.max_predict_samples}
    for name, limit in limits.items():
        if name in splits and limit is not None:
            splits[name] = first(splits[name], limit)
    return DatasetDict({name: drop_empty_pairs(split, args, name) for name, split in splits.items()})


def builtin_corpus(args: DataArguments) -> str | None:
    """The package's corpus that the arguments name: `--dataset_name builtin:...`, or Tatoeba when no data is given."""
    if args.dataset_name is None:
        return None if any((args.train_file, args.validation_file, args.test_file)) else BUILTIN_TATOEBA
    if args.dataset_name.startswith("builtin:") and args.dataset_name not in BUILTIN_CORPORA:
        raise DataError(f"--dataset_name {args.dataset_name}: no such built-in corpus; there are "
                        f"{', '.join(BUILTIN_CORPORA)}.")
    return args.dataset_name if args.dataset_name in BUILTIN_CORPORA else None


def load_builtin(name: str, args: DataArguments) -> dict:
    """Tatoeba's train and dev files (dev as the validation split), or the generated grammar corpus."""
    if name == BUILTIN_TATOEBA:
        return {"train": load_file(os.path.join(TATOEBA_FOLDER, "train.tsv.gz"), "en", "fr", streams(args, "train")),
                "validation": load_file(os.path.join(TATOEBA_FOLDER, "dev.tsv.gz"), "en", "fr")}
    from .corpus import generate_corpus

    return {name: Dataset.from_list(rows) for name, rows in generate_corpus(train_size=args.builtin_train_size).items()}


def drop_empty_pairs(dataset, args: DataArguments, name: str):
    source, target = args.source_lang, args.target_lang

    def usable(pairs) -> list[bool]:
        return [bool(p[source] and p[source].strip() and p[target] and p[target].strip()) for p in pairs]

    return drop_unusable(dataset, usable, "translation", name, "pair", "with an empty side", args.preprocessing_num_workers)
