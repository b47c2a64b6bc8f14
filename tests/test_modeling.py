"""The model as a transformers model: the attention formula, save/load (safetensors, Auto classes, remote code),
attention backends and padding, gradients and tied weights, and what a transformers user passes."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors import safe_open
from torch.nn import functional as F
from transformers import AutoModel, AutoModelForSeq2SeqLM

from hf_seq2seq import HFSeq2SeqForConditionalGeneration, HFSeq2SeqModel
from hf_seq2seq.modeling_hf_seq2seq import HFSeq2SeqAttention, eager_attention_forward

from conftest import BOS, EACH_PRESET_SHAPE, EOS, padded_batch, tiny_config, tiny_model


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


# --- attention backends -----------------------------------------------------------------------------------------------


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


# --- gradients and weights --------------------------------------------------------------------------------------------


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


# --- what a transformers user passes: half precision, the old cache name, embeddings, incomplete checkpoints ----------


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
    # Logits within half precision's rounding of float32's (measured: at most 0.006 for bf16, 0.0009 for fp16, on
    # logits up to 3), and float32's tokens. A random model attends almost uniformly, so this does not see a wrong
    # attention scale; test_share.py's trained-model test does (x1.3 in half precision: 22 of 96 outputs differ).
    reference = AutoModelForSeq2SeqLM.from_pretrained(tmp_path).eval()
    with torch.no_grad():
        expected = reference(input_ids=input_ids, attention_mask=attention_mask, decoder_input_ids=input_ids[:, :3]).logits
    torch.testing.assert_close(out.logits.float(), expected, rtol=0, atol=0.02 if dtype == torch.bfloat16 else 0.004)
    for num_beams in (1, 4):
        kwargs = dict(input_ids=input_ids, attention_mask=attention_mask, num_beams=num_beams, max_new_tokens=6)
        assert model.generate(**kwargs).tolist() == reference.generate(**kwargs).tolist(), num_beams


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
