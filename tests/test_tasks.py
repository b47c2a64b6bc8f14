"""The other uses of the model, end to end on small slices of real data: summarisation (DialogSum), question answering
(SQuAD v1.1) and sentiment classification (SST-2): training, evaluation, the bundle and its model card, the pipelines
in a process without the package, the CLI, and a clear error for every kind of bad input."""

import json
import os
import re
import subprocess
import sys
import textwrap

import pytest
import torch
from huggingface_hub import ModelCard
from transformers import AutoModelForSeq2SeqLM, AutoModelForSequenceClassification, AutoTokenizer

from hf_seq2seq.cli import main as cli_main
from hf_seq2seq.data import DataArguments, DataError
from hf_seq2seq.tasks import get_task

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import train  # noqa: E402

# ../shared/data: the fixtures that train on it require it (conftest.require_shared: a failure under CI, else a skip);
# the tests of bad input need none of it and always run.
from conftest import SHARED_DATA as SHARED  # noqa: E402

TINY = [
    "--preset", "tiny", "--vocab_size", "800", "--learning_rate", "3e-3", "--warmup_steps", "20",
    "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "16", "--eval_strategy", "no",
    "--save_strategy", "no", "--logging_steps", "10", "--disable_tqdm", "true",
]


def run(task_args, output):
    results = train.main(TINY + task_args + ["--output_dir", str(output)])
    return str(output), results


@pytest.fixture(scope="module")
def summarizer(tmp_path_factory, shared_data):
    data = os.path.join(SHARED, "dialogsum")
    return run([
        "--task", "summarization", "--train_file", f"{data}/train.jsonl", "--test_file", f"{data}/dev.jsonl",
        "--max_train_samples", "400", "--max_predict_samples", "24", "--max_source_length", "192",
        "--max_steps", "60", "--generation_max_length", "40",
    ], tmp_path_factory.mktemp("dialogsum") / "model")


@pytest.fixture(scope="module")
def reader(tmp_path_factory, shared_data):
    data = os.path.join(SHARED, "squad-v1.1")
    return run([
        "--task", "question-answering", "--train_file", f"{data}/train.json", "--test_file", f"{data}/dev.json",
        "--max_train_samples", "400", "--max_predict_samples", "24", "--max_source_length", "160",
        "--max_steps", "60", "--validation_file", f"{data}/dev.json", "--max_eval_samples", "8",
        "--eval_strategy", "steps", "--eval_steps", "30",
    ], tmp_path_factory.mktemp("squad") / "model")


@pytest.fixture(scope="module")
def classifier(tmp_path_factory, shared_data):
    data = os.path.join(SHARED, "sst2")
    return run([
        "--task", "text-classification", "--train_file", f"{data}/train.tsv", "--test_file", f"{data}/dev.tsv",
        "--class_names", "negative,positive", "--max_train_samples", "8000", "--max_predict_samples", "400",
        "--max_steps", "500", "--learning_rate", "3e-3", "--warmup_steps", "50", "--per_device_train_batch_size", "32",
    ], tmp_path_factory.mktemp("sst2") / "model")


# --- training and evaluation --------------------------------------------------------------------------------------


def test_summarization_trains_evaluates_and_saves(summarizer):
    folder, results = summarizer
    scores = results["test"]
    assert {"test_rouge1", "test_rouge2", "test_rougeL", "test_rougeLsum"} <= scores.keys()
    assert scores["test_rouge1"] > 5, scores  # 60 steps: summaries made of the most frequent words, not noise
    state = json.load(open(os.path.join(folder, "trainer_state.json")))
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert losses[-1] < losses[0] - 1.0, losses
    config = json.load(open(os.path.join(folder, "config.json")))
    assert config["custom_pipelines"]["summarization"]["impl"] == "pipeline_hf_seq2seq.SummarizationPipeline"
    assert config["task_specific_params"]["summarization"]["max_source_length"] == 192
    generation = json.load(open(os.path.join(folder, "generation_config.json")))
    assert generation["max_length"] == 40 and generation["no_repeat_ngram_size"] == 3


def test_question_answering_trains_evaluates_and_saves(reader):
    folder, results = reader
    assert {"test_exact_match", "test_f1"} <= results["test"].keys()
    config = json.load(open(os.path.join(folder, "config.json")))
    assert config["custom_pipelines"]["question-answering"]["impl"] == "pipeline_hf_seq2seq.QuestionAnsweringPipeline"
    generation = json.load(open(os.path.join(folder, "generation_config.json")))
    assert generation["max_new_tokens"] == 32
    # Evaluating during training leaves the task's settings alone: no max_length 20 or top_k 50 filled in beside them.
    assert "max_length" not in generation and "top_k" not in generation, generation


def test_question_answering_test_score_is_the_official_score_of_the_generated_answers(reader):
    """The Trainer's test score (generated in its own batch order) equals the official SQuAD script's score of the
    answers generate() gives the same questions."""
    from hf_seq2seq.inference import generate_texts
    from hf_seq2seq.metrics import load_squad

    folder, results = reader
    model, tokenizer = AutoModelForSeq2SeqLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    examples = load("question-answering", test_file=os.path.join(SHARED, "squad-v1.1", "dev.json"),
                    max_predict_samples=24, max_source_length=160)["test"]
    answers = generate_texts(model, tokenizer, list(examples["source"]))
    official = load_squad().compute(predictions=answers, references=list(examples["references"]))
    assert results["test"]["test_f1"] == pytest.approx(official["f1"], abs=0.01)
    assert results["test"]["test_exact_match"] == pytest.approx(official["exact_match"], abs=0.01)


def test_question_answering_scores_against_every_reference_answer_in_any_order(tmp_path):
    """A question with several reference answers (SQuAD's official dev set has up to six) counts as answered when
    the answer matches any of them; the Trainer may evaluate rows in any order (length-grouped), padded with -100."""
    import numpy as np
    from transformers import EvalPrediction

    from hf_seq2seq.vocabulary import train_tokenizer

    records = [("Who sang?", "Ann and Bob sang.", ["Ann and Bob", "Ann"]), ("Where?", "In Paris, France.", ["Paris"]),
               ("When did it end?", "It ended in 1990.", ["1990", "in 1990"])]
    nested = {"data": [{"title": "T", "paragraphs": [{"context": c, "qas": [
        {"id": str(i), "question": q, "answers": [{"text": a, "answer_start": 0} for a in answers]}]}
        for i, (q, c, answers) in enumerate(records)]}]}
    path = write(tmp_path / "dev.json", json.dumps(nested))
    task = get_task("question-answering")
    args = DataArguments(task="question-answering", test_file=path)
    task.apply_defaults(args)
    splits = task.load(args)
    tokenizer = train_tokenizer([q + c + " ".join(a) for q, c, a in records] * 5, vocab_size=300, min_frequency=1)
    tokenized = task.tokenize(splits, tokenizer, args)
    compute = task.compute_metrics(tokenizer, splits, tokenized)

    answers = {0: "Ann", 1: "Lyon", 2: "in 1990"}  # the second reference, a wrong answer, the second reference
    order = [2, 0, 1]

    def padded(rows):
        width = max(len(r) for r in rows)
        return np.array([r + [-100] * (width - len(r)) for r in rows])

    inputs = padded([tokenized["test"][i]["input_ids"] for i in order])
    predictions = padded([tokenizer(text_target=answers[i])["input_ids"] for i in order])
    labels = padded([tokenized["test"][i]["labels"] for i in order])
    scores = compute(EvalPrediction(predictions=predictions, label_ids=labels, inputs=inputs))
    assert scores["exact_match"] == pytest.approx(200 / 3, abs=0.01)


def test_classification_trains_evaluates_and_saves(classifier):
    folder, results = classifier
    # 500 steps of a tiny model already beat chance (the first 400 dev sentences are 50% positive); measured: 61.5.
    assert results["test"]["test_accuracy"] > 56, results
    config = json.load(open(os.path.join(folder, "config.json")))
    assert config["id2label"] == {"0": "negative", "1": "positive"}
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_hf_seq2seq.HFSeq2SeqForSequenceClassification"
    card = ModelCard.load(os.path.join(folder, "README.md"))
    metrics = {r.metric_type: r.metric_value for r in card.data.eval_results}
    assert metrics == {"accuracy": results["test"]["test_accuracy"], "f1": results["test"]["test_f1"]}
    assert card.data.pipeline_tag == "text-classification" and "text-classification" in card.data.tags


@pytest.mark.parametrize("fixture, dataset, metrics", [
    ("summarizer", "dialogsum", {"rouge1", "rouge2", "rougeL", "rougeLsum"}),
    ("reader", "squad-v1.1", {"exact_match", "f1"}),
])
def test_model_card_names_the_data_the_split_and_the_scores(fixture, dataset, metrics, request):
    folder, results = request.getfixturevalue(fixture)
    card = ModelCard.load(os.path.join(folder, "README.md"))  # the Hub's own parser
    assert card.data.datasets == [dataset]  # the data set, not its file names
    assert {r.metric_type for r in card.data.eval_results} == metrics
    assert {r.dataset_split for r in card.data.eval_results} == {"dev"}  # what was scored: dev.jsonl / dev.json
    assert all(r.metric_value == results["test"][f"test_{r.metric_type}"] for r in card.data.eval_results)
    assert card.data.pipeline_tag in card.data.tags
    assert "https://github.com/)" not in card.text and "20 warm-up steps" in card.text


# --- pipelines without the package, and the CLI --------------------------------------------------------------------

PIPELINES_IN_A_CLEAN_PROCESS = textwrap.dedent(
    """
    import json, sys
    sys.modules["hf_seq2seq"] = None  # the package cannot be imported here
    from transformers import pipeline
    task, folder, inputs = sys.argv[1], sys.argv[2], json.loads(sys.argv[3])
    runner = pipeline(task, model=folder, trust_remote_code=True)
    if task == "question-answering":
        out = [runner(question=q, context=c) for q, c in inputs]
    else:
        out = runner(inputs, batch_size=2)
    print(json.dumps({"class": type(runner).__module__ + "." + type(runner).__name__, "out": out}))
    """
)


def in_a_clean_process(task, folder, inputs, tmp_path):
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", PIPELINES_IN_A_CLEAN_PROCESS, task, folder, json.dumps(inputs)],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    return json.loads(result.stdout.strip().splitlines()[-1])


def generate_and_decode(folder, sources):
    model, tokenizer = AutoModelForSeq2SeqLM.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)
    return [tokenizer.decode(model.generate(**tokenizer(s, return_tensors="pt"))[0], skip_special_tokens=True)
            for s in sources]


def test_summarization_pipeline_without_the_package_equals_generate(summarizer, tmp_path):
    folder, _ = summarizer
    dialogues = [json.loads(line)["dialogue"] for line in open(os.path.join(SHARED, "dialogsum", "dev.jsonl"))][:3]
    loaded = in_a_clean_process("summarization", folder, dialogues, tmp_path)
    assert loaded["class"].startswith("transformers_modules") and loaded["class"].endswith("SummarizationPipeline")
    assert [item["summary_text"] for item in loaded["out"]] == generate_and_decode(folder, dialogues)


def test_question_answering_pipeline_without_the_package_equals_generate(reader, tmp_path):
    from hf_seq2seq.pipeline_hf_seq2seq import question_answering_input

    folder, _ = reader
    article = json.load(open(os.path.join(SHARED, "squad-v1.1", "dev.json")))["data"][0]["paragraphs"][0]
    pairs = [(qa["question"], article["context"]) for qa in article["qas"][:3]]
    loaded = in_a_clean_process("question-answering", folder, pairs, tmp_path)
    assert all(set(item) == {"answer"} for item in loaded["out"])  # the old pipeline's call and key
    expected = generate_and_decode(folder, [question_answering_input(q, c) for q, c in pairs])
    assert [item["answer"] for item in loaded["out"]] == expected


def test_text_classification_pipeline_gives_the_argmax_with_the_data_label_names(classifier, tmp_path):
    folder, _ = classifier
    sentences = [line.split("\t")[0].strip() for line in open(os.path.join(SHARED, "sst2", "dev.tsv"))][1:9]
    loaded = in_a_clean_process("text-classification", folder, sentences, tmp_path)
    model = AutoModelForSequenceClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    with torch.no_grad():
        logits = model(**tokenizer(sentences, return_tensors="pt", padding=True)).logits
    assert [item["label"] for item in loaded["out"]] == [model.config.id2label[i] for i in logits.argmax(-1).tolist()]
    assert {item["label"] for item in loaded["out"]} <= {"negative", "positive"}
    probabilities = logits.softmax(-1).max(-1).values.tolist()
    assert [item["score"] for item in loaded["out"]] == pytest.approx(probabilities, abs=1e-5)


def test_cli_summarize_answer_classify_and_evaluate(summarizer, reader, classifier, capsys):
    """Each verb prints, a line per input, what the model gives in this process on the same input: generate() with
    the model's own generation config (what the CLI decodes with when given no --num_beams or --max_new_tokens) on
    the source text the task's pipeline builds, or the label of the highest logit."""
    from hf_seq2seq.pipeline_hf_seq2seq import question_answering_input

    folder, _ = summarizer
    dialogue = "#Person1#: Shall we go out tonight?\n#Person2#: Yes, to the cinema."
    cli_main(["summarize", "--model", folder, dialogue])
    prefix = json.load(open(os.path.join(folder, "config.json")))["task_specific_params"]["summarization"]["prefix"]
    expected = generate_and_decode(folder, [prefix + dialogue])
    assert expected[0].strip(), "an empty summary would make the comparison vacuous"
    assert capsys.readouterr().out.splitlines() == expected
    folder, _ = reader
    context, questions = "The cat sleeps on the mat in the kitchen.", ["Where is the cat?", "What does the cat do?"]
    cli_main(["answer", "--model", folder, "--question", questions[0], "--question", questions[1], "--context", context])
    expected = generate_and_decode(folder, [question_answering_input(q, context) for q in questions])
    assert all(answer.strip() for answer in expected), expected
    assert capsys.readouterr().out.splitlines() == expected
    with pytest.raises(SystemExit, match="empty"):
        cli_main(["answer", "--model", folder, "--question", "Where?", "--context", " "])
    folder, results = classifier
    model, tokenizer = AutoModelForSequenceClassification.from_pretrained(folder).eval(), AutoTokenizer.from_pretrained(folder)

    @torch.no_grad()
    def label(sentence):  # one sentence at a time: no padding
        return model.config.id2label[model(**tokenizer(sentence, return_tensors="pt")).logits.argmax(-1).item()]

    # A sentence of each label (the first ones of the dev set the model gives it), so that printing one label for
    # everything cannot pass, and two of our own.
    dev = [line.split("\t")[0].strip() for line in open(os.path.join(SHARED, "sst2", "dev.tsv"))][1:41]
    labels = [label(s) for s in dev]
    sentences = [dev[labels.index(name)] for name in ("negative", "positive")] + ["a gripping film", "dull and lifeless"]
    cli_main(["classify", "--model", folder, *sentences])
    assert capsys.readouterr().out.splitlines() == [label(s) for s in sentences]
    cli_main(["evaluate", "--model", folder, "--test_file", os.path.join(SHARED, "sst2", "dev.tsv"), "--max_samples", "400"])
    scores = json.loads(capsys.readouterr().out)
    assert scores["examples"] == 400 and scores["accuracy"] == results["test"]["test_accuracy"]


# --- bad input ------------------------------------------------------------------------------------------------------


def write(path, text):
    path.write_text(text, encoding="utf-8")
    return str(path)


def load(task, **kwargs):
    task = get_task(task)
    args = DataArguments(task=task.name, **kwargs)
    task.apply_defaults(args)
    return task.load(args)


def test_missing_columns_are_named_with_the_columns_that_exist(tmp_path):
    path = write(tmp_path / "d.jsonl", json.dumps({"conversation": "a b", "abstract": "c"}) + "\n")
    with pytest.raises(DataError, match=r"no column 'dialogue' \(text\).*columns are \['conversation', 'abstract'\].*--text_column"):
        load("summarization", train_file=path)
    path = write(tmp_path / "q.jsonl", json.dumps({"query": "Who?", "context": "Ann did.", "answers": {"text": ["Ann"]}}) + "\n")
    with pytest.raises(DataError, match=r"no column 'question' \(question\).*\['query', 'context', 'answers'\]"):
        load("question-answering", train_file=path)
    path = write(tmp_path / "c.tsv", "text\tsentiment\ngood\t1\nbad\t0\n")
    message = (f"{path}: no column 'label' (label); the columns are ['text', 'sentiment']. Name the right ones with "
               "--label_column.")
    with pytest.raises(DataError, match=f"^{re.escape(message)}$"):
        load("text-classification", train_file=path)


def test_question_answering_bad_input(tmp_path):
    empty_context = [{"question": "Who?", "context": "Ann did.", "answers": {"text": ["Ann"], "answer_start": [0]}},
                     {"question": "Who?", "context": "  ", "answers": {"text": ["Ann"], "answer_start": [0]}}]
    path = write(tmp_path / "e.jsonl", "".join(json.dumps(r) + "\n" for r in empty_context))
    with pytest.raises(DataError, match="question 2 has an empty context"):
        load("question-answering", train_file=path)
    unanswered = [{"question": "Who?", "context": "Ann did.", "answers": {"text": [], "answer_start": []}}]
    path = write(tmp_path / "u.jsonl", "".join(json.dumps(r) + "\n" for r in unanswered))
    with pytest.raises(DataError, match=r"train: 1 question\(s\) have no answer \(the first is record 1\)"):
        load("question-answering", train_file=path)


def test_question_answering_reads_every_layout(tmp_path):
    """SQuAD's nested JSON, the Hub's flat layout as JSON lines, and a CSV with a plain answer column: the same
    examples."""
    nested = {"version": "1.1", "data": [{"title": "T", "paragraphs": [{"context": "Ann sang.", "qas": [
        {"id": "1", "question": "Who sang?", "answers": [{"text": "Ann", "answer_start": 0}, {"text": "Ann", "answer_start": 0}]}]}]}]}
    squad = write(tmp_path / "squad.json", json.dumps(nested))
    flat = write(tmp_path / "flat.jsonl", json.dumps({"id": "1", "title": "T", "context": "Ann sang.", "question": "Who sang?",
                                                       "answers": {"text": ["Ann"], "answer_start": [0]}}) + "\n")
    table = write(tmp_path / "t.csv", 'question,context,answer\n"Who sang?","Ann sang.",Ann\n')
    for path in (squad, flat, table):
        (example,) = load("question-answering", train_file=path)["train"]
        assert (example["source"], example["target"]) == ("question: Who sang? context: Ann sang.", "Ann"), path


def test_long_inputs_are_truncated_and_counted_not_dropped(tmp_path, caplog):
    from hf_seq2seq.vocabulary import train_tokenizer

    rows = [{"dialogue": " ".join(["word"] * n), "summary": "short summary"} for n in (5, 50, 500)]
    splits = load("summarization", train_file=write(tmp_path / "s.jsonl", "".join(json.dumps(r) + "\n" for r in rows)),
                  max_source_length=32)
    tokenizer = train_tokenizer(["word short summary"] * 10, vocab_size=300, min_frequency=1)
    args = DataArguments(task="summarization", max_source_length=32, max_target_length=128)
    with caplog.at_level("WARNING"):
        tokenized = get_task("summarization").tokenize(splits, tokenizer, args)
    assert len(tokenized["train"]) == 3  # kept
    assert [len(ids) for ids in tokenized["train"]["input_ids"]] == [6, 32, 32]
    assert all(ids[-1] == tokenizer.eos_token_id for ids in tokenized["train"]["input_ids"])
    assert "train: truncated 2 source(s) to --max_source_length 32" in caplog.text


def test_classification_bad_labels(tmp_path):
    train_file = write(tmp_path / "train.tsv", "sentence\tlabel\ngood film\t1\nbad film\t0\n")
    with pytest.raises(DataError, match=r"validation: the label 2 \(example 2\) is not among the labels \['0', '1'\]"):
        load("text-classification", train_file=train_file,
             validation_file=write(tmp_path / "dev.tsv", "sentence\tlabel\nfine\t1\nodd\t2\n"))
    with pytest.raises(DataError, match=r"every example has the label 1\. A classifier needs at least two classes"):
        load("text-classification", train_file=write(tmp_path / "one.tsv", "sentence\tlabel\ngood\t1\nfine\t1\n"))
    names = load("text-classification", train_file=write(tmp_path / "s.csv", "text,label\ngood,pos\nbad,neg\nok,pos\n"))
    assert names["train"]["label"] == [1, 0, 1]  # label names sorted: neg, pos


def test_a_classifier_is_evaluated_against_its_own_labels(tmp_path):
    """`hf-seq2seq evaluate` reads a test file's labels as the model's label names or their indices; a label the
    model does not have is a DataError naming it."""
    from hf_seq2seq import HFSeq2SeqConfig

    config = HFSeq2SeqConfig(id2label={0: "negative", 1: "positive"}, label2id={"negative": 0, "positive": 1})
    task = get_task("text-classification")
    test_file = write(tmp_path / "test.tsv", "sentence\tlabel\ngood film\tpositive\nbad film\t0\n")
    args = DataArguments(task="text-classification", test_file=test_file)
    assert task.test_set(args, config) == (["good film", "bad film"], [1, 0])
    args.test_file = write(tmp_path / "odd.tsv", "sentence\tlabel\nso-so\tneutral\n")
    with pytest.raises(DataError, match=r"the label 'neutral' is not one of the model's labels \['negative', 'positive'\]"):
        task.test_set(args, config)


def test_a_saved_model_is_known_by_its_pipeline_or_its_head():
    from hf_seq2seq.tasks import saved_model_task

    generator = ["HFSeq2SeqForConditionalGeneration"]
    assert saved_model_task({"architectures": generator, "custom_pipelines": {"summarization": {}}}) == "summarization"
    assert saved_model_task({"architectures": ["HFSeq2SeqForSequenceClassification"]}) == "text-classification"
    assert saved_model_task({"architectures": ["MarianMTModel"]}) == "translation"  # no pipeline: a translator
