"""Checkpoint averaging (Vaswani et al., section 6.1): the exact mean of the weights, as a model folder that loads."""

import argparse
import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

from hf_seq2seq.averaging import add_average_command, average_checkpoints, last_checkpoints, run_average
from hf_seq2seq.hub import save_bundle
from hf_seq2seq.vocabulary import train_tokenizer

from conftest import tiny_model

TEXTS = ["The two red cars.", "Les deux voitures rouges.", "My sister saw the cat.", "Ma sœur a vu le chat."] * 10


def save_checkpoint(folder, model, tokenizer, step):
    """What the Trainer writes that matters here: weights, config, tokenizer, and trainer_state.json last."""
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    with open(os.path.join(folder, "trainer_state.json"), "w") as f:
        json.dump({"global_step": step}, f)
    return str(folder)


@pytest.fixture
def run(tmp_path):
    """A train.py output folder: checkpoint-5, -10 and -15 (three different tiny models; numeric order is not the
    alphabetical one), an incomplete checkpoint-20 (cut short before trainer_state.json), and the final bundle."""
    tokenizer = train_tokenizer(TEXTS, vocab_size=300, min_frequency=1)
    run = tmp_path / "run"
    for seed, step in enumerate((5, 10, 15)):
        save_checkpoint(run / f"checkpoint-{step}", tiny_model(seed=seed, vocab_size=len(tokenizer)), tokenizer, step)
    tiny_model(seed=9, vocab_size=len(tokenizer)).save_pretrained(run / "checkpoint-20")  # no trainer_state.json
    save_bundle(tiny_model(seed=2, vocab_size=len(tokenizer)), tokenizer, str(run))
    return run


def float64_mean(folders):
    weights = [load_file(os.path.join(folder, "model.safetensors")) for folder in folders]
    return {name: torch.stack([w[name].double() for w in weights]).mean(0) for name in weights[0]}


def test_average_is_the_exact_mean_and_loads_as_a_model(run, tmp_path):
    checkpoints = [str(run / f"checkpoint-{step}") for step in (5, 10, 15)]
    output = average_checkpoints(checkpoints, str(tmp_path / "averaged"))

    averaged, expected = load_file(os.path.join(output, "model.safetensors")), float64_mean(checkpoints)
    assert averaged.keys() == expected.keys()
    for name, tensor in averaged.items():
        assert tensor.dtype == torch.float32, name
        assert torch.equal(tensor, expected[name].float()), name
    first = load_file(os.path.join(checkpoints[0], "model.safetensors"))
    assert not torch.equal(averaged["model.shared.weight"], first["model.shared.weight"])

    model = AutoModelForSeq2SeqLM.from_pretrained(output).eval()
    torch.testing.assert_close(model.model.shared.weight, averaged["model.shared.weight"], rtol=0, atol=0)
    ids = model.generate(input_ids=torch.tensor([[5, 6, 7, 2]]), num_beams=2, max_new_tokens=5)
    assert ids.shape[0] == 1 and ids.shape[1] > 1


AVERAGED_PIPELINE_IN_A_CLEAN_PROCESS = textwrap.dedent(
    """
    import json, sys
    sys.modules["hf_seq2seq"] = None  # the package cannot be imported here: the folder's own code must do
    from transformers import pipeline
    translator = pipeline("translation", model=sys.argv[1], trust_remote_code=True)
    out = translator("My sister saw the cat.", max_new_tokens=4, num_beams=1)
    print(json.dumps({"class": type(translator).__module__, "out": out}))
    """
)


def test_average_folder_holds_the_bundle_the_pipeline_needs(run, tmp_path):
    """train.py's checkpoints lack the pipeline code and config entry; they come from the run's final bundle, so the
    averaged folder works with `trust_remote_code` where the package is not installed, as the run's model does."""
    output = average_checkpoints(last_checkpoints(str(run), 3), str(tmp_path / "averaged"))
    for name in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                 "configuration_hf_seq2seq.py", "modeling_hf_seq2seq.py", "pipeline_hf_seq2seq.py"):
        assert os.path.isfile(os.path.join(output, name)), name
    assert not os.path.exists(os.path.join(output, "trainer_state.json"))
    config = json.load(open(os.path.join(output, "config.json")))
    assert config["custom_pipelines"] == json.load(open(run / "config.json"))["custom_pipelines"]

    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", AVERAGED_PIPELINE_IN_A_CLEAN_PROCESS, output],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["class"].startswith("transformers_modules")

    # What the pipeline printed is generate() of the mean of the three checkpoints, computed here in float64 and
    # loaded with the folder's config (so a folder holding other weights, e.g. the first checkpoint's, cannot pass).
    def greedy_text(folder):
        model = AutoModelForSeq2SeqLM.from_pretrained(folder).eval()
        inputs = tokenizer("My sister saw the cat.", return_tensors="pt")
        return tokenizer.decode(model.generate(**inputs, max_new_tokens=4, num_beams=1)[0], skip_special_tokens=True)

    tokenizer = AutoTokenizer.from_pretrained(output)
    mean = tmp_path / "mean"
    os.makedirs(mean)
    for name in ("config.json", "generation_config.json"):
        shutil.copy(os.path.join(output, name), mean / name)
    save_file({name: tensor.float() for name, tensor in float64_mean(last_checkpoints(str(run), 3)).items()},
              str(mean / "model.safetensors"), metadata={"format": "pt"})
    expected = greedy_text(mean)
    assert expected != greedy_text(run / "checkpoint-5")  # the comparison tells the mean from the first checkpoint
    assert loaded["out"][0]["translation_text"] == expected


def test_checkpoints_of_different_models_are_a_clear_error(run, tmp_path):
    tokenizer = train_tokenizer(TEXTS, vocab_size=300, min_frequency=1)
    wider = save_checkpoint(tmp_path / "wider", tiny_model(vocab_size=len(tokenizer), encoder_ffn_dim=96), tokenizer, 1)
    difference = r"'model\.encoder\.layers\.0\.ffn\.fc1\.bias' is F32 \[128\] in the first and F32 \[96\]"
    with pytest.raises(ValueError, match=difference):
        average_checkpoints([str(run / "checkpoint-5"), wider], str(tmp_path / "out"))
    deeper = save_checkpoint(tmp_path / "deeper", tiny_model(vocab_size=len(tokenizer), decoder_layers=3), tokenizer, 1)
    with pytest.raises(ValueError, match=r"'model\.decoder\.layers\.2\..*' is in the first only"):
        average_checkpoints([deeper, str(run / "checkpoint-5")], str(tmp_path / "out"))
    assert not (tmp_path / "out").exists()


def test_incomplete_checkpoint_and_overwriting_an_input_are_refused(run, tmp_path):
    with pytest.raises(ValueError, match="incomplete: trainer_state.json missing"):
        average_checkpoints([str(run / "checkpoint-15"), str(run / "checkpoint-20")], str(tmp_path / "out"))
    with pytest.raises(ValueError, match="new folder"):
        average_checkpoints([str(run / "checkpoint-10"), str(run / "checkpoint-15")], str(run / "checkpoint-15"))
    with pytest.raises(ValueError, match="new folder"):
        average_checkpoints([str(run / "checkpoint-10"), str(run / "checkpoint-15")], str(run))


def raw_checkpoint(folder, tensors, step):
    os.makedirs(folder)
    save_file(tensors, os.path.join(folder, "model.safetensors"), metadata={"format": "pt"})
    for name, content in (("config.json", {}), ("trainer_state.json", {"global_step": step})):
        with open(os.path.join(folder, name), "w") as f:
            json.dump(content, f)
    return str(folder)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_average_keeps_the_dtype_and_equal_integer_tensors(tmp_path, dtype):
    generator = torch.Generator().manual_seed(0)
    weights = [torch.randn(4, 8, generator=generator).to(dtype) for _ in range(3)]
    steps = torch.tensor([3, 1, 4])
    folders = [raw_checkpoint(tmp_path / f"checkpoint-{i}", {"w": w, "steps": steps}, i) for i, w in enumerate(weights)]
    averaged = load_file(os.path.join(average_checkpoints(folders, str(tmp_path / "out")), "model.safetensors"))
    assert averaged["w"].dtype == dtype
    assert torch.equal(averaged["w"], torch.stack([w.double() for w in weights]).mean(0).to(dtype))
    assert torch.equal(averaged["steps"], steps)

    other = raw_checkpoint(tmp_path / "other", {"w": weights[0], "steps": torch.tensor([3, 1, 5])}, 9)
    with pytest.raises(ValueError, match="integer tensor 'steps'"):
        average_checkpoints([folders[0], other], str(tmp_path / "out2"))


def test_last_checkpoints_are_the_newest_complete_ones_oldest_first(run):
    assert last_checkpoints(str(run), 2) == [str(run / "checkpoint-10"), str(run / "checkpoint-15")]
    assert last_checkpoints(str(run), 5) == [str(run / f"checkpoint-{step}") for step in (5, 10, 15)]
    with pytest.raises(ValueError, match="does not exist"):
        last_checkpoints(str(run / "nope"), 2)


def command(argv):
    parser = argparse.ArgumentParser(prog="hf-seq2seq")
    add_average_command(parser.add_subparsers(dest="command", required=True))
    return run_average(parser.parse_args(argv))


def test_average_command(run, tmp_path, capsys):
    output = str(tmp_path / "averaged")
    assert command(["average", "--run", str(run), "--last", "2", "--output", output]) == output
    assert capsys.readouterr().out.strip() == output
    expected = float64_mean([run / "checkpoint-10", run / "checkpoint-15"])
    averaged = load_file(os.path.join(output, "model.safetensors"))
    assert all(torch.equal(averaged[name], expected[name].float()) for name in expected)

    listed = str(tmp_path / "listed")
    command(["average", "--checkpoints", str(run / "checkpoint-10"), str(run / "checkpoint-15"), "--output", listed])
    assert load_file(os.path.join(listed, "model.safetensors")).keys() == averaged.keys()
    assert all(torch.equal(load_file(os.path.join(listed, "model.safetensors"))[n], averaged[n]) for n in averaged)

    with pytest.raises(SystemExit, match="has 3 complete checkpoint\\(s\\), not the 5 asked for: pass --last 3"):
        command(["average", "--run", str(run), "--output", str(tmp_path / "five")])  # the default: the last 5
    with pytest.raises(SystemExit, match="no complete checkpoint"):
        command(["average", "--run", str(tmp_path), "--output", str(tmp_path / "none")])
