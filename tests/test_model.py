"""The model as a transformers model: save/load, remote code, cache, attention backends, padding, gradients."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForSeq2SeqLM, CompileConfig, DynamicCache, EncoderDecoderCache, GenerationConfig

from hf_seq2seq import HFSeq2SeqConfig, HFSeq2SeqForConditionalGeneration, HFSeq2SeqModel
from hf_seq2seq.modeling_hf_seq2seq import HFSeq2SeqAttention, HFSeq2SeqBeamSearchCache, SourceLengthBound, eager_attention_forward

from conftest import BOS, EOS, PAD, padded_batch, tiny_config, tiny_model

# The model tests marked with it run on every preset whose shape the tiny model does not cover, at the preset's real
# size (a 40-token vocabulary): `small-deep-encoder` has more encoder than decoder layers.
EACH_PRESET_SHAPE = pytest.mark.parametrize("preset", ["tiny", "small-deep-encoder"])


def test_attention_is_the_formula():
    """The eager kernel is softmax(QKᵀ/√d_k)V, computed here by hand for one head."""
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 1, 3, 8), torch.randn(1, 1, 5, 8), torch.randn(1, 1, 5, 8)
    module = torch.nn.Module().eval()
    output, weights = eager_attention_forward(module, q, k, v, None, scaling=8**-0.5)
    expected_weights = torch.softmax(q[0, 0] @ k[0, 0].T / 8**0.5, dim=-1)
    torch.testing.assert_close(weights[0, 0], expected_weights)
    torch.testing.assert_close(output[0, :, 0], expected_weights @ v[0, 0])


@EACH_PRESET_SHAPE
def test_save_load_roundtrip_gives_identical_logits(tmp_path, preset):
    model = tiny_model(preset=preset)
    input_ids, attention_mask = padded_batch([7, 4])
    labels = padded_batch([5, 6], seed=1)[0]
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    assert not list(tmp_path.glob("*.bin")), "weights must be saved as safetensors only"
    with safe_open(tmp_path / "model.safetensors", "pt") as f:
        # Tied and shared embeddings are stored once; the sinusoidal table is not stored at all.
        assert "model.shared.weight" in f.keys() and "lm_head.weight" not in f.keys()
        assert not [k for k in f.keys() if "embed_positions" in k]
        # W^Q, W^K, W^V are stacked in memory but stored separately (the Marian/BART layout, and this package's
        # first checkpoints): the conversion registered by the modeling file splits on save and stacks on load.
        assert "model.decoder.layers.0.self_attn.k_proj.weight" in f.keys()
        assert "model.decoder.layers.0.encoder_attn.v_proj.bias" in f.keys()
        assert not [k for k in f.keys() if "qkv_proj" in k or "kv_proj" in k]

    loaded = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    assert type(loaded) is HFSeq2SeqForConditionalGeneration
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
        actual = loaded(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
    assert torch.equal(expected, actual)


@pytest.mark.parametrize("position_embedding_type", ["sinusoidal", "learned"])
@pytest.mark.parametrize("normalize_before", [True, False])
def test_variants_roundtrip(tmp_path, position_embedding_type, normalize_before):
    model = tiny_model(position_embedding_type=position_embedding_type, normalize_before=normalize_before)
    input_ids, attention_mask = padded_batch([6, 3])
    model.save_pretrained(tmp_path)
    loaded = HFSeq2SeqForConditionalGeneration.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        a = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids).logits
        b = loaded(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids).logits
    assert torch.equal(a, b)


REMOTE_LOAD = textwrap.dedent(
    """
    import json, sys
    sys.modules["hf_seq2seq"] = None  # this process cannot import the package, installed or not
    try:
        import hf_seq2seq
    except ImportError:
        pass
    else:
        raise SystemExit("hf_seq2seq was importable")
    import torch
    from transformers import AutoModelForSeq2SeqLM
    model = AutoModelForSeq2SeqLM.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
    inputs = json.loads(sys.argv[2])
    out = model.generate(input_ids=torch.tensor(inputs["input_ids"]), attention_mask=torch.tensor(inputs["attention_mask"]),
                         num_beams=4, max_new_tokens=12, do_sample=False)
    print(json.dumps({"module": type(model).__module__, "ids": out.tolist()}))
    """
)


def test_trust_remote_code_in_a_process_without_the_package(tmp_path):
    model = tiny_model(seed=3)
    input_ids, attention_mask = padded_batch([8, 5, 3], seed=2)
    model.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSeq2SeqLM"] == "modeling_hf_seq2seq.HFSeq2SeqForConditionalGeneration"
    assert (tmp_path / "model" / "modeling_hf_seq2seq.py").exists()
    assert (tmp_path / "model" / "configuration_hf_seq2seq.py").exists()

    expected = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=4, max_new_tokens=12)
    inputs = json.dumps({"input_ids": input_ids.tolist(), "attention_mask": attention_mask.tolist()})
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf_home"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run(
        [sys.executable, "-c", REMOTE_LOAD, str(tmp_path / "model"), inputs],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = json.loads(result.stdout.strip().splitlines()[-1])
    assert loaded["module"].startswith("transformers_modules"), loaded["module"]
    assert loaded["ids"] == expected.tolist()


def test_auto_classes_are_registered():
    config = tiny_config()
    assert type(AutoModel.from_config(config)) is HFSeq2SeqModel
    assert type(AutoModelForSeq2SeqLM.from_config(config)) is HFSeq2SeqForConditionalGeneration


# --- KV cache -----------------------------------------------------------------------------------------------------


@EACH_PRESET_SHAPE
def test_incremental_decoding_matches_full_forward(preset):
    model = tiny_model(preset=preset)
    input_ids, attention_mask = padded_batch([9, 6])
    decoder_input_ids = padded_batch([7, 7], seed=5)[0]
    decoder_input_ids[:, 0] = model.config.decoder_start_token_id
    with torch.no_grad():
        full = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
        encoder_outputs = model.get_encoder()(input_ids=input_ids, attention_mask=attention_mask)
        cache, steps = None, []
        for t in range(decoder_input_ids.shape[1]):
            out = model(
                encoder_outputs=encoder_outputs, attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids[:, t : t + 1], cache=cache, use_cache=True,
            )
            cache = out.cache
            steps.append(out.logits)
    torch.testing.assert_close(torch.cat(steps, dim=1), full, atol=1e-5, rtol=0)
    # Cross-attention keys/values were computed once and then reused.
    assert all(cache.is_updated[i] for i in range(model.config.decoder_layers))
    assert cache.cross_attention_cache.get_seq_length() == input_ids.shape[1]


@EACH_PRESET_SHAPE
def test_cross_attention_projections_run_once_per_generation(preset):
    model = tiny_model(preset=preset)
    input_ids, attention_mask = padded_batch([6, 4])
    calls = []
    handles = [layer.encoder_attn.kv_proj.register_forward_hook(lambda *a: calls.append(1)) for layer in model.model.decoder.layers]
    model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=8, min_new_tokens=8)
    for h in handles:
        h.remove()
    assert len(calls) == model.config.decoder_layers


@pytest.mark.parametrize(
    "kwargs",
    [
        dict(do_sample=False, num_beams=1),
        dict(do_sample=False, num_beams=4),
        dict(do_sample=True, top_k=10, temperature=1.5),
    ],
    ids=["greedy", "beam4", "sample"],
)
@EACH_PRESET_SHAPE
def test_generation_is_the_same_with_and_without_cache(kwargs, preset):
    model = tiny_model(preset=preset, seed=1)
    input_ids, attention_mask = padded_batch([8, 5, 7], seed=4)
    outputs = []
    for use_cache in (True, False):
        torch.manual_seed(123)
        outputs.append(
            model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=10, use_cache=use_cache, **kwargs)
        )
    assert torch.equal(outputs[0], outputs[1])


@EACH_PRESET_SHAPE
def test_generate_options(preset):
    model = tiny_model(preset=preset, seed=2, attn_implementation="eager")  # attention weights need the eager kernel
    input_ids, attention_mask = padded_batch([8, 5], seed=4)
    out = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, num_beams=4, num_return_sequences=3, length_penalty=0.6,
        no_repeat_ngram_size=2, max_new_tokens=10, output_scores=True, output_attentions=True,
        output_hidden_states=True, return_dict_in_generate=True,
    )
    assert out.sequences.shape[0] == 2 * 3
    for seq in out.sequences.tolist():
        bigrams = [tuple(seq[i : i + 2]) for i in range(len(seq) - 1) if PAD not in seq[i : i + 2]]
        assert len(bigrams) == len(set(bigrams)), "no_repeat_ngram_size=2 was not applied"
    assert out.sequences_scores.shape == (6,)
    steps = len(out.scores)
    assert steps >= 1 and out.scores[0].shape == (2 * 4, model.config.vocab_size)
    assert len(out.encoder_attentions) == model.config.encoder_layers
    assert out.encoder_attentions[0].shape == (2, 4, 8, 8)  # the encoder runs once, before beams expand
    assert len(out.cross_attentions) == steps and len(out.cross_attentions[0]) == model.config.decoder_layers
    assert out.cross_attentions[0][0].shape[-1] == 8
    assert len(out.decoder_hidden_states[0]) == model.config.decoder_layers + 1


# --- attention backends -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("normalize_before", [True, False])
@EACH_PRESET_SHAPE
def test_eager_and_sdpa_agree_with_padding(normalize_before, preset):
    input_ids, attention_mask = padded_batch([9, 4, 6])
    decoder_input_ids, decoder_attention_mask = padded_batch([5, 7, 3], seed=8)
    outputs = {}
    for implementation in ("eager", "sdpa"):
        model = tiny_model(preset=preset, normalize_before=normalize_before)
        model.set_attn_implementation(implementation)
        assert model.config._attn_implementation == implementation
        per_module = {}
        for name, module in model.named_modules():
            if isinstance(module, HFSeq2SeqAttention):  # encoder self-, decoder self- and cross-attention
                module.register_forward_hook(lambda m, a, out, name=name: per_module.__setitem__(name, out[0]))
        with torch.no_grad():
            out = model(
                input_ids=input_ids, attention_mask=attention_mask,
                decoder_input_ids=decoder_input_ids, decoder_attention_mask=decoder_attention_mask,
            )
        outputs[implementation] = (out, per_module)
    (eager, eager_modules), (sdpa, sdpa_modules) = outputs["eager"], outputs["sdpa"]
    assert {n.rsplit(".", 1)[-1] for n in eager_modules} == {"self_attn", "encoder_attn"}
    for name, value in eager_modules.items():
        # Compare real positions only: what a padded query row holds is never read.
        mask = (attention_mask if name.startswith("model.encoder") else decoder_attention_mask).bool()
        torch.testing.assert_close(value[mask], sdpa_modules[name][mask], atol=1e-5, rtol=0, msg=name)
    torch.testing.assert_close(
        eager.encoder_last_hidden_state[attention_mask.bool()], sdpa.encoder_last_hidden_state[attention_mask.bool()],
        atol=1e-5, rtol=0,
    )
    real = decoder_attention_mask.bool()
    torch.testing.assert_close(eager.logits[real], sdpa.logits[real], atol=1e-5, rtol=0)


@EACH_PRESET_SHAPE
def test_eager_and_sdpa_generate_the_same(preset):
    input_ids, attention_mask = padded_batch([9, 4, 6])
    results = []
    for implementation in ("eager", "sdpa"):
        model = tiny_model(preset=preset, seed=4, attn_implementation=implementation)
        results.append(model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=4, max_new_tokens=10))
    assert torch.equal(results[0], results[1])


# --- gradients and weights ----------------------------------------------------------------------------------------


@EACH_PRESET_SHAPE
def test_gradients_reach_every_parameter(preset):
    model = tiny_model(preset=preset, position_embedding_type="learned", share_encoder_decoder_embeddings=False).train()
    input_ids, attention_mask = padded_batch([7, 5])
    labels = padded_batch([6, 4], seed=1)[0].masked_fill(padded_batch([6, 4], seed=1)[1] == 0, -100)
    model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
    for name, parameter in model.named_parameters():
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0, f"no gradient reaches {name}"


def test_loss_ignores_minus_100_and_builds_decoder_inputs():
    model = tiny_model()
    input_ids, attention_mask = padded_batch([6, 4])
    labels = torch.tensor([[5, 6, 7, EOS], [8, 9, EOS, -100]])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        decoder_input_ids = torch.tensor([[BOS, 5, 6, 7], [BOS, 8, 9, EOS]])
        logits = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
    assert torch.equal(model.prepare_decoder_input_ids_from_labels(labels), decoder_input_ids)
    mask = labels != -100
    expected = torch.nn.functional.cross_entropy(logits[mask], labels[mask])
    torch.testing.assert_close(out.loss, expected)


@EACH_PRESET_SHAPE
def test_gradient_checkpointing_gives_the_same_gradients(preset):
    input_ids, attention_mask = padded_batch([7, 5])
    labels = padded_batch([6, 6], seed=1)[0]
    grads = []
    for checkpointing in (False, True):
        model = tiny_model(preset=preset).train()
        if checkpointing:
            model.activation_checkpointing_enable()
            assert model.model.encoder.layers[0].gradient_checkpointing
        model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).loss.backward()
        grads.append({n: p.grad for n, p in model.named_parameters()})
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], msg=name)


def _tied(model):
    shared = model.model.shared.weight
    return (
        model.lm_head.weight is shared
        and model.model.encoder.embed_tokens.weight is shared
        and model.model.decoder.embed_tokens.weight is shared
    )


def test_tied_weights_stay_tied_after_load_and_resize(tmp_path):
    model = tiny_model()
    assert _tied(model)
    model.save_pretrained(tmp_path)
    loaded = HFSeq2SeqForConditionalGeneration.from_pretrained(tmp_path)
    assert _tied(loaded)

    loaded.resize_token_embeddings(53)
    assert _tied(loaded)
    assert loaded.config.vocab_size == 53 and loaded.lm_head.weight.shape == (53, 64)
    input_ids, attention_mask = padded_batch([5, 3])
    assert loaded(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids).logits.shape[-1] == 53
    loaded.save_pretrained(tmp_path / "resized")
    assert _tied(HFSeq2SeqForConditionalGeneration.from_pretrained(tmp_path / "resized"))


def test_shared_embeddings_without_tied_output_projection(tmp_path):
    model = tiny_model(tie_word_embeddings=False)
    assert model.model.encoder.embed_tokens.weight is model.model.decoder.embed_tokens.weight
    assert model.lm_head.weight is not model.model.shared.weight
    model.save_pretrained(tmp_path)
    loaded = HFSeq2SeqForConditionalGeneration.from_pretrained(tmp_path)
    assert loaded.model.encoder.embed_tokens.weight is loaded.model.decoder.embed_tokens.weight
    assert torch.equal(loaded.lm_head.weight, model.lm_head.weight)


def test_too_long_input_is_a_clear_error():
    model = tiny_model(max_position_embeddings=16)
    with pytest.raises(ValueError, match="max_position_embeddings=16"):
        model(input_ids=torch.ones(1, 17, dtype=torch.long), decoder_input_ids=torch.ones(1, 2, dtype=torch.long))


# --- configuration ------------------------------------------------------------------------------------------------


def test_presets():
    assert HFSeq2SeqConfig.from_preset("base").to_dict()["d_model"] == 512
    base = HFSeq2SeqConfig.from_preset("base")
    assert (base.encoder_layers, base.decoder_layers, base.encoder_attention_heads, base.encoder_ffn_dim) == (6, 6, 8, 2048)
    big = HFSeq2SeqConfig.from_preset("big", dropout=0.3)
    assert (big.d_model, big.encoder_attention_heads, big.decoder_ffn_dim, big.dropout) == (1024, 16, 4096, 0.3)
    # small with a decoder layer moved to the encoder: the same width and depth in all.
    small, deep_encoder = HFSeq2SeqConfig.from_preset("small"), HFSeq2SeqConfig.from_preset("small-deep-encoder")
    assert (deep_encoder.encoder_layers, deep_encoder.decoder_layers) == (4, 2)
    assert (deep_encoder.d_model, deep_encoder.encoder_ffn_dim) == (small.d_model, small.encoder_ffn_dim)
    with pytest.raises(ValueError, match="Unknown preset 'huge'"):
        HFSeq2SeqConfig.from_preset("huge")


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(d_model=100, encoder_attention_heads=8), r"`d_model` \(100\) must be divisible by `encoder_attention_heads` \(8\)"),
        (dict(d_model=96, encoder_attention_heads=8, decoder_attention_heads=5), r"divisible by `decoder_attention_heads` \(5\)"),
        (dict(encoder_layers=-1), r"`encoder_layers` must be a positive integer, got -1"),
        (dict(decoder_ffn_dim=0), r"`decoder_ffn_dim` must be a positive integer, got 0"),
        (dict(vocab_size=-5), r"`vocab_size` must be a positive integer"),
        (dict(dropout=1.0), r"`dropout` is a probability and must lie in \[0, 1\), got 1.0"),
        (dict(attention_dropout=-0.1), r"`attention_dropout` is a probability"),
        (dict(activation_dropout=1.5), r"`activation_dropout` is a probability"),
        (dict(label_smoothing=1.0), r"`label_smoothing` is a probability and must lie in \[0, 1\)"),
        (dict(activation_function="swishy"), r"`activation_function` 'swishy' is unknown; choose one of"),
        (dict(position_embedding_type="rotary"), r"`position_embedding_type` 'rotary' is unknown; choose one of"),
        (dict(pad_token_id=9000, vocab_size=100), r"`pad_token_id` \(9000\) must lie in \[0, vocab_size=100\)"),
    ],
)
def test_invalid_config_values_are_clear_errors(kwargs, message):
    with pytest.raises(ValueError, match=message):
        HFSeq2SeqConfig(**kwargs)


def test_generation_settings_belong_to_generation_config(tmp_path):
    model = tiny_model()
    model.generation_config = GenerationConfig(
        num_beams=4, max_new_tokens=20, decoder_start_token_id=BOS, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD
    )
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "generation_config.json").read_text())["num_beams"] == 4
    assert HFSeq2SeqForConditionalGeneration.from_pretrained(tmp_path).generation_config.num_beams == 4


def test_training_loss_skips_padding_and_equals_the_full_computation():
    """In training mode the position-wise layers skip padding and the LM head runs on labelled positions only;
    loss and every gradient must equal the plain computation over all positions (eval mode, dropout off)."""
    model = tiny_model(label_smoothing=0.1)
    input_ids, attention_mask = padded_batch([7, 4, 6])
    labels = padded_batch([5, 3, 6], seed=1)[0].masked_fill(padded_batch([5, 3, 6], seed=1)[1] == 0, -100)
    labels[2, 1] = -100  # an ignored label inside a sentence: the positions after it still count
    losses, grads = [], []
    for train_mode in (True, False):
        model.train(train_mode)
        model.zero_grad()
        output = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
        assert (output.logits is None) == train_mode
        output.loss.backward()
        losses.append(output.loss.detach())
        grads.append({name: p.grad.clone() for name, p in model.named_parameters()})
    torch.testing.assert_close(losses[0], losses[1], atol=1e-6, rtol=0)
    for name in grads[0]:
        torch.testing.assert_close(grads[0][name], grads[1][name], atol=1e-6, rtol=1e-5, msg=name)
    # ... and the eval-mode loss is the label-smoothed cross-entropy of the returned logits.
    logits = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels).logits
    expected = F.cross_entropy(logits.flatten(0, 1), labels.flatten(), ignore_index=-100, label_smoothing=0.1)
    torch.testing.assert_close(losses[1], expected)


def test_beam_search_skips_reordering_the_cross_attention_cache_with_the_same_output():
    model = tiny_model()
    input_ids, attention_mask = padded_batch([7, 4, 6])
    settings = dict(num_beams=4, max_new_tokens=10, min_new_tokens=10, return_dict_in_generate=True)
    ours = model.generate(input_ids=input_ids, attention_mask=attention_mask, **settings)
    assert type(ours.cache) is HFSeq2SeqBeamSearchCache
    plain = EncoderDecoderCache(DynamicCache(config=model.config), DynamicCache(config=model.config))
    reference = model.generate(input_ids=input_ids, attention_mask=attention_mask, cache=plain, **settings)
    assert type(reference.cache) is EncoderDecoderCache
    assert torch.equal(ours.sequences, reference.sequences)
    torch.testing.assert_close(ours.sequences_scores, reference.sequences_scores)


def test_static_cache_compiled_generation_gives_the_same_tokens():
    """What `_can_compile_fullgraph = True` promises: generate() with a static cache, its decoder step compiled by
    torch.compile (fullgraph), returns the tokens of the uncompiled dynamic-cache path. (transformers 5.24 compiles
    greedy search and sampling; beam search always runs uncompiled.)"""
    model = tiny_model()
    input_ids, attention_mask = padded_batch([7, 4, 6])
    settings = dict(num_beams=1, max_new_tokens=8, min_new_tokens=8, do_sample=False)
    expected = model.generate(input_ids=input_ids, attention_mask=attention_mask, **settings)
    compile_config = CompileConfig(fullgraph=True, dynamic=False, mode="default")
    compile_config._compile_all_devices = True  # generate() compiles on GPUs by itself; on CPU it must be asked
    compiled = model.generate(
        input_ids=input_ids, attention_mask=attention_mask, cache_implementation="static",
        compile_config=compile_config, **settings,
    )
    assert hasattr(model, "_compiled_call"), "generate() did not take the compiled path"  # set by get_compiled_call
    assert torch.equal(compiled, expected)


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


# --- what a transformers user passes: half precision, the old cache name, embeddings, incomplete checkpoints ---------


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@EACH_PRESET_SHAPE
def test_half_precision_from_pretrained_runs_forward_and_generate(tmp_path, dtype, preset):
    """`from_pretrained(..., dtype=...)` builds the model in half precision: the sinusoidal table must follow, or it
    promotes the hidden states to float32 and LayerNorm fails with "mixed dtype"."""
    tiny_model(preset=preset, seed=5).save_pretrained(tmp_path)
    model = AutoModelForSeq2SeqLM.from_pretrained(tmp_path, dtype=dtype).eval()
    assert {p.dtype for p in model.parameters()} == {dtype}
    assert model.model.encoder.embed_positions.weight.dtype == dtype
    input_ids, attention_mask = padded_batch([7, 4], seed=3)
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids[:, :3])
    assert out.logits.dtype == dtype and torch.isfinite(out.logits).all()
    for num_beams in (1, 4):
        ids = model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, max_new_tokens=6)
        assert ids.shape[0] == 2


def test_past_key_values_is_the_cache_with_a_deprecation_warning():
    """Older code and tutorials pass `past_key_values=`: it must be used as the cache (with a warning naming `cache`),
    not vanish into **kwargs while the inputs are cut to the last token."""
    model = tiny_model()
    input_ids, attention_mask = padded_batch([6, 4])
    decoder_input_ids = torch.tensor([[BOS, 5, 6, 7], [BOS, 8, 9, 10]])
    with torch.no_grad():
        full = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
        prefix = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids[:, :3],
                       use_cache=True)
        with pytest.warns(FutureWarning, match="`past_key_values` is deprecated.*Use `cache` instead"):
            step = model(attention_mask=attention_mask, encoder_outputs=(prefix.encoder_last_hidden_state,),
                         decoder_input_ids=decoder_input_ids[:, 3:], past_key_values=prefix.cache, use_cache=True)
    torch.testing.assert_close(step.logits[:, 0], full[:, 3], atol=1e-5, rtol=0)
    assert step.cache.get_seq_length() == 4


@pytest.mark.parametrize("scale_embedding", [True, False])
def test_inputs_embeds_mean_what_the_input_embeddings_return(scale_embedding):
    """`model(inputs_embeds=model.get_input_embeddings()(ids))` equals `model(input_ids=ids)`, for the encoder and
    the decoder: the √d_model scale belongs to the embedding module."""
    model = tiny_model(scale_embedding=scale_embedding)
    input_ids, attention_mask = padded_batch([6, 4])
    decoder_input_ids = torch.tensor([[BOS, 5, 6], [BOS, 8, 9]])
    embed = model.get_input_embeddings()
    with torch.no_grad():
        by_ids = model(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=decoder_input_ids).logits
        by_embeds = model(inputs_embeds=embed(input_ids), attention_mask=attention_mask,
                          decoder_inputs_embeds=embed(decoder_input_ids)).logits
    torch.testing.assert_close(by_embeds, by_ids)
    if scale_embedding:
        torch.testing.assert_close(embed(input_ids), embed.weight[input_ids] * 64**0.5)


def test_a_checkpoint_without_its_embeddings_reports_them_missing(tmp_path):
    """A checkpoint that lacks the shared token embedding must not load silently with random embeddings."""
    from safetensors.torch import load_file, save_file

    tiny_model().save_pretrained(tmp_path)
    weights = load_file(tmp_path / "model.safetensors")
    del weights["model.shared.weight"]
    save_file(weights, tmp_path / "model.safetensors", metadata={"format": "pt"})
    model, info = HFSeq2SeqForConditionalGeneration.from_pretrained(tmp_path, output_loading_info=True)
    assert "model.shared.weight" in info["missing_keys"]
    assert _tied(model)  # still one matrix, freshly initialised, for the encoder, decoder and output projection
    # The complete checkpoint reports nothing missing.
    tiny_model().save_pretrained(tmp_path / "complete")
    _, info = HFSeq2SeqForConditionalGeneration.from_pretrained(tmp_path / "complete", output_loading_info=True)
    assert info["missing_keys"] == set() and info["unexpected_keys"] == set()


# --- output length that follows the source (fairseq's max_len_a * src_len + max_len_b) -----------------------------


@pytest.mark.parametrize("settings", [dict(num_beams=1), dict(num_beams=4), dict(num_beams=4, num_return_sequences=2),
                                      dict(do_sample=True, num_return_sequences=3)], ids=["greedy", "beam4", "beam4x2", "sample"])
def test_source_length_bound_stops_each_sentence_at_its_own_limit(settings):
    model = tiny_model(seed=1)  # untrained: it never chooses </s> by itself within 40 tokens
    input_ids, attention_mask = padded_batch([8, 3, 5])
    torch.manual_seed(0)
    free = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=40, **settings)
    assert (free[:, -1] != EOS).all(), "the check needs a model that runs on"
    torch.manual_seed(0)
    bounded = model.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=40,
                             max_len_a=1.5, max_len_b=2, **settings)
    per_sentence = bounded.shape[0] // 3
    for row, ids in enumerate(bounded.tolist()):
        limit = int(1.5 * [8, 3, 5][row // per_sentence] + 2)
        generated = [t for t in ids[1:] if t != PAD]
        assert len(generated) <= limit and generated[-1] == EOS, (row, generated, limit)
        if settings.get("num_beams", 1) == 1 and not settings.get("do_sample"):
            assert len(generated) == limit  # greedy runs on to the limit, which ends it with </s>
            assert generated[:-1] == [t for t in free[row].tolist()[1:limit]]  # the same tokens until then


def test_source_length_bound_processor_touches_only_the_rows_at_their_bound():
    bound = SourceLengthBound(torch.tensor([3, 5]), eos_token_id=EOS)
    torch.manual_seed(0)
    scores = torch.randn(4, 20).log_softmax(-1)  # 2 sentences x 2 beams
    before = scores.clone()
    prompt = torch.full((4, 1), BOS)
    assert torch.equal(bound(prompt, scores), before)  # step 1 of 3 and of 5: nothing forced
    at_third = bound(torch.cat([prompt, torch.ones(4, 2, dtype=torch.long)], 1), scores)  # the 3rd token is chosen now
    assert torch.equal(scores, before), "the caller's scores are not written in place"
    assert torch.equal(at_third[2:], before[2:])  # the second sentence (bound 5) is untouched
    assert torch.equal(at_third[:2, EOS], before[:2, EOS])  # </s> keeps its score, so beams still rank by it
    others = torch.arange(20) != EOS
    assert torch.isinf(at_third[:2][:, others]).all() and (at_third[:2][:, others] < 0).all()


def test_source_length_bound_comes_from_the_generation_config(tmp_path):
    model = tiny_model(seed=1)
    input_ids, attention_mask = padded_batch([6, 4])
    model.generation_config = GenerationConfig(max_new_tokens=40, max_len_a=1.0, max_len_b=3, decoder_start_token_id=BOS,
                                               eos_token_id=EOS, pad_token_id=PAD)
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "generation_config.json").read_text())["max_len_a"] == 1.0
    loaded = HFSeq2SeqForConditionalGeneration.from_pretrained(tmp_path).eval()
    out = loaded.generate(input_ids=input_ids, attention_mask=attention_mask)
    assert [len([t for t in row[1:] if t != PAD]) for row in out.tolist()] == [9, 7]
    unbounded = loaded.generate(input_ids=input_ids, attention_mask=attention_mask, max_len_a=None)
    assert unbounded.shape[1] == 41


# --- sentence in, label out ----------------------------------------------------------------------------------------


def tiny_classifier(seed: int = 0, **overrides):
    from hf_seq2seq import HFSeq2SeqForSequenceClassification

    torch.manual_seed(seed)
    labels = dict(num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})
    config = tiny_config(**{**labels, **overrides})
    return HFSeq2SeqForSequenceClassification(config).eval()


def test_classifier_loss_is_cross_entropy_of_its_logits_and_other_problem_types():
    model = tiny_classifier(init_std=0.3)
    input_ids, attention_mask = padded_batch([7, 4, 6])
    labels = torch.tensor([2, 0, 1])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (3, 3) and model.config.problem_type == "single_label_classification"
    by_hand = -torch.log_softmax(out.logits, -1)[torch.arange(3), labels].mean()
    torch.testing.assert_close(out.loss, by_hand)
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    model.config.problem_type = "multi_label_classification"
    loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=multi).loss
    torch.testing.assert_close(loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, multi))
    regression = tiny_classifier(num_labels=1, id2label={0: "score"}, label2id={"score": 0})
    targets = torch.tensor([0.5, -1.0, 2.0])
    out = regression(input_ids=input_ids, attention_mask=attention_mask, labels=targets)
    assert regression.config.problem_type == "regression"
    torch.testing.assert_close(out.loss, ((out.logits.squeeze(-1) - targets) ** 2).mean())


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_classifier_logits_do_not_depend_on_padding(attn_implementation):
    model = tiny_classifier(seed=2, init_std=0.3, attn_implementation=attn_implementation)
    input_ids, attention_mask = padded_batch([9, 4, 6], seed=3)
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask).logits
        alone = [model(input_ids=input_ids[i : i + 1, :n]).logits[0] for i, n in enumerate([9, 4, 6])]
    torch.testing.assert_close(batched, torch.stack(alone), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="must end with `</s>`"):
        model(input_ids=torch.tensor([[5, 6, 7]]))


def test_classifier_saves_loads_and_loads_as_remote_code_without_the_package(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = tiny_classifier(seed=4, init_std=0.3)
    input_ids, attention_mask = padded_batch([6, 4], seed=5)
    model.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_hf_seq2seq.HFSeq2SeqForSequenceClassification"
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
        assert torch.equal(loaded(input_ids=input_ids, attention_mask=attention_mask).logits, expected)
    script = textwrap.dedent("""
        import json, sys, torch
        sys.modules["hf_seq2seq"] = None
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
        inputs = json.loads(sys.argv[2])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor(inputs["ids"]), attention_mask=torch.tensor(inputs["mask"])).logits
        print(json.dumps({"module": type(model).__module__, "logits": logits.tolist(), "labels": model.config.id2label}))
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model"),
                             json.dumps({"ids": input_ids.tolist(), "mask": attention_mask.tolist()})],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["module"].startswith("transformers_modules") and remote["labels"] == {"0": "neg", "1": "neu", "2": "pos"}
    torch.testing.assert_close(torch.tensor(remote["logits"]), expected)


def test_classifier_starts_from_a_translator_with_a_new_head(tmp_path):
    from transformers import AutoModelForSequenceClassification

    translator = tiny_model(seed=6)
    translator.save_pretrained(tmp_path)
    classifier, info = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2, output_loading_info=True)
    assert {k for k in info["missing_keys"]} == {"classification_head.dense.weight", "classification_head.dense.bias",
                                                 "classification_head.out_proj.weight", "classification_head.out_proj.bias"}
    assert "lm_head.weight" not in info["missing_keys"]
    for name, weight in translator.model.state_dict().items():
        assert torch.equal(classifier.model.state_dict()[name], weight), name
