"""ONNX export (hf_seq2seq/export_onnx.py): the files of optimum's layout compute what the PyTorch model computes, the
merged decoder's two branches included, and the ONNX Runtime engine behind generate() gives generate()'s tokens."""

import json
import os

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime", reason='the ONNX export is an extra: pip install "hf_seq2seq[onnx]"')
pytest.importorskip("onnxscript", reason='the ONNX export is an extra: pip install "hf_seq2seq[onnx]"')

import onnx  # noqa: E402
import onnxruntime  # noqa: E402

from conftest import EACH_PRESET_SHAPE, padded_batch, tiny_model  # noqa: E402
from hf_seq2seq.cli import main as cli_main  # noqa: E402
from hf_seq2seq.export_onnx import (  # noqa: E402
    DECODER, DECODER_MERGED, DECODER_WITH_PAST, ENCODER, ExportError, ORTModelForSeq2SeqLM, cache_names, export_onnx,
)

TOLERANCE = dict(rtol=0, atol=1e-4)  # fp32, the bound


@pytest.fixture(scope="module", params=["tiny", "small-deep-encoder"])
def exported(request, tmp_path_factory):
    """A random model (init_std 0.3: sharp attention, so that a wrong mask or cache shows) and its export."""
    folder = tmp_path_factory.mktemp(f"onnx-{request.param}")
    model = tiny_model(seed=5, preset=request.param, init_std=0.3)
    model.save_pretrained(folder / "model")
    export_onnx(str(folder / "model"), str(folder / "onnx"))
    sessions = {name: onnxruntime.InferenceSession(str(folder / "onnx" / name)) for name in
                (ENCODER, DECODER, DECODER_WITH_PAST, DECODER_MERGED)}
    return model, sessions, str(folder / "onnx")


def as_numpy(feeds: dict) -> dict:
    return {name: tensor.contiguous().numpy() for name, tensor in feeds.items()}


def close(actual: np.ndarray, expected: torch.Tensor, what: str, real=None):
    """`real`: a (batch, length) mask of the positions to compare. Padding positions are not computed by the PyTorch
    model (it skips them, tests/test_modeling.py) and never reach a real one."""
    actual, expected = torch.from_numpy(actual), expected.float()
    if real is not None:
        actual, expected = actual[real.bool()], expected[real.bool()]
    torch.testing.assert_close(actual, expected, **TOLERANCE, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("lengths", [[5], [9, 4, 6], [3, 12, 7]], ids=["batch1", "batch3-padded", "batch3-longer"])
def test_every_file_computes_what_pytorch_computes(exported, lengths):
    model, sessions, _ = exported
    layers = model.config.decoder_layers
    input_ids, attention_mask = padded_batch(lengths, seed=len(lengths) + max(lengths))
    decoder_ids = torch.tensor([[0, 7, 9, 4]] * len(lengths))
    with torch.no_grad():
        encoder = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state
        first = model(attention_mask=attention_mask, encoder_outputs=(encoder,), decoder_input_ids=decoder_ids[:, :3],
                      use_cache=True)
        cache = first.cache
        first_presents = [t.clone() for i in range(layers) for t in (
            cache.self_attention_cache.layers[i].keys, cache.self_attention_cache.layers[i].values,
            cache.cross_attention_cache.layers[i].keys, cache.cross_attention_cache.layers[i].values)]
        later = model(attention_mask=attention_mask, encoder_outputs=(encoder,), decoder_input_ids=decoder_ids[:, 3:],
                      cache=cache, use_cache=True)

    (states,) = sessions[ENCODER].run(None, as_numpy({"input_ids": input_ids, "attention_mask": attention_mask}))
    close(states, encoder, "encoder states", attention_mask)

    # Cross-attention keys/values (axis 2: source positions) are compared at the real source positions.
    source_real = attention_mask[:, None, :].expand(-1, model.config.decoder_attention_heads, -1)
    first_feeds = {"input_ids": decoder_ids[:, :3], "encoder_attention_mask": attention_mask, "encoder_hidden_states": encoder}
    logits, *presents = sessions[DECODER].run(None, as_numpy(first_feeds))
    close(logits, first.logits, "first-step logits")
    for name, actual, expected in zip(cache_names(layers, "present"), presents, first_presents):
        close(actual, expected, name, source_real if ".encoder." in name else None)

    past = dict(zip(cache_names(layers, "past_key_values"), first_presents))
    later_feeds = {"input_ids": decoder_ids[:, 3:], "encoder_attention_mask": attention_mask, **past}
    later_logits, *later_presents = sessions[DECODER_WITH_PAST].run(None, as_numpy(later_feeds))
    close(later_logits, later.logits, "with-past logits")
    for i, name in enumerate(cache_names(layers, "present", ("decoder",))):
        layer, kind = divmod(i, 2)
        expected = cache.self_attention_cache.layers[layer]
        close(later_presents[i], expected.keys if kind == 0 else expected.values, name)

    # The merged decoder: use_cache_branch false is the first step (with an empty past), true a later step (with
    # the encoder output still fed, as transformers.js does); the cross-attention past passes through. ONNX Runtime
    # optimises a branch apart from the whole file: equal to float32 rounding, not bit for bit.
    empty = torch.zeros(len(lengths), model.config.decoder_attention_heads, 0, model.config.d_model // model.config.decoder_attention_heads)
    merged_first = sessions[DECODER_MERGED].run(None, as_numpy({
        **first_feeds, **{name: empty for name in past}, "use_cache_branch": torch.tensor([False])}))
    for actual, expected in zip(merged_first, [logits, *presents]):
        np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-5)
    merged_later = sessions[DECODER_MERGED].run(None, as_numpy({
        **later_feeds, "encoder_hidden_states": encoder, "use_cache_branch": torch.tensor([True])}))
    np.testing.assert_allclose(merged_later[0], later_logits, rtol=0, atol=1e-5)
    for name, actual in zip(cache_names(layers, "present"), merged_later[1:]):
        if ".encoder." in name:
            np.testing.assert_array_equal(actual, past[name.replace("present", "past_key_values")].numpy())
        else:
            np.testing.assert_allclose(actual, later_presents[cache_names(layers, "present", ("decoder",)).index(name)], rtol=0, atol=1e-5)


def test_merged_decoder_holds_one_copy_of_the_weights(exported):
    _, _, folder = exported
    size = {name: os.path.getsize(os.path.join(folder, name)) for name in (DECODER, DECODER_WITH_PAST, DECODER_MERGED)}
    assert size[DECODER_MERGED] < 0.8 * (size[DECODER] + size[DECODER_WITH_PAST]), size


@pytest.mark.parametrize("num_beams", [1, 4])
def test_onnx_runtime_engine_generates_the_tokens_of_generate(exported, num_beams):
    model, _, folder = exported
    engine = ORTModelForSeq2SeqLM.from_export(folder)
    input_ids, attention_mask = padded_batch([9, 4, 6], seed=11)
    kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, max_new_tokens=10)
    expected = model.generate(**kwargs)
    assert len({tuple(row) for row in expected.tolist()}) > 1, "the rows must differ for the comparison to tell"
    assert engine.generate(**kwargs).tolist() == expected.tolist()


def test_classifier_exports_its_logits(tmp_path):
    from hf_seq2seq import HFSeq2SeqForSequenceClassification
    from conftest import tiny_config

    torch.manual_seed(3)
    model = HFSeq2SeqForSequenceClassification(tiny_config(num_labels=3, init_std=0.3)).eval()
    model.save_pretrained(tmp_path / "model")
    export_onnx(str(tmp_path / "model"), str(tmp_path / "onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    for lengths in ([6], [9, 4, 6]):
        input_ids, attention_mask = padded_batch(lengths, seed=2)
        with torch.no_grad():
            expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
        (logits,) = session.run(None, as_numpy({"input_ids": input_ids, "attention_mask": attention_mask}))
        close(logits, expected, f"classifier logits, lengths {lengths}")


def test_extractive_reader_exports_its_start_and_end_scores(tmp_path):
    from hf_seq2seq import HFSeq2SeqForQuestionAnswering
    from conftest import tiny_config

    torch.manual_seed(3)
    model = HFSeq2SeqForQuestionAnswering(tiny_config(init_std=0.3)).eval()
    model.save_pretrained(tmp_path / "model")
    export_onnx(str(tmp_path / "model"), str(tmp_path / "onnx"))
    session = onnxruntime.InferenceSession(str(tmp_path / "onnx" / "model.onnx"))
    assert [o.name for o in session.get_outputs()] == ["start_logits", "end_logits"]
    for lengths in ([6], [9, 4, 6]):
        input_ids, attention_mask = padded_batch(lengths, seed=2)
        with torch.no_grad():
            expected = model(input_ids=input_ids, attention_mask=attention_mask)
        start, end = session.run(None, as_numpy({"input_ids": input_ids, "attention_mask": attention_mask}))
        close(start, expected.start_logits, f"start scores, lengths {lengths}", attention_mask)
        close(end, expected.end_logits, f"end scores, lengths {lengths}", attention_mask)


def test_bad_folders_are_one_line_errors(tmp_path):
    """A folder without weights or config, or of an architecture the export does not know: one line naming it, from
    the function (ExportError) and from the command (`error: ...`, exit status 1)."""
    import shutil

    from hf_seq2seq.vocabulary import train_tokenizer

    model = tiny_model()
    model.save_pretrained(tmp_path / "ok")
    train_tokenizer(["Where is the station?", "The cat sleeps."] * 4, vocab_size=300).save_pretrained(tmp_path / "ok")
    for folder, remove in [("no_weights", "model.safetensors"), ("no_config", "config.json"), ("marian", None)]:
        shutil.copytree(tmp_path / "ok", tmp_path / folder)
        if remove:
            os.remove(tmp_path / folder / remove)
    (tmp_path / "marian" / "config.json").write_text(json.dumps({"model_type": "marian", "architectures": ["MarianMTModel"]}))
    cases = [("missing", "does not exist"), ("no_weights", "model.safetensors"), ("no_config", "config.json"),
             ("marian", "holds a 'marian' model (MarianMTModel)")]
    for folder, message in cases:
        with pytest.raises(SystemExit) as error:
            cli_main(["export-onnx", "--model", str(tmp_path / folder), "--output", str(tmp_path / "out")])
        assert str(error.value).startswith("error: ") and message in str(error.value), error.value
        assert "\n" not in str(error.value)
    for folder, message in [("missing", "No model folder"), *cases[1:]]:
        with pytest.raises(ExportError, match=message.replace("(", r"\(").replace(")", r"\)")):
            export_onnx(str(tmp_path / folder), str(tmp_path / "out"))
    with pytest.raises(ExportError, match="Unknown quantisation 'int4'"):
        export_onnx(str(tmp_path / "ok"), str(tmp_path / "out"), quantize="int4")
    assert not os.path.exists(tmp_path / "out")  # nothing written for a bad call


# --- the trained demo model: the engine, the command line, the pipeline and transformers.js --------------------------


@pytest.fixture(scope="module")
def model_dir(trained, tmp_path_factory):
    """A copy of the trained demo model, so that exports and new weights stay out of the shared folder."""
    import shutil

    folder = tmp_path_factory.mktemp("onnx-trained") / "model"
    return shutil.copytree(trained[0], folder, ignore=shutil.ignore_patterns("ctranslate2", "onnxruntime", "checkpoint-*"))


@pytest.fixture(scope="module")
def test_pairs():
    from hf_seq2seq.corpus import generate_corpus

    rows = generate_corpus()["test"][:100]
    return [row["translation"]["en"] for row in rows], [row["translation"]["fr"] for row in rows]


def bleu(hypotheses, references) -> float:
    import sacrebleu

    return sacrebleu.corpus_bleu(hypotheses, [references]).score


def test_trained_model_gives_the_same_translations_in_onnx_runtime(model_dir, test_pairs):
    """The issue's floors on 100 test sentences: greedy token ids identical to generate()'s, beam-4 BLEU within 0.1,
    int8 BLEU within 1 point of float32 (both through `load(..., engine="onnxruntime")`, the command line's)."""
    from hf_seq2seq.cli import load
    from hf_seq2seq.inference import generate_texts

    sources, references = test_pairs
    model, tokenizer = load(str(model_dir))
    engine, _ = load(str(model_dir), engine="onnxruntime")
    assert isinstance(engine, ORTModelForSeq2SeqLM)
    for start in range(0, 100, 25):  # padded batches
        batch = tokenizer(sources[start : start + 25], return_tensors="pt", padding=True)
        expected = model.generate(**batch, num_beams=1, max_new_tokens=40)
        assert engine.generate(**batch, num_beams=1, max_new_tokens=40).tolist() == expected.tolist()

    beam = {name: generate_texts(m, tokenizer, sources, num_beams=4) for name, m in (("torch", model), ("ort", engine))}
    assert bleu(beam["torch"], references) > 60  # a trained model (tests/conftest.py), so that the comparison tells
    assert abs(bleu(beam["ort"], references) - bleu(beam["torch"], references)) <= 0.1

    int8, _ = load(str(model_dir), quantize="int8", engine="onnxruntime")
    assert os.path.isfile(model_dir / "onnxruntime" / "decoder_model_merged_quantized.onnx")
    int8_texts = generate_texts(int8, tokenizer, sources, num_beams=4)
    # (the share of outputs identical to float32 is measured by bench/onnx_compare.py)
    assert abs(bleu(int8_texts, references) - bleu(beam["ort"], references)) <= 1.0


def test_engine_export_is_cached_beside_the_model_and_rebuilt_when_the_weights_change(model_dir, test_pairs):
    from safetensors.torch import load_file, save_file

    from hf_seq2seq import export_cache
    from hf_seq2seq.cli import load
    from hf_seq2seq.export_onnx import onnxruntime_model
    from hf_seq2seq.inference import generate_texts

    sources = test_pairs[0][:8]
    export = model_dir / "onnxruntime"
    engine = onnxruntime_model(str(model_dir))  # built by the test above, or now
    built = os.stat(export / DECODER_MERGED).st_mtime_ns
    _, tokenizer = load(str(model_dir))
    first = generate_texts(engine, tokenizer, sources, num_beams=1)
    onnxruntime_model(str(model_dir))
    assert os.stat(export / DECODER_MERGED).st_mtime_ns == built, "an up-to-date export is not rebuilt"

    weights = load_file(model_dir / "model.safetensors")
    generator = torch.Generator().manual_seed(0)
    save_file({name: w + 0.05 * torch.randn(w.shape, generator=generator) for name, w in weights.items()},
              model_dir / "model.safetensors", metadata={"format": "pt"})
    model, _ = load(str(model_dir))
    expected = generate_texts(model, tokenizer, sources, num_beams=1)
    assert expected != first, "the new weights should change some translations"
    assert generate_texts(onnxruntime_model(str(model_dir)), tokenizer, sources, num_beams=1) == expected
    assert os.stat(export / DECODER_MERGED).st_mtime_ns != built
    assert json.loads((export / export_cache.FINGERPRINT_FILE).read_text())["files"]["model.safetensors"]
    assert not [p for p in os.listdir(model_dir) if p.startswith(".onnxruntime-")]


def test_command_line_and_pipeline_run_the_onnx_runtime_engine(trained, capsys, tmp_path):
    """`--engine onnxruntime` prints what the transformers engine prints; `pipeline(..., engine="onnxruntime")`
    returns what the default pipeline returns (and runs ONNX Runtime: its model is the engine)."""
    import shutil

    from transformers import pipeline

    folder = shutil.copytree(trained[0], tmp_path / "model", ignore=shutil.ignore_patterns("onnxruntime", "checkpoint-*"))
    sentences = ["The two red cars are in the garden.", "My sister saw the cat.", ""]
    printed = {}
    for engine in ("transformers", "onnxruntime"):
        cli_main(["translate", "--model", str(folder), "--engine", engine, "--num_beams", "4", *sentences])
        printed[engine] = capsys.readouterr().out
    assert printed["onnxruntime"] == printed["transformers"] and len(printed["transformers"].splitlines()) == 3

    default = pipeline("translation", model=str(folder), trust_remote_code=True)
    with_ort = pipeline("translation", model=str(folder), trust_remote_code=True, engine="onnxruntime")
    assert isinstance(with_ort.model, ORTModelForSeq2SeqLM)
    assert with_ort(sentences[:2], num_beams=4) == default(sentences[:2], num_beams=4)
    with pytest.raises(ValueError, match="engine must be one of 'transformers', 'onnxruntime', 'ctranslate2'"):
        pipeline("translation", model=str(folder), trust_remote_code=True, engine="tensorrt")


def test_command_line_classifies_with_onnx_runtime(tmp_path, capsys):
    from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForSequenceClassification
    from hf_seq2seq.hub import save_bundle
    from hf_seq2seq.vocabulary import train_tokenizer

    texts = ["A gripping, beautifully acted film.", "Dull and far too long.", "The cat sleeps.", "I saw two birds."]
    tokenizer = train_tokenizer(texts * 4, vocab_size=300, min_frequency=1)
    labels = {0: "neg", 1: "mid", 2: "pos"}
    config = HFSeq2SeqConfig.from_preset("tiny", vocab_size=len(tokenizer), dropout=0.0, init_std=0.3, id2label=labels,
                                         label2id={v: k for k, v in labels.items()})
    torch.manual_seed(4)
    save_bundle(HFSeq2SeqForSequenceClassification(config).eval(), tokenizer, str(tmp_path / "classifier"),
                "text-classification")
    printed = {}
    for engine in ("transformers", "onnxruntime"):
        cli_main(["classify", "--model", str(tmp_path / "classifier"), "--engine", engine, *texts])
        printed[engine] = capsys.readouterr().out.split()
    assert printed["onnxruntime"] == printed["transformers"] and len(set(printed["transformers"])) > 1


@pytest.fixture(scope="module")
def web_bundle(trained, tmp_path_factory):
    folder = tmp_path_factory.mktemp("web") / "en-fr-web"
    cli_main(["export-onnx", "--model", trained[0], "--output", str(folder), "--for-web"])
    return folder


def test_web_bundle_has_the_layout_and_versions_transformers_js_reads(web_bundle):
    """transformers.js 3 reads onnx/{encoder_model,decoder_model_merged}{,_quantized}.onnx, a Marian config with
    is_encoder_decoder, and a tokenizer class it knows; its ONNX Runtime reads IR versions up to 10, opsets up to 22."""
    files = sorted(os.listdir(web_bundle / "onnx"))
    assert files == sorted(["encoder_model.onnx", "encoder_model_quantized.onnx", "decoder_model_merged.onnx",
                            "decoder_model_merged_quantized.onnx"])
    for name in files:
        model = onnx.load(str(web_bundle / "onnx" / name), load_external_data=False)
        opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        assert model.ir_version <= 10 and opset <= 22, (name, model.ir_version, opset)
    for name in ("encoder_model", "decoder_model_merged"):  # int8 weights, the merged decoder's branches included
        size = {dtype: os.path.getsize(web_bundle / "onnx" / f"{name}{dtype}.onnx") for dtype in ("", "_quantized")}
        assert size["_quantized"] < 0.5 * size[""], size  # (the embeddings, read by Gather, stay float)
    config = json.loads((web_bundle / "config.json").read_text())
    assert config["model_type"] == "marian" and config["is_encoder_decoder"] is True and "auto_map" not in config
    assert config["encoder_attention_heads"] == config["decoder_attention_heads"]  # transformers.js sizes both pasts alike
    tokenizer_config = json.loads((web_bundle / "tokenizer_config.json").read_text())
    assert tokenizer_config["tokenizer_class"] == "PreTrainedTokenizerFast"
    assert tokenizer_config["clean_up_tokenization_spaces"] is False
    assert (web_bundle / "tokenizer.json").is_file() and (web_bundle / "generation_config.json").is_file()


JS_CHECK = os.path.join(os.path.dirname(__file__), "js")


@pytest.fixture(scope="session")
def transformers_js():
    """tests/js with @huggingface/transformers installed from the npm registry (`npm ci`, once; the lock file pins
    3.8.1). Install scripts are skipped: onnxruntime-node's CPU library ships in its package, and its script only
    fetches CUDA libraries."""
    import shutil
    import subprocess

    npm = shutil.which("npm")
    if not shutil.which("node") or not npm:
        pytest.skip("node and npm are not installed: the transformers.js check needs them (Node 18 or later)")
    if not os.path.isdir(os.path.join(JS_CHECK, "node_modules", "@huggingface", "transformers")):
        done = subprocess.run([npm, "ci", "--ignore-scripts", "--no-audit", "--no-fund"], cwd=JS_CHECK,
                              capture_output=True, text=True)
        assert done.returncode == 0, f"npm ci in {JS_CHECK} failed (is the npm registry reachable?):\n{done.stderr[-2000:]}"
    return JS_CHECK


def test_transformers_js_translates_like_generate(web_bundle, transformers_js, trained, test_pairs):
    """transformers.js in Node translates test sentences with the bundle, greedy: float32 gives generate()'s token
    ids and text; int8 (`dtype: "q8"`) gives what this package's ONNX Runtime engine gives on the same int8 files."""
    import subprocess

    from hf_seq2seq.cli import load

    model, tokenizer = load(trained[0])
    int8 = ORTModelForSeq2SeqLM(model.config, str(web_bundle / "onnx"), file_suffix="_quantized")
    int8.generation_config = model.generation_config
    sentences = test_pairs[0][:6]
    expected = {"fp32": [], "q8": []}
    for sentence in sentences:
        for dtype, engine in (("fp32", model), ("q8", int8)):
            ids = engine.generate(**tokenizer(sentence, return_tensors="pt"), num_beams=1, max_new_tokens=40)[0].tolist()
            expected[dtype].append({"ids": ids, "text": tokenizer.decode(ids, skip_special_tokens=True)})
    for dtype in ("fp32", "q8"):
        done = subprocess.run(["node", "translate.mjs", str(web_bundle), dtype, "40"], cwd=transformers_js,
                              input=json.dumps(sentences), capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stderr[-3000:]
        assert json.loads(done.stdout.strip().splitlines()[-1]) == expected[dtype], dtype
