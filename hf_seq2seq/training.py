"""Pieces of the training script that are worth importing on their own: arguments with the paper's recipe as
defaults, the time budget (and the training curve it records, drawn by plot_training_curve) and checkpoint checks."""

import json
import logging
import os
import re
import time
from dataclasses import dataclass, field

import torch
from safetensors import safe_open
from transformers import Seq2SeqTrainingArguments, TrainerCallback
from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, IntervalStrategy, SaveStrategy
from transformers.training_args import SchedulerType

from .configuration_hf_seq2seq import PRESETS

logger = logging.getLogger(__name__)


@dataclass
class ModelArguments:
    model_name_or_path: str | None = field(
        default=None, metadata={"help": "Continue from a trained model (folder or Hub id) instead of a new one."}
    )
    preset: str = field(default="small", metadata={"help": f"Shape of a new model: {', '.join(PRESETS)}."})
    config_overrides: str | None = field(
        default=None, metadata={"help": "Config fields of a new model, e.g. `dropout=0.2,encoder_layers=4` (of a "
                                "continued one too, e.g. its dropout)."}
    )
    tokenizer_name: str | None = field(default=None, metadata={"help": "Use this trained tokenizer (folder or Hub id)."})
    vocab_size: int = field(default=8000, metadata={"help": "Size of a newly trained joint BPE vocabulary."})
    tokenizer_train_samples: int = field(
        default=1_000_000,
        metadata={"help": "Train a new vocabulary on the texts of the first N training examples, read in batches: "
                  "a sample of a large corpus gives the same subwords in a fraction of the time and memory."},
    )
    tokenizer_train_file: str | None = field(
        default=None,
        metadata={"help": "Also train a new vocabulary on these plain-text files (.txt/.txt.gz, one text a line, "
                  "comma-separated), e.g. the text of the tasks a pretrained model will be fine-tuned for, so that "
                  "their words are whole tokens."},
    )
    attn_implementation: str = field(default="sdpa", metadata={"help": "eager or sdpa."})
    init_embeddings: str | None = field(
        default=None,
        metadata={"help": "Initialise the token embeddings from a Word2Vec/GloVe vectors file (word2vec text or binary, "
                  "GloVe text) of d_model dimensions; `hf-seq2seq train-vectors` makes one."},
    )


@dataclass
class TrainingArguments(Seq2SeqTrainingArguments):
    """Seq2SeqTrainingArguments with the paper's recipe as defaults (section 5.3-5.4): Adam with β=(0.9, 0.98),
    a linear warm-up then an inverse-square-root decay, label smoothing 0.1; plus BLEU evaluation with beam search.
    Every field can still be set on the command line."""

    output_dir: str = field(default="outputs/en-fr", metadata={"help": "Where checkpoints and the model go."})
    learning_rate: float = field(default=1e-3, metadata={"help": "Peak learning rate (after warm-up)."})
    adam_beta1: float = 0.9
    adam_beta2: float = 0.98
    adam_epsilon: float = 1e-9
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    lr_scheduler_type: SchedulerType | str = field(default="inverse_sqrt", metadata={"help": "transformers' scheduler name."})
    warmup_steps: float = field(default=400, metadata={"help": "Linear warm-up steps before the 1/sqrt(step) decay."})
    label_smoothing_factor: float = 0.1
    per_device_train_batch_size: int = 64
    per_device_eval_batch_size: int = 64
    num_train_epochs: float = 2.0
    train_sampling_strategy: str = field(
        default="group_by_length", metadata={"help": "group_by_length batches sentences of similar length: less padding."}
    )
    predict_with_generate: bool = True
    # Unset, the task's own generation defaults apply (tasks.py); set, they override them.
    generation_num_beams: int | None = None
    generation_max_length: int | None = None
    eval_strategy: IntervalStrategy | str = "epoch"
    save_strategy: SaveStrategy | str = "epoch"
    save_total_limit: int | None = 2
    logging_steps: float = 50
    report_to: None | str | list[str] = "none"
    dataloader_num_workers: int = 0
    seed: int = 42
    max_tokens_per_batch: int | None = field(
        default=None,
        metadata={"help": "Batches of up to N padded source + target tokens per process (fairseq's --max-tokens; "
                  "8192 here is about fairseq's 4096) instead of per_device_train_batch_size pairs."},
    )
    max_train_minutes: float | None = field(
        default=None, metadata={"help": "Stop training after this many minutes of wall clock (then save and evaluate)."}
    )
    average_checkpoints: int = field(
        default=1,
        metadata={"help": "The final model is the mean of the weights of the run's last N checkpoints (Vaswani et al., "
                  "2017), written and scored in place of the last weights; needs a save strategy that keeps N."},
    )
    lr_decay_over_time_budget: bool = field(
        default=False,
        metadata={"help": "With --max_train_minutes: the learning rate (after its warm-up) falls linearly to zero as "
                  "the time budget runs out, by the clock, in place of --lr_scheduler_type's decay, so that a run "
                  "stopped by its budget ends annealed (Li et al., 2020, 'Budgeted training')."},
    )

    def __post_init__(self):
        # `accelerate launch --multi_gpu --num_processes N` on a machine without GPUs starts N processes, but
        # Trainer then sees no distributed setup and each process trains alone. Asking for the CPU makes it use
        # the gloo process group the launcher prepared, so the same command runs data-parallel on CPUs.
        # Likewise `--bf16` without a GPU: transformers asks for `use_cpu` before it autocasts to bfloat16 on the CPU.
        if (int(os.environ.get("WORLD_SIZE", "1")) > 1 or self.bf16) and not torch.cuda.is_available():
            self.use_cpu = True
        if self.bf16 and not torch.cuda.is_available():
            # bf16 matmuls on the CPU run in oneDNN, which caches a compiled kernel (and its buffers) per input shape:
            # 1,024 in PyTorch's cache and 1,024 in oneDNN's. Batches of varying length fill both, and a denoising
            # run held 4.8 GiB against float32's 1.7. Bounded, a step takes as long and memory is float32's
            # (bench/bf16_memory.py). Both are read at the first bf16 matmul: setting them here is early enough.
            os.environ.setdefault("LRU_CACHE_CAPACITY", "1")
            os.environ.setdefault("ONEDNN_PRIMITIVE_CACHE_CAPACITY", "64")
        if not torch.cuda.is_available():
            self.dataloader_pin_memory = False  # pinned memory only helps copies to a GPU
        if self.average_checkpoints > 1 and (SaveStrategy(self.save_strategy) == SaveStrategy.NO or (
                self.save_total_limit is not None and self.save_total_limit < self.average_checkpoints)):
            raise ValueError(f"--average_checkpoints {self.average_checkpoints} averages the last checkpoints: save them "
                             f"(--save_strategy steps or epoch) and keep as many (--save_total_limit at least "
                             f"{self.average_checkpoints}).")
        if self.lr_decay_over_time_budget and not self.max_train_minutes:
            raise ValueError("--lr_decay_over_time_budget needs --max_train_minutes: the time budget is what the "
                             "learning rate decays over.")
        super().__post_init__()


class TimeBudgetCallback(TrainerCallback):
    """Stops training once `minutes` of wall clock have passed in this run; the Trainer then saves and evaluates
    as at the end of training. It also records each evaluation as (seconds, step, metrics): the quality curve."""

    def __init__(self, minutes: float | None = None):
        self.seconds = None if minutes is None else minutes * 60
        self.start = time.monotonic()  # reset when training begins
        self.curve: list[dict] = []

    def remaining(self) -> float:
        """The share of the budget still to run: 1 at the start, 0 at its end."""
        return max(0.0, 1.0 - (time.monotonic() - self.start) / self.seconds)

    def anneal(self, lr_scheduler) -> None:
        """Make the learning rate fall linearly to zero as the budget runs out: transformers' schedulers are LambdaLR,
        whose factor of each step is kept during the warm-up and is 1 after it, times the share of the budget left."""
        lr_scheduler = getattr(lr_scheduler, "scheduler", lr_scheduler)  # Accelerate's wrapper, if prepared
        warmup_factors = lr_scheduler.lr_lambdas

        def factor(step: int, warmup=warmup_factors[0]) -> float:
            return (warmup(step) if step < self.warmup_steps else 1.0) * self.remaining()

        lr_scheduler.lr_lambdas = [factor for _ in warmup_factors]

    def on_train_begin(self, args, state, control, lr_scheduler=None, **kwargs):
        self.start = time.monotonic()
        if getattr(args, "lr_decay_over_time_budget", False):
            self.warmup_steps = args.get_warmup_steps(state.max_steps)
            self.anneal(lr_scheduler)
        # A resumed run continues the curve its earlier runs wrote (curve.json is rewritten at every evaluation, so
        # a run that is killed keeps its points), on a clock that continues theirs.
        path = os.path.join(args.output_dir, "curve.json")
        if state.global_step > 0 and not self.curve and os.path.isfile(path):
            with open(path) as f:
                self.curve = [point for point in json.load(f) if point["step"] <= state.global_step]
            if self.curve:
                self.start -= self.curve[-1]["seconds"]

    def on_step_end(self, args, state, control, **kwargs):
        if self.seconds is not None and time.monotonic() - self.start >= self.seconds:
            logger.warning("Time budget of %g minutes reached at step %d: stopping.", self.seconds / 60, state.global_step)
            control.should_training_stop = True
            # With an "epoch" strategy the Trainer evaluates and saves at the end of the cut-short epoch anyway:
            # asking here as well would evaluate the same step twice.
            if args.eval_strategy not in (IntervalStrategy.NO, IntervalStrategy.EPOCH):
                control.should_evaluate = True
            if args.save_strategy not in (SaveStrategy.NO, SaveStrategy.EPOCH):
                control.should_save = True
        return control

    def on_evaluate(self, args, state, control, metrics=None, **kwargs):
        point = {"seconds": round(time.monotonic() - self.start, 1), "step": state.global_step, "epoch": state.epoch}
        self.curve.append({**point, **(metrics or {})})
        self.write(args, state)

    def on_train_end(self, args, state, control, **kwargs):
        self.write(args, state)  # also when nothing was evaluated: an empty curve

    def write(self, args, state):
        if state.is_world_process_zero:
            os.makedirs(args.output_dir, exist_ok=True)
            # Written beside, then renamed over the old file (atomic): a run killed mid-write keeps the previous
            # curve whole, and its resumed run can read it.
            path = os.path.join(args.output_dir, "curve.json")
            with open(path + ".tmp", "w") as f:
                json.dump(self.curve, f, indent=1)
            os.replace(path + ".tmp", path)


def plot_training_curve(output_dir: str, path: str | None = None, metric: str = "bleu") -> str | None:
    """Training loss against step, and the evaluation `metric` (BLEU, ROUGE-1, F1, accuracy...) against minutes of
    training, from the Trainer's log and the `curve.json` TimeBudgetCallback writes. Returns the PNG path, or None
    when there is nothing to plot."""
    from matplotlib.figure import Figure  # not pyplot: a picture in a file needs no display and no global state

    state_file = os.path.join(output_dir, "trainer_state.json")
    if not os.path.isfile(state_file):
        return None
    history = json.load(open(state_file))["log_history"]
    losses = [(entry["step"], entry["loss"]) for entry in history if "loss" in entry]
    curve_file = os.path.join(output_dir, "curve.json")
    curve = json.load(open(curve_file)) if os.path.isfile(curve_file) else []
    scores = [(point["seconds"] / 60, point[f"eval_{metric}"]) for point in curve if f"eval_{metric}" in point]
    if not losses and not scores:
        return None
    # One panel for each series there is (a run without evaluations has only its loss).
    panels = [(points, x, y, style) for points, x, y, style in (
        (losses, "step", "training loss", {}), (scores, "minutes of training", f"validation {metric}", {"marker": "o"}),
    ) if points]
    fig = Figure(figsize=(5 * len(panels), 3.5))
    for axes, (points, x, y, style) in zip(fig.subplots(1, len(panels), squeeze=False)[0], panels):
        axes.plot(*zip(*points), **style)
        axes.set_xlabel(x)
        axes.set_ylabel(y)
    fig.tight_layout()
    path = path or os.path.join(output_dir, "training_curve.png")
    fig.savefig(path, dpi=110)
    return path


def parse_config_overrides(text: str | None) -> dict:
    """`dropout=0.2,encoder_layers=4,activation_function=gelu` -> typed dict (JSON values where they parse)."""
    overrides = {}
    for item in filter(None, (text or "").split(",")):
        if "=" not in item:
            raise ValueError(f"--config_overrides item {item!r} is not `name=value` (e.g. `dropout=0.2,encoder_layers=4`).")
        name, value = (part.strip() for part in item.split("=", 1))
        try:
            overrides[name] = json.loads(value)
        except json.JSONDecodeError:
            overrides[name] = value
    return overrides


# --- checkpoints --------------------------------------------------------------------------------------------------

CHECKPOINT_FILES = ("trainer_state.json", "model.safetensors", "config.json")


class CheckpointError(ValueError):
    pass


def check_checkpoint(folder: str) -> None:
    """A checkpoint is complete when the Trainer wrote its state (the last file it writes) and the weights parse."""
    if not os.path.isdir(folder):
        raise CheckpointError(f"Checkpoint {folder!r} does not exist. Give a `checkpoint-N` folder of the output directory.")
    missing = [name for name in CHECKPOINT_FILES if not os.path.isfile(os.path.join(folder, name))]
    if missing:
        raise CheckpointError(
            f"Checkpoint {folder!r} is incomplete: {', '.join(missing)} missing (training was probably stopped while "
            "it was being written). Resume from an earlier checkpoint, or delete this folder to resume from the last "
            "complete one."
        )
    try:
        with safe_open(os.path.join(folder, "model.safetensors"), "pt") as weights:
            weights.keys()
        with open(os.path.join(folder, "trainer_state.json")) as f:
            json.load(f)
    except Exception as error:
        raise CheckpointError(
            f"Checkpoint {folder!r} is corrupted ({type(error).__name__}: {error}). Resume from an earlier checkpoint, "
            "or delete this folder."
        ) from None


def last_complete_checkpoint(output_dir: str) -> str | None:
    """The newest checkpoint folder that passes `check_checkpoint`; incomplete newer ones are reported and skipped."""
    if not os.path.isdir(output_dir):
        return None
    pattern = re.compile(rf"^{PREFIX_CHECKPOINT_DIR}-(\d+)$")
    steps = sorted((int(m.group(1)), name) for name in os.listdir(output_dir) if (m := pattern.match(name)))
    for _, name in reversed(steps):
        folder = os.path.join(output_dir, name)
        try:
            check_checkpoint(folder)
            return folder
        except CheckpointError as error:
            logger.warning("Skipping %s", error)
    return None


def resolve_resume(resume: str | None, output_dir: str) -> str | None:
    """`--resume_from_checkpoint`: a folder (checked), or `true`/`last` for the newest complete one."""
    if resume is None or str(resume).lower() in ("false", "none", ""):
        return None
    if str(resume).lower() in ("true", "last"):
        folder = last_complete_checkpoint(output_dir)
        if folder is None:
            raise CheckpointError(f"--resume_from_checkpoint: no complete checkpoint in {output_dir!r} to resume from.")
        return folder
    check_checkpoint(resume)
    return resume
