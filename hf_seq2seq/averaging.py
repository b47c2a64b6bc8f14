"""Checkpoint averaging: one model whose weights are the element-wise mean of several checkpoints of a run.

Vaswani et al. (2017, section 6.1) report their results with the average of the last 5 (base) or 20 (big)
checkpoints: the mean of points along the end of the training trajectory smooths the noise of the last updates, and
usually translates a little better than any one of them, at no training cost.

    hf-seq2seq average --run outputs/en-fr --last 5 --output outputs/en-fr-avg
    hf-seq2seq average --checkpoints runs/a/checkpoint-800 runs/a/checkpoint-1000 --output outputs/en-fr-avg

The output is an ordinary model folder (`from_pretrained`, the pipeline, `hf-seq2seq translate` and `export-ct2`
all take it): the averaged `model.safetensors` beside the configuration, generation config, tokenizer and code
files of the newest checkpoint. Weights are read with safetensors only (no pickles), averaged in float64 and
stored in the checkpoints' own dtype.
"""

import json
import logging
import os
import re
import shutil
from contextlib import ExitStack

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR

from .training import CheckpointError, check_checkpoint

logger = logging.getLogger(__name__)

WEIGHTS = "model.safetensors"
# Everything a model folder needs besides the weights. A checkpoint written by train.py holds all but the pipeline
# file, which (with the `custom_pipelines` entry of config.json) only the bundle saved in the run folder at the end
# of training has.
MODEL_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "configuration_hf_seq2seq.py",
    "modeling_hf_seq2seq.py",
    "pipeline_hf_seq2seq.py",
)


def last_checkpoints(output_dir: str, n: int) -> list[str]:
    """The newest `n` complete `checkpoint-N` folders of a run, oldest first (fewer if the run has fewer).
    Incomplete ones (a save cut short) are skipped with a warning, as `last_complete_checkpoint` does."""
    if n < 1:
        raise ValueError(f"Average at least one checkpoint, not {n}.")
    if not os.path.isdir(output_dir):
        raise CheckpointError(f"Run folder {output_dir!r} does not exist.")
    pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    steps = sorted((int(m.group(1)), name) for name in os.listdir(output_dir) if (m := pattern.match(name)))
    found = []
    for _, name in reversed(steps):
        folder = os.path.join(output_dir, name)
        try:
            check_checkpoint(folder)
        except CheckpointError as error:
            logger.warning("Skipping %s", error)
            continue
        found.append(folder)
        if len(found) == n:
            break
    return found[::-1]


def _global_step(folder: str) -> int:
    with open(os.path.join(folder, "trainer_state.json")) as f:
        return json.load(f).get("global_step", 0)


def _layout(folder: str) -> dict[str, tuple]:
    with safe_open(os.path.join(folder, WEIGHTS), "pt") as weights:
        slices = {name: weights.get_slice(name) for name in weights.keys()}
        return {name: (part.get_dtype(), part.get_shape()) for name, part in slices.items()}


def _check_same_layout(checkpoints: list[str]) -> None:
    """Every checkpoint must hold the same tensors (names, dtypes, shapes): the error names the first difference."""
    reference = _layout(checkpoints[0])
    for folder in checkpoints[1:]:
        layout = _layout(folder)
        for name in sorted(reference.keys() | layout.keys()):
            if name not in layout or name not in reference:
                has, lacks = (checkpoints[0], folder) if name in reference else (folder, checkpoints[0])
                raise ValueError(f"Cannot average {has!r} and {lacks!r}: tensor {name!r} is in the first only.")
            if layout[name] != reference[name]:
                (dtype_a, shape_a), (dtype_b, shape_b) = reference[name], layout[name]
                raise ValueError(
                    f"Cannot average {checkpoints[0]!r} and {folder!r}: tensor {name!r} is {dtype_a} {shape_a} in the "
                    f"first and {dtype_b} {shape_b} in the second."
                )


def average_checkpoints(checkpoints: list[str], output_dir: str) -> str:
    """Write the element-wise mean of the checkpoints' weights, with the other files of the newest checkpoint (by
    global step; files it lacks come from its parent, the run folder), as a model folder in `output_dir`.
    Floating-point tensors are averaged in float64 and stored in their own dtype; integer tensors must be equal in
    every checkpoint. Returns `output_dir`."""
    if not checkpoints:
        raise ValueError("No checkpoint to average.")
    for folder in checkpoints:
        check_checkpoint(folder)
    newest = max(checkpoints, key=_global_step)  # max keeps the first of equal steps
    run_dir = os.path.dirname(os.path.abspath(newest))
    if os.path.realpath(output_dir) in {os.path.realpath(path) for path in [*checkpoints, run_dir]}:
        raise ValueError(f"Write the average to a new folder, not {output_dir!r}: it would overwrite a model it reads.")
    _check_same_layout(checkpoints)

    averaged = {}
    with ExitStack() as stack:  # one tensor of each checkpoint in memory at a time, besides the average
        handles = [stack.enter_context(safe_open(os.path.join(folder, WEIGHTS), "pt")) for folder in checkpoints]
        for name in handles[0].keys():
            tensors = [handle.get_tensor(name) for handle in handles]
            if tensors[0].is_floating_point():
                averaged[name] = (sum(t.double() for t in tensors) / len(tensors)).to(tensors[0].dtype)
            elif all(torch.equal(tensors[0], t) for t in tensors[1:]):
                averaged[name] = tensors[0]
            else:
                raise ValueError(f"Cannot average integer tensor {name!r}: it differs between the checkpoints.")
        metadata = handles[checkpoints.index(newest)].metadata() or {"format": "pt"}

    os.makedirs(output_dir, exist_ok=True)
    save_file(averaged, os.path.join(output_dir, WEIGHTS), metadata=metadata)
    for name in MODEL_FILES:
        source = newest if os.path.isfile(os.path.join(newest, name)) else run_dir
        if os.path.isfile(os.path.join(source, name)):
            shutil.copy(os.path.join(source, name), output_dir)
            if name == "pipeline_hf_seq2seq.py" and source == run_dir:
                _add_custom_pipelines(os.path.join(output_dir, "config.json"), os.path.join(run_dir, "config.json"))
    logger.info("Averaged %d checkpoints (%s) into %s", len(checkpoints), ", ".join(checkpoints), output_dir)
    return output_dir


def _add_custom_pipelines(config_path: str, bundle_config_path: str) -> None:
    """The pipeline file came from the run's bundle: name it in config.json as the bundle's config does, so that
    `pipeline("translation", model=folder, trust_remote_code=True)` finds it."""
    with open(config_path) as f:
        config = json.load(f)
    with open(bundle_config_path) as f:
        pipelines = json.load(f).get("custom_pipelines")
    if pipelines and "custom_pipelines" not in config:
        config["custom_pipelines"] = pipelines
        with open(config_path, "w") as f:
            json.dump(config, f, indent=2, sort_keys=True)
            f.write("\n")


# --- command line: `hf-seq2seq average` ---------------------------------------------------------------------------


def add_average_command(subparsers):
    """Adds `average` to the `hf-seq2seq` subcommands; `run_average(args)` runs it."""
    p = subparsers.add_parser("average", help="average the weights of the last checkpoints of a run into a new model")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--checkpoints", nargs="+", metavar="DIR", help="checkpoint folders to average")
    source.add_argument("--run", metavar="OUTPUT_DIR", help="a train.py output folder: average its newest checkpoints")
    p.add_argument("--last", type=int, default=None, metavar="N",
                   help="with --run: how many of the newest complete checkpoints (default 5, the paper's base models)")
    p.add_argument("--output", required=True, metavar="DIR", help="the model folder to write")
    return p


def run_average(args) -> str:
    """Average the checkpoints `args` names, print the output folder and return it; errors exit with a message."""
    try:
        if args.checkpoints:
            if args.last is not None:
                raise ValueError("--last goes with --run; with --checkpoints, list the folders to average.")
            checkpoints = args.checkpoints
        else:
            wanted = 5 if args.last is None else args.last
            checkpoints = last_checkpoints(args.run, wanted)
            if not checkpoints:
                raise CheckpointError(f"{args.run!r} has no complete checkpoint (see train.py's --save_strategy).")
            if len(checkpoints) < wanted:
                raise CheckpointError(
                    f"{args.run!r} has {len(checkpoints)} complete checkpoint(s), not the {wanted} asked for: pass "
                    f"--last {len(checkpoints)}, or keep more with train.py's --save_total_limit."
                )
        folder = average_checkpoints(checkpoints, args.output)
    except ValueError as error:  # CheckpointError included
        raise SystemExit(f"error: {error}") from None
    print(folder)
    return folder


__all__ = ["add_average_command", "average_checkpoints", "last_checkpoints", "run_average"]
