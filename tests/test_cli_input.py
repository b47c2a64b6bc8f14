"""Bytes that are not UTF-8, on standard input or in a file a command reads, end `hf-seq2seq` with a one-line error
that names the source and the line, for every verb that reads text, instead of a stack trace from the tokenizer.

The models here are untrained tiny ones built in seconds: reading input does not depend on what a model learned.
"""

import os
import subprocess
import sys

import pytest
import torch

from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForConditionalGeneration, HFSeq2SeqForSequenceClassification
from hf_seq2seq.cli import main
from hf_seq2seq.hub import save_bundle
from hf_seq2seq.vocabulary import train_tokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BAD = b"Hello.\nO\xc3\xb9 est la gare ?\nabc\xffdef\nThe end.\n"  # line 3, 4th byte


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(translator folder, classifier folder): untrained tiny models with a small byte-level tokenizer."""
    folder = tmp_path_factory.mktemp("models")
    tokenizer = train_tokenizer(["Where is the station?", "Où est la gare ?", "The cat sleeps."] * 4, vocab_size=300,
                                min_frequency=1)
    settings = dict(vocab_size=len(tokenizer), dropout=0.0, max_position_embeddings=64)
    torch.manual_seed(0)
    translator = HFSeq2SeqForConditionalGeneration(HFSeq2SeqConfig.from_preset("tiny", **settings)).eval()
    translator.generation_config.max_new_tokens = 4
    save_bundle(translator, tokenizer, str(folder / "translator"), "translation")
    labels = {0: "negative", 1: "positive"}
    config = HFSeq2SeqConfig.from_preset("tiny", **settings, id2label=labels, label2id={v: k for k, v in labels.items()})
    save_bundle(HFSeq2SeqForSequenceClassification(config).eval(), tokenizer, str(folder / "classifier"),
                "text-classification")
    return str(folder / "translator"), str(folder / "classifier")


def write(path, data: bytes) -> str:
    path.write_bytes(data)
    return str(path)


def fails(argv, capfd, monkeypatch, tmp_path, stdin: bytes = b"") -> str:
    """Run the CLI in this process with standard input a real file holding `stdin`; return its error message after
    checking that it is one line and that nothing else reached stderr (the interpreter prints the message there)."""
    monkeypatch.setattr(sys, "stdin", open(write(tmp_path / "stdin", stdin), encoding="utf-8"))
    capfd.readouterr()
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    message = exit_info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message
    assert "UTF-8" in message
    assert capfd.readouterr().err == ""
    sys.stdin.close()
    return message


@pytest.mark.parametrize("verb", ["translate", "translate-ct2", "summarize", "classify"])
def test_standard_input_that_is_not_utf8_is_a_one_line_error(verb, models, capfd, monkeypatch, tmp_path):
    model = models[1] if verb == "classify" else models[0]
    argv = ["translate", "--model", model, "--engine", "ctranslate2"] if verb == "translate-ct2" else [verb, "--model", model]
    message = fails(argv, capfd, monkeypatch, tmp_path, stdin=BAD)
    assert message.startswith("error: standard input, line 3 is not UTF-8 text (byte 0xff at position 4)")


def test_translate_from_a_shell_pipe_exits_with_one_line_on_stderr(models):
    """The reported case, end to end: the real interpreter, stdin a pipe of bytes, the exit status and stderr."""
    run = subprocess.run([sys.executable, "-m", "hf_seq2seq", "translate", "--model", models[0]], input=BAD,
                         capture_output=True, cwd=ROOT)
    stderr = run.stderr.decode()
    assert run.returncode != 0
    assert "Traceback" not in stderr
    assert stderr.splitlines() == ["error: standard input, line 3 is not UTF-8 text (byte 0xff at position 4); "
                                   "convert it, e.g. with iconv -t utf-8"]


def test_answer_context_file_that_is_not_utf8(models, capfd, monkeypatch, tmp_path):
    context = write(tmp_path / "context.txt", BAD)
    message = fails(["answer", "--model", models[0], "--question", "Where?", "--context_file", context],
                    capfd, monkeypatch, tmp_path)
    assert message.startswith(f"error: {context!r}, line 3 is not UTF-8")


@pytest.mark.parametrize("name, data, line", [
    ("test.tsv", b"en\tfr\nHello.\tBonjour.\nabc\xff\tdef\n", 3),
    ("test.jsonl", b'{"en": "Hello.", "fr": "Bonjour."}\n{"en": "abc\xff", "fr": "def"}\n', 2),
    ("test.csv", b"en,fr\nHello.,Bonjour.\nThe cat.,Le chat.\nabc\xff,def\n", 4),
])
def test_evaluate_test_file_that_is_not_utf8(name, data, line, models, capfd, monkeypatch, tmp_path):
    """Every format, JSON and CSV included (datasets' readers name no line), before the model is loaded."""
    test_file = write(tmp_path / name, data)
    message = fails(["evaluate", "--model", models[0], "--test_file", test_file], capfd, monkeypatch, tmp_path)
    assert message.startswith(f"error: {test_file!r}, line {line} is not UTF-8")


def test_evaluate_turns_data_errors_into_one_line(models, monkeypatch, tmp_path):
    """data.py's own DataError for a line-aligned partner file (test.fr beside test.en) is a one-line error too,
    not a stack trace."""
    source = write(tmp_path / "test.en", b"Hello.\nThe cat sleeps.\n")
    write(tmp_path / "test.fr", b"Bonjour.\nLe chat dort \xe0 la maison.\n")  # Latin-1 "à"
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "--model", models[0], "--test_file", source])
    message = exit_info.value.code
    assert isinstance(message, str) and message.startswith("error: ") and "\n" not in message
    assert "test.fr" in message and "line 2" in message and "UTF-8" in message


def test_train_vectors_text_file_that_is_not_utf8(capfd, monkeypatch, tmp_path):
    text = write(tmp_path / "corpus.txt", BAD)
    message = fails(["train-vectors", "--text", text, "--output", str(tmp_path / "vectors.txt"), "--size", "8"],
                    capfd, monkeypatch, tmp_path)
    assert message.startswith(f"error: {text!r}, line 3 is not UTF-8")
    assert not os.path.exists(tmp_path / "vectors.txt")


@pytest.mark.parametrize("verb", ["align", "translate"])
def test_command_line_text_that_is_not_utf8(verb, models, capfd, monkeypatch, tmp_path):
    """On POSIX, Python keeps argument bytes that are not UTF-8 as lone surrogates (b"\\xff" -> "\\udcff")."""
    texts = ["abc\udcffdef"] if verb == "align" else ["Hello.", "abc\udcffdef"]
    message = fails([verb, "--model", models[0], *texts], capfd, monkeypatch, tmp_path)
    assert message.startswith(f"error: command-line text {len(texts)} is not UTF-8 text (byte 0xff at position 4)")


def test_utf8_input_with_accents_still_works(models, capsys, monkeypatch, tmp_path):
    """Accented UTF-8 on stdin (Windows line ends too) reaches the model as the exact text, one output a line."""
    import hf_seq2seq.cli as cli

    seen = []
    classify = cli.classify
    monkeypatch.setattr(cli, "classify", lambda model, tokenizer, texts, *args: seen.append(texts) or classify(model, tokenizer, texts, *args))
    monkeypatch.setattr(sys, "stdin", open(write(tmp_path / "stdin", "Où est la gare ?\r\nÇa coûte 5 €.\n".encode()),
                                           encoding="utf-8"))
    main(["classify", "--model", models[1]])
    assert seen == [["Où est la gare ?", "Ça coûte 5 €."]]
    labels = capsys.readouterr().out.splitlines()
    assert len(labels) == 2 and set(labels) <= {"negative", "positive"}

    monkeypatch.setattr(sys, "stdin", open(write(tmp_path / "stdin", "Où est la gare ?\n".encode()), encoding="utf-8"))
    main(["translate", "--model", models[0]])
    assert len(capsys.readouterr().out.splitlines()) == 1
