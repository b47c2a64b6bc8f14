"""Extractive question answering: HFSeq2SeqForQuestionAnswering's start/end scores and loss, saving (remote code
included) and its start from a translator."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from torch.nn import functional as F

from conftest import SHARED_DATA, padded_batch, tiny_config, tiny_model


def tiny_reader(seed: int = 0, **overrides):
    from hf_seq2seq import HFSeq2SeqForQuestionAnswering

    torch.manual_seed(seed)
    return HFSeq2SeqForQuestionAnswering(tiny_config(**overrides)).eval()


def test_scores_every_input_position_and_the_loss_is_the_mean_of_two_cross_entropies():
    model = tiny_reader(init_std=0.3)
    input_ids, attention_mask = padded_batch([9, 5, 7])
    starts, ends = torch.tensor([2, 1, 3]), torch.tensor([4, 1, 5])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, start_positions=starts, end_positions=ends)
    assert out.start_logits.shape == out.end_logits.shape == input_ids.shape
    by_hand = (F.cross_entropy(out.start_logits, starts) + F.cross_entropy(out.end_logits, ends)) / 2
    torch.testing.assert_close(out.loss, by_hand)
    assert out.start_logits.std() > 0.1 and not torch.equal(out.start_logits, out.end_logits)

    # An answer cut off by truncation (a position past the input) is left out of the loss, as in BART.
    with torch.no_grad():
        cut = model(input_ids=input_ids, attention_mask=attention_mask, start_positions=torch.tensor([2, 1, 99]),
                    end_positions=torch.tensor([4, 1, 99]))
    kept = (F.cross_entropy(out.start_logits[:2], starts[:2]) + F.cross_entropy(out.end_logits[:2], ends[:2])) / 2
    torch.testing.assert_close(cut.loss, kept)


def test_padding_does_not_change_the_scores_of_real_positions():
    model = tiny_reader(init_std=0.3)
    input_ids, attention_mask = padded_batch([9, 5])
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask)
        alone = model(input_ids=input_ids[1:, :5], attention_mask=attention_mask[1:, :5])
    torch.testing.assert_close(batched.start_logits[1, :5], alone.start_logits[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched.end_logits[1, :5], alone.end_logits[0], rtol=1e-5, atol=1e-5)


def test_saved_reader_loads_with_auto_class_and_without_the_package(tmp_path):
    from transformers import AutoModelForQuestionAnswering

    model = tiny_reader(seed=4, init_std=0.3)
    input_ids, attention_mask = padded_batch([6, 4], seed=5)
    model.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForQuestionAnswering"] == "modeling_hf_seq2seq.HFSeq2SeqForQuestionAnswering"
    loaded = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "model").eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask)
        again = loaded(input_ids=input_ids, attention_mask=attention_mask)
    assert torch.equal(again.start_logits, expected.start_logits) and torch.equal(again.end_logits, expected.end_logits)
    script = textwrap.dedent("""
        import json, sys, torch
        sys.modules["hf_seq2seq"] = None
        from transformers import AutoModelForQuestionAnswering
        model = AutoModelForQuestionAnswering.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
        inputs = json.loads(sys.argv[2])
        with torch.no_grad():
            out = model(input_ids=torch.tensor(inputs["ids"]), attention_mask=torch.tensor(inputs["mask"]))
        print(json.dumps({"module": type(model).__module__, "start": out.start_logits.tolist(), "end": out.end_logits.tolist()}))
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model"),
                             json.dumps({"ids": input_ids.tolist(), "mask": attention_mask.tolist()})],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["module"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(remote["start"]), expected.start_logits)
    torch.testing.assert_close(torch.tensor(remote["end"]), expected.end_logits)


def test_reader_starts_from_a_translator_with_a_new_span_head(tmp_path):
    from transformers import AutoModelForQuestionAnswering

    translator = tiny_model(seed=6)
    translator.save_pretrained(tmp_path)
    reader, info = AutoModelForQuestionAnswering.from_pretrained(tmp_path, output_loading_info=True)
    assert set(info["missing_keys"]) == {"qa_outputs.weight", "qa_outputs.bias"}
    for name, weight in translator.model.state_dict().items():
        assert torch.equal(reader.model.state_dict()[name], weight), name
    # The new head is initialised as transformers initialises a new layer: N(0, init_std), bias zero.
    assert reader.qa_outputs.weight.std().item() < 3 * reader.config.init_std and torch.all(reader.qa_outputs.bias == 0)


# --- windows and spans: run_qa.py's pre- and post-processing ------------------------------------------------------

CONTEXT = ("The old mill stood by the river for two hundred years. Farmers brought their grain there every autumn. "
           "In 1887 a fire destroyed the mill, and the village built a school in its place. The school still "
           "teaches the children of the valley today.")


def reader_tokenizer():
    from hf_seq2seq.vocabulary import train_tokenizer

    return train_tokenizer([CONTEXT, "When did the fire destroy the mill?", "What stood by the river?"] * 8,
                           vocab_size=400, min_frequency=1)


def test_an_answer_in_the_second_window_is_found_and_mapped_back_to_its_characters():
    from hf_seq2seq.pipeline_hf_seq2seq import best_answers, question_answering_windows

    tokenizer = reader_tokenizer()
    question = "When did the fire destroy the mill?"
    windows = question_answering_windows(tokenizer, [question], [CONTEXT], max_seq_length=32, doc_stride=8)
    assert len(windows["input_ids"]) >= 3 and set(windows["example_index"]) == {0}
    assert all(len(ids) <= 32 for ids in windows["input_ids"])
    # Consecutive windows overlap by doc_stride context tokens.
    spans = [[o for o in offsets if o is not None] for offsets in windows["offset_mapping"]]
    assert spans[0][-8:] == spans[1][:8]

    answer_start = CONTEXT.index("1887")
    first_window = next(w for w, s in enumerate(spans) if s[0][0] <= answer_start and answer_start + 4 <= s[-1][1])
    assert first_window >= 1, "the test needs the answer outside the first window"
    # Scores that point at "1887" in that window (and at other tokens, lower, everywhere else).
    start_logits = torch.zeros(len(spans), max(len(ids) for ids in windows["input_ids"]))
    end_logits = start_logits.clone()
    offsets = windows["offset_mapping"][first_window]
    first = next(i for i, o in enumerate(offsets) if o is not None and o[0] <= answer_start < o[1])
    last = next(i for i, o in enumerate(offsets) if o is not None and o[0] < answer_start + 4 <= o[1])
    start_logits[first_window, first] = end_logits[first_window, last] = 8.0
    start_logits[0, 10] = end_logits[0, 10] = 5.0
    (found,) = best_answers(windows["example_index"], windows["offset_mapping"], start_logits, end_logits, [CONTEXT])
    assert found["answer"] == "1887" and (found["start"], found["end"]) == (answer_start, answer_start + 4)
    assert CONTEXT[found["start"] : found["end"]] == found["answer"] and 0 < found["score"] <= 1


def test_an_impossible_span_is_never_returned():
    """Random scores, highest on the question and special tokens, on ends before starts and on spans too long: what
    comes back is always a span of the context, start before end, at most max_answer_length tokens."""
    from hf_seq2seq.pipeline_hf_seq2seq import best_answers, question_answering_windows

    tokenizer = reader_tokenizer()
    questions = ["When did the fire destroy the mill?", "What stood by the river?"]
    windows = question_answering_windows(tokenizer, questions, [CONTEXT, CONTEXT[:90]], max_seq_length=40, doc_stride=10)
    width = max(len(ids) for ids in windows["input_ids"])
    generator = torch.Generator().manual_seed(0)
    for trial in range(50):
        start_logits = torch.randn(len(windows["input_ids"]), width, generator=generator)
        end_logits = torch.randn(len(windows["input_ids"]), width, generator=generator)
        for w, offsets in enumerate(windows["offset_mapping"]):
            outside = [i for i, o in enumerate(offsets) if o is None]
            start_logits[w, outside] += 20  # question tokens and </s>: never an answer
            end_logits[w, outside] += 20
            context = [i for i, o in enumerate(offsets) if o is not None]
            end_logits[w, context[0]] += 10  # an end before every start
            start_logits[w, context[-1]] += 10  # a start after every end
        answers = best_answers(windows["example_index"], windows["offset_mapping"], start_logits, end_logits,
                               [CONTEXT, CONTEXT[:90]], n_best_size=5, max_answer_length=4)
        for example, (answer, context) in enumerate(zip(answers, [CONTEXT, CONTEXT[:90]])):
            assert 0 <= answer["start"] < answer["end"] <= len(context), (trial, answer)
            assert context[answer["start"] : answer["end"]] == answer["answer"]
            # Some window of the question covers the span with at most 4 of its context tokens.
            covering = [[o for o in offsets if o is not None and o[0] < answer["end"] and o[1] > answer["start"]]
                        for offsets, e in zip(windows["offset_mapping"], windows["example_index"]) if e == example]
            assert any(span and span[0][0] <= answer["start"] and span[-1][1] >= answer["end"] and len(span) <= 4
                       for span in covering), (trial, answer)


def test_pipeline_answers_with_spans_and_works_without_the_package(tmp_path):
    """The question-answering pipeline with a span reader returns transformers' extractive output: the answer is the
    context's characters [start, end), the best span of the reader's own scores; a process without this package gets
    the same from the saved folder."""
    from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForQuestionAnswering
    from hf_seq2seq.hub import save_bundle
    from hf_seq2seq.pipeline_hf_seq2seq import QuestionAnsweringPipeline, best_answers, question_answering_windows

    tokenizer = reader_tokenizer()
    torch.manual_seed(1)
    model = HFSeq2SeqForQuestionAnswering(HFSeq2SeqConfig.from_preset("tiny", vocab_size=len(tokenizer), dropout=0.0,
                                                                      init_std=0.3)).eval()
    reader = QuestionAnsweringPipeline(model=model, tokenizer=tokenizer)
    question = "When did the fire destroy the mill?"
    answer = reader(question=question, context=CONTEXT, max_seq_length=32, doc_stride=8)
    assert set(answer) == {"answer", "score", "start", "end"} and answer["answer"]
    assert CONTEXT[answer["start"] : answer["end"]] == answer["answer"]
    windows = question_answering_windows(tokenizer, [question], [CONTEXT], 32, 8)
    batch = tokenizer.pad({"input_ids": windows["input_ids"], "attention_mask": windows["attention_mask"]},
                          return_tensors="pt")
    with torch.no_grad():
        scores = model(**batch)
    (expected,) = best_answers(windows["example_index"], windows["offset_mapping"], scores.start_logits,
                               scores.end_logits, [CONTEXT])
    assert answer == expected
    assert reader(question="", context=CONTEXT) == {"answer": "", "score": 0.0, "start": 0, "end": 0}

    save_bundle(model, tokenizer, str(tmp_path / "reader"), "question-answering")
    script = textwrap.dedent("""
        import json, sys
        sys.modules["hf_seq2seq"] = None
        from transformers import pipeline
        reader = pipeline("question-answering", model=sys.argv[1], trust_remote_code=True)
        print(json.dumps({"class": type(reader.model).__name__,
                          "answer": reader(question=sys.argv[2], context=sys.argv[3], max_seq_length=32, doc_stride=8)}))
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "reader"), question, CONTEXT], cwd=tmp_path,
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["class"] == "HFSeq2SeqForQuestionAnswering"
    assert remote["answer"]["answer"] == answer["answer"] and (remote["answer"]["start"], remote["answer"]["end"]) == (
        answer["start"], answer["end"])


# --- training a span reader: train.py --task extractive-question-answering ----------------------------------------

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def test_training_windows_label_the_answer_in_the_window_that_holds_it_whole():
    from datasets import Dataset, DatasetDict

    from hf_seq2seq.data import DataArguments
    from hf_seq2seq.tasks import get_task

    task = get_task("extractive-question-answering")
    args = DataArguments(task=task.name, max_seq_length=32, doc_stride=8)
    task.apply_defaults(args)
    answer_start = CONTEXT.index("1887")
    raw = Dataset.from_list([{"question": "When did the fire destroy the mill?", "context": CONTEXT,
                              "answers": {"text": ["1887"], "answer_start": [answer_start]}}])
    examples = task.check(task.examples(raw, args, "test data"), args, "train")
    windows = task.tokenize(DatasetDict({"validation": examples}), reader_tokenizer(), args)["validation"]
    holding = [w for w, offsets in enumerate(windows["offset_mapping"])
               if any(o and o[0] <= answer_start for o in offsets) and any(o and o[1] >= answer_start + 4 for o in offsets)]
    assert len(windows) >= 3 and holding and holding[0] >= 1, "the answer must lie beyond the first window"
    for w, (offsets, start, end) in enumerate(zip(windows["offset_mapping"], windows["start_positions"], windows["end_positions"])):
        if w in holding:
            assert offsets[start][0] <= answer_start < offsets[start][1] and offsets[end][0] < answer_start + 4 <= offsets[end][1]
            assert CONTEXT[offsets[start][0] : offsets[end][1]].strip() == "1887"
        else:
            assert (start, end) == (0, 0)


@pytest.fixture(scope="module")
def span_reader(tmp_path_factory, shared_data):
    sys.path.insert(0, ROOT)
    import train

    data = os.path.join(shared_data, "squad-v1.1")
    output = tmp_path_factory.mktemp("span") / "model"
    results = train.main([
        "--task", "extractive-question-answering", "--train_file", f"{data}/train.json", "--test_file", f"{data}/dev.json",
        "--validation_file", f"{data}/dev.json", "--max_train_samples", "400", "--max_eval_samples", "8",
        "--max_predict_samples", "24", "--max_seq_length", "128", "--doc_stride", "32", "--preset", "tiny",
        "--vocab_size", "800", "--learning_rate", "3e-3", "--warmup_steps", "20", "--max_steps", "60",
        "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "16", "--eval_strategy", "steps",
        "--eval_steps", "30", "--save_strategy", "no", "--logging_steps", "10", "--disable_tqdm", "true",
        "--output_dir", str(output),
    ])
    return str(output), results


def test_span_reader_trains_evaluates_and_saves_its_settings(span_reader):
    folder, results = span_reader
    config = json.loads(open(os.path.join(folder, "config.json")).read())
    assert config["architectures"] == ["HFSeq2SeqForQuestionAnswering"]
    assert config["custom_pipelines"]["question-answering"]["pt"] == ["AutoModelForQuestionAnswering"]
    assert config["task_specific_params"]["question-answering"] == {
        "max_seq_length": 128, "doc_stride": 32, "n_best_size": 20, "max_answer_length": 30}
    assert {"test_f1", "test_exact_match"} <= results["test"].keys()
    assert "eval_f1" in open(os.path.join(folder, "curve.json")).read()  # scored during training too


def test_span_reader_test_score_is_the_official_score_of_its_answers(span_reader, capsys):
    """The score train.py reports is SQuAD's own on the answers the command line prints and `evaluate` scores."""
    from hf_seq2seq.cli import load, main as cli_main
    from hf_seq2seq.data import DataArguments
    from hf_seq2seq.inference import answer_spans
    from hf_seq2seq.metrics import load_squad
    from hf_seq2seq.tasks import get_task

    folder, results = span_reader
    dev = os.path.join(SHARED_DATA, "squad-v1.1", "dev.json")
    task = get_task("extractive-question-answering")
    args = DataArguments(task=task.name, test_file=dev, max_predict_samples=24)
    task.apply_defaults(args)
    examples = task.load(args)["test"]
    model, tokenizer = load(folder)
    answers = answer_spans(model, tokenizer, list(examples["question"]), list(examples["context"]))
    assert all(a["answer"] == c[a["start"] : a["end"]] for a, c in zip(answers, examples["context"]))
    official = load_squad().compute(predictions=[a["answer"] for a in answers], references=list(examples["references"]))
    assert results["test"]["test_f1"] == round(official["f1"], 2)

    cli_main(["evaluate", "--model", folder, "--test_file", dev, "--max_samples", "24"])
    assert json.loads(capsys.readouterr().out)["f1"] == round(official["f1"], 2)
    cli_main(["answer", "--model", folder, "--question", examples[0]["question"], "--question", examples[1]["question"],
              "--context", examples[0]["context"]])
    expected = answer_spans(model, tokenizer, [examples[0]["question"], examples[1]["question"]], [examples[0]["context"]] * 2)
    assert capsys.readouterr().out.splitlines() == [a["answer"] for a in expected]
