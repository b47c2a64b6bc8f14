"""--streaming: the training split as a `datasets.IterableDataset`, read as training goes (files and Hub-layout data
sets), tokenised lazily, counted as it is read, split between processes; and the tokenizer's bounded sample."""

import json
import os
import subprocess
import sys

import pytest
from datasets import Dataset, IterableDataset
from transformers import AutoTokenizer

from hf_seq2seq.corpus import generate_corpus
from hf_seq2seq.data import DataArguments, DataError, load_file, load_raw_datasets
from hf_seq2seq.tasks import get_task
from hf_seq2seq.vocabulary import train_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import train  # noqa: E402

# test_train.py's RESUMABLE run, on data files instead of the built-in corpus.
TINY_RUN = [
    "--preset", "tiny", "--vocab_size", "400", "--per_device_train_batch_size", "16", "--generation_max_length", "20",
    "--logging_steps", "5", "--disable_tqdm", "true", "--max_eval_samples", "20",
]


@pytest.fixture(scope="module")
def pairs():
    """A few hundred distinct pairs of the built-in corpus, and 20 held-out ones."""
    corpus = generate_corpus(train_size=400, test_size=20)
    train = list(dict.fromkeys((r["translation"]["en"], r["translation"]["fr"]) for r in corpus["train"]))[:300]
    test = [(r["translation"]["en"], r["translation"]["fr"]) for r in corpus["test"]]
    return train, test


def write_tsv(path, rows):
    path.write_text("".join(f"{en}\t{fr}\n" for en, fr in rows), encoding="utf-8")
    return str(path)


def as_pairs(rows):
    return [(row["translation"]["en"], row["translation"]["fr"]) for row in rows]


def test_streamed_files_give_the_rows_the_files_give(tmp_path, pairs):
    rows = pairs[0][:5]
    files = {
        "tsv": write_tsv(tmp_path / "d.tsv", rows),
        "jsonl": str(tmp_path / "d.jsonl"),
        "csv": str(tmp_path / "d.csv"),
        "aligned": str(tmp_path / "train"),
    }
    (tmp_path / "d.jsonl").write_text("".join(json.dumps({"en": e, "fr": f}) + "\n" for e, f in rows), encoding="utf-8")
    (tmp_path / "d.csv").write_text("en,fr\n" + "".join(f'"{e}","{f}"\n' for e, f in rows), encoding="utf-8")
    (tmp_path / "train.en").write_text("".join(e + "\n" for e, _ in rows), encoding="utf-8")
    (tmp_path / "train.fr").write_text("".join(f + "\n" for _, f in rows), encoding="utf-8")
    for name, path in files.items():
        stream = load_file(path, "en", "fr", streaming=True)
        assert isinstance(stream, IterableDataset), name
        assert as_pairs(stream) == as_pairs(load_file(path, "en", "fr")) == rows, name


def test_stream_drops_and_counts_as_it_reads(tmp_path, caplog):
    """What test_data.py's test_filters_empty_malformed_and_overlong_with_counts checks, on a stream: the same rows
    are dropped, and the counts are logged as the stream is read."""
    tsv = tmp_path / "t.tsv"
    tsv.write_text("A.\tUn.\n\nno tab here\nB.\t \n" + "C c c c c c c c c c c c.\tD d d d d d d d d d d d.\nE.\tE.\n")
    args = DataArguments(train_file=str(tsv), max_source_length=6, max_target_length=6, streaming=True)
    task = get_task("translation")
    with caplog.at_level("WARNING"):
        splits = task.load(args)
        tokenizer = train_tokenizer(task.corpus(splits["train"]), vocab_size=300)
        tokenized = task.tokenize(splits, tokenizer, args)
        rows = list(tokenized["train"])
    assert isinstance(tokenized["train"], IterableDataset) and len(rows) == 2
    assert tokenizer.decode(rows[0]["input_ids"], skip_special_tokens=True) == "A."
    log = caplog.text
    assert "skipped 1 line(s) without a TAB so far (first at line 3)" in log
    assert "dropped 1 pair(s) with an empty side so far" in log
    assert "dropped 1 example(s) longer than --max_source_length 6 / --max_target_length 6 tokens so far" in log


def test_tokenizer_trains_on_the_first_n_examples(tmp_path, pairs, caplog):
    tsv = write_tsv(tmp_path / "t.tsv", pairs[0])
    task = get_task("translation")
    expected = [text for pair in pairs[0][:50] for text in pair]
    for streaming in (False, True):
        train_split = task.load(DataArguments(train_file=tsv, streaming=streaming))["train"]
        with caplog.at_level("INFO"):
            texts = list(task.corpus(train_split, max_examples=50))
        # Batch by batch, sources then targets: the same texts, in another order.
        assert sorted(texts) == sorted(expected), streaming
        assert "Tokenizer training texts: the first 50 training examples" in caplog.text
        caplog.clear()


def test_streaming_trains_saves_and_evaluates_from_a_tsv(tmp_path, pairs, caplog):
    train_file, dev_file = write_tsv(tmp_path / "train.tsv", pairs[0]), write_tsv(tmp_path / "dev.tsv", pairs[1])
    output = tmp_path / "run"
    with caplog.at_level("INFO"):
        results = train.main(TINY_RUN + [
            "--train_file", train_file, "--validation_file", dev_file, "--streaming", "true", "--max_steps", "5",
            "--save_strategy", "steps", "--save_steps", "5", "--tokenizer_train_samples", "50",
            "--output_dir", str(output),
        ])
    assert "Data: train streamed, validation 20 examples" in caplog.text
    assert "Tokenizer training texts: the first 50 training examples" in caplog.text
    state = json.load(open(output / "trainer_state.json"))
    assert state["global_step"] == 5
    assert "validation_bleu" in results["validation"]
    assert any("eval_bleu" in entry for entry in state["log_history"]), "no evaluation during training"
    for name in ("checkpoint-5/model.safetensors", "model.safetensors", "tokenizer.json", "README.md"):
        assert (output / name).is_file(), name


def test_streaming_a_hub_layout_data_set(tmp_path, pairs):
    """--dataset_name with --streaming: `load_dataset(name, streaming=True)`; the validation split is read in full."""
    os.makedirs(tmp_path / "hub" / "data")
    for split, rows in (("train", pairs[0]), ("validation", pairs[1])):
        Dataset.from_list([{"translation": {"en": e, "fr": f}} for e, f in rows]).to_parquet(
            tmp_path / "hub" / "data" / f"{split}-00000-of-00001.parquet")
    splits = load_raw_datasets(DataArguments(dataset_name=str(tmp_path / "hub"), streaming=True))
    assert isinstance(splits["train"], IterableDataset) and isinstance(splits["validation"], Dataset)
    assert as_pairs(splits["train"]) == pairs[0] and len(splits["validation"]) == 20

    output = tmp_path / "run"
    results = train.main(TINY_RUN + ["--dataset_name", str(tmp_path / "hub"), "--streaming", "true",
                                     "--max_steps", "5", "--save_strategy", "no", "--output_dir", str(output)])
    assert json.load(open(output / "trainer_state.json"))["global_step"] == 5
    assert "validation_bleu" in results["validation"] and (output / "model.safetensors").is_file()


@pytest.mark.parametrize("extra, message", [
    ([], "set --max_steps"),
    (["--max_steps", "5", "--max_tokens_per_batch", "2000"], "with --streaming, batch by --per_device_train_batch_size"),
])
def test_streaming_needs_max_steps_and_no_token_budget(tmp_path, pairs, extra, message):
    train_file = write_tsv(tmp_path / "train.tsv", pairs[0])
    with pytest.raises(DataError, match=message):
        train.main(TINY_RUN + ["--train_file", train_file, "--streaming", "true", "--output_dir", str(tmp_path), *extra])
    with pytest.raises(DataError, match="builtin:grammar is generated in memory"):
        train.main(TINY_RUN + ["--dataset_name", "builtin:grammar", "--streaming", "true", "--max_steps", "5",
                               "--output_dir", str(tmp_path)])


def test_other_tasks_stream(tmp_path):
    """Summarisation, question answering and classification read, check and tokenise a stream as they read files."""
    summaries = tmp_path / "s.jsonl"
    summaries.write_text("".join(json.dumps({"dialogue": f"#P1#: Hello {i}.", "summary": f"Greeting {i}."}) + "\n"
                                 for i in range(4)) + json.dumps({"dialogue": " ", "summary": "x"}) + "\n")
    squad = tmp_path / "squad.json"
    squad.write_text(json.dumps({"version": "1.1", "data": [{"title": "T", "paragraphs": [{
        "context": "The cat sleeps on the mat.",
        "qas": [{"id": "1", "question": "Where?", "answers": [{"text": "on the mat", "answer_start": 15}]}]}]}]}))
    sentiment = tmp_path / "sst.tsv"
    sentiment.write_text("sentence\tlabel\nA fine film.\t1\nDull.\t0\n\t1\n")
    cases = [("summarization", summaries, {}, 4), ("question-answering", squad, {}, 1),
             ("text-classification", sentiment, {"class_names": "negative,positive"}, 2)]
    for name, path, options, expected in cases:
        task = get_task(name)
        args = DataArguments(task=name, train_file=str(path), streaming=True, **options)
        task.apply_defaults(args)
        splits = task.load(args)
        tokenizer = train_tokenizer(task.corpus(splits["train"]), vocab_size=300)
        rows = list(task.tokenize(splits, tokenizer, args)["train"])
        assert len(rows) == expected and all(row["input_ids"] and "labels" in row for row in rows), name
        if name == "text-classification":
            assert [row["labels"] for row in rows] == [1, 0]
    with pytest.raises(DataError, match="labels must be known before its training data is read"):
        get_task("text-classification").load(DataArguments(task="text-classification", train_file=str(sentiment),
                                                           streaming=True))


def test_two_processes_stream_different_batches(tmp_path, pairs):
    """Under `accelerate launch` each process reads the stream and keeps its own batches (accelerate's
    IterableDatasetShard): the two processes train on different pairs, never the same one."""
    train_file = write_tsv(tmp_path / "train.tsv", pairs[0])
    output = tmp_path / "ddp"
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        os.path.join(ROOT, "tests", "ddp_probe.py"), *TINY_RUN, "--train_file", train_file, "--streaming", "true",
        "--max_steps", "4", "--eval_strategy", "no", "--save_strategy", "no", "--output_dir", str(output),
    ]
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr[-3000:]
    records = {rank: [json.loads(line) for line in open(output / f"rank{rank}.jsonl")] for rank in (0, 1)}
    assert [len(records[0]), len(records[1])] == [4, 4] and records[0][0]["world_size"] == 2
    pad = 1  # the tokenizer's <pad>

    def rows(rank):
        return [tuple(t for t in row if t != pad) for record in records[rank] for row in record["batch"]]

    assert len(rows(0)) == len(rows(1)) == 4 * 16
    assert not set(rows(0)) & set(rows(1)), "both processes trained on the same pair"
    # Together they trained on the first 128 pairs of the shuffled stream (train.py's seed 42): sharded once, not
    # twice (which would skip pairs), and not read by one process for both.
    task, args = get_task("translation"), DataArguments(train_file=train_file, streaming=True)
    task.apply_defaults(args)
    stream = task.tokenize(task.load(args), AutoTokenizer.from_pretrained(output), args)["train"]
    first_pairs = {tuple(row["input_ids"]) for row in stream.shuffle(seed=42, buffer_size=10_000).take(128)}
    assert set(rows(0)) | set(rows(1)) == first_pairs
