"""Scaling out on CPUs, as far as a CPU machine can show it: the FSDP plan, FSDP2 over gloo against DDP, two "machines"
on one host, and the GPU check's CPU mode.

What runs where (transformers 5.24, accelerate 1.15, torch 2.13):
- `accelerate launch --use_fsdp --fsdp_version 2` without GPUs trains with DDP: Accelerate enables FSDP only for
  GPU-like distributed types (accelerate/state.py, `AcceleratorState.__init__`); a CPU run stays `MULTI_CPU`, silently.
- transformers' own FSDP2, `from_pretrained(..., distributed_config=DistributedConfig(fsdp_size=N))`, shards with the
  model's FSDP plan and runs on CPU over gloo; the Trainer trains such a model as it is (`is_distributed_loading_by_
  transformers`). tests/fsdp_probe.py applies it to train.py's model.
"""

import json
import os
import socket
import subprocess
import sys

import pytest
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
from transformers.distributed import DistributedConfig

import hf_seq2seq  # noqa: F401  (registers the auto classes)

from conftest import ROOT, tiny_model

# train.py's arguments for a few steps of a tiny model (tests/test_train.py's RESUMABLE), without dropout and with a
# learning rate that moves the weights from the first step, so that equal losses mean equal training.
TINY = [
    "--preset", "tiny", "--config_overrides", "dropout=0.0", "--dataset_name", "builtin:grammar", "--builtin_train_size", "1000", "--vocab_size", "400",
    "--max_eval_samples", "20", "--max_predict_samples", "20", "--eval_strategy", "no", "--save_strategy", "no",
    "--per_device_train_batch_size", "16", "--generation_max_length", "20", "--logging_steps", "5",
    "--disable_tqdm", "true", "--max_steps", "10", "--learning_rate", "3e-3", "--warmup_steps", "0",
]
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def launch(launcher_arguments, script, output, *arguments, **kwargs):
    command = [sys.executable, "-m", "accelerate.commands.launch", *launcher_arguments,
               os.path.join(ROOT, "tests", script), *TINY, "--output_dir", output, *arguments]
    return subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=ENV,
                            **kwargs)


def finish(process, timeout=600):
    _, stderr = process.communicate(timeout=timeout)
    assert process.returncode == 0, stderr[-3000:]


def read_records(output, rank):
    return [json.loads(line) for line in open(os.path.join(output, f"rank{rank}.jsonl"))]


# --- the FSDP plan --------------------------------------------------------------------------------------------------


def resolved_fsdp_plan(model):
    """The modules FSDP2 wraps, as `from_pretrained(distributed_config=DistributedConfig(fsdp_size=2))` resolves them
    (transformers/distributed/mixin.py, `_resolve_parallel_plans`)."""
    _, _, plan = model._resolve_parallel_plans(DistributedConfig(fsdp_size=2))
    return plan


def test_fsdp_plan_shards_each_encoder_and_decoder_layer():
    model = tiny_model(encoder_layers=3, decoder_layers=2)
    plan = resolved_fsdp_plan(model)
    layers = [f"model.encoder.layers.{i}" for i in range(3)] + [f"model.decoder.layers.{i}" for i in range(2)]
    assert all(plan.get(name) == "free_full_weight" for name in layers), plan
    modules = dict(model.named_modules())
    assert all(name in modules for name in plan)


def test_fsdp_plan_wraps_the_tied_embedding_once():
    """The shared embedding (and the LM head tied to it) belongs to the root group, once: FSDP2 refuses a tied weight
    that two groups manage ("is shared with a parameter already managed by another FSDP group")."""
    plan = resolved_fsdp_plan(tiny_model())
    # Exactly one group per encoder and decoder layer, nothing else: neither `model.shared` nor an embed_tokens or the
    # LM head is a group of its own, so the tied weight stays with the root.
    layers = [f"model.{stack}.layers.{i}" for stack in ("encoder", "decoder") for i in (0, 1)]
    assert plan == {name: "free_full_weight" for name in layers}, plan


# --- FSDP2 on two CPU processes -------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fsdp_runs(tmp_path_factory):
    """train.py on two processes twice, one after the other (two cores): `accelerate launch --use_fsdp --fsdp_version 2`
    (which is DDP on a CPU), then transformers' FSDP2 (tests/fsdp_probe.py --probe_fsdp2). Same seed, same batches."""
    folder = tmp_path_factory.mktemp("fsdp")
    outputs = {"accelerate_fsdp": str(folder / "accelerate_fsdp"), "fsdp2": str(folder / "fsdp2")}
    finish(launch(["--use_fsdp", "--fsdp_version", "2", "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP",
                   "--num_processes", "2"], "fsdp_probe.py", outputs["accelerate_fsdp"]))
    finish(launch(["--multi_gpu", "--num_processes", "2"], "fsdp_probe.py", outputs["fsdp2"], "--probe_fsdp2"))
    records = {name: {rank: read_records(output, rank) for rank in (0, 1)} for name, output in outputs.items()}
    return outputs, records


def test_accelerate_fsdp_on_a_cpu_trains_with_ddp(fsdp_runs):
    _, records = fsdp_runs
    steps = records["accelerate_fsdp"][0] + records["accelerate_fsdp"][1]
    assert len(steps) == 20 and all(step["world_size"] == 2 for step in steps)
    assert {step["distributed_type"] for step in steps} == {"DistributedType.MULTI_CPU"}
    assert all(step["local_numel"] == step["numel"] and not step["fsdp_modules"] for step in steps)


def test_fsdp2_holds_half_the_parameters_per_process_and_trains_as_ddp(fsdp_runs):
    _, records = fsdp_runs
    layers = [f"model.{stack}.layers.{i}" for stack in ("encoder", "decoder") for i in (0, 1)]
    for rank in (0, 1):
        fsdp2 = [record for record in records["fsdp2"][rank] if "step" in record]
        ddp = records["accelerate_fsdp"][rank]
        assert len(fsdp2) == len(ddp) == 10
        for sharded, replicated in zip(fsdp2, ddp):
            assert sharded["fsdp_modules"] == ["", *layers]  # the root (embeddings, norms) and one group per layer
            assert sharded["numel"] == replicated["numel"]
            assert abs(sharded["local_numel"] - sharded["numel"] / 2) <= 0.01 * sharded["numel"]
            assert sharded["batch"] == replicated["batch"]
            # Measured: the same to the last bit; the tolerance allows another order of the gradient reductions.
            assert sharded["loss"] == pytest.approx(replicated["loss"], rel=1e-5)
    # Measured: the two processes' losses fall from 6.4 and 5.6 to 5.1 and 4.9.
    first, last = (sum(records["fsdp2"][rank][step]["loss"] for rank in (0, 1)) / 2 for step in (0, 9))
    assert last < first - 0.5, "the model did not train"


def test_fsdp2_model_saves_and_loads_back_generating_the_same_tokens(fsdp_runs):
    """Sharded generate() (every process takes part), `Trainer.save_model` (gathers the shards), `from_pretrained`."""
    outputs, records = fsdp_runs
    generated = [record for record in records["fsdp2"][0] if "generated" in record][0]
    tokenizer = AutoTokenizer.from_pretrained(outputs["fsdp2"])
    inputs = tokenizer(["The doctor bought the ten strange dresses."], return_tensors="pt")
    for folder in (generated["saved"], outputs["fsdp2"]):  # Trainer.save_model's folder, train.py's bundle
        model = AutoModelForSeq2SeqLM.from_pretrained(folder)
        assert model.generate(**inputs, num_beams=1, max_new_tokens=12)[0].tolist() == generated["generated"]
    replicated = AutoModelForSeq2SeqLM.from_pretrained(outputs["accelerate_fsdp"]).state_dict()
    for name, weight in model.state_dict().items():
        torch.testing.assert_close(weight, replicated[name], rtol=1e-5, atol=1e-6)


@pytest.mark.xfail(strict=True, reason=(
    "transformers 5.24 `custom_object_save` names the class FSDP2 swaps in (`_fsdp_init.FSDPHFSeq2SeqForConditional"
    "Generation`) in auto_map and copies torch's FSDP sources instead of modeling_hf_seq2seq.py; it also keeps the "
    "three tied copies of the embedding (gathered, they are distinct tensors)."
))
def test_fsdp2_save_is_a_remote_code_bundle(fsdp_runs):
    _, records = fsdp_runs
    saved = [record for record in records["fsdp2"][0] if "saved" in record][0]["saved"]
    config = json.load(open(os.path.join(saved, "config.json")))
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_hf_seq2seq.HFSeq2SeqForConditionalGeneration"
    assert "modeling_hf_seq2seq.py" in os.listdir(saved)


@pytest.mark.xfail(strict=True, reason=(
    "transformers 5.24 sharded loading (`from_pretrained(distributed_config=...)`) applies the checkpoint conversion "
    "`Concatenate(dim=0)` of q/k/v_proj into qkv_proj (and k/v into kv_proj) to each process's shards: each process "
    "gets [q_i; k_i; v_i] instead of its rows of [q; k; v], so the stacked projections load scrambled."
))
def test_fsdp2_sharded_loading_gives_the_saved_weights(fsdp_runs):
    _, records = fsdp_runs
    for rank in (0, 1):
        loaded = [record for record in records["fsdp2"][rank] if "sharded_load_differences" in record][0]
        assert loaded["sharded_load_differences"] == {}


# --- two machines ---------------------------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_two_machines_of_one_process_each(tmp_path):
    """Two `accelerate launch` commands on this host as machine 0 and machine 1 of a 2-machine job (gloo over TCP
    through 127.0.0.1), each starting one process of tests/ddp_probe.py."""
    output, port = str(tmp_path / "two_machines"), free_port()
    machines = [
        launch(["--multi_gpu", "--num_machines", "2", "--machine_rank", str(rank), "--main_process_ip", "127.0.0.1",
                "--main_process_port", str(port), "--num_processes", "2"], "ddp_probe.py", output, "--max_steps", "4")
        for rank in (0, 1)
    ]
    try:
        for machine in machines:
            finish(machine)
    finally:
        for machine in machines:
            machine.kill()
    records = {rank: read_records(output, rank) for rank in (0, 1)}
    assert len(records[0]) == len(records[1]) == 4
    assert all(record["world_size"] == 2 for rank in records for record in records[rank])
    assert all(a["batch"] != b["batch"] for a, b in zip(records[0], records[1])), "both machines had the same batch"


# --- the GPU check --------------------------------------------------------------------------------------------------


def test_gpu_check_runs_in_its_cpu_mode(tmp_path):
    """bench/gpu_check.sh end to end in the reduced CPU mode, so that the script is known to work before a GPU is lent
    (about 10 s here)."""
    output = tmp_path / "gpu_check.json"
    result = subprocess.run(["bash", os.path.join(ROOT, "bench", "gpu_check.sh"), "--cpu", "--output", str(output)],
                            cwd=ROOT, capture_output=True, text=True, timeout=300, env=ENV)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    check = json.load(open(output))
    assert check["mode"] == "cpu"
    for name in ("ours", "marian"):
        assert check["training_bf16"][name]["tokens_per_s"] > 0
    cells = check["generation"]
    assert [(cell["dtype"], cell["num_beams"]) for cell in cells] == [
        ("float32", 1), ("float32", 4), ("bfloat16", 1), ("bfloat16", 4)]
    assert all(cell[name]["tokens_per_s"] > 0 for cell in cells for name in ("ours", "marian"))
    kernels = check["attention_kernels"]
    assert kernels["recorded"]["ours"].get("aten::scaled_dot_product_attention", 0) > 0
    assert kernels["ours_restricted_to"]["MATH"] == "runs"
    budget = check["token_budget"]
    assert budget["budget"] == 2048 and budget["out_of_memory"] == []
    assert budget["trainer"]["steps"] == 3 and budget["trainer"]["padding_fraction"] < 0.3
    assert all(loss == loss for loss in budget["trainer"]["losses"])


def test_gpu_check_falls_back_to_smaller_budgets_on_out_of_memory():
    sys.path.insert(0, os.path.join(ROOT, "bench"))
    from gpu_check import largest_budget_that_fits

    tried = []

    def try_budget(budget):
        tried.append(budget)
        if budget > 5000:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")

    assert largest_budget_that_fits((16384, 8192, 4096, 2048), try_budget) == (4096, [16384, 8192])
    assert tried == [16384, 8192, 4096]
    assert largest_budget_that_fits((16384,), try_budget) == (None, [16384])
