"""CTranslate2: the export computes what the model computes, and fast serving behind one flag:
`translate_with_ctranslate2` gives what `hf_seq2seq.cli.translate` gives, from a CTranslate2 export that is built on
first use, kept beside the model, and rebuilt when the weights change."""

import importlib
import json
import os
import shutil
import sys

import pytest
import torch
from safetensors.torch import load_file, save_file

import hf_seq2seq.export_ctranslate2 as engine
from hf_seq2seq import export_cache
from hf_seq2seq.cli import load, translate
from hf_seq2seq.corpus import generate_corpus
from hf_seq2seq.export_ctranslate2 import translate_with_ctranslate2

from conftest import BOS, EOS, PAD, tiny_model


@pytest.mark.parametrize("normalize_before", [True, False])
def test_ctranslate2_export_runs_the_same_function(normalize_before, tmp_path):
    """Pre-norm and post-norm (the paper's layout) both map onto CTranslate2's TransformerSpec: beam-4 tokens of a
    random model are the same in CTranslate2 as in generate()."""
    from hf_seq2seq.export_ctranslate2 import export_ctranslate2, translator
    from hf_seq2seq.vocabulary import train_tokenizer

    texts = ["The two red cars.", "Les deux voitures rouges.", "My sister saw the cat.", "Ma sœur a vu le chat."] * 10
    tokenizer = train_tokenizer(texts, vocab_size=300, min_frequency=1)
    # Weights larger than the default initialisation, so that each source gets its own translation.
    model = tiny_model(vocab_size=len(tokenizer), normalize_before=normalize_before, init_std=0.3)
    model.save_pretrained(tmp_path / "model")
    tokenizer.save_pretrained(tmp_path / "model")
    ct2 = translator(export_ctranslate2(str(tmp_path / "model"), str(tmp_path / "ct2")))
    sources = texts[:4]
    with torch.inference_mode():
        ours = model.generate(**tokenizer(sources, return_tensors="pt", padding=True), num_beams=4, max_new_tokens=12,
                              decoder_start_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD)
    ours = [[t for t in row.tolist()[1:] if t not in (PAD, EOS)] for row in ours]
    results = ct2.translate_batch([tokenizer.convert_ids_to_tokens(tokenizer(s)["input_ids"]) for s in sources],
                                  beam_size=4, max_decoding_length=12)
    assert [tokenizer.convert_tokens_to_ids(r.hypotheses[0]) for r in results] == ours
    assert len({tuple(row) for row in ours}) > 1, "degenerate outputs would prove nothing"


@pytest.fixture(scope="module")
def sources():
    return [row["translation"]["en"] for row in generate_corpus(train_size=10000)["test"]][:50]


@pytest.fixture
def model_dir(trained, tmp_path):
    """A copy of the trained demo model, so that exports and new weights stay out of the shared folder."""
    return shutil.copytree(trained[0], tmp_path / "model", ignore=shutil.ignore_patterns("ctranslate2", "checkpoint-*"))


@pytest.fixture
def builds(monkeypatch):
    """The model folders converted to CTranslate2 during the test."""
    converted, convert = [], engine.export_ctranslate2

    def counting_export(model_dir, *args, **kwargs):
        converted.append(model_dir)
        return convert(model_dir, *args, **kwargs)

    monkeypatch.setattr(engine, "export_ctranslate2", counting_export)
    return converted


def test_same_translations_as_transformers(model_dir, sources):
    """Greedy, the generation config's defaults (its beam size and max_length) and a short max_new_tokens: the same
    text, empty inputs included."""
    model, tokenizer = load(model_dir)
    texts = sources + ["", "   "]
    for settings in ({"num_beams": 1}, {}, {"num_beams": 1, "max_new_tokens": 4}):
        expected = translate(model, tokenizer, texts, **settings)
        assert translate_with_ctranslate2(str(model_dir), texts, **settings) == expected, settings
    assert expected[-2:] == ["", ""] and all(expected[:-2])
    assert translate_with_ctranslate2(str(model_dir), ["", " "]) == ["", ""]


def test_export_is_built_once_and_rebuilt_when_the_weights_change(model_dir, sources, builds):
    export = model_dir / "ctranslate2"
    first = translate_with_ctranslate2(str(model_dir), sources, num_beams=1)
    built = os.stat(export / "model.bin").st_mtime_ns
    fingerprint = json.loads((export / export_cache.FINGERPRINT_FILE).read_text())
    assert translate_with_ctranslate2(str(model_dir), sources, num_beams=1) == first
    assert builds == [str(model_dir)] and os.stat(export / "model.bin").st_mtime_ns == built

    # Slightly different weights, of the same names and shapes (say, a later checkpoint copied over the model).
    weights = load_file(model_dir / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    weights = {name: w + 0.05 * torch.randn(w.shape, generator=generator) for name, w in weights.items()}
    save_file(weights, model_dir / "model.safetensors", metadata={"format": "pt"})
    model, tokenizer = load(model_dir)
    expected = translate(model, tokenizer, sources, num_beams=1)
    assert expected != first, "the new weights should change some translations"
    assert translate_with_ctranslate2(str(model_dir), sources, num_beams=1) == expected
    assert len(builds) == 2
    refreshed = json.loads((export / export_cache.FINGERPRINT_FILE).read_text())
    assert refreshed["files"]["model.safetensors"] != fingerprint["files"]["model.safetensors"]
    assert refreshed["files"]["config.json"] == fingerprint["files"]["config.json"]

    (export / "model.bin").unlink()  # an export damaged or cut short is rebuilt too
    assert translate_with_ctranslate2(str(model_dir), sources[:3], num_beams=1) == expected[:3]
    assert len(builds) == 3 and not [p for p in os.listdir(model_dir) if p.startswith(".ctranslate2-")]


def test_read_only_model_folder_uses_the_user_cache(model_dir, builds, monkeypatch, tmp_path):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.setattr(export_cache, "_is_writable", lambda folder: False)
    export = engine.cached_export(str(model_dir))
    assert os.path.dirname(export) == str(tmp_path / "cache" / "hf_seq2seq" / "ctranslate2")
    assert os.path.isfile(os.path.join(export, "model.bin")) and not (model_dir / "ctranslate2").exists()
    assert engine.cached_export(str(model_dir)) == export and len(builds) == 1

    monkeypatch.setattr(export_cache, "_is_writable", lambda folder: True)
    beside = engine.cached_export(str(model_dir))
    assert beside == str(model_dir / "ctranslate2") and len(builds) == 2
    monkeypatch.setattr(export_cache, "_is_writable", lambda folder: False)  # an up-to-date export beside it is used
    assert engine.cached_export(str(model_dir)) == beside and len(builds) == 2


def test_missing_model_folder_is_a_clear_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a model folder: config.json is missing"):
        translate_with_ctranslate2(str(tmp_path), ["The cat sleeps."])


def test_without_ctranslate2_the_error_says_how_to_install_it(monkeypatch):
    monkeypatch.setitem(sys.modules, "ctranslate2", None)  # what `import ctranslate2` meets when it is not installed
    monkeypatch.delitem(sys.modules, "hf_seq2seq.export_ctranslate2")
    how = r'`pip install ctranslate2` \(or `pip install "hf_seq2seq\[ctranslate2\]"`\)'
    with pytest.raises(ImportError, match=how):
        importlib.import_module("hf_seq2seq.export_ctranslate2")


def test_cli_and_pipeline_take_the_engine_option(model_dir, sources, capsys):
    """`hf-seq2seq translate --engine ctranslate2` and `pipeline(..., engine="ctranslate2")` print and return what the
    transformers engine does."""
    from hf_seq2seq.cli import main as cli
    from hf_seq2seq.hub import translation_pipeline

    cli(["translate", "--model", str(model_dir), "--num_beams", "1", *sources[:6]])
    expected = capsys.readouterr().out.splitlines()
    cli(["translate", "--model", str(model_dir), "--num_beams", "1", "--engine", "ctranslate2", *sources[:6]])
    assert capsys.readouterr().out.splitlines() == expected
    default = translation_pipeline(str(model_dir))(sources[:6], num_beams=1, num_return_sequences=1)
    fast = translation_pipeline(str(model_dir), engine="ctranslate2")(sources[:6], num_beams=1)
    assert fast == default and [item["translation_text"] for item in fast] == expected


def test_source_length_bound_gives_the_same_greedy_text(model_dir, sources):
    """With a bound in the generation config that cuts most sentences, the CLI's translate, the CTranslate2 engine
    and the pipeline on either engine give the same greedy text, each sentence at most `a * source tokens + b` tokens, </s> included."""
    from hf_seq2seq.hub import translation_pipeline

    model, tokenizer = load(model_dir)
    unbounded = translate(model, tokenizer, sources, num_beams=1)
    config_file = model_dir / "generation_config.json"
    config = json.loads(config_file.read_text())
    config.update(max_len_a=0.5, max_len_b=1)
    config_file.write_text(json.dumps(config))
    model, tokenizer = load(model_dir)
    bounded = translate(model, tokenizer, sources, num_beams=1)
    batch = tokenizer(sources, return_tensors="pt", padding=True)
    with torch.inference_mode():
        generated = model.generate(**batch, num_beams=1)[:, 1:]  # after the decoder start token
    lengths = (generated != tokenizer.pad_token_id).sum(1)
    limits = (0.5 * batch["attention_mask"].sum(1) + 1).long()
    assert (lengths <= limits).all() and (lengths == limits).any(), (lengths, limits)
    assert sum(text != free for text, free in zip(bounded, unbounded)) > len(sources) // 2, "the bound should cut"
    assert translate_with_ctranslate2(str(model_dir), sources, num_beams=1) == bounded
    for engine in ("transformers", "ctranslate2"):
        pipe = translation_pipeline(str(model_dir), engine=engine)(sources, num_beams=1)
        assert [item["translation_text"] for item in pipe] == bounded, engine
