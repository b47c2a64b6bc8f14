"""Every data format train.py reads, and a clear message for every kind of bad input."""

import json
import os

import pytest
from datasets import Dataset, DatasetDict

from hf_seq2seq.corpus import NOUNS, generate_corpus, held_out_pairs
from hf_seq2seq.data import DataArguments, DataError, load_file, load_raw_datasets
from hf_seq2seq.tasks import get_task
from hf_seq2seq.vocabulary import train_tokenizer

PAIRS = [("The cat sleeps.", "Le chat dort."), ("I saw two birds.", "J'ai vu deux oiseaux.")]


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def as_pairs(dataset):
    return [(row["en"], row["fr"]) for row in dataset["translation"]]


def test_reads_every_format(tmp_path):
    jsonl = write(tmp_path / "d.jsonl", "".join(json.dumps({"translation": {"en": e, "fr": f}}) + "\n" for e, f in PAIRS))
    flat = write(tmp_path / "flat.json", "".join(json.dumps({"en": e, "fr": f}) + "\n" for e, f in PAIRS))
    csv = write(tmp_path / "d.csv", "en,fr\n" + "".join(f'"{e}","{f}"\n' for e, f in PAIRS))
    tsv = write(tmp_path / "d.tsv", "".join(f"{e}\t{f}\tCC-BY 2.0 (France) Attribution: tatoeba.org\n" for e, f in PAIRS))
    write(tmp_path / "train.en", "".join(e + "\n" for e, _ in PAIRS))
    write(tmp_path / "train.fr", "".join(f + "\n" for _, f in PAIRS))
    for path in (jsonl, flat, csv, tsv, str(tmp_path / "train.en"), str(tmp_path / "train")):
        assert as_pairs(load_file(path, "en", "fr")) == PAIRS, path


def test_hub_layout_through_load_dataset(tmp_path):
    """`--dataset_name` goes through `load_dataset(name, config)`: here a local data set in the Hub's layout."""
    DatasetDict({
        "train": Dataset.from_list([{"translation": {"en": e, "fr": f}} for e, f in PAIRS]),
        "validation": Dataset.from_list([{"translation": {"en": "Hello.", "fr": "Bonjour."}}]),
    }).save_to_disk(tmp_path / "saved")
    # A Hub data set repository holds data files per split; write the same as parquet files.
    os.makedirs(tmp_path / "hub" / "data")
    for split in ("train", "validation"):
        Dataset.load_from_disk(tmp_path / "saved" / split).to_parquet(tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet")
    splits = load_raw_datasets(DataArguments(dataset_name=str(tmp_path / "hub")))
    assert as_pairs(splits["train"]) == PAIRS and len(splits["validation"]) == 1


def test_reads_the_shared_real_data(shared_data):
    tatoeba = load_file(os.path.join(shared_data, "tatoeba-en-fr", "dev.tsv"), "en", "fr")
    assert len(tatoeba) == 8152
    multi30k = load_file(os.path.join(shared_data, "multi30k-en-fr", "val.en"), "en", "fr")
    assert len(multi30k) == 1014 and multi30k[0]["translation"]["fr"]


def test_filters_empty_malformed_and_overlong_with_counts(tmp_path, caplog):
    tsv = write(tmp_path / "t.tsv", "A.\tUn.\n\nno tab here\nB.\t \n" + "C c c c c c c c c c c c.\tD d d d d d d d d d d d.\nE.\tE.\n")
    args = DataArguments(train_file=tsv, max_source_length=6, max_target_length=6)
    task = get_task("translation")
    with caplog.at_level("WARNING"):
        splits = task.load(args)
        tokenizer = train_tokenizer(task.corpus(splits["train"]), vocab_size=300)
        tokenized = task.tokenize(splits, tokenizer, args)
    log = caplog.text
    assert "skipped 1 line(s) without a TAB" in log and "line 3" in log
    assert "dropped 1 pair(s) with an empty side" in log
    assert "dropped 1 pair(s) longer than --max_source_length 6" in log
    assert len(tokenized["train"]) == 2


@pytest.mark.parametrize(
    "name, content, message",
    [
        ("missing.tsv", None, "does not exist"),
        ("empty.tsv", "", "has no line of the form `en<TAB>fr` (the file is empty)"),
        ("notabs.tsv", "just english\nmore english\n", "line 1 has no TAB"),
        ("wrong.xml", "<xml/>", "unknown file format '.xml'"),
        ("broken.jsonl", '{"translation": {"en": "a", "fr": "b"}}\n{not json\n', "is not JSON lines"),
        ("keys.jsonl", '{"translation": {"en": "a", "fr": "b"}}\n{"translation": {"en": "a", "de": "b"}}\n',
         "record 2: the translation has no 'en' or 'fr' text"),
        ("columns.csv", "english,french\nA,B\n", "no column named ['en', 'fr']"),
        ("blank.jsonl", '{"translation": {"en": " ", "fr": "b"}}\n', "has no usable pair"),
    ],
)
def test_bad_input_is_a_clear_error(tmp_path, name, content, message):
    path = str(tmp_path / name) if content is None else write(tmp_path / name, content)
    with pytest.raises(DataError) as error:
        load_raw_datasets(DataArguments(train_file=path))
    assert message in str(error.value)
    assert name in str(error.value) or "train split" in str(error.value)


def test_misaligned_plain_text_is_a_clear_error(tmp_path):
    write(tmp_path / "train.en", "a\nb\n")
    write(tmp_path / "train.fr", "a\n")
    with pytest.raises(DataError, match=r"has 2 lines but .*train.fr' has 1"):
        load_file(str(tmp_path / "train.en"), "en", "fr")
    os.remove(tmp_path / "train.fr")
    with pytest.raises(DataError, match=r"its partner .*train.fr' does not exist"):
        load_file(str(tmp_path / "train.en"), "en", "fr")


def test_builtin_corpus_is_deterministic_and_tests_generalisation():
    a, b = generate_corpus(2000, 200), generate_corpus(2000, 200)
    assert a == b
    train_en = {row["translation"]["en"] for row in a["train"]}
    test_en = [row["translation"]["en"] for row in a["test"]]
    assert not train_en & set(test_en), "a test sentence occurs in training"
    # Every test sentence contains a (noun, adjective) pair never seen in training.
    from hf_seq2seq.corpus import ADJECTIVES
    held = {f"{ADJECTIVES[adj][0]} {NOUNS[noun][i]}" for noun, adj in held_out_pairs() for i in (0, 1)}
    assert all(any(f" {phrase}" in f" {sentence[:-1]} " for phrase in held) for sentence in test_en)
    assert not any(f" {phrase} " in f" {sentence[:-1]} " for sentence in train_en for phrase in held)


# --- Arrow on disk: what the line-by-line loaders must keep from the list-based ones they replace ---------------------

TRICKY_TSV = ("  The cat sleeps. \tLe chat dort.\tCC-BY 2.0 (France) Attribution: tatoeba.org\r\n\n"
              "no tab here\nA \u00ab quote \u00bb.\tUne \u00ab citation \u00bb.\nLone\rreturn.\tRetour\rseul.\n"
              "  \t  \nLast.\tDernier.")


def rows_before(path_or_paths):
    """The rows the list-based loaders of commit fc70a22 gave (f.read().split("\\n"), stripped; TSV lines without a
    TAB and blank lines skipped; line-aligned files zipped)."""
    if isinstance(path_or_paths, tuple):
        sides = [open(p, encoding="utf-8").read().split("\n") for p in path_or_paths]
        sides = [lines[:-1] if lines and lines[-1] == "" else lines for lines in sides]
        return [(s.strip(), t.strip()) for s, t in zip(*sides)]
    rows = []
    for line in open(path_or_paths, encoding="utf-8").read().split("\n"):
        columns = line.rstrip("\r").split("\t")
        if line.strip() and len(columns) >= 2:
            rows.append((columns[0].strip(), columns[1].strip()))
    return rows


def test_text_loaders_give_the_rows_of_the_list_based_loaders_from_arrow_on_disk(tmp_path):
    tsv = write(tmp_path / "t.tsv", TRICKY_TSV)
    write(tmp_path / "train.en", "  One.\r\n\r\nThree.\rFour.")  # Windows and old Mac line breaks
    write(tmp_path / "train.fr", "Un.\nDeux.\n\nQuatre.\n")
    for path, expected in ((tsv, rows_before(tsv)),
                           (str(tmp_path / "train"), rows_before((str(tmp_path / "train.en"), str(tmp_path / "train.fr"))))):
        dataset = load_file(path, "en", "fr")
        assert as_pairs(dataset) == expected, path
        assert dataset.cache_files, "the rows are not an Arrow file on disk"
    assert len(expected) == 4 and expected[1] == ("", "Deux.")  # empty lines stay pairs: drop_empty_pairs counts them


def test_a_changed_file_is_read_again_not_served_from_the_cache(tmp_path):
    tsv = tmp_path / "t.tsv"
    write(tsv, "A.\tUn.\n")
    assert as_pairs(load_file(str(tsv), "en", "fr")) == [("A.", "Un.")]
    write(tsv, "B.\tDeux.\n")  # another size
    assert as_pairs(load_file(str(tsv), "en", "fr")) == [("B.", "Deux.")]
    write(tsv, "C.\tTrois\n")  # the same size: the modification time tells
    info = os.stat(tsv)
    os.utime(tsv, ns=(info.st_atime_ns, info.st_mtime_ns + 1_000_000))
    assert as_pairs(load_file(str(tsv), "en", "fr")) == [("C.", "Trois")]
    write(tmp_path / "train.en", "A.\n")
    write(tmp_path / "train.fr", "Un.\n")
    assert as_pairs(load_file(str(tmp_path / "train"), "en", "fr")) == [("A.", "Un.")]
    write(tmp_path / "train.fr", "Une.\n")  # only the partner file changed
    assert as_pairs(load_file(str(tmp_path / "train"), "en", "fr")) == [("A.", "Une.")]


def test_non_utf8_misaligned_and_empty_text_files_are_clear_errors(tmp_path):
    (tmp_path / "latin1.tsv").write_bytes("A.\tUn.\nCaf\u00e9.\tCaf\u00e9.\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"latin1.tsv' is not UTF-8 text \(line 2: .*\). Convert it, e.g. `iconv -t utf-8`"):
        load_file(str(tmp_path / "latin1.tsv"), "en", "fr")
    write(tmp_path / "train.en", "a\n")
    (tmp_path / "train.fr").write_bytes("\u00e9\n".encode("latin-1"))
    with pytest.raises(DataError, match=r"train.fr' is not UTF-8 text \(line 1"):
        load_file(str(tmp_path / "train.en"), "en", "fr")
    write(tmp_path / "train.fr", "a\nb\nc\n")  # the target is the longer file
    with pytest.raises(DataError, match=r"train.en' has 1 lines but .*train.fr' has 3"):
        load_file(str(tmp_path / "train.en"), "en", "fr")
    write(tmp_path / "train.en", "")
    write(tmp_path / "train.fr", "")
    with pytest.raises(DataError, match=r"train.en' and .*train.fr' are empty"):
        load_file(str(tmp_path / "train.en"), "en", "fr")
