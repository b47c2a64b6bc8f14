"""HFSeq2SeqConfig: the presets, and clear errors for values that cannot make a model."""

import pytest

from hf_seq2seq import HFSeq2SeqConfig


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
