"""Export a trained model to CTranslate2, the fast C++ inference engine for Transformer translation models.

    hf-seq2seq export-ct2 --model outputs/en-fr --output outputs/en-fr-ct2 [--quantization int8]

CTranslate2's own `TransformersConverter` reads a transformers model folder through a loader registered for its
config class; this module adds the loader for `HFSeq2SeqConfig`, so the standard converter (and
`ct2-transformers-converter` after `import hf_seq2seq.export_ctranslate2`) converts our models. The architecture
is CTranslate2's `TransformerSpec` (pre- or post-norm, sinusoidal or learned positions, shared embeddings), and our
stacked projections map onto its own fused layout one to one: [W^Q; W^K; W^V] for self-attention, W^Q and
[W^K; W^V] for cross-attention.

`ctranslate2` is an optional dependency: `pip install "hf_seq2seq[ctranslate2]"`.
"""


try:
    import ctranslate2
    from ctranslate2.converters import TransformersConverter
    from ctranslate2.converters.transformers import _SUPPORTED_ACTIVATIONS, BartLoader, register_loader
    from ctranslate2.specs import transformer_spec
except ImportError as error:  # pragma: no cover - exercised only without the extra
    raise ImportError(
        'Exporting to CTranslate2 needs the ctranslate2 package: pip install "hf_seq2seq[ctranslate2]"'
    ) from error

import hf_seq2seq  # noqa: F401  (registers the Auto classes the converter loads the model with)


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


__all__ = ["HFSeq2SeqLoader", "export_ctranslate2", "translator"]
