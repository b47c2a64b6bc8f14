import os
import sys

import pytest
import torch

import hf_seq2seq
from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForConditionalGeneration

BOS, PAD, EOS = 0, 1, 2

# The model tests marked with it run on every preset whose shape the tiny model does not cover, at the preset's real
# size (a 40-token vocabulary): `small-deep-encoder` has more encoder than decoder layers.
EACH_PRESET_SHAPE = pytest.mark.parametrize("preset", ["tiny", "small-deep-encoder"])


def tiny_config(preset: str = "tiny", **overrides) -> HFSeq2SeqConfig:
    """A model of the preset's shape (the tiny one by default) with a 40-token vocabulary and dropout off, so
    outputs are deterministic."""
    kwargs = dict(vocab_size=40, dropout=0.0, max_position_embeddings=64)
    kwargs.update(overrides)
    return HFSeq2SeqConfig.from_preset(preset, **kwargs)


def tiny_model(seed: int = 0, preset: str = "tiny", **overrides) -> HFSeq2SeqForConditionalGeneration:
    torch.manual_seed(seed)
    return HFSeq2SeqForConditionalGeneration(tiny_config(preset, **overrides)).eval()


def padded_batch(lengths, vocab_size=40, seed=0):
    """Right-padded source ids ending in EOS, with their attention mask."""
    generator = torch.Generator().manual_seed(seed)
    batch = torch.full((len(lengths), max(lengths)), PAD)
    for row, length in enumerate(lengths):
        batch[row, : length - 1] = torch.randint(3, vocab_size, (length - 1,), generator=generator)
        batch[row, length - 1] = EOS
    return batch, (batch != PAD).long()


@pytest.fixture(autouse=True)
def _deterministic():
    torch.manual_seed(0)
    yield


ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# The folder beside the project that holds the real data (data/) and copies of transformers' tests; another place with
# HF_SEQ2SEQ_SHARED (e.g. HF_SEQ2SEQ_SHARED=/nonexistent to see what a CI without it would report).
SHARED = os.path.abspath(os.environ.get("HF_SEQ2SEQ_SHARED") or os.path.join(ROOT, "..", "shared"))
SHARED_DATA = os.path.join(SHARED, "data")


def under_ci() -> bool:
    """Whether the environment variable CI is set (as `.ci/run` and the usual CI runners set it)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def require_shared(path: str, what: str, module_level: bool = False) -> str:
    """`path` if it exists. Otherwise: under CI a failure naming `what` is missing, since a test that a missing
    yardstick turns into a skip proves nothing; on a developer's machine a skip with the same reason. Called by the
    fixtures and tests that need the data, so that tests that need none still run."""
    if os.path.exists(path):
        return path
    message = f"{what} is not at {path}"
    if under_ci():
        pytest.fail(f"{message} (CI is set: a missing yardstick fails the run instead of skipping)", pytrace=False)
    pytest.skip(f"{message} (under CI this fails)", allow_module_level=module_level)


def pytest_configure(config):
    """Under CI a module that cannot be collected without a yardstick (test_transformers_conformance.py without
    transformers' tests) is an error of the run, and the other modules still run: pytest would otherwise stop at the
    first collection error."""
    if under_ci():
        config.option.continue_on_collection_errors = True


@pytest.fixture(scope="session")
def shared_data():
    """The real data folder (../shared/data), required as `require_shared` says."""
    return require_shared(SHARED_DATA, "the real data folder (../shared/data, or $HF_SEQ2SEQ_SHARED/data)")

# A shortened default job: a model between tiny and small, 10,000 built-in pairs, three epochs (~1 minute).
SHORT_TRAINING = [
    "--preset", "tiny", "--config_overrides", "dropout=0.0,d_model=128,encoder_ffn_dim=512,decoder_ffn_dim=512",
    "--dataset_name", "builtin:grammar", "--builtin_train_size", "10000", "--vocab_size", "600", "--num_train_epochs", "3", "--learning_rate", "2e-3",
    "--warmup_steps", "100", "--per_device_train_batch_size", "32",
    "--max_eval_samples", "100", "--max_predict_samples", "200", "--eval_strategy", "no", "--save_strategy", "no",
    "--generation_max_length", "40", "--logging_steps", "100", "--disable_tqdm", "true",
]


@pytest.fixture(scope="session")
def trained(tmp_path_factory):
    """(output folder, results) of `train.py` run on the built-in corpus. Measured on 2 cores: test BLEU 84 (the
    full default run reaches 96); tests assert a floor of 60, which only a broken model misses (untrained: < 1)."""
    sys.path.insert(0, ROOT)
    import train

    output = str(tmp_path_factory.mktemp("run") / "en-fr")
    results = train.main(SHORT_TRAINING + ["--output_dir", output])
    return output, results


def pytest_collection_modifyitems(config, items):
    """This project's tests marked `slow` run only with RUN_SLOW=1, transformers' convention (transformers' own slow
    tests, run by test_transformers_conformance.py, skip themselves the same way)."""
    if os.environ.get("RUN_SLOW", "").lower() in ("1", "true", "yes"):
        return
    skip = pytest.mark.skip(reason="slow: set RUN_SLOW=1 to run")
    for item in items:
        if "slow" in item.keywords and not getattr(item.obj, "__module__", "").startswith("tests."):
            item.add_marker(skip)
