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
- nothing: the built-in demonstration corpus (`hf_seq2seq.corpus`).
"""

import csv
import json
import logging
import os
from dataclasses import dataclass, field

from datasets import Dataset, DatasetDict, load_dataset

logger = logging.getLogger(__name__)

BUILTIN = "builtin"  # --dataset_name value for the generated demonstration corpus


@dataclass
class DataArguments:
    task: str = field(
        default="translation",
        metadata={"help": "What to train: translation, summarization, question-answering or text-classification."},
    )
    dataset_name: str | None = field(
        default=None,
        metadata={"help": f"Hub data set name or local data set folder for `load_dataset`, or `{BUILTIN}` for the "
                  "built-in demonstration corpus (the default when no file is given)."},
    )
    dataset_config_name: str | None = field(default=None, metadata={"help": "Data set configuration, e.g. `fr-en`."})
    dataset_label: str | None = field(
        default=None,
        metadata={"help": "How the model card names the data (a Hub id or a name); default: --dataset_name, or the "
                  "folder of --train_file."},
    )
    train_file: str | None = field(default=None, metadata={"help": "Training pairs: .json/.jsonl, .csv, .tsv, or train.en + train.fr."})
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
    max_train_samples: int | None = field(default=None, metadata={"help": "Use only the first N training pairs."})
    max_eval_samples: int | None = field(default=None, metadata={"help": "Use only the first N validation pairs."})
    max_predict_samples: int | None = field(default=None, metadata={"help": "Use only the first N test pairs."})
    preprocessing_num_workers: int | None = field(default=None, metadata={"help": "Processes for `datasets.map`."})
    builtin_train_size: int = field(default=40000, metadata={"help": "Training pairs of the built-in corpus."})


class DataError(ValueError):
    """Unusable input data. The message names the file, the line where it applies, and the fix."""


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


def _read_lines(path: str) -> list[str]:
    try:
        with open(path, encoding="utf-8") as f:
            return f.read().split("\n")
    except UnicodeDecodeError as error:
        raise DataError(f"{path!r} is not UTF-8 text ({error}). Convert it, e.g. `iconv -t utf-8`.") from None


def _load_plain_text(source: str, target: str, source_lang: str, target_lang: str) -> Dataset:
    src_lines, tgt_lines = _read_lines(source), _read_lines(target)
    for lines in (src_lines, tgt_lines):
        if lines and lines[-1] == "":
            lines.pop()  # the final newline
    if len(src_lines) != len(tgt_lines):
        raise DataError(
            f"{source!r} has {len(src_lines)} lines but {target!r} has {len(tgt_lines)}: line-aligned files must "
            "have one sentence per line on both sides."
        )
    rows = [{"translation": {source_lang: s.strip(), target_lang: t.strip()}} for s, t in zip(src_lines, tgt_lines)]
    return Dataset.from_list(rows)


def _load_tsv(path: str, source_lang: str, target_lang: str) -> Dataset:
    """`en<TAB>fr[<TAB>attribution...]`, one pair a line; lines without two columns are dropped and counted."""
    rows, malformed = [], []
    for number, line in enumerate(_read_lines(path), start=1):
        line = line.rstrip("\r")
        if not line.strip():
            continue
        columns = line.split("\t")
        if len(columns) < 2:
            malformed.append(number)
            continue
        rows.append({"translation": {source_lang: columns[0].strip(), target_lang: columns[1].strip()}})
    if malformed:
        logger.warning(
            "%s: skipped %d line(s) without a TAB between %s and %s (first at line %d).",
            path, len(malformed), source_lang, target_lang, malformed[0],
        )
    if not rows:
        raise DataError(
            f"{path!r} has no line of the form `{source_lang}<TAB>{target_lang}`"
            + (f" (line {malformed[0]} has no TAB)" if malformed else " (the file is empty)")
            + ". A TSV file needs the source sentence, a TAB, then the target sentence on each line."
        )
    return Dataset.from_list(rows)


def _check_translation_column(dataset: Dataset, path: str, source_lang: str, target_lang: str) -> Dataset:
    """Accept `{"translation": {...}}` or flat language columns; name the first bad row otherwise."""
    if "translation" not in dataset.column_names:
        missing = [lang for lang in (source_lang, target_lang) if lang not in dataset.column_names]
        if missing:
            raise DataError(
                f"{path}: no `translation` column and no column named {missing} (columns found: "
                f"{dataset.column_names}). Name the columns after the languages, or set --source_lang/--target_lang "
                "to the names used in the file."
            )
        return dataset.map(
            lambda row: {"translation": {source_lang: row[source_lang], target_lang: row[target_lang]}},
            remove_columns=dataset.column_names,
        )
    # The first records show a wrong language key; later gaps are dropped and counted by `drop_empty_pairs`
    # (scanning a WMT-sized column here would read all of it into memory).
    for index, pair in enumerate(dataset.select(range(min(len(dataset), 10_000)))["translation"]):
        if not isinstance(pair, dict) or pair.get(source_lang) is None or pair.get(target_lang) is None:
            keys = sorted(k for k, v in pair.items() if v is not None) if isinstance(pair, dict) else type(pair).__name__
            raise DataError(
                f"{path}, record {index + 1}: the translation has no {source_lang!r} or {target_lang!r} text "
                f"(it has {keys}). Set --source_lang/--target_lang to the language keys the data uses."
            )
    return dataset


def _read_json(path: str, **kwargs) -> Dataset:
    try:
        return load_dataset("json", data_files=path, split="train", **kwargs)
    except Exception as error:  # datasets raises several types for broken JSON
        raise DataError(f"{path!r} is not JSON lines ({type(error).__name__}: {str(error).splitlines()[0][:200]}).") from None


def read_table(path: str) -> Dataset:
    """Records with named columns: JSON lines (or a JSON list), CSV, or TSV with a header line (GLUE's layout).
    SQuAD's nested JSON (`data -> paragraphs -> qas`) becomes one record per question, in the Hub's flat layout."""
    _check_file(path)
    extension = os.path.splitext(path)[1].lower()
    if extension in (".json", ".jsonl"):
        if _is_squad_json(path):
            return read_squad_json(path)
        return _read_json(path)
    if extension in (".csv", ".tsv"):
        # GLUE's TSV files quote nothing: a `"` inside a sentence is text.
        options = {"delimiter": "\t", "quoting": csv.QUOTE_NONE} if extension == ".tsv" else {}
        try:
            return load_dataset("csv", data_files=path, split="train", **options)
        except Exception as error:
            raise DataError(f"{path!r} could not be read as {extension[1:].upper()} ({type(error).__name__}: "
                            f"{str(error).splitlines()[0][:200]}). It needs a header line naming the columns.") from None
    raise DataError(f"{path!r}: unknown file format {extension or '(no extension)'!r}. Use .json/.jsonl, .csv or .tsv "
                    "(with a header line).")


def _is_squad_json(path: str) -> bool:
    """SQuAD's official files are one JSON object `{"version": ..., "data": [articles]}`."""
    with open(path, encoding="utf-8") as f:
        start = f.read(4096).lstrip()
    return start.startswith("{") and '"data"' in start and ('"paragraphs"' in start or '"version"' in start)


def _squad_records(path: str, stamp: tuple):
    with open(path, encoding="utf-8") as f:
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


def read_squad_json(path: str) -> Dataset:
    """SQuAD v1.1's official layout -> the flat layout of `load_dataset("squad")`: `id, title, context, question,
    answers{text, answer_start}`, one row per question, built by a generator (Arrow on disk, not a Python list)."""
    try:
        # The file's size and time are part of the generator's arguments: datasets caches by them, so a changed file
        # is read again.
        return Dataset.from_generator(_squad_records, gen_kwargs={"path": path, "stamp": _stamp(path)})
    except (KeyError, TypeError, json.JSONDecodeError) as error:
        raise DataError(f"{path!r} is not in SQuAD's layout (data -> paragraphs -> context, qas -> question, answers): "
                        f"{type(error).__name__}: {error}.") from None


def _stamp(path: str) -> tuple:
    info = os.stat(path)
    return (os.path.abspath(path), info.st_size, info.st_mtime_ns)


def require_columns(dataset: Dataset, columns: dict[str, str], where: str) -> None:
    """`columns` maps a role ("text", "summary", ...) to the column name chosen for it; name what is missing."""
    missing = {role: name for role, name in columns.items() if name not in dataset.column_names}
    if missing:
        wanted = ", ".join(f"{name!r} ({role})" for role, name in missing.items())
        flags = ", ".join(f"--{role}_column" for role in missing)
        raise DataError(f"{where}: no column {wanted}; the columns are {dataset.column_names}. Name the right ones "
                        f"with {flags}.")


def load_file(path: str, source_lang: str, target_lang: str) -> Dataset:
    """One file (or line-aligned pair of files) -> a Dataset with a `translation` column."""
    pair = _plain_text_pair(path, source_lang, target_lang)
    if pair is not None:
        return _load_plain_text(*pair, source_lang, target_lang)
    _check_file(path)
    extension = os.path.splitext(path)[1].lower()
    if extension in (".json", ".jsonl"):
        try:
            dataset = load_dataset("json", data_files=path, split="train")
        except Exception as error:  # datasets raises several types for broken JSON
            raise DataError(
                f"{path!r} is not JSON lines ({type(error).__name__}: {str(error).splitlines()[0][:200]}). Each line "
                f'must be an object such as {{"translation": {{"{source_lang}": "...", "{target_lang}": "..."}}}}.'
            ) from None
        return _check_translation_column(dataset, path, source_lang, target_lang)
    if extension == ".csv":
        try:
            dataset = load_dataset("csv", data_files=path, split="train")
        except Exception as error:
            raise DataError(f"{path!r} could not be read as CSV ({type(error).__name__}: {error}).") from None
        return _check_translation_column(dataset, path, source_lang, target_lang)
    if extension in (".tsv", ".txt", ".tab"):
        return _load_tsv(path, source_lang, target_lang)
    raise DataError(
        f"{path!r}: unknown file format {extension or '(no extension)'!r}. Use .json/.jsonl (JSON lines), .csv, "
        f".tsv ({source_lang}<TAB>{target_lang}), or line-aligned `name.{source_lang}` + `name.{target_lang}` files."
    )


def load_raw_datasets(args: DataArguments) -> DatasetDict:
    """The splits named by the arguments, as {"train", "validation", "test"} (those that exist)."""
    files = {"train": args.train_file, "validation": args.validation_file, "test": args.test_file}
    if args.dataset_name not in (None, BUILTIN):
        raw = load_dataset(args.dataset_name, args.dataset_config_name)
        splits = DatasetDict({name: _check_translation_column(split, f"{args.dataset_name}[{name}]",
                                                              args.source_lang, args.target_lang)
                              for name, split in raw.items()})
    elif any(files.values()):
        splits = DatasetDict({name: load_file(path, args.source_lang, args.target_lang) for name, path in files.items() if path})
    else:
        from .corpus import generate_corpus

        if (args.source_lang, args.target_lang) != ("en", "fr"):
            raise DataError("The built-in corpus is English→French: use --source_lang en --target_lang fr, or give data.")
        corpus = generate_corpus(train_size=args.builtin_train_size)
        splits = DatasetDict({name: Dataset.from_list(rows) for name, rows in corpus.items()})

    limits = {"train": args.max_train_samples, "validation": args.max_eval_samples, "test": args.max_predict_samples}
    for name, limit in limits.items():
        if name in splits and limit is not None:
            splits[name] = splits[name].select(range(min(limit, len(splits[name]))))
    for name in list(splits):
        splits[name] = drop_empty_pairs(splits[name], args, name)
    return splits


def drop_empty_pairs(dataset: Dataset, args: DataArguments, name: str) -> Dataset:
    source, target = args.source_lang, args.target_lang
    kept = dataset.filter(
        lambda row: bool(row["translation"][source] and row["translation"][source].strip()
                         and row["translation"][target] and row["translation"][target].strip()),
        num_proc=args.preprocessing_num_workers,
        desc=f"Dropping empty pairs ({name})",
    )
    if len(kept) < len(dataset):
        logger.warning("%s: dropped %d pair(s) with an empty side.", name, len(dataset) - len(kept))
    if len(kept) == 0:
        raise DataError(f"The {name} split has no usable pair (all {len(dataset)} are empty on one side). Check the data.")
    return kept
