"""The pieces of the default recipe (configs/default.json) that train.py adds to the Trainer's own: the final model
as the average of the last checkpoints; and the recipe file itself."""

import json
import os
import sys

import pytest
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
import train  # noqa: E402
from hf_seq2seq.averaging import average_checkpoints, last_checkpoints  # noqa: E402
from hf_seq2seq.training import TrainingArguments  # noqa: E402

RUN = [
    "--preset", "tiny", "--dataset_name", "builtin:grammar", "--builtin_train_size", "1000", "--vocab_size", "400",
    "--max_predict_samples", "20", "--eval_strategy", "no", "--per_device_train_batch_size", "16",
    "--generation_max_length", "20", "--logging_steps", "5", "--disable_tqdm", "true",
]


def test_final_model_is_the_average_of_the_last_checkpoints(tmp_path):
    output = tmp_path / "run"
    results = train.main(RUN + ["--max_steps", "15", "--save_strategy", "steps", "--save_steps", "5",
                                "--save_total_limit", "3", "--average_checkpoints", "3", "--output_dir", str(output)])
    checkpoints = last_checkpoints(str(output), 3)
    assert [os.path.basename(c) for c in checkpoints] == ["checkpoint-5", "checkpoint-10", "checkpoint-15"]
    expected = load_file(os.path.join(average_checkpoints(checkpoints, str(tmp_path / "expected")), "model.safetensors"))
    saved = load_file(str(output / "model.safetensors"))
    last = load_file(os.path.join(checkpoints[-1], "model.safetensors"))
    assert saved.keys() == expected.keys()
    assert all((saved[name] == expected[name]).all() for name in expected)
    assert any((saved[name] != last[name]).any() for name in last)  # not simply the last weights
    assert not (output / "checkpoint-average").exists()
    assert "final weights: the mean of the last 3 checkpoints" in (output / "README.md").read_text(encoding="utf-8")
    # what was scored is what was saved: the averaged model's test results
    assert json.load(open(output / "test_results.json"))["test_bleu"] == results["test"]["test_bleu"]


def test_averaging_needs_the_checkpoints_kept():
    with pytest.raises(ValueError, match="--save_total_limit at least 5"):
        TrainingArguments(output_dir="x", average_checkpoints=5, save_strategy="steps", save_total_limit=2)
    with pytest.raises(ValueError, match="--save_strategy steps or epoch"):
        TrainingArguments(output_dir="x", average_checkpoints=2, save_strategy="no")


def test_default_recipe_is_a_valid_argument_file():
    """`python train.py` with no arguments reads configs/default.json: every key is an argument, and it trains on the
    built-in Tatoeba pairs with a time budget that leaves the whole job within 10 minutes."""
    model_args, data_args, training_args = train.parse_args([])
    assert data_args.dataset_name is None and data_args.train_file is None  # -> builtin:tatoeba
    assert training_args.max_train_minutes <= 7
    assert training_args.average_checkpoints > 1 and training_args.output_dir == "outputs/en-fr"
