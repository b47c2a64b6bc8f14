"""The encoder–decoder Transformer of "Attention Is All You Need" (Vaswani et al., 2017) as a transformers model.

Read top to bottom: attention (section 3.2), position-wise feed-forward (3.3), embeddings and position
encodings (3.4, 3.5), encoder and decoder layers and stacks (3.1), then the transformers wrappers.

This file travels to the Hub beside the weights (remote code): it imports only torch, transformers and its
sibling `configuration_hf_seq2seq.py`.
"""

import math
from collections.abc import Callable

import torch
from torch import nn
from torch.nn import functional as F
from transformers import initialization as init
from transformers.activations import ACT2FN
from transformers.cache_utils import Cache, DynamicCache, EncoderDecoderCache
from transformers.conversion_mapping import register_checkpoint_conversion_mapping
from transformers.core_model_loading import Concatenate, WeightConverter
from transformers.generation import GenerationMixin, LogitsProcessor, LogitsProcessorList
from transformers.masking_utils import create_bidirectional_mask, create_causal_mask
from transformers.modeling_layers import GradientCheckpointingLayer
from transformers.modeling_outputs import (
    BaseModelOutput,
    BaseModelOutputWithPastAndCrossAttentions,
    Seq2SeqLMOutput,
    Seq2SeqModelOutput,
    Seq2SeqQuestionAnsweringModelOutput,
    Seq2SeqSequenceClassifierOutput,
)
from transformers.modeling_utils import ALL_ATTENTION_FUNCTIONS, PreTrainedModel
from transformers.processing_utils import Unpack
from transformers.utils import TransformersKwargs, can_return_tuple, is_torchdynamo_compiling
from transformers.utils.deprecation import deprecate_kwarg
from transformers.utils.generic import merge_with_config_defaults
from transformers.utils.output_capturing import OutputRecorder, capture_outputs

from .configuration_hf_seq2seq import HFSeq2SeqConfig


def shift_tokens_right(labels: torch.Tensor, pad_token_id: int, decoder_start_token_id: int) -> torch.Tensor:
    """Teacher forcing: the decoder reads `<start> y_1 ... y_{n-1}` and predicts `y_1 ... y_n`."""
    if pad_token_id is None or decoder_start_token_id is None:
        raise ValueError("`config.pad_token_id` and `config.decoder_start_token_id` must be set to build decoder inputs.")
    decoder_input_ids = labels.new_full(labels.shape, pad_token_id)
    decoder_input_ids[:, 1:] = labels[:, :-1]
    decoder_input_ids[:, 0] = decoder_start_token_id
    return decoder_input_ids.masked_fill_(decoder_input_ids == -100, pad_token_id)  # -100 marks ignored labels


def real_tokens(attention_mask: torch.Tensor | None) -> torch.Tensor | None:
    """Flat indices (into batch × length) of the positions that are not padding, or None when there is none (or
    when compiling, where shapes must not depend on data)."""
    if attention_mask is None or attention_mask.dim() != 2 or is_torchdynamo_compiling():
        return None
    tokens = attention_mask.flatten().nonzero().squeeze(1)
    return None if len(tokens) == attention_mask.numel() else tokens


def on_tokens(positionwise: Callable, hidden_states: torch.Tensor, tokens: torch.Tensor | None) -> torch.Tensor:
    """`positionwise(hidden_states)` computed for the real tokens only (`tokens` from `real_tokens`); padding
    positions get zeros.

    A batch of sentences of mixed lengths is often a third to a half padding. Padding is never attended to, so what a
    position-wise layer (the projections, the feed-forward) computes there never reaches a real position: gather the
    real tokens, transform them, scatter them back."""
    if tokens is None:
        return positionwise(hidden_states)
    output = positionwise(hidden_states.flatten(0, -2).index_select(0, tokens))
    scattered = output.new_zeros(hidden_states.shape[:-1].numel(), output.shape[-1]).index_copy(0, tokens, output)
    return scattered.view(*hidden_states.shape[:-1], -1)


# --- 3.2.1 Scaled dot-product attention -------------------------------------------------------------------------


def eager_attention_forward(
    module: nn.Module,
    query: torch.Tensor,
    key: torch.Tensor,
    value: torch.Tensor,
    attention_mask: torch.Tensor | None,
    scaling: float,
    dropout: float = 0.0,
    **kwargs: Unpack[TransformersKwargs],
) -> tuple[torch.Tensor, torch.Tensor]:
    """Attention(Q, K, V) = softmax(Q Kᵀ / √d_k) V, per head.

    `query` is [batch, heads, tgt_len, d_k], `key`/`value` are [batch, heads, src_len, d_k]; `attention_mask` is
    additive (0 where a position may be attended, a large negative number where not), as transformers'
    `masking_utils` builds it for the eager implementation. Returns the output as [batch, tgt_len, heads, d_k]
    (the layout every transformers attention backend returns) and the weights [batch, heads, tgt_len, src_len].
    """
    scores = torch.matmul(query, key.transpose(-2, -1)) * scaling
    if attention_mask is not None:
        scores = scores + attention_mask
    weights = F.softmax(scores, dim=-1, dtype=torch.float32).to(query.dtype)
    weights = F.dropout(weights, p=dropout, training=module.training)
    output = torch.matmul(weights, value)
    return output.transpose(1, 2).contiguous(), weights


# --- 3.2.2 Multi-head attention ---------------------------------------------------------------------------------


class HFSeq2SeqAttention(nn.Module):
    """MultiHead(Q, K, V) = Concat(head_1, ..., head_h) W^O, head_i = Attention(Q W^Q_i, K W^K_i, V W^V_i).

    One module serves the three uses of the paper (3.2.3): encoder self-attention, masked (causal) decoder
    self-attention, and encoder–decoder ("cross") attention, whose weights are the alignment between source and
    target. The backend (`config._attn_implementation`: "eager" above, or "sdpa") computes the same function.
    """

    def __init__(
        self,
        config: HFSeq2SeqConfig,
        num_heads: int,
        is_causal: bool = False,
        is_cross_attention: bool = False,
        layer_idx: int | None = None,
    ):
        super().__init__()
        self.config = config
        self.num_heads = num_heads
        self.head_dim = config.d_model // num_heads  # d_k = d_v = d_model / h
        self.scaling = self.head_dim**-0.5
        self.dropout = config.attention_dropout
        # The sdpa backend reads this flag when no mask is given: encoder and cross-attention must say False.
        self.is_causal = is_causal
        self.layer_idx = layer_idx

        # W^Q, W^K and W^V of all heads, stacked into one matrix where they read the same input: one matrix product
        # instead of three (the projections are unchanged; the rows of qkv_proj are [W^Q; W^K; W^V]).
        # Cross-attention reads queries from the decoder and keys/values from the encoder: W^Q alone, [W^K; W^V].
        if is_cross_attention:
            self.q_proj = nn.Linear(config.d_model, config.d_model)
            self.kv_proj = nn.Linear(config.d_model, 2 * config.d_model)
        else:
            self.qkv_proj = nn.Linear(config.d_model, 3 * config.d_model)
        self.out_proj = nn.Linear(config.d_model, config.d_model)  # W^O
        self.register_load_state_dict_pre_hook(self._stack_saved_projections)

    def _stack_saved_projections(self, module, state_dict, prefix, *args) -> None:
        """Saved weights keep W^Q, W^K and W^V apart (see the conversion mapping at the end of this file), which
        from_pretrained stacks; `load_state_dict` of such weights (Trainer resuming from a checkpoint, or loading its
        best one) stacks them here, so that no projection is left at its random initialisation."""
        stacked, names = ("kv_proj", "kv") if hasattr(self, "kv_proj") else ("qkv_proj", "qkv")
        for kind in ("weight", "bias"):
            parts = [f"{prefix}{name}_proj.{kind}" for name in names]
            if f"{prefix}{stacked}.{kind}" not in state_dict and all(part in state_dict for part in parts):
                state_dict[f"{prefix}{stacked}.{kind}"] = torch.cat([state_dict.pop(part) for part in parts])

    def _split_heads(self, x: torch.Tensor, parts: int = 1) -> tuple[torch.Tensor, ...]:
        """[batch, len, parts * d_model] -> `parts` tensors of [batch, heads, len, d_k]"""
        x = x.view(*x.shape[:-1], parts, self.num_heads, self.head_dim)
        return x.permute(2, 0, 3, 1, 4).unbind(0)

    def forward(
        self,
        hidden_states: torch.Tensor,
        key_value_states: torch.Tensor | None = None,
        attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        tokens: torch.Tensor | None = None,
        source_tokens: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Queries come from `hidden_states`; keys and values from `key_value_states` (cross-attention: the
        encoder output) or from `hidden_states` itself (self-attention). `tokens` / `source_tokens` mark the real
        (non-padding) positions of each, for `on_tokens`."""
        is_cross_attention = key_value_states is not None
        if is_cross_attention:
            (query,) = self._split_heads(on_tokens(self.q_proj, hidden_states, tokens))
        else:
            query, key, value = self._split_heads(on_tokens(self.qkv_proj, hidden_states, tokens), parts=3)

        if cache is not None:
            layer_cache = cache.cross_attention_cache if is_cross_attention else cache.self_attention_cache
        if is_cross_attention and cache is not None and cache.is_updated.get(self.layer_idx):
            # The encoder output does not change while decoding: its keys/values were projected at the first step.
            key, value = layer_cache.layers[self.layer_idx].keys, layer_cache.layers[self.layer_idx].values
        else:
            if is_cross_attention:
                key, value = self._split_heads(on_tokens(self.kv_proj, key_value_states, source_tokens), parts=2)
            if cache is not None:
                # Self-attention: append this step's keys/values and get back all of them so far.
                key, value = layer_cache.update(key, value, self.layer_idx)
                if is_cross_attention:
                    cache.is_updated[self.layer_idx] = True

        attention_interface: Callable = ALL_ATTENTION_FUNCTIONS.get_interface(
            self.config._attn_implementation, eager_attention_forward
        )
        output, weights = attention_interface(
            self,
            query,
            key,
            value,
            attention_mask,
            scaling=self.scaling,
            dropout=self.dropout if self.training else 0.0,
            **kwargs,
        )
        output = on_tokens(self.out_proj, output.reshape(*hidden_states.shape[:-1], -1), tokens)  # Concat(heads) W^O
        return output, weights


# --- 3.3 Position-wise feed-forward -----------------------------------------------------------------------------


class HFSeq2SeqFeedForward(nn.Module):
    """FFN(x) = max(0, x W_1 + b_1) W_2 + b_2, applied to each position separately (ReLU or another activation)."""

    def __init__(self, config: HFSeq2SeqConfig, ffn_dim: int):
        super().__init__()
        self.fc1 = nn.Linear(config.d_model, ffn_dim)  # W_1, b_1
        self.fc2 = nn.Linear(ffn_dim, config.d_model)  # W_2, b_2
        self.activation_fn = ACT2FN[config.activation_function]
        self.activation_dropout = config.activation_dropout

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = self.activation_fn(self.fc1(hidden_states))
        hidden_states = F.dropout(hidden_states, p=self.activation_dropout, training=self.training)
        return self.fc2(hidden_states)


# --- 3.4 Embeddings and 3.5 position encodings ------------------------------------------------------------------


class HFSeq2SeqScaledWordEmbedding(nn.Embedding):
    """Token embeddings, multiplied by √d_model (section 3.4) when `config.scale_embedding`.

    The scale lives inside the module, as in BART: `model(inputs_embeds=model.get_input_embeddings()(ids))` then
    equals `model(input_ids=ids)`, which is what `inputs_embeds` means to every transformers user."""

    def __init__(self, num_embeddings: int, embedding_dim: int, padding_idx: int | None, embed_scale: float = 1.0):
        super().__init__(num_embeddings, embedding_dim, padding_idx)
        self.embed_scale = embed_scale

    def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
        return super().forward(input_ids) * self.embed_scale


def make_token_embeddings(config: HFSeq2SeqConfig) -> HFSeq2SeqScaledWordEmbedding:
    embed_scale = math.sqrt(config.d_model) if config.scale_embedding else 1.0
    return HFSeq2SeqScaledWordEmbedding(config.vocab_size, config.d_model, config.pad_token_id, embed_scale)


class HFSeq2SeqSinusoidalPositionalEncoding(nn.Module):
    """PE(pos, 2i) = sin(pos / 10000^(2i/d_model)), PE(pos, 2i+1) = cos(pos / 10000^(2i/d_model)).

    The table stores the sines in the first half of the dimensions and the cosines in the second (as tensor2tensor,
    fairseq and Marian do): a fixed permutation of the paper's interleaving, so the same function, and a layout
    that other Transformer runtimes read. It is not a parameter and not saved; `_init_weights` rebuilds it.
    It is built in the default dtype, which `from_pretrained(..., dtype=torch.bfloat16)` sets while it builds the
    model: the table has the model's dtype and does not promote half-precision hidden states to float32.
    """

    def __init__(self, num_positions: int, embedding_dim: int):
        super().__init__()
        self.register_buffer("weight", self.create_weight(num_positions, embedding_dim), persistent=False)

    @staticmethod
    def create_weight(num_positions: int, embedding_dim: int) -> torch.Tensor:
        position = torch.arange(num_positions, dtype=torch.float64).unsqueeze(1)
        inv_freq = torch.pow(10000.0, -torch.arange(0, embedding_dim, 2, dtype=torch.float64) / embedding_dim)
        angles = position * inv_freq  # [positions, d_model / 2]
        return torch.cat([torch.sin(angles), torch.cos(angles)], dim=-1).to(torch.get_default_dtype())

    def forward(self, position_ids: torch.Tensor) -> torch.Tensor:
        return self.weight[position_ids]


class HFSeq2SeqLearnedPositionalEmbedding(nn.Embedding):
    """One trained vector per position (the paper's alternative in Table 3, row E); called with position ids."""


def make_position_embeddings(config: HFSeq2SeqConfig) -> nn.Module:
    if config.position_embedding_type == "learned":
        return HFSeq2SeqLearnedPositionalEmbedding(config.max_position_embeddings, config.d_model)
    return HFSeq2SeqSinusoidalPositionalEncoding(config.max_position_embeddings, config.d_model)


def check_length(config: HFSeq2SeqConfig, length: int, what: str) -> None:
    if not is_torchdynamo_compiling() and length > config.max_position_embeddings:
        raise ValueError(
            f"The {what} has {length} positions but the model has position encodings for "
            f"max_position_embeddings={config.max_position_embeddings}. Truncate the input (e.g. the tokenizer's "
            f"`truncation=True, max_length=...`) or limit `max_new_tokens`."
        )


# --- 3.1 Encoder and decoder layers -----------------------------------------------------------------------------
# Every sub-layer is wrapped as residual + dropout, with layer norm before the sub-layer (pre-norm) or after the sum
# (post-norm, the paper).


class HFSeq2SeqLayer(GradientCheckpointingLayer):
    """What encoder and decoder layers share: the residual connection around each of their sub-layers."""

    def __init__(self, config: HFSeq2SeqConfig):
        super().__init__()
        self.normalize_before = config.normalize_before
        self.dropout = config.dropout

    def residual(self, hidden_states: torch.Tensor, layer_norm: nn.LayerNorm, sublayer: Callable) -> torch.Tensor:
        """LayerNorm(x + Dropout(Sublayer(x))) as in the paper (post-norm), or x + Dropout(Sublayer(LayerNorm(x)))
        (pre-norm, `config.normalize_before`)."""
        if self.normalize_before:
            return hidden_states + F.dropout(sublayer(layer_norm(hidden_states)), p=self.dropout, training=self.training)
        return layer_norm(hidden_states + F.dropout(sublayer(hidden_states), p=self.dropout, training=self.training))


class HFSeq2SeqEncoderLayer(HFSeq2SeqLayer):
    """Self-attention, then feed-forward."""

    def __init__(self, config: HFSeq2SeqConfig):
        super().__init__(config)
        self.self_attn = HFSeq2SeqAttention(config, config.encoder_attention_heads)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.ffn = HFSeq2SeqFeedForward(config, config.encoder_ffn_dim)
        self.final_layer_norm = nn.LayerNorm(config.d_model)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        tokens: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        hidden_states = self.residual(
            hidden_states, self.self_attn_layer_norm,
            lambda x: self.self_attn(x, attention_mask=attention_mask, tokens=tokens, **kwargs)[0],
        )
        return self.residual(hidden_states, self.final_layer_norm, lambda x: on_tokens(self.ffn, x, tokens))


class HFSeq2SeqDecoderLayer(HFSeq2SeqLayer):
    """Masked self-attention, then attention over the encoder output, then feed-forward."""

    def __init__(self, config: HFSeq2SeqConfig, layer_idx: int):
        super().__init__(config)
        heads = config.decoder_attention_heads
        self.self_attn = HFSeq2SeqAttention(config, heads, is_causal=True, layer_idx=layer_idx)
        self.self_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.encoder_attn = HFSeq2SeqAttention(config, heads, is_cross_attention=True, layer_idx=layer_idx)
        self.encoder_attn_layer_norm = nn.LayerNorm(config.d_model)
        self.ffn = HFSeq2SeqFeedForward(config, config.decoder_ffn_dim)
        self.final_layer_norm = nn.LayerNorm(config.d_model)

    def forward(
        self,
        hidden_states: torch.Tensor,
        attention_mask: torch.Tensor | None,
        encoder_hidden_states: torch.Tensor,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        tokens: torch.Tensor | None = None,
        source_tokens: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> torch.Tensor:
        hidden_states = self.residual(
            hidden_states, self.self_attn_layer_norm,
            lambda x: self.self_attn(x, attention_mask=attention_mask, cache=cache, tokens=tokens, **kwargs)[0],
        )
        hidden_states = self.residual(
            hidden_states, self.encoder_attn_layer_norm,
            lambda x: self.encoder_attn(
                x, key_value_states=encoder_hidden_states, attention_mask=encoder_attention_mask, cache=cache,
                tokens=tokens, source_tokens=source_tokens, **kwargs,
            )[0],
        )
        return self.residual(hidden_states, self.final_layer_norm, lambda x: on_tokens(self.ffn, x, tokens))


# --- transformers wrappers --------------------------------------------------------------------------------------


class HFSeq2SeqBeamSearchCache(EncoderDecoderCache):
    """The cache generate() decodes with. Beam search reorders the cache at every step, but the cross-attention
    keys/values of all beams of a sentence are the same (one encoder output, repeated once per beam), so reordering
    them copies identical tensors onto each other: only the self-attention cache is reordered."""

    def reorder_cache(self, beam_idx: torch.LongTensor):
        self.self_attention_cache.reorder_cache(beam_idx)


class SourceLengthBound(LogitsProcessor):
    """fairseq's length bound: a sentence generates at most `max_len_a * source_length + max_len_b` tokens, its final
    `</s>` included; at that length `</s>` is the only choice. A confused model then stops after a few words more
    than its source instead of repeating itself until `max_length`. `limits` holds one bound per source sentence;
    rows of the search (beams, returned sequences) follow their sentence."""

    def __init__(self, limits: torch.Tensor, eos_token_id: int):
        self.limits, self.eos_token_id, self.start = limits, eos_token_id, None

    def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
        if self.start is None:  # the decoder prompt (the start token) is not generated
            self.start = input_ids.shape[1]
            self.limits = self.limits.to(scores.device).repeat_interleave(input_ids.shape[0] // len(self.limits))
        last = (input_ids.shape[1] - self.start + 1) >= self.limits  # the token chosen now is the last one allowed
        rows = last.nonzero().squeeze(1)
        if len(rows) == 0:  # most steps: no row is at its bound, and a full-size copy of the scores is what costs
            return scores
        scores = scores.clone()  # the caller's scores stay as they were (transformers' processors do not write in place)
        eos_scores = scores[rows, self.eos_token_id]
        scores[rows] = float("-inf")
        scores[rows, self.eos_token_id] = eos_scores
        return scores


class HFSeq2SeqPreTrainedModel(PreTrainedModel):
    config_class = HFSeq2SeqConfig
    config: HFSeq2SeqConfig
    base_model_prefix = "model"
    supports_gradient_checkpointing = True
    _supports_sdpa = True
    # generate(cache_implementation="static") + torch.compile gives the same tokens as the dynamic cache (tested).
    _can_compile_fullgraph = True
    _no_split_modules = ["HFSeq2SeqEncoderLayer", "HFSeq2SeqDecoderLayer"]
    # FSDP2 (`DistributedConfig(fsdp_size=N)`): a shard group per encoder and decoder layer (both models of this class).
    _fsdp_plan = {"layers.*": "free_full_weight"}

    def _init_weights(self, module: nn.Module):
        std = self.config.init_std
        if isinstance(module, nn.Linear):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.bias is not None:
                init.zeros_(module.bias)
        elif isinstance(module, nn.Embedding):
            init.normal_(module.weight, mean=0.0, std=std)
            if module.padding_idx is not None and not getattr(module.weight, "_is_hf_initialized", False):
                init.zeros_(module.weight[module.padding_idx])
        elif isinstance(module, nn.LayerNorm):
            init.ones_(module.weight)
            init.zeros_(module.bias)
        elif isinstance(module, HFSeq2SeqSinusoidalPositionalEncoding):
            # A non-persistent buffer is not in the checkpoint: rebuild it, or it is left uninitialised after loading.
            init.copy_(module.weight, module.create_weight(*module.weight.shape))


class HFSeq2SeqEncoder(HFSeq2SeqPreTrainedModel):
    """A stack of `config.encoder_layers` [`HFSeq2SeqEncoderLayer`] over embedded source tokens."""

    _can_record_outputs = {"hidden_states": HFSeq2SeqEncoderLayer, "attentions": HFSeq2SeqAttention}

    def __init__(self, config: HFSeq2SeqConfig):
        super().__init__(config)
        self.embed_tokens = make_token_embeddings(config)
        self.embed_positions = make_position_embeddings(config)
        self.layers = nn.ModuleList([HFSeq2SeqEncoderLayer(config) for _ in range(config.encoder_layers)])
        # Pre-norm leaves the residual stream un-normalised: one more layer norm ends the stack.
        self.layer_norm = nn.LayerNorm(config.d_model) if config.normalize_before else None
        self.gradient_checkpointing = False
        self.post_init()

    @merge_with_config_defaults
    @capture_outputs
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutput:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Give exactly one of `input_ids` or `inputs_embeds`.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        seq_length = inputs_embeds.shape[1]
        check_length(self.config, seq_length, "source sequence")
        positions = self.embed_positions(torch.arange(seq_length, device=inputs_embeds.device))
        hidden_states = F.dropout(inputs_embeds + positions, p=self.config.dropout, training=self.training)

        tokens = real_tokens(attention_mask)
        attention_mask = create_bidirectional_mask(
            config=self.config, inputs_embeds=inputs_embeds, attention_mask=attention_mask
        )
        for layer in self.layers:
            hidden_states = layer(hidden_states, attention_mask, tokens=tokens, **kwargs)
        if self.layer_norm is not None:
            hidden_states = self.layer_norm(hidden_states)
        return BaseModelOutput(last_hidden_state=hidden_states)


class HFSeq2SeqDecoder(HFSeq2SeqPreTrainedModel):
    """A stack of `config.decoder_layers` [`HFSeq2SeqDecoderLayer`] over embedded target tokens."""

    _can_record_outputs = {
        "hidden_states": HFSeq2SeqDecoderLayer,
        "attentions": OutputRecorder(HFSeq2SeqAttention, index=1, layer_name="self_attn"),
        "cross_attentions": OutputRecorder(HFSeq2SeqAttention, index=1, layer_name="encoder_attn"),
    }

    def __init__(self, config: HFSeq2SeqConfig):
        super().__init__(config)
        self.embed_tokens = make_token_embeddings(config)
        self.embed_positions = make_position_embeddings(config)
        self.layers = nn.ModuleList([HFSeq2SeqDecoderLayer(config, i) for i in range(config.decoder_layers)])
        self.layer_norm = nn.LayerNorm(config.d_model) if config.normalize_before else None
        self.gradient_checkpointing = False
        self.post_init()

    @merge_with_config_defaults
    @capture_outputs
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        encoder_hidden_states: torch.Tensor | None = None,
        encoder_attention_mask: torch.Tensor | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> BaseModelOutputWithPastAndCrossAttentions:
        if (input_ids is None) == (inputs_embeds is None):
            raise ValueError("Give exactly one of `decoder_input_ids` or `decoder_inputs_embeds`.")
        if inputs_embeds is None:
            inputs_embeds = self.embed_tokens(input_ids)
        if use_cache and cache is None:
            cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))

        batch_size, seq_length = inputs_embeds.shape[:2]
        # With a cache, this call continues a sequence: its tokens sit after the ones already decoded.
        past_length = cache.get_seq_length() if cache is not None else 0
        check_length(self.config, past_length + seq_length, "target sequence")
        position_ids = torch.arange(seq_length, device=inputs_embeds.device) + past_length
        hidden_states = inputs_embeds + self.embed_positions(position_ids)
        hidden_states = F.dropout(hidden_states, p=self.config.dropout, training=self.training)

        # Without a cache, a decoder padding mask marks positions to leave out of the position-wise layers.
        tokens = real_tokens(attention_mask) if cache is None else None
        source_tokens = real_tokens(encoder_attention_mask) if cache is None or not cache.is_updated.get(0) else None
        if attention_mask is None and not is_torchdynamo_compiling():
            attention_mask = torch.ones(batch_size, past_length + seq_length, device=inputs_embeds.device)
        causal_mask = create_causal_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=attention_mask,
            cache=cache.self_attention_cache if cache is not None else None,
        )
        encoder_attention_mask = create_bidirectional_mask(
            config=self.config,
            inputs_embeds=inputs_embeds,
            attention_mask=encoder_attention_mask,
            encoder_hidden_states=encoder_hidden_states,
        )
        for layer in self.layers:
            hidden_states = layer(
                hidden_states,
                causal_mask,
                encoder_hidden_states,  # positional, for gradient checkpointing
                encoder_attention_mask=encoder_attention_mask,
                cache=cache,
                tokens=tokens,
                source_tokens=source_tokens,
                **kwargs,
            )
        if self.layer_norm is not None:
            hidden_states = self.layer_norm(hidden_states)
        return BaseModelOutputWithPastAndCrossAttentions(last_hidden_state=hidden_states, cache=cache)


class HFSeq2SeqModel(HFSeq2SeqPreTrainedModel):
    """Encoder and decoder, without the output projection."""

    def __init__(self, config: HFSeq2SeqConfig):
        super().__init__(config)
        if config.share_encoder_decoder_embeddings:
            # One matrix for source and target tokens (the paper, section 3.4). The encoder's and decoder's tables
            # are tied to it parameter by parameter, as in BART (declared here, tied by transformers), so that a
            # checkpoint without `shared.weight` is reported as missing it.
            self.shared = make_token_embeddings(config)
            self._tied_weights_keys = {
                "encoder.embed_tokens.weight": "shared.weight",
                "decoder.embed_tokens.weight": "shared.weight",
            }
        self.encoder = HFSeq2SeqEncoder(config)
        self.decoder = HFSeq2SeqDecoder(config)
        self.post_init()

    def get_expanded_tied_weights_keys(self, all_submodels: bool = False) -> dict:
        # transformers ties weights only when `config.tie_word_embeddings` (the output projection); one table for
        # source and target tokens is `share_encoder_decoder_embeddings`, a switch of its own.
        if all_submodels:
            return super().get_expanded_tied_weights_keys(all_submodels=True)
        return dict(self._tied_weights_keys or {})

    def get_input_embeddings(self) -> HFSeq2SeqScaledWordEmbedding:
        return self.shared if self.config.share_encoder_decoder_embeddings else self.encoder.embed_tokens

    def set_input_embeddings(self, value: HFSeq2SeqScaledWordEmbedding):
        if self.config.share_encoder_decoder_embeddings:
            self.shared = self.encoder.embed_tokens = self.decoder.embed_tokens = value
        else:
            self.encoder.embed_tokens = value

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: tuple[torch.Tensor] | BaseModelOutput | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqModelOutput:
        if encoder_outputs is None:
            encoder_outputs = self.encoder(
                input_ids=input_ids, attention_mask=attention_mask, inputs_embeds=inputs_embeds, **kwargs
            )
        elif not isinstance(encoder_outputs, BaseModelOutput):
            encoder_outputs = BaseModelOutput(*encoder_outputs)

        decoder_outputs = self.decoder(
            input_ids=decoder_input_ids,
            attention_mask=decoder_attention_mask,
            encoder_hidden_states=encoder_outputs.last_hidden_state,
            encoder_attention_mask=attention_mask,
            cache=cache,
            inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        return Seq2SeqModelOutput(
            last_hidden_state=decoder_outputs.last_hidden_state,
            cache=decoder_outputs.cache,
            decoder_hidden_states=decoder_outputs.hidden_states,
            decoder_attentions=decoder_outputs.attentions,
            cross_attentions=decoder_outputs.cross_attentions,
            encoder_last_hidden_state=encoder_outputs.last_hidden_state,
            encoder_hidden_states=encoder_outputs.hidden_states,
            encoder_attentions=encoder_outputs.attentions,
        )


class HFSeq2SeqForConditionalGeneration(HFSeq2SeqPreTrainedModel, GenerationMixin):
    """The encoder–decoder with its output projection: p(y_t | y_<t, x) = softmax(h_t W_emb^T)."""

    def __init__(self, config: HFSeq2SeqConfig):
        super().__init__(config)
        self.model = HFSeq2SeqModel(config)
        self.lm_head = nn.Linear(config.d_model, config.vocab_size, bias=False)
        # The paper shares the output projection with the target embedding (section 3.4).
        source = "model.shared.weight" if config.share_encoder_decoder_embeddings else "model.decoder.embed_tokens.weight"
        self._tied_weights_keys = {"lm_head.weight": source}
        self.post_init()

    def get_output_embeddings(self) -> nn.Linear:
        return self.lm_head

    def set_output_embeddings(self, new_embeddings: nn.Linear):
        self.lm_head = new_embeddings

    def generate(self, inputs=None, generation_config=None, logits_processor=None, **kwargs):
        """`GenerationMixin.generate`, plus fairseq's source-length bound when the generation config (or the call)
        sets `max_len_a` and `max_len_b`: each sentence stops at `max_len_a * source_tokens + max_len_b` new tokens
        (see `SourceLengthBound`)."""
        config = generation_config if generation_config is not None else self.generation_config
        max_len_a = kwargs.pop("max_len_a", getattr(config, "max_len_a", None))
        max_len_b = kwargs.pop("max_len_b", getattr(config, "max_len_b", None))
        source = inputs if inputs is not None else kwargs.get("input_ids")
        if max_len_a is not None and max_len_b is not None and source is not None and source.dim() == 2:
            mask = kwargs.get("attention_mask")
            lengths = mask.sum(1) if mask is not None else torch.full((source.shape[0],), source.shape[1])
            limits = (max_len_a * lengths + max_len_b).long().clamp(min=1)
            eos = config.eos_token_id if config.eos_token_id is not None else self.config.eos_token_id
            eos = eos[0] if isinstance(eos, list) else eos
            logits_processor = LogitsProcessorList([*(logits_processor or []), SourceLengthBound(limits, eos)])
        return super().generate(inputs, generation_config, logits_processor=logits_processor, **kwargs)

    def _prepare_cache_for_generation(self, generation_config, model_kwargs: dict, *args, **kwargs):
        """generate() builds its cache here: the same one, as an HFSeq2SeqBeamSearchCache. A cache the caller
        passed is used as it is."""
        user_cache = model_kwargs.get("cache")
        super()._prepare_cache_for_generation(generation_config, model_kwargs, *args, **kwargs)
        cache = model_kwargs.get("cache")
        if user_cache is None and type(cache) is EncoderDecoderCache:
            model_kwargs["cache"] = HFSeq2SeqBeamSearchCache(cache.self_attention_cache, cache.cross_attention_cache)

    def _token_loss(self, logits: torch.Tensor, labels: torch.Tensor, num_items_in_batch) -> torch.Tensor:
        """Cross-entropy with label smoothing ε (the paper, section 5.4): the target distribution puts 1 - ε on the
        reference token and spreads ε uniformly over the vocabulary. Summed over tokens, divided by the number of
        target tokens of the whole (accumulated) batch, which Trainer passes: so gradient accumulation and several
        processes average per token."""
        token_losses = F.cross_entropy(
            logits.float(), labels.to(logits.device), ignore_index=-100, reduction="sum",
            label_smoothing=self.config.label_smoothing,
        )
        if num_items_in_batch is None:
            num_items_in_batch = (labels != -100).sum()
        return token_losses / num_items_in_batch

    def prepare_decoder_input_ids_from_labels(self, labels: torch.Tensor) -> torch.Tensor:
        # Used by DataCollatorForSeq2Seq: decoder inputs built in the collator, for trainers that pop `labels`
        # before the forward (Trainer's own label smoother does).
        return shift_tokens_right(labels, self.config.pad_token_id, self.config.decoder_start_token_id)

    @can_return_tuple
    @deprecate_kwarg("past_key_values", "5.40.0", new_name="cache")
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: tuple[torch.Tensor] | BaseModelOutput | None = None,
        cache: Cache | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        labels: torch.LongTensor | None = None,
        use_cache: bool | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqLMOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size, target_length)`, *optional*):
            Target token ids for the cross-entropy loss (label-smoothed by `config.label_smoothing`); -100 marks
            positions to ignore. When no decoder inputs are given they are the labels shifted right behind
            `decoder_start_token_id`. In training mode the loss is computed on the labelled positions only and
            `logits` is None; in eval mode, or without labels, `logits` covers every position.
        """
        # Trainer passes the number of target tokens of the whole (accumulated) batch: the loss is then a sum over
        # this batch divided by it, so gradient accumulation and several processes average per token.
        num_items_in_batch = kwargs.pop("num_items_in_batch", None)
        if labels is not None:
            use_cache = False
            if decoder_input_ids is None and decoder_inputs_embeds is None:
                decoder_input_ids = shift_tokens_right(
                    labels, self.config.pad_token_id, self.config.decoder_start_token_id
                )
            if decoder_attention_mask is None and self.training:
                # The positions after a sentence's last label are padding that no real position attends to (the
                # decoder is causal): masking them lets the position-wise layers skip them.
                labelled = (labels != -100).int()
                lengths = labels.shape[1] - labelled.flip(1).argmax(1)
                decoder_attention_mask = torch.arange(labels.shape[1], device=labels.device) < lengths[:, None]

        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            cache=cache,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=use_cache,
            **kwargs,
        )
        hidden_states = outputs.last_hidden_state
        loss = logits = None
        if labels is not None and self.training:
            # Training needs only the loss, and the output projection with its softmax over the vocabulary is the
            # largest product of a small model: run it on the labelled positions only, not on the padding (often
            # a third to a half of a batch of mixed lengths). `logits` stays None here.
            labelled = labels != -100
            loss = self._token_loss(self.lm_head(hidden_states[labelled]), labels[labelled], num_items_in_batch)
        else:
            logits = self.lm_head(hidden_states)
            if labels is not None:
                loss = self._token_loss(logits.flatten(0, 1), labels.flatten(), num_items_in_batch)

        return Seq2SeqLMOutput(
            loss=loss,
            logits=logits,
            cache=outputs.cache,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )


class HFSeq2SeqClassificationHead(nn.Module):
    """A sentence representation -> class scores: dropout, dense + tanh, dropout, projection (BART's head)."""

    def __init__(self, config: HFSeq2SeqConfig):
        super().__init__()
        self.dense = nn.Linear(config.d_model, config.d_model)
        self.dropout = config.classifier_dropout
        self.out_proj = nn.Linear(config.d_model, config.num_labels)

    def forward(self, hidden_states: torch.Tensor) -> torch.Tensor:
        hidden_states = F.dropout(hidden_states, p=self.dropout, training=self.training)
        hidden_states = torch.tanh(self.dense(hidden_states))
        hidden_states = F.dropout(hidden_states, p=self.dropout, training=self.training)
        return self.out_proj(hidden_states)


class HFSeq2SeqForSequenceClassification(HFSeq2SeqPreTrainedModel):
    """Sentence in, label out, as BART does it: the encoder reads the sentence, the decoder reads it again (shifted
    right behind `<s>`), and the decoder state at the sentence's final `</s>`, which has seen every token of both,
    goes through a small classification head. `config.problem_type` follows transformers: cross-entropy for
    single-label classification, mean squared error for regression (`num_labels=1`), binary cross-entropy for
    multi-label classification."""

    def __init__(self, config: HFSeq2SeqConfig):
        super().__init__(config)
        self.model = HFSeq2SeqModel(config)
        self.classification_head = HFSeq2SeqClassificationHead(config)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: tuple[torch.Tensor] | BaseModelOutput | None = None,
        labels: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqSequenceClassifierOutput:
        r"""
        labels (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            Class indices in `[0, num_labels)` (or floats for regression / multi-label classification).
        """
        if input_ids is None:
            raise ValueError("HFSeq2SeqForSequenceClassification reads `input_ids`: it finds each sentence's end by "
                             "its `</s>` token, so `inputs_embeds` alone cannot be classified.")
        eos = input_ids == self.config.eos_token_id
        if not is_torchdynamo_compiling() and not eos.any(dim=1).all():
            raise ValueError(f"Every input must end with `</s>` (id {self.config.eos_token_id}); the tokenizer adds it.")
        if decoder_input_ids is None:
            decoder_input_ids = shift_tokens_right(input_ids, self.config.pad_token_id, self.config.decoder_start_token_id)
            decoder_attention_mask = attention_mask  # the same real positions, shifted by one behind <s>
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            use_cache=False,
            **kwargs,
        )
        # The last </s> of each row (padding comes after it).
        positions = torch.arange(input_ids.shape[1], device=input_ids.device)
        last_eos = (eos * (positions + 1)).argmax(dim=1)
        sentence = outputs.last_hidden_state[torch.arange(input_ids.shape[0], device=input_ids.device), last_eos]
        logits = self.classification_head(sentence)

        loss = None
        if labels is not None:
            labels = labels.to(logits.device)
            if self.config.problem_type is None:
                if self.config.num_labels == 1:
                    self.config.problem_type = "regression"
                elif labels.dtype in (torch.long, torch.int):
                    self.config.problem_type = "single_label_classification"
                else:
                    self.config.problem_type = "multi_label_classification"
            if self.config.problem_type == "regression":
                loss = F.mse_loss(logits.squeeze(-1), labels.float()) if self.config.num_labels == 1 else F.mse_loss(logits, labels)
            elif self.config.problem_type == "single_label_classification":
                loss = F.cross_entropy(logits.view(-1, self.config.num_labels), labels.view(-1))
            else:
                loss = F.binary_cross_entropy_with_logits(logits, labels.to(logits.dtype))

        return Seq2SeqSequenceClassifierOutput(
            loss=loss,
            logits=logits,
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )


class HFSeq2SeqForQuestionAnswering(HFSeq2SeqPreTrainedModel):
    """Extractive question answering, as BART does it: the encoder reads question and context, the decoder reads them
    again (shifted right behind `<s>`), and one linear layer scores every position as the answer's start and as its
    end. Every context token gets a gradient, where a generated answer supervises a handful of tokens. The loss is
    the mean of the start and end cross-entropies; positions outside the input are ignored (`run_qa.py` labels a
    window without the answer with the position of its first token)."""

    def __init__(self, config: HFSeq2SeqConfig):
        config.num_labels = 2
        super().__init__(config)
        self.model = HFSeq2SeqModel(config)
        self.qa_outputs = nn.Linear(config.d_model, 2)
        self.post_init()

    @can_return_tuple
    def forward(
        self,
        input_ids: torch.LongTensor | None = None,
        attention_mask: torch.Tensor | None = None,
        decoder_input_ids: torch.LongTensor | None = None,
        decoder_attention_mask: torch.Tensor | None = None,
        encoder_outputs: tuple[torch.Tensor] | BaseModelOutput | None = None,
        start_positions: torch.LongTensor | None = None,
        end_positions: torch.LongTensor | None = None,
        inputs_embeds: torch.Tensor | None = None,
        decoder_inputs_embeds: torch.Tensor | None = None,
        **kwargs: Unpack[TransformersKwargs],
    ) -> Seq2SeqQuestionAnsweringModelOutput:
        r"""
        start_positions, end_positions (`torch.LongTensor` of shape `(batch_size,)`, *optional*):
            The answer's first and last token in the input, for the loss.
        """
        if decoder_input_ids is None and decoder_inputs_embeds is None:
            if input_ids is None:
                raise ValueError("Pass `input_ids` (the decoder reads them shifted right) or `decoder_inputs_embeds`.")
            decoder_input_ids = shift_tokens_right(input_ids, self.config.pad_token_id, self.config.decoder_start_token_id)
            decoder_attention_mask = attention_mask  # the same real positions, shifted by one behind <s>
        outputs = self.model(
            input_ids,
            attention_mask=attention_mask,
            decoder_input_ids=decoder_input_ids,
            decoder_attention_mask=decoder_attention_mask,
            encoder_outputs=encoder_outputs,
            inputs_embeds=inputs_embeds,
            decoder_inputs_embeds=decoder_inputs_embeds,
            use_cache=False,
            **kwargs,
        )
        start_logits, end_logits = self.qa_outputs(outputs.last_hidden_state).unbind(dim=-1)

        loss = None
        if start_positions is not None and end_positions is not None:
            # A position past the input (an answer cut off by truncation) is ignored, as in BART.
            ignored = start_logits.shape[1]
            start_positions = start_positions.view(-1).clamp(0, ignored).to(start_logits.device)
            end_positions = end_positions.view(-1).clamp(0, ignored).to(end_logits.device)
            loss = (F.cross_entropy(start_logits, start_positions, ignore_index=ignored)
                    + F.cross_entropy(end_logits, end_positions, ignore_index=ignored)) / 2

        return Seq2SeqQuestionAnsweringModelOutput(
            loss=loss,
            start_logits=start_logits.contiguous(),
            end_logits=end_logits.contiguous(),
            decoder_hidden_states=outputs.decoder_hidden_states,
            decoder_attentions=outputs.decoder_attentions,
            cross_attentions=outputs.cross_attentions,
            encoder_last_hidden_state=outputs.encoder_last_hidden_state,
            encoder_hidden_states=outputs.encoder_hidden_states,
            encoder_attentions=outputs.encoder_attentions,
        )


# On disk W^Q, W^K and W^V stay separate (q_proj, k_proj, v_proj: the layout of Marian and BART checkpoints and of
# this package's first releases): from_pretrained stacks them on load and save_pretrained splits them again.
register_checkpoint_conversion_mapping(
    HFSeq2SeqConfig.model_type,
    [
        WeightConverter(
            source_patterns=[f"self_attn.{name}_proj.{kind}" for name in "qkv"],
            target_patterns=f"self_attn.qkv_proj.{kind}",
            operations=[Concatenate(dim=0)],
        )
        for kind in ("weight", "bias")
    ]
    + [
        WeightConverter(
            source_patterns=[f"encoder_attn.{name}_proj.{kind}" for name in "kv"],
            target_patterns=f"encoder_attn.kv_proj.{kind}",
            operations=[Concatenate(dim=0)],
        )
        for kind in ("weight", "bias")
    ],
    overwrite=True,
)

__all__ = [
    "HFSeq2SeqPreTrainedModel",
    "HFSeq2SeqModel",
    "HFSeq2SeqForConditionalGeneration",
    "HFSeq2SeqForSequenceClassification",
    "HFSeq2SeqForQuestionAnswering",
]
