"""generate() on the model: the KV cache (incremental decoding, cross-attention computed once, beam reordering, the
static compiled cache), generation options and settings, and the output length bound that follows the source."""

import json

import pytest
import torch
from transformers import CompileConfig, DynamicCache, EncoderDecoderCache, GenerationConfig

from hf_seq2seq import HFSeq2SeqForConditionalGeneration
from hf_seq2seq.modeling_hf_seq2seq import HFSeq2SeqBeamSearchCache, SourceLengthBound

from conftest import BOS, EACH_PRESET_SHAPE, EOS, PAD, padded_batch, tiny_model


# --- KV cache ---------------------------------------------------------------------------------------------------------


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


# --- options and settings ---------------------------------------------------------------------------------------------


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


@EACH_PRESET_SHAPE
def test_eager_and_sdpa_generate_the_same(preset):
    input_ids, attention_mask = padded_batch([9, 4, 6])
    results = []
    for implementation in ("eager", "sdpa"):
        model = tiny_model(preset=preset, seed=4, attn_implementation=implementation)
        results.append(model.generate(input_ids=input_ids, attention_mask=attention_mask, num_beams=4, max_new_tokens=10))
    assert torch.equal(results[0], results[1])


def test_generation_settings_belong_to_generation_config(tmp_path):
    model = tiny_model()
    model.generation_config = GenerationConfig(
        num_beams=4, max_new_tokens=20, decoder_start_token_id=BOS, bos_token_id=BOS, eos_token_id=EOS, pad_token_id=PAD
    )
    model.save_pretrained(tmp_path)
    assert json.loads((tmp_path / "generation_config.json").read_text())["num_beams"] == 4
    assert HFSeq2SeqForConditionalGeneration.from_pretrained(tmp_path).generation_config.num_beams == 4


# --- output length that follows the source (fairseq's max_len_a * src_len + max_len_b) --------------------------------


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
