"""train.py end to end: the built-in corpus, checkpoints and resuming, bad checkpoints, two processes, the CLI."""

import json
import os
import shutil
import signal
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import train  # noqa: E402
from hf_seq2seq.cli import main as cli_main  # noqa: E402
from hf_seq2seq.training import CheckpointError  # noqa: E402

def test_default_job_trains_evaluates_and_saves(trained):
    output, results = trained
    assert results["test"]["test_bleu"] >= 60, results["test"]  # see conftest.trained
    for name in ("model.safetensors", "config.json", "generation_config.json", "tokenizer.json",
                 "modeling_hf_seq2seq.py", "configuration_hf_seq2seq.py", "test_results.json",
                 "train_results.json", "curve.json", "README.md", "pipeline_hf_seq2seq.py", "training_curve.png"):
        assert os.path.isfile(os.path.join(output, name)), name
    generation = json.load(open(os.path.join(output, "generation_config.json")))
    # beam 4 and the translation task's source-length bound: what the pipeline and the CLI decode with
    assert (generation["num_beams"], generation["max_len_a"], generation["max_len_b"]) == (4, 2.0, 10)
    card = open(os.path.join(output, "README.md"), encoding="utf-8").read()
    assert f"value: {results['test']['test_bleu']}" in card and "pipeline_tag: translation" in card

    tokenizer = AutoTokenizer.from_pretrained(output)
    model = AutoModelForSeq2SeqLM.from_pretrained(output)
    batch = tokenizer(["My sister saw the cat."], return_tensors="pt")
    assert tokenizer.batch_decode(model.generate(**batch), skip_special_tokens=True)[0].startswith("Ma sœur")


def test_cli_translate_and_evaluate(trained, tmp_path, capsys):
    output, _ = trained
    cli_main(["translate", "--model", output, "My sister saw the cat.", ""])
    lines = capsys.readouterr().out.splitlines()
    assert lines[0].startswith("Ma sœur") and lines[1] == ""
    # The scores `evaluate` prints are sacreBLEU's (the project's metric, default settings) of the translations
    # `translate` prints for the same sources, against the references.
    from sacrebleu.metrics import BLEU, CHRF

    from hf_seq2seq.corpus import generate_corpus

    pairs = [row["translation"] for row in generate_corpus(train_size=10000)["test"][:40]]
    sources, references = [p["en"] for p in pairs], [p["fr"] for p in pairs]
    test_file = tmp_path / "test.tsv"
    test_file.write_text("".join(f"{en}\t{fr}\n" for en, fr in zip(sources, references)), encoding="utf-8")
    cli_main(["translate", "--model", output, *sources])
    translations = capsys.readouterr().out.splitlines()
    assert len(translations) == len(sources) and translations != references  # real output, not a perfect copy
    cli_main(["evaluate", "--model", output, "--test_file", str(test_file)])
    scores = json.loads(capsys.readouterr().out)
    assert scores["examples"] == len(sources) and "nrefs:1" in scores["bleu_signature"]
    assert scores["bleu"] == round(BLEU().corpus_score(translations, [references]).score, 2)
    assert scores["chrf"] == round(CHRF().corpus_score(translations, [references]).score, 2)


def test_cli_answer_prints_generate_of_each_question_with_the_context_in_order(trained, capsys):
    """`answer` formats each --question with the --context as the question-answering pipeline does and prints what
    generate() makes of it, a line per question, in the order given (the verb batches by length). test_tasks.py's
    reader, after 60 steps, answers every question alike, which would hide a wrong order or input; the translator's
    output depends on its input, so it stands in here."""
    from hf_seq2seq.pipeline_hf_seq2seq import question_answering_input

    output, _ = trained
    context = "The cat sleeps."
    questions = ["We will buy three red cars.", "My sister saw the cat.", "I saw two birds."]  # not in length order
    cli_main(["answer", "--model", output, *[arg for q in questions for arg in ("--question", q)], "--context", context])
    model, tokenizer = AutoModelForSeq2SeqLM.from_pretrained(output).eval(), AutoTokenizer.from_pretrained(output)
    expected = [tokenizer.decode(model.generate(**tokenizer(question_answering_input(q, context), return_tensors="pt"))[0],
                                 skip_special_tokens=True) for q in questions]
    assert len(set(expected)) == len(questions), expected
    assert capsys.readouterr().out.splitlines() == expected


def test_classifier_starts_from_the_translator_through_train_py(trained, tmp_path):
    """`train.py --task text-classification --model_name_or_path <translator>`: the classifier is the translator's
    encoder–decoder, weights and tokenizer, with a new head (a learning rate of 0 keeps the weights as loaded)."""
    from safetensors.torch import load_file

    from hf_seq2seq.corpus import generate_corpus

    translator, _ = trained
    sentences = [row["translation"]["en"] for row in generate_corpus(train_size=200)["train"][:64]]
    data = tmp_path / "train.tsv"
    data.write_text("sentence\tlabel\n" + "".join(f"{s}\t{int('cat' in s)}\n" for s in sentences), encoding="utf-8")
    output = tmp_path / "classifier"
    train.main([
        "--task", "text-classification", "--model_name_or_path", translator, "--train_file", str(data),
        "--class_names", "other,cat", "--max_steps", "2", "--learning_rate", "0", "--per_device_train_batch_size", "16",
        "--eval_strategy", "no", "--save_strategy", "no", "--disable_tqdm", "true", "--output_dir", str(output),
    ])
    config = json.load(open(output / "config.json"))
    assert config["architectures"] == ["HFSeq2SeqForSequenceClassification"] and config["id2label"] == {"0": "other", "1": "cat"}
    # The translator's tokenizer (saved again, with the truncation setting of the run's last call: compared without it).
    ours_tokenizer, theirs_tokenizer = (json.load(open(os.path.join(folder, "tokenizer.json"))) for folder in (output, translator))
    assert {**ours_tokenizer, "truncation": None} == {**theirs_tokenizer, "truncation": None}
    ours, theirs = load_file(output / "model.safetensors"), load_file(os.path.join(translator, "model.safetensors"))
    assert {name.split(".")[0] for name in ours.keys() - theirs.keys()} == {"classification_head"}
    assert theirs.keys() <= ours.keys()
    assert all(torch.equal(ours[name], theirs[name]) for name in theirs), "the encoder–decoder was not the translator's"


def test_cli_names_a_missing_model(tmp_path):
    with pytest.raises(SystemExit, match="does not exist"):
        cli_main(["translate", "--model", str(tmp_path / "nope"), "x"])
    (tmp_path / "half").mkdir()
    (tmp_path / "half" / "config.json").write_text("{}")
    with pytest.raises(SystemExit, match="model.safetensors, tokenizer.json missing"):
        cli_main(["translate", "--model", str(tmp_path / "half"), "x"])


RESUMABLE = [
    "--preset", "tiny", "--dataset_name", "builtin:grammar", "--builtin_train_size", "3000", "--vocab_size", "400", "--max_eval_samples", "20",
    "--max_predict_samples", "20", "--eval_strategy", "no", "--save_strategy", "steps", "--save_steps", "5",
    "--save_total_limit", "50", "--per_device_train_batch_size", "16", "--generation_max_length", "20",
    "--logging_steps", "5", "--disable_tqdm", "true",
]


def test_killed_run_resumes_from_last_checkpoint(tmp_path):
    output = str(tmp_path / "run")
    evaluating = ["--eval_strategy", "steps", "--eval_steps", "5"]
    # The run kills itself with SIGKILL (no chance to clean up, as with a crash or a lost machine) right after writing
    # checkpoint-15 (tests/kill_probe.py): the same step on any machine, however slow or busy.
    killed = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "kill_probe.py"), *RESUMABLE, *evaluating, "--output_dir", output,
         "--max_steps", "400", "--kill_after_checkpoint", "15"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert killed.returncode == -signal.SIGKILL, f"not killed at step 15 (exit {killed.returncode}): {killed.stderr[-3000:]}"
    assert not os.path.isfile(os.path.join(output, "model.safetensors")), "the run finished before it was killed"
    complete = sorted(int(n.split("-")[1]) for n in os.listdir(output)
                      if n.startswith("checkpoint-") and os.path.isfile(os.path.join(output, n, "trainer_state.json")))
    assert complete == [5, 10, 15], complete
    last = complete[-1]
    # The quality curve so far survived the kill: it is written at every evaluation, not at the end.
    killed_curve = json.load(open(os.path.join(output, "curve.json")))
    assert [point["step"] for point in killed_curve] == [5, 10, 15]

    result = subprocess.run(
        [sys.executable, os.path.join(ROOT, "tests", "kill_probe.py"), *RESUMABLE, *evaluating, "--output_dir", output,
         "--max_steps", str(last + 10), "--resume_from_checkpoint", "true"],
        cwd=ROOT, capture_output=True, text=True, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    # The steps each process trained (kill_probe.py): 1 to 15, then 16 to 25; a run that started over would train
    # 1 to 25 again and end with the same step numbers everywhere else.
    assert open(os.path.join(output, "steps.txt")).read().split() == [str(n) for n in range(1, last + 11)]
    state = json.load(open(os.path.join(output, "trainer_state.json")))
    assert state["global_step"] == last + 10
    # Training went on from the checkpoint's step, not from zero: the first logged step after resuming follows it.
    steps = [entry["step"] for entry in state["log_history"] if "loss" in entry]
    assert steps == list(range(5, last + 11, 5))
    # The curve goes on from the checkpoint too: one point per evaluated step, on a clock that does not go back.
    curve = json.load(open(os.path.join(output, "curve.json")))
    assert [point["step"] for point in curve] == list(range(5, last + 11, 5))
    assert all(a["seconds"] <= b["seconds"] for a, b in zip(curve, curve[1:]))


def test_curve_survives_a_crash_while_it_is_written(tmp_path, monkeypatch):
    # The kill above can land while curve.json is being rewritten; the file on disk must stay a whole curve.
    from types import SimpleNamespace

    from hf_seq2seq import training

    args, state = SimpleNamespace(output_dir=str(tmp_path)), SimpleNamespace(is_world_process_zero=True)
    callback = training.TimeBudgetCallback()
    callback.curve = [{"seconds": 1.0, "step": 5}]
    callback.write(args, state)
    callback.curve.append({"seconds": 2.0, "step": 10})

    def dump_then_die(obj, f, **kwargs):
        f.write('[{"seconds": 1.0, "st')  # part of the new file, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(training.json, "dump", dump_then_die)
    with pytest.raises(KeyboardInterrupt):
        callback.write(args, state)
    monkeypatch.undo()
    assert json.load(open(tmp_path / "curve.json")) == [{"seconds": 1.0, "step": 5}]


def test_learning_rate_falls_to_zero_with_the_time_budget(tmp_path, monkeypatch):
    """--lr_decay_over_time_budget: transformers' warm-up by steps, then a linear fall to zero by the clock (where
    inverse_sqrt alone would still be at sqrt(warm-up / step) of the peak). The callback reads a clock of the test's
    own, moved by hand: a busy machine's pauses do not move the factors."""
    from types import SimpleNamespace

    import torch
    from transformers import get_scheduler

    from hf_seq2seq import training

    clock = [1000.0]
    monkeypatch.setattr(training, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    args = training.TrainingArguments(output_dir=str(tmp_path), max_train_minutes=10, warmup_steps=4,
                                      lr_decay_over_time_budget=True)
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1e-3)
    scheduler = get_scheduler("inverse_sqrt", optimizer, num_warmup_steps=4)
    callback = training.TimeBudgetCallback(10)
    callback.on_train_begin(args, SimpleNamespace(max_steps=1000, global_step=0), None, lr_scheduler=scheduler)
    factor = scheduler.lr_lambdas[0]
    assert factor(2) == pytest.approx(0.5)  # half-way through the warm-up, at the start of the budget
    assert factor(50) == pytest.approx(1.0)  # inverse_sqrt: 0.28
    clock[0] += 5 * 60  # half of the 10 minutes gone
    assert factor(50) == pytest.approx(0.5)
    scheduler.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(1e-3 * 1 / 4 * 0.5, abs=1e-5)  # step 1 of 4 of the warm-up, x 0.5
    clock[0] += 6 * 60  # past the end
    assert factor(900) == 0.0
    with pytest.raises(ValueError, match="needs --max_train_minutes"):
        training.TrainingArguments(output_dir=str(tmp_path), lr_decay_over_time_budget=True)


def test_partial_and_corrupted_checkpoints_are_clear_errors(tmp_path):
    output = tmp_path / "run"
    subprocess.run(
        [sys.executable, os.path.join(ROOT, "train.py"), *RESUMABLE, "--output_dir", str(output), "--max_steps", "5"],
        cwd=ROOT, check=True, capture_output=True, timeout=600,
    )
    checkpoint = output / "checkpoint-5"
    partial = output / "checkpoint-10"
    shutil.copytree(checkpoint, partial)
    os.remove(partial / "trainer_state.json")  # stopped while being written
    with pytest.raises(CheckpointError, match=r"checkpoint-10' is incomplete: trainer_state.json missing"):
        train.main(RESUMABLE + ["--output_dir", str(output), "--resume_from_checkpoint", str(partial)])

    corrupted = output / "checkpoint-20"
    shutil.copytree(checkpoint, corrupted)
    data = (corrupted / "model.safetensors").read_bytes()
    (corrupted / "model.safetensors").write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match=r"checkpoint-20' is corrupted"):
        train.main(RESUMABLE + ["--output_dir", str(output), "--resume_from_checkpoint", str(corrupted)])

    # `true` takes the newest complete checkpoint and says which ones it skipped.
    from hf_seq2seq.training import resolve_resume
    assert resolve_resume("true", str(output)) == str(checkpoint)


def test_two_processes_train_on_different_batches(tmp_path):
    output = str(tmp_path / "ddp")
    command = [
        sys.executable, "-m", "accelerate.commands.launch", "--multi_gpu", "--num_processes", "2",
        os.path.join(ROOT, "tests", "ddp_probe.py"), *RESUMABLE, "--output_dir", output, "--max_steps", "4",
        "--save_strategy", "no",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    result = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-3000:]
    records = {rank: [json.loads(line) for line in open(os.path.join(output, f"rank{rank}.jsonl"))] for rank in (0, 1)}
    assert all(r["world_size"] == 2 for rank in records for r in records[rank])
    assert len(records[0]) == len(records[1]) == 4
    assert all(a["batch"] != b["batch"] for a, b in zip(records[0], records[1])), "both ranks saw the same batch"
    # Each process freed DDP's wrapper before leaving the process group (else its exit can hang, pytorch#56297).
    for rank in (0, 1):
        assert json.load(open(os.path.join(output, f"rank{rank}-exit.json"))) == {"ddp_wrappers_alive": 0}
    # The model the two processes trained loads and translates.
    tokenizer = AutoTokenizer.from_pretrained(output)
    model = AutoModelForSeq2SeqLM.from_pretrained(output)
    out = model.generate(**tokenizer(["The cat."], return_tensors="pt"), max_new_tokens=5)
    assert out.shape[0] == 1


@pytest.mark.parametrize("strategy", ["epoch", "steps"])
def test_time_budget_stops_with_one_evaluation_and_checkpoint(tmp_path, strategy):
    output = str(tmp_path / strategy)
    train.main(RESUMABLE + [
        "--output_dir", output, "--eval_strategy", strategy, "--eval_steps", "100000", "--save_strategy", strategy,
        "--save_steps", "100000", "--num_train_epochs", "50", "--max_train_minutes", "0.05",
    ])
    curve = json.load(open(os.path.join(output, "curve.json")))
    state = json.load(open(os.path.join(output, "trainer_state.json")))
    assert state["epoch"] < 50, "the budget did not stop training"
    # How many epochs end before the budget does depends on the machine's speed; what must hold on any machine: the
    # stop step is evaluated and saved, and no step is evaluated or saved twice (each evaluation has its checkpoint).
    evaluated = [point["step"] for point in curve]
    saved = sorted(int(n.split("-")[1]) for n in os.listdir(output) if n.startswith("checkpoint-"))
    assert evaluated[-1] == state["global_step"]
    assert evaluated == sorted(set(evaluated)) == saved
    if strategy == "steps":  # eval_steps/save_steps are far away: the stop is the only evaluation
        assert evaluated == [state["global_step"]]


@pytest.mark.skipif(torch.cuda.is_available(), reason="the oneDNN caches matter to bf16 on the CPU only")
def test_bf16_on_cpu_bounds_onednn_kernel_caches_unless_the_user_set_them(tmp_path, monkeypatch):
    """A kernel cached per input shape filled 3 GiB in a bf16 run with batches of varying length (bench/README.md):
    `--bf16` on the CPU makes both caches small; a value the user exported wins; float32 leaves them alone."""
    from hf_seq2seq.training import TrainingArguments

    monkeypatch.setenv("LRU_CACHE_CAPACITY", "unset")  # recorded, so that the test's own setting is undone after it
    monkeypatch.delenv("LRU_CACHE_CAPACITY")
    monkeypatch.setenv("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "512")
    TrainingArguments(output_dir=str(tmp_path), report_to="none")
    assert "LRU_CACHE_CAPACITY" not in os.environ
    TrainingArguments(output_dir=str(tmp_path), report_to="none", bf16=True)
    assert os.environ["LRU_CACHE_CAPACITY"] == "1"
    assert os.environ["ONEDNN_PRIMITIVE_CACHE_CAPACITY"] == "512"


def test_bf16_mixed_precision_training_runs_on_cpu_and_learns(tmp_path):
    """`--bf16`: Trainer runs the forward under torch.autocast(bfloat16) on the CPU. The loss falls as in float32
    (and is not float32's to the last digit: the arithmetic really changed). This checks correctness, not speed,
    which depends on the processor."""
    losses = {}
    for precision in ("bf16", "fp32"):
        output = str(tmp_path / precision)
        train.main(RESUMABLE + ["--output_dir", output, "--bf16", str(precision == "bf16"), "--max_steps", "60",
                                "--learning_rate", "3e-3", "--warmup_steps", "10", "--logging_steps", "10",
                                "--save_strategy", "no"])
        state = json.load(open(os.path.join(output, "trainer_state.json")))
        losses[precision] = [entry["loss"] for entry in state["log_history"] if "loss" in entry]
    bf16, fp32 = losses["bf16"], losses["fp32"]
    assert len(bf16) == 6 and all(loss == loss for loss in bf16), bf16  # logged, and never NaN
    assert bf16[-1] < bf16[0] - 0.7, bf16
    assert bf16 != fp32 and abs(bf16[-1] - fp32[-1]) < 0.2, (bf16, fp32)
    assert json.load(open(os.path.join(tmp_path, "bf16", "config.json"))).get("dtype", "float32") == "float32"  # fp32 weights
