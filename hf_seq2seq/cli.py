"""`hf-seq2seq` (or `python -m hf_seq2seq`): use a trained model without writing Python.

    hf-seq2seq translate --model outputs/en-fr "The cat sleeps." "I saw two birds."
    echo "The cat sleeps." | hf-seq2seq translate --model outputs/en-fr --num_beams 4
    hf-seq2seq summarize --model outputs/dialogsum "#Person1#: Shall we go out tonight? ..."
    hf-seq2seq answer --model outputs/squad --question "Where is the cat?" --context "The cat sleeps on the mat."
    hf-seq2seq classify --model outputs/sst2 "A gripping, beautifully acted film."
    hf-seq2seq fill-mask --model outputs/pretrained "The old man <mask> the letter."   # a denoiser restores text
    hf-seq2seq evaluate --model outputs/en-fr --test_file ../shared/data/tatoeba-en-fr/dev.tsv
    hf-seq2seq evaluate --model outputs/dialogsum --test_file ../shared/data/dialogsum/dev.jsonl
    hf-seq2seq align --model outputs/en-fr "The cat sleeps." --output alignment.png
    hf-seq2seq translate --model outputs/en-fr --quantize int8 ...   # dynamic int8 linear layers, for CPU serving
    hf-seq2seq translate --model outputs/en-fr --engine ctranslate2 ...   # CTranslate2, export cached beside the model
    hf-seq2seq translate --model outputs/en-fr --engine onnxruntime [--quantize int8] ...   # ONNX Runtime, likewise
    hf-seq2seq average --run outputs/tatoeba --last 5 --output outputs/tatoeba-avg5   # the mean of the last checkpoints
    hf-seq2seq export-ct2 --model outputs/en-fr --output outputs/en-fr-ct2 [--quantization int8]   # CTranslate2
    hf-seq2seq export-onnx --model outputs/en-fr --output outputs/en-fr-onnx [--quantize int8]   # ONNX (optimum layout)
    hf-seq2seq export-onnx --model outputs/en-fr --output outputs/en-fr-web --for-web   # for transformers.js
    hf-seq2seq train-vectors --text corpus.txt --output vectors.txt --size 256 [--tokenizer outputs/en-fr]
"""

import argparse
import json
import os
import sys

import torch

from .inference import classify, generate_texts


def check_model_folder(model_dir: str) -> None:
    if not os.path.isdir(model_dir):
        raise SystemExit(f"error: model folder {model_dir!r} does not exist (train one with `python train.py`).")
    missing = [name for name in ("config.json", "model.safetensors", "tokenizer.json") if not os.path.isfile(os.path.join(model_dir, name))]
    if missing:
        raise SystemExit(f"error: {model_dir!r} is not a complete model folder: {', '.join(missing)} missing.")


def model_task(model_dir: str) -> str:
    """The name of the task a saved model was trained for (tasks.saved_model_task reads it from its config)."""
    from .tasks import saved_model_task

    with open(os.path.join(model_dir, "config.json")) as f:
        return saved_model_task(json.load(f))


def load(model_dir: str, quantize: str | None = None, engine: str = "transformers"):
    """The model in `model_dir` and its tokenizer. `engine="onnxruntime"` gives the model run by ONNX Runtime from an
    export cached beside it (int8 with `quantize="int8"`), with the same generate() and forward."""
    import transformers
    from transformers import AutoConfig, AutoTokenizer

    import hf_seq2seq

    check_model_folder(model_dir)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    if engine == "onnxruntime":
        try:
            from .export_onnx import ExportError, onnxruntime_model

            return onnxruntime_model(model_dir, quantized=quantize == "int8"), tokenizer
        except (ImportError, ExportError) as error:
            raise SystemExit(f"error: {error}") from None
    # The class the model was saved from (config `architectures`, as transformers' pipeline() reads it): a classifier
    # comes back with its head, a translator with its generation head, a Marian model as itself.
    architecture = AutoConfig.from_pretrained(model_dir).architectures[0]
    model_class = getattr(hf_seq2seq, architecture, None) or getattr(transformers, architecture)
    model = model_class.from_pretrained(model_dir).eval()
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


def translate(model, tokenizer, texts: list[str], num_beams: int | None = None, max_new_tokens: int | None = None,
              batch_size: int = 32) -> list[str]:
    return generate_texts(model, tokenizer, texts, num_beams, max_new_tokens, batch_size)


def sources_for(task: str, model, inputs: list) -> list[str]:
    """Inputs as the model's pipeline formats them (summarisation prefix, `question: ... context: ...`)."""
    from .hub import PIPELINES

    pipeline = PIPELINES[task].__new__(PIPELINES[task])  # only its formatting rule is needed
    pipeline.model = model
    return [pipeline.source_text(x) for x in inputs]


def evaluate_model(model, tokenizer, task_name: str, args) -> dict:
    """Score a model on a test file of any format train.py reads for the task."""
    from .data import DataArguments
    from .tasks import get_task

    task = get_task(task_name)
    columns = {k: getattr(args, k) for k in ("text_column", "summary_column", "question_column", "context_column",
                                             "answer_column", "label_column")}
    data_args = DataArguments(task=task_name, test_file=args.test_file, source_lang=args.source_lang,
                              target_lang=args.target_lang, max_predict_samples=args.max_samples, **columns)
    task.apply_defaults(data_args)
    return task.evaluate(model, tokenizer, data_args, args.batch_size, num_beams=args.num_beams,
                         max_new_tokens=args.max_new_tokens)


def utf8_lines(lines, source: str):
    """Decode `lines` (bytes, as a binary file or `sys.stdin.buffer` gives them) as UTF-8, one at a time, without
    their line ends, so that bytes that are not UTF-8 stop the command with a one-line error naming `source` and the
    line, instead of a stack trace or text silently changed. Lines already decoded (a text stream) pass through."""
    for number, line in enumerate(lines, start=1):
        if isinstance(line, bytes):
            try:
                line = line.decode("utf-8")
            except UnicodeDecodeError as error:
                raise SystemExit(not_utf8(f"{source}, line {number}", line, error.start)) from None
        yield line.removesuffix("\n").removesuffix("\r")


def not_utf8(where: str, line: bytes, start: int) -> str:
    return (f"error: {where} is not UTF-8 text (byte 0x{line[start]:02x} at position {start + 1}); "
            "convert it, e.g. with iconv -t utf-8")


def utf8_arguments(texts: list[str], name: str = "text") -> list[str]:
    """Command-line texts, checked: on POSIX, Python keeps bytes that are not UTF-8 as lone surrogates, which the
    tokenizer refuses with a stack trace."""
    for number, text in enumerate(texts, start=1):
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as error:
            raw = text.encode("utf-8", "surrogateescape")
            start = len(text[: error.start].encode("utf-8", "surrogateescape"))
            raise SystemExit(not_utf8(f"command-line {name} {number}", raw, start)) from None
    return texts


def read_text_file(path: str) -> list[str]:
    """The lines of a UTF-8 text file (gzip-compressed if its name ends in .gz), checked as `utf8_lines` checks them."""
    import gzip

    try:
        with (gzip.open if path.endswith(".gz") else open)(path, "rb") as f:
            return list(utf8_lines(f, repr(path)))
    except OSError as error:
        raise SystemExit(f"error: cannot read {path!r} ({error.strerror or error}).") from None


def check_text_file(path: str, gzipped: bool = True) -> None:
    """`read_text_file`'s check of a file that other code reads later, streamed (not held in memory). `gzipped`:
    whether that code decompresses a name ending in .gz."""
    import gzip

    if os.path.isfile(path):  # a missing file is the reader's own error
        with (gzip.open if gzipped and path.endswith(".gz") else open)(path, "rb") as f:
            for _ in utf8_lines(f, repr(path)):
                pass


def read_inputs(texts: list[str]) -> list[str]:
    """The texts given as arguments, or else the lines of standard input."""
    if texts:
        return utf8_arguments(texts)
    return list(utf8_lines(getattr(sys.stdin, "buffer", sys.stdin), "standard input"))


def read_command_inputs(args) -> None:
    """Read or check every text a command takes (arguments, standard input, files) before any model is loaded, so
    that text that is not UTF-8 is a one-line error at once. Texts read here replace `args.text`/`args.context`."""
    if hasattr(args, "model"):
        check_model_folder(args.model)  # before waiting on standard input
    if args.command in ("translate", "summarize", "classify", "fill-mask"):
        args.text = read_inputs(args.text)
    elif args.command == "align":
        utf8_arguments([args.text])
    elif args.command == "answer":
        if (args.context is None) == (args.context_file is None):
            raise SystemExit("error: give the context with --context TEXT or --context_file PATH.")
        utf8_arguments(args.question, "question")
        if args.context_file is not None:
            args.context = "\n".join(read_text_file(args.context_file))
        utf8_arguments([args.context], "context")
    elif args.command == "evaluate":
        check_text_file(args.test_file)  # data.py names the line for TSV and plain text, not for JSON or CSV
    elif args.command == "train-vectors":
        for path in args.text:
            check_text_file(path, gzipped=False)


def main(argv=None):
    parser = argparse.ArgumentParser(prog="hf-seq2seq", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)

    def engine_options(p, engines=("transformers", "onnxruntime")):
        p.add_argument("--quantize", choices=["int8"], default=None, help="dynamic int8 quantization (CPU)")
        p.add_argument("--engine", choices=engines, default="transformers",
                       help="onnxruntime: the model run by ONNX Runtime (pip install \"hf_seq2seq[onnx]\") from an "
                            "export made on first use and kept beside the model"
                            + ("; ctranslate2: CTranslate2 (pip install ctranslate2), likewise" if "ctranslate2" in engines else ""))

    def generation_options(p, engines=("transformers", "onnxruntime")):
        p.add_argument("--num_beams", type=int, default=None, help="default: the model's generation config")
        p.add_argument("--max_new_tokens", type=int, default=None, help="default: the model's generation config")
        p.add_argument("--batch_size", type=int, default=32)
        engine_options(p, engines)

    p = commands.add_parser("translate", help="translate text given as arguments, or one sentence a line on stdin")
    p.add_argument("--model", required=True, help="a folder written by train.py (or save_pretrained)")
    p.add_argument("text", nargs="*", help="sentences to translate (default: read stdin)")
    generation_options(p, engines=("transformers", "onnxruntime", "ctranslate2"))

    p = commands.add_parser("summarize", help="summarise texts given as arguments, or one text a line on stdin")
    p.add_argument("--model", required=True)
    p.add_argument("text", nargs="*", help="texts to summarise (default: read stdin, one a line)")
    generation_options(p)

    p = commands.add_parser("fill-mask", help="a denoising model (--task denoising) writes texts with their <mask> "
                            "spans filled in; texts as arguments, or one a line on stdin")
    p.add_argument("--model", required=True)
    p.add_argument("text", nargs="*", help='texts with <mask> where words are missing, e.g. "The <mask> sat down."')
    generation_options(p)

    p = commands.add_parser("answer", help="answer a question from a context")
    p.add_argument("--model", required=True)
    p.add_argument("--question", required=True, action="append", help="a question (repeat for several)")
    p.add_argument("--context", default=None, help="the text the answer comes from")
    p.add_argument("--context_file", default=None, help="...or a file holding it")
    generation_options(p)

    p = commands.add_parser("classify", help="label texts given as arguments, or one text a line on stdin")
    p.add_argument("--model", required=True)
    p.add_argument("text", nargs="*")
    p.add_argument("--batch_size", type=int, default=32)
    engine_options(p)

    p = commands.add_parser("evaluate", help="score a model on a test file (BLEU/chrF, ROUGE, EM/F1 or accuracy/F1)")
    p.add_argument("--model", required=True)
    p.add_argument("--test_file", required=True, help="any format train.py reads for the model's task")
    p.add_argument("--task", default=None, help="default: the task the model was trained for")
    p.add_argument("--source_lang", default="en")
    p.add_argument("--target_lang", default="fr")
    for column in ("text", "summary", "question", "context", "answer", "label"):
        p.add_argument(f"--{column}_column", default=None)
    p.add_argument("--max_samples", type=int, default=None)
    generation_options(p)

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

    p = commands.add_parser("export-onnx", help="export the model to ONNX in optimum's layout (pip install onnxruntime onnxscript)")
    p.add_argument("--model", required=True)
    p.add_argument("--output", required=True, help="the folder to write the ONNX files, config and tokenizer to")
    p.add_argument("--quantize", choices=["int8"], default=None,
                   help="int8: also write *_quantized.onnx (onnxruntime's dynamic quantisation)")
    p.add_argument("--for-web", "--for_web", dest="for_web", action="store_true",
                   help="write the bundle transformers.js loads in the browser or Node (onnx/*.onnx, fp32 and int8)")

    from .averaging import add_average_command, run_average
    from .word_vectors import add_train_vectors_command, run_train_vectors

    add_train_vectors_command(commands)
    add_average_command(commands)

    args = parser.parse_args(argv)
    read_command_inputs(args)
    generation = (getattr(args, "num_beams", None), getattr(args, "max_new_tokens", None), getattr(args, "batch_size", 32))
    if args.command in ("train-vectors", "average"):
        (run_train_vectors if args.command == "train-vectors" else run_average)(args)
        return
    if getattr(args, "engine", "transformers") == "ctranslate2":
        if args.quantize:
            raise SystemExit("error: --quantize is for the transformers and onnxruntime engines; CTranslate2 runs the float32 export.")
        check_model_folder(args.model)
        try:
            from .export_ctranslate2 import translate_with_ctranslate2
        except ImportError as error:
            raise SystemExit(f"error: {error}") from None
        for line in translate_with_ctranslate2(args.model, args.text, *generation):
            print(line)
        return
    if args.command == "export-ct2":
        check_model_folder(args.model)  # the converter loads the model itself
        from .export_ctranslate2 import export_ctranslate2

        print(export_ctranslate2(args.model, args.output, args.quantization, args.force))
        return
    if args.command == "export-onnx":
        try:
            from .export_onnx import ExportError, export_for_web, export_onnx

            if args.for_web:
                print(export_for_web(args.model, args.output))
            else:
                print(export_onnx(args.model, args.output, args.quantize))
        except (ImportError, ExportError) as error:
            raise SystemExit(f"error: {error}") from None
        return
    model, tokenizer = load(args.model, getattr(args, "quantize", None), getattr(args, "engine", "transformers"))
    if args.command == "align":
        from .alignment import alignment, plot_alignment

        aligned = alignment(model, tokenizer, args.text, args.layer, args.head, args.num_beams)
        print(plot_alignment(aligned, args.output, title=f"{args.text}\n{aligned.translation}"))
    elif args.command in ("translate", "summarize"):
        task = "translation" if args.command == "translate" else "summarization"
        sources = sources_for(task, model, args.text)
        for line in generate_texts(model, tokenizer, sources, *generation):
            print(line)
    elif args.command == "fill-mask":
        if tokenizer.mask_token is None:
            raise SystemExit(f"error: {args.model} has no <mask> token: fill-mask is for a model pretrained with "
                             "train.py --task denoising.")
        for line in generate_texts(model, tokenizer, args.text, *generation):
            print(line)
    elif args.command == "answer" and not model.can_generate():  # a span reader points at its answers
        from .inference import answer_spans

        if not args.context.strip():
            raise SystemExit("error: the context is empty: the answer has to come from it.")

        for answer in answer_spans(model, tokenizer, args.question, [args.context] * len(args.question), args.batch_size):
            print(answer["answer"])
    elif args.command == "answer":
        try:
            sources = sources_for("question-answering", model, [{"question": q, "context": args.context} for q in args.question])
        except ValueError as error:
            raise SystemExit(f"error: {error}") from None
        for line in generate_texts(model, tokenizer, sources, *generation):
            print(line)
    elif args.command == "classify":
        for label in classify(model, tokenizer, args.text, args.batch_size):
            print(label)
    else:
        from .data import DataError

        try:
            scores = evaluate_model(model, tokenizer, args.task or model_task(args.model), args)
        except DataError as error:
            raise SystemExit(f"error: {error}") from None
        print(json.dumps(scores, indent=1))


if __name__ == "__main__":
    main()
