"""Configuration of the hf_seq2seq encoder–decoder Transformer (Vaswani et al., 2017).

This file travels to the Hub beside the weights (remote code): it imports nothing of the package.
"""

from transformers import PretrainedConfig

# Named sizes. `base` and `big` are the two models of the paper (Table 3); `small` is the size that trains
# a useful translator on two CPU cores in an hour; `tiny` is for tests.
PRESETS = {
    "tiny": dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
                 decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128),
    "small": dict(d_model=256, encoder_layers=3, decoder_layers=3, encoder_attention_heads=4,
                  decoder_attention_heads=4, encoder_ffn_dim=1024, decoder_ffn_dim=1024),
    # `small` with a layer moved from the decoder to the encoder (Kasai et al., 2021, "Deep Encoder, Shallow
    # Decoder"): the decoder runs once per output token, the encoder once per sentence, so this shape decodes
    # faster at about the same quality. With a 2,000-token vocabulary, it is bench/README.md's fastest model at
    # MarianMT's BLEU or above.
    "small-deep-encoder": dict(d_model=256, encoder_layers=4, decoder_layers=2, encoder_attention_heads=4,
                               decoder_attention_heads=4, encoder_ffn_dim=1024, decoder_ffn_dim=1024),
    "base": dict(d_model=512, encoder_layers=6, decoder_layers=6, encoder_attention_heads=8,
                 decoder_attention_heads=8, encoder_ffn_dim=2048, decoder_ffn_dim=2048),
    "big": dict(d_model=1024, encoder_layers=6, decoder_layers=6, encoder_attention_heads=16,
                decoder_attention_heads=16, encoder_ffn_dim=4096, decoder_ffn_dim=4096),
}

ACTIVATIONS = ("relu", "gelu", "gelu_new", "silu", "swish", "tanh")
POSITION_EMBEDDING_TYPES = ("sinusoidal", "learned")


class HFSeq2SeqConfig(PretrainedConfig):
    r"""
    Configuration of [`HFSeq2SeqModel`] / [`HFSeq2SeqForConditionalGeneration`]. Field names follow
    transformers' Marian and BART configs.

    Args:
        vocab_size: size of the (joint) vocabulary.
        d_model: width of the model, `d_model` in the paper.
        encoder_layers / decoder_layers: number of layers, `N` in the paper.
        encoder_attention_heads / decoder_attention_heads: number of heads, `h`; `d_k = d_model / h`.
        encoder_ffn_dim / decoder_ffn_dim: inner width of the position-wise feed-forward, `d_ff`.
        activation_function: non-linearity of the feed-forward ("relu" as in the paper).
        dropout: dropout on embeddings and on every sub-layer output before the residual sum, `P_drop`.
        attention_dropout: dropout on the attention weights.
        activation_dropout: dropout after the feed-forward activation.
        max_position_embeddings: longest sequence the position encodings cover.
        position_embedding_type: "sinusoidal" (the paper) or "learned".
        normalize_before: pre-norm `x + Sublayer(LayerNorm(x))` when True, post-norm
            `LayerNorm(x + Sublayer(x))` (the paper) when False. Defaults to pre-norm: its gradients are
            well-behaved at initialisation, so it trains without a carefully tuned warm-up and at higher
            learning rates (Xiong et al., 2020, "On Layer Normalization in the Transformer Architecture"),
            which is what short CPU runs need. Pre-norm stacks end with a final layer norm.
        scale_embedding: multiply token embeddings by `sqrt(d_model)` (the paper, section 3.4).
        share_encoder_decoder_embeddings: one embedding matrix for source and target tokens.
        tie_word_embeddings: the output projection (LM head) reuses the target embedding matrix.
        classifier_dropout: dropout in the classification head of [`HFSeq2SeqForSequenceClassification`].
        label_smoothing: ε of the label-smoothed cross-entropy the model returns as `loss` when given `labels`
            (0.1 in the paper, section 5.4; train.py sets it from `--label_smoothing_factor`).
        init_std: standard deviation of the normal initialisation of linear and embedding weights.
        use_cache: return the key/value cache for fast incremental decoding.
    """

    model_type = "hf_seq2seq"
    # transformers' default FSDP plan for a base model ({embed_tokens, layers.*, norm}) would reach the encoder and
    # decoder, models of their own, and shard their aliases of the shared embedding apart from it (FSDP2 refuses).
    # The model's own `_fsdp_plan` (one shard group per layer) is the whole plan.
    base_model_fsdp_plan = {}
    # Names the rest of transformers looks for (DynamicCache needs `num_hidden_layers` of the decoder).
    attribute_map = {
        "hidden_size": "d_model",
        "num_attention_heads": "decoder_attention_heads",
        "num_hidden_layers": "decoder_layers",
    }

    vocab_size: int = 8000
    d_model: int = 512
    encoder_layers: int = 6
    decoder_layers: int = 6
    encoder_attention_heads: int = 8
    decoder_attention_heads: int = 8
    encoder_ffn_dim: int = 2048
    decoder_ffn_dim: int = 2048
    activation_function: str = "relu"
    dropout: float | int = 0.1
    attention_dropout: float | int = 0.0
    activation_dropout: float | int = 0.0
    max_position_embeddings: int = 512
    position_embedding_type: str = "sinusoidal"
    normalize_before: bool = True
    scale_embedding: bool = True
    share_encoder_decoder_embeddings: bool = True
    tie_word_embeddings: bool = True
    classifier_dropout: float | int = 0.0
    label_smoothing: float | int = 0.0
    init_std: float = 0.02
    use_cache: bool = True
    is_encoder_decoder: bool = True
    # fairseq/BART layout: <s>=0, <pad>=1, </s>=2, <unk>=3. (A pad id of 0 would be taken for "unset" by
    # generate(), which then pads finished beams with </s>.)
    bos_token_id: int | None = 0
    pad_token_id: int | None = 1
    eos_token_id: int | list[int] | None = 2
    decoder_start_token_id: int | None = 0

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        self._check_values()

    def _check_values(self):
        """Reject values that would build a broken model, naming the field and the fix."""
        for name in ("vocab_size", "d_model", "encoder_layers", "decoder_layers", "encoder_attention_heads",
                     "decoder_attention_heads", "encoder_ffn_dim", "decoder_ffn_dim", "max_position_embeddings"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or value <= 0:
                raise ValueError(f"`{name}` must be a positive integer, got {value!r}.")
        for name in ("encoder_attention_heads", "decoder_attention_heads"):
            heads = getattr(self, name)
            if self.d_model % heads:
                raise ValueError(
                    f"`d_model` ({self.d_model}) must be divisible by `{name}` ({heads}): each head gets "
                    f"d_model / heads dimensions. Choose a head count that divides {self.d_model}."
                )
        for name in ("dropout", "attention_dropout", "activation_dropout", "classifier_dropout", "label_smoothing"):
            p = getattr(self, name)
            if not 0.0 <= p < 1.0:
                raise ValueError(f"`{name}` is a probability and must lie in [0, 1), got {p!r}.")
        if self.activation_function not in ACTIVATIONS:
            raise ValueError(
                f"`activation_function` {self.activation_function!r} is unknown; choose one of {ACTIVATIONS}."
            )
        if self.position_embedding_type not in POSITION_EMBEDDING_TYPES:
            raise ValueError(
                f"`position_embedding_type` {self.position_embedding_type!r} is unknown; choose one of "
                f"{POSITION_EMBEDDING_TYPES}."
            )
        if self.position_embedding_type == "sinusoidal" and self.d_model % 2:
            raise ValueError(f"sinusoidal position encodings need an even `d_model`, got {self.d_model}.")
        if not self.init_std > 0:
            raise ValueError(f"`init_std` must be positive, got {self.init_std!r}.")
        for name in ("pad_token_id", "bos_token_id", "decoder_start_token_id"):
            token_id = getattr(self, name)
            if token_id is not None and not 0 <= token_id < self.vocab_size:
                raise ValueError(f"`{name}` ({token_id}) must lie in [0, vocab_size={self.vocab_size}).")

    @classmethod
    def from_preset(cls, name: str, **kwargs) -> "HFSeq2SeqConfig":
        """A config of a named shape (a key of PRESETS); keyword arguments override any field."""
        if name not in PRESETS:
            raise ValueError(f"Unknown preset {name!r}; choose one of {sorted(PRESETS)}.")
        return cls(**{**PRESETS[name], **kwargs})


__all__ = ["HFSeq2SeqConfig", "PRESETS"]
