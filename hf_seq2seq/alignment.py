"""Cross-attention as the alignment between source and translation, and its picture.

The paper calls encoder–decoder attention what lets "every position in the decoder attend over all positions in
the input sequence": its weights are a soft alignment. `alignment()` translates a sentence, then runs the model
once more, teacher-forced on its own translation with the eager kernel, to read the cross-attention weights.
"""

import os
from dataclasses import dataclass

import torch

# Plots are written to files; no display is needed.
os.environ.setdefault("MPLBACKEND", "Agg")


@dataclass
class Alignment:
    source_tokens: list[str]
    target_tokens: list[str]
    weights: torch.Tensor  # [target, source]; row i: where the decoder looked when it produced target token i
    translation: str


@torch.inference_mode()
def alignment(model, tokenizer, text: str, layer: int | None = None, head: int | None = None, num_beams: int = 4) -> Alignment:
    """Translate `text` and return its cross-attention alignment.

    `layer`/`head` pick one decoder layer / attention head; None averages over them. Each row sums to 1: how the
    decoder spread its attention over the source when it produced that target token.
    """
    inputs = tokenizer(text, return_tensors="pt").to(model.device)
    generated = model.generate(**inputs, num_beams=num_beams)
    previous = model.config._attn_implementation
    model.set_attn_implementation("eager")  # only the eager kernel materialises the weights
    try:
        outputs = model(**inputs, decoder_input_ids=generated[:, :-1], output_attentions=True)
    finally:
        model.set_attn_implementation(previous)
    # cross_attentions: one [batch, heads, target, source] tensor per decoder layer.
    weights = torch.stack(outputs.cross_attentions)[:, 0]  # [layers, heads, target, source]
    weights = weights[layer] if layer is not None else weights.mean(0)
    weights = weights[head] if head is not None else weights.mean(0)
    return Alignment(
        source_tokens=[_token(tokenizer, t) for t in inputs["input_ids"][0].tolist()],
        target_tokens=[_token(tokenizer, t) for t in generated[0, 1:].tolist()],  # what each step produced
        weights=weights.float().cpu(),
        translation=tokenizer.decode(generated[0], skip_special_tokens=True),
    )


def _token(tokenizer, token_id: int) -> str:
    """A token as readable text: byte-level BPE pieces decoded, a word-initial piece marked with '▁'."""
    token = tokenizer.convert_ids_to_tokens(token_id)
    if token_id in tokenizer.all_special_ids:
        return token
    text = tokenizer.convert_tokens_to_string([token])
    return "▁" + text if token.startswith("Ġ") else text


def plot_alignment(aligned: Alignment, path: str, title: str | None = None) -> str:
    import matplotlib.pyplot as plt

    source, target, weights = aligned.source_tokens, aligned.target_tokens, aligned.weights

    fig, ax = plt.subplots(figsize=(0.5 * len(source) + 2, 0.45 * len(target) + 1.5))
    ax.imshow(weights.numpy(), cmap="Greys", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(source)), source, rotation=60, ha="right")
    ax.set_yticks(range(len(target)), target)
    ax.set_xlabel("source")
    ax.set_ylabel("translation")
    ax.set_title(title or "cross-attention (alignment)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path

