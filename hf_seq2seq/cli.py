"""`hf-seq2seq` (or `python -m hf_seq2seq`): use a trained model without writing Python.

    hf-seq2seq translate --model outputs/en-fr "The cat sleeps." "I saw two birds."
    echo "The cat sleeps." | hf-seq2seq translate --model outputs/en-fr --num_beams 4
    hf-seq2seq evaluate --model outputs/en-fr --test_file ../shared/data/tatoeba-en-fr/dev.tsv
    hf-seq2seq align --model outputs/en-fr "The cat sleeps." --output alignment.png
    hf-seq2seq translate --model outputs/en-fr --quantize int8 ...   # dynamic int8 linear layers, for CPU serving
    hf-seq2seq export-ct2 --model outputs/en-fr --output outputs/en-fr-ct2 [--quantization int8]   # CTranslate2
"""

import argparse
import json
import os
import sys

import torch


def check_model_folder(model_dir: str) -> None:
    if not os.path.isdir(model_dir):
        raise SystemExit(f"error: model folder {model_dir!r} does not exist (train one with `python train.py`).")
    missing = [name for name in ("config.json", "model.safetensors", "tokenizer.json") if not os.path.isfile(os.path.join(model_dir, name))]
    if missing:
        raise SystemExit(f"error: {model_dir!r} is not a complete model folder: {', '.join(missing)} missing.")


def load(model_dir: str, quantize: str | None = None):
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    import hf_seq2seq  # noqa: F401  (registers the model classes)

    check_model_folder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
    if quantize == "int8":
        model = quantize_int8(model)
    return model, tokenizer


def quantize_int8(model):
    """Dynamic int8 quantization of every linear layer (weights int8, activations quantized on the fly), with
    torch's own tools: smaller and faster matrix products on CPU, for inference only."""
    import warnings

    from torch.ao.quantization import quantize_dynamic

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", (DeprecationWarning, UserWarning))  # torch.ao is moving to torchao
        return quantize_dynamic(model, {torch.nn.Linear}, dtype=torch.qint8)


@torch.inference_mode()
def translate(model, tokenizer, texts: list[str], num_beams: int | None = None, max_new_tokens: int | None = None,
              batch_size: int = 32) -> list[str]:
    """Translate in batches of similar length (less padding); empty strings give empty translations. Beam size and
    length default to the model's generation config."""
    order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
    results = [""] * len(texts)
    max_length = model.config.max_position_embeddings
    for start in range(0, len(order), batch_size):
        indices = [i for i in order[start : start + batch_size] if texts[i].strip()]
        if not indices:
            continue
        batch = tokenizer([texts[i] for i in indices], return_tensors="pt", padding=True, truncation=True, max_length=max_length)
        settings = {k: v for k, v in (("num_beams", num_beams), ("max_new_tokens", max_new_tokens)) if v is not None}
        outputs = model.generate(**batch, **settings)
        for i, text in zip(indices, tokenizer.batch_decode(outputs, skip_special_tokens=True)):
            results[i] = text
    return results


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hf-seq2seq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("translate", help="translate text given as arguments, or one sentence a line on stdin")
    p.add_argument("--model", required=True, help="a folder written by train.py (or save_pretrained)")
    p.add_argument("text", nargs="*", help="sentences to translate (default: read stdin)")
    p.add_argument("--num_beams", type=int, default=None, help="default: the model's generation config")
    p.add_argument("--max_new_tokens", type=int, default=None, help="default: the model's generation config")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--quantize", choices=["int8"], default=None, help="dynamic int8 quantization (CPU)")

    p = commands.add_parser("evaluate", help="sacreBLEU and chrF of a model on a test file")
    p.add_argument("--model", required=True)
    p.add_argument("--test_file", required=True, help="any format train.py reads (.tsv, .jsonl, .csv, test.en + test.fr)")
    p.add_argument("--source_lang", default="en")
    p.add_argument("--target_lang", default="fr")
    p.add_argument("--num_beams", type=int, default=None, help="default: the model's generation config")
    p.add_argument("--max_new_tokens", type=int, default=None, help="default: the model's generation config")
    p.add_argument("--batch_size", type=int, default=32)
    p.add_argument("--max_samples", type=int, default=None)
    p.add_argument("--quantize", choices=["int8"], default=None, help="dynamic int8 quantization (CPU)")

    p = commands.add_parser("align", help="draw the cross-attention of a translation as a heatmap PNG")
    p.add_argument("--model", required=True)
    p.add_argument("text", help="the sentence to translate")
    p.add_argument("--output", default="alignment.png")
    p.add_argument("--layer", type=int, default=None, help="decoder layer (default: the average of all)")
    p.add_argument("--head", type=int, default=None, help="attention head (default: the average of all)")
    p.add_argument("--num_beams", type=int, default=4)

    p = commands.add_parser("export-ct2", help="convert the model for CTranslate2 (pip install ctranslate2)")
    p.add_argument("--model", required=True)
    p.add_argument("--output", required=True, help="the CTranslate2 model folder to write")
    p.add_argument("--quantization", default=None, help="int8, int8_float32, int16, float16, ... (default: float32)")
    p.add_argument("--force", action="store_true", help="overwrite the output folder")

    args = parser.parse_args(argv)
    if args.command == "export-ct2":
        check_model_folder(args.model)  # the converter loads the model itself
        from .export_ctranslate2 import export_ctranslate2

        print(export_ctranslate2(args.model, args.output, args.quantization, args.force))
        return
    model, tokenizer = load(args.model, getattr(args, "quantize", None))
    if args.command == "align":
        from .alignment import alignment, plot_alignment

        aligned = alignment(model, tokenizer, args.text, args.layer, args.head, args.num_beams)
        print(plot_alignment(aligned, args.output, title=f"{args.text}\n{aligned.translation}"))
    elif args.command == "translate":
        texts = args.text or [line.rstrip("\n") for line in sys.stdin]
        for line in translate(model, tokenizer, texts, args.num_beams, args.max_new_tokens, args.batch_size):
            print(line)
    else:
        from .data import DataError, load_file
        from .metrics import load_bleu_chrf

        try:
            dataset = load_file(args.test_file, args.source_lang, args.target_lang)
        except DataError as error:
            raise SystemExit(f"error: {error}") from None
        pairs = dataset["translation"][: args.max_samples]
        hypotheses = translate(model, tokenizer, [p[args.source_lang] for p in pairs], args.num_beams, args.max_new_tokens, args.batch_size)
        scores = load_bleu_chrf().compute(predictions=hypotheses, references=[p[args.target_lang] for p in pairs])
        print(json.dumps({k: scores[k] for k in ("bleu", "chrf", "bleu_signature", "chrf_signature")} | {"sentences": len(pairs)}, indent=1))


if __name__ == "__main__":
    main()
