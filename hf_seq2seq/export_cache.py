"""Exports cached beside the model they come from, rebuilt when the model changes: what `--engine ctranslate2` and
`--engine onnxruntime` run. One rule for both: the export lives in `<model_dir>/<folder>/` (or, when the model folder
is read-only, in `~/.cache/hf_seq2seq/<folder>/<hash of the path>/`) with a fingerprint of what it was made from,
written last; a folder without it, or with another one, is rebuilt."""

import hashlib
import json
import os
import shutil
import tempfile
from collections.abc import Callable

import hf_seq2seq

FINGERPRINT_FILE = "hf_seq2seq_fingerprint.json"
FINGERPRINTED_FILES = ("model.safetensors", "config.json", "tokenizer.json")


def fingerprint(model_dir: str, versions: dict) -> dict:
    """What an export is made from: the sha256 of the weights, config and vocabulary, and the converter's versions.
    Hashing the bytes rather than comparing sizes and modification times is never fooled by a copy that keeps the
    times (`cp -p`, rsync, an unpacked archive) or a rewrite within the clock's resolution, and costs one read of
    the weights (about a second per GB), little next to loading them into an engine."""
    files = {}
    for name in FINGERPRINTED_FILES:
        path = os.path.join(model_dir, name)
        if os.path.isfile(path):
            digest = hashlib.sha256()
            with open(path, "rb") as f:
                for block in iter(lambda: f.read(1 << 20), b""):
                    digest.update(block)
            files[name] = digest.hexdigest()
    return {"files": files, **versions, "hf_seq2seq": hf_seq2seq.__version__}


def _is_current(export_dir: str, expected: dict, required: list[str]) -> bool:
    try:
        with open(os.path.join(export_dir, FINGERPRINT_FILE)) as f:
            current = json.load(f) == expected
    except (OSError, ValueError):
        return False
    return current and all(os.path.isfile(os.path.join(export_dir, name)) for name in required)


def _is_writable(folder: str) -> bool:
    return os.access(folder, os.W_OK)


def _user_cache_dir(model_dir: str, folder: str) -> str:
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    key = hashlib.sha256(os.path.realpath(model_dir).encode()).hexdigest()[:16]
    return os.path.join(cache, "hf_seq2seq", folder, key)


def cached_export(model_dir: str, folder: str, export: Callable[[str], object], versions: dict,
                  required: list[str]) -> str:
    """The export of a model folder, made by `export(staging_dir)` on first use and again whenever the model (or
    `versions`, the converter's) changes, and complete when it holds the `required` files. It is kept in
    `<model_dir>/<folder>/`, or in the user cache when the model folder is read-only (an up-to-date export already
    beside a read-only model is used as it is)."""
    for name in ("config.json", "model.safetensors"):
        if not os.path.isfile(os.path.join(model_dir, name)):
            raise FileNotFoundError(f"{model_dir!r} is not a model folder: {name} is missing.")
    expected = fingerprint(model_dir, versions)
    export_dir = os.path.join(model_dir, folder)
    if _is_current(export_dir, expected, required):
        return export_dir
    if not _is_writable(model_dir):
        export_dir = _user_cache_dir(model_dir, folder)
        if _is_current(export_dir, expected, required):
            return export_dir
    # Exported into a fresh folder, then swapped in: an interrupted export never leaves half-written files under the
    # name, and a process loading the old export meanwhile keeps reading whole files.
    parent = os.path.dirname(os.path.abspath(export_dir))
    os.makedirs(parent, exist_ok=True)
    staging = tempfile.mkdtemp(prefix=f".{folder}-", dir=parent)
    try:
        export(staging)
        with open(os.path.join(staging, FINGERPRINT_FILE), "w") as f:
            json.dump(expected, f, indent=1)
        shutil.rmtree(export_dir, ignore_errors=True)
        os.replace(staging, export_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return export_dir
