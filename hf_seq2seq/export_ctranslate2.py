"""Export a trained model to CTranslate2, the fast C++ inference engine for Transformer translation models.

    hf-seq2seq export-ct2 --model outputs/en-fr --output outputs/en-fr-ct2 [--quantization int8]

or, without managing an export at all, translate as `hf_seq2seq.cli.translate` does (same tokenizer, same generation
defaults, same text out) with the export built on first use and cached beside the model:

    translate_with_ctranslate2("outputs/en-fr", ["The cat sleeps."])

CTranslate2's own `TransformersConverter` reads a transformers model folder through a loader registered for its
config class; this module adds the loader for `HFSeq2SeqConfig`, so the standard converter (and
`ct2-transformers-converter` after `import hf_seq2seq.export_ctranslate2`) converts our models. The architecture
is CTranslate2's `TransformerSpec` (pre- or post-norm, sinusoidal or learned positions, shared embeddings), and our
stacked projections map onto its own fused layout one to one: [W^Q; W^K; W^V] for self-attention, W^Q and
[W^K; W^V] for cross-attention.

`ctranslate2` is an optional dependency: `pip install "hf_seq2seq[ctranslate2]"`.
"""

import os

try:
    import ctranslate2
    from ctranslate2.converters import TransformersConverter
    from ctranslate2.converters.transformers import _SUPPORTED_ACTIVATIONS, BartLoader, register_loader
    from ctranslate2.specs import transformer_spec
except ImportError as error:  # tests/test_ctranslate2_engine.py makes the import fail
    raise ImportError(
        "The CTranslate2 engine needs the ctranslate2 package: `pip install ctranslate2` "
        '(or `pip install "hf_seq2seq[ctranslate2]"`).'
    ) from error

import hf_seq2seq  # registers the Auto classes the converter loads the model with
from hf_seq2seq import export_cache


@register_loader("HFSeq2SeqConfig")
class HFSeq2SeqLoader(BartLoader):
    """Fills CTranslate2's TransformerSpec from HFSeq2SeqForConditionalGeneration. The BART loader it extends
    already handles the vocabulary and the special tokens (bos, eos, unk, decoder start)."""

    @property
    def architecture_name(self):
        return "AutoModelForSeq2SeqLM"

    def get_model_spec(self, model):
        config = model.config
        if config.encoder_attention_heads != config.decoder_attention_heads:
            raise ValueError("CTranslate2's TransformerSpec needs the same number of heads in encoder and decoder.")
        if config.activation_function not in _SUPPORTED_ACTIVATIONS:
            raise ValueError(f"CTranslate2 has no {config.activation_function!r} activation.")
        spec = transformer_spec.TransformerSpec.from_config(
            (config.encoder_layers, config.decoder_layers),
            config.encoder_attention_heads,
            pre_norm=config.normalize_before,
            activation=_SUPPORTED_ACTIVATIONS[config.activation_function],
            layernorm_embedding=False,
        )
        self.set_stack(spec.encoder, model.model.encoder)
        self.set_stack(spec.decoder, model.model.decoder)
        self.set_linear(spec.decoder.projection, model.lm_head)
        return spec

    def set_stack(self, spec, stack):
        spec.scale_embeddings = stack.embed_tokens.embed_scale if stack.embed_tokens.embed_scale != 1.0 else False
        spec.position_encodings.encodings = stack.embed_positions.weight
        embeddings = spec.embeddings[0] if isinstance(spec.embeddings, list) else spec.embeddings
        self.set_embeddings(embeddings, stack.embed_tokens)
        if stack.layer_norm is not None:  # pre-norm stacks end with a layer norm
            self.set_layer_norm(spec.layer_norm, stack.layer_norm)
        for layer_spec, layer in zip(spec.layer, stack.layers):
            self.set_linear(layer_spec.self_attention.linear[0], layer.self_attn.qkv_proj)
            self.set_linear(layer_spec.self_attention.linear[1], layer.self_attn.out_proj)
            self.set_layer_norm(layer_spec.self_attention.layer_norm, layer.self_attn_layer_norm)
            if hasattr(layer, "encoder_attn"):
                self.set_linear(layer_spec.attention.linear[0], layer.encoder_attn.q_proj)
                self.set_linear(layer_spec.attention.linear[1], layer.encoder_attn.kv_proj)
                self.set_linear(layer_spec.attention.linear[2], layer.encoder_attn.out_proj)
                self.set_layer_norm(layer_spec.attention.layer_norm, layer.encoder_attn_layer_norm)
            self.set_linear(layer_spec.ffn.linear_0, layer.ffn.fc1)
            self.set_linear(layer_spec.ffn.linear_1, layer.ffn.fc2)
            self.set_layer_norm(layer_spec.ffn.layer_norm, layer.final_layer_norm)


def export_ctranslate2(model_dir: str, output_dir: str, quantization: str | None = None, force: bool = False) -> str:
    """Convert a model folder (written by train.py or save_pretrained) to a CTranslate2 model folder.
    `quantization`: None (float32), "int8", "int8_float32", "int16", ... as CTranslate2 names them."""
    return TransformersConverter(model_dir).convert(output_dir, quantization=quantization, force=force)


def translator(ct2_dir: str, device: str = "cpu", **kwargs) -> "ctranslate2.Translator":
    """A CTranslate2 Translator. It reads and writes tokens: give it `tokenizer.convert_ids_to_tokens(ids)` of
    the source ids (with their final </s>) and decode its output tokens with the same tokenizer."""
    kwargs.setdefault("intra_threads", 0)  # 0: CTranslate2 picks the number of cores
    return ctranslate2.Translator(ct2_dir, device=device, **kwargs)


# --- one flag: an export cached beside the model, rebuilt when the model changes --------------------------------------

EXPORT_FOLDER = "ctranslate2"


def cached_export(model_dir: str) -> str:
    """The CTranslate2 export of a model folder, converted on first use and again whenever the model changes, kept in
    `<model_dir>/ctranslate2/` (or the user cache for a read-only model folder: `hf_seq2seq.export_cache`)."""
    return export_cache.cached_export(
        model_dir, EXPORT_FOLDER, lambda staging: export_ctranslate2(model_dir, staging, force=True),
        {"ctranslate2": ctranslate2.__version__}, ["model.bin"],
    )


def ctranslate2_translator(model_dir: str, device: str = "cpu", **kwargs) -> "ctranslate2.Translator":
    """A CTranslate2 Translator for a model folder, from its cached export (see `cached_export`). `kwargs` go to
    `ctranslate2.Translator`: `compute_type="int8"` quantizes on load, `intra_threads`, `inter_threads`, ..."""
    return translator(cached_export(model_dir), device=device, **kwargs)


def generation_config(model_dir: str):
    """The model folder's generation config (transformers' defaults without one)."""
    from transformers import GenerationConfig

    has_config = os.path.isfile(os.path.join(model_dir, "generation_config.json"))
    return GenerationConfig.from_pretrained(model_dir) if has_config else GenerationConfig()


def decoding_options(model_dir: str, num_beams: int | None = None, max_new_tokens: int | None = None) -> dict:
    """`translate_batch` options for what generate() does with the model's generation config: the beam size, when
    beam search stops, the length penalty and the length limits. transformers counts `max_length`/`min_length` with
    the decoder start token and `max_new_tokens`/`min_new_tokens` without it, as CTranslate2 does; both count the
    final </s>. Sampling settings are not carried over (train.py never sets them)."""
    config = generation_config(model_dir)

    def setting(name, default):  # transformers 5 leaves unset fields None and applies its defaults in generate()
        value = getattr(config, name, None)
        return default if value is None else value

    if max_new_tokens is None:
        max_new_tokens = setting("max_new_tokens", None) or setting("max_length", 20) - 1
    return {
        "beam_size": num_beams or setting("num_beams", 1),
        # early_stopping=True stops at `num_beams` finished hypotheses, as CTranslate2's patience 1 does; otherwise
        # transformers searches on while a running beam can still win. Patience 2 (stop at 2 x num_beams finished)
        # finds the same translations: 1000/1000 on the demo test split, against 984/1000 with patience 1.
        "patience": 1 if setting("early_stopping", False) is True else 2,
        "length_penalty": setting("length_penalty", 1.0),
        "max_decoding_length": max_new_tokens,
        "min_decoding_length": setting("min_new_tokens", None) or max(setting("min_length", 0) - 1, 0),
    }


def translate_with_ctranslate2(model_dir: str, texts: list[str], num_beams: int | None = None,
                               max_new_tokens: int | None = None, batch_size: int = 32, translator=None) -> list[str]:
    """`hf_seq2seq.cli.translate`, run by CTranslate2: the same tokenizer (and truncation to the model's positions),
    the same generation defaults, empty strings give empty translations, and the tokens are decoded the same way,
    so both give the same text (up to float rounding on near ties). Pass `translator` (`ctranslate2_translator`)
    to translate many batches without checking the export each time."""
    from transformers import AutoConfig, AutoTokenizer

    translations = [""] * len(texts)
    indices = [i for i, text in enumerate(texts) if text.strip()]
    if not indices:
        return translations
    translator = translator or ctranslate2_translator(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    config = AutoConfig.from_pretrained(model_dir)
    # Truncated as generate() inputs are: to the positions the model has, and the source length it was trained on.
    task_params = (getattr(config, "task_specific_params", None) or {}).values()
    max_length = min([config.max_position_embeddings] + [p["max_source_length"] for p in task_params
                                                         if p.get("max_source_length")])
    source_ids = tokenizer([texts[i] for i in indices], truncation=True, max_length=max_length)["input_ids"]
    hypotheses = translate_tokens(
        translator, model_dir, [tokenizer.convert_ids_to_tokens(ids) for ids in source_ids],
        decoding_options(model_dir, num_beams, max_new_tokens),
        max_batch_size=batch_size,  # CTranslate2 sorts by length and batches itself
    )
    output_ids = [tokenizer.convert_tokens_to_ids(best[0]) for best in hypotheses]
    for i, text in zip(indices, tokenizer.batch_decode(output_ids, skip_special_tokens=True)):
        translations[i] = text
    return translations


def translate_tokens(translator, model_dir: str, sources: list[list[str]], options: dict, **kwargs) -> list[list[list[str]]]:
    """`translator.translate_batch(sources, **options, **kwargs)`'s hypotheses (tokens) for each source, each sentence
    under the model's source-length bound (see `decoding_limits`): CTranslate2 takes one `max_decoding_length` per
    call, so there is one call per limit. Sources are token lists already truncated as transformers does."""
    hypotheses = [[[]] * kwargs.get("num_hypotheses", 1) for _ in sources]  # a limit of 0: generate() gives </s> alone
    groups = {}
    for k, limit in enumerate(decoding_limits(model_dir, [len(tokens) for tokens in sources], options["max_decoding_length"])):
        groups.setdefault(limit, []).append(k)
    for limit, members in groups.items():
        if limit == 0:
            continue
        results = translator.translate_batch([sources[k] for k in members], max_input_length=0,
                                             **(options | {"max_decoding_length": limit}), **kwargs)
        for k, result in zip(members, results):
            hypotheses[k] = result.hypotheses
    return hypotheses


def decoding_limits(model_dir: str, source_lengths: list[int], max_decoding_length: int) -> list[int]:
    """Each sentence's CTranslate2 `max_decoding_length` under the generation config's source-length bound
    (`max_len_a`, `max_len_b`; the model's `SourceLengthBound`), or `max_decoding_length` for all without one.
    generate() makes </s> the `a * source_tokens + b`-th token; CTranslate2 ends a hypothesis at the limit without
    </s>, so one token earlier gives the same text."""
    import torch

    config = generation_config(model_dir)
    a, b = getattr(config, "max_len_a", None), getattr(config, "max_len_b", None)
    if a is None or b is None:
        return [max_decoding_length] * len(source_lengths)
    # computed as generate() does it (float32 tensor, truncated), so that the two agree at every length
    bounds = (a * torch.tensor(source_lengths) + b).long().clamp(min=1)
    return [min(int(bound) - 1, max_decoding_length) for bound in bounds]


__all__ = [
    "HFSeq2SeqLoader",
    "cached_export",
    "ctranslate2_translator",
    "export_ctranslate2",
    "translate_tokens",
    "translate_with_ctranslate2",
    "translator",
]
