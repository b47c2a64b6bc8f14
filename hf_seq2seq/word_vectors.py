"""Initialise the token embeddings from Word2Vec / GloVe vectors, and train such vectors with gensim.

Before contextual models, a model trained from scratch got its knowledge of words from an embedding layer
initialised with pre-trained word vectors (Kim 2014 on SST-2: 82.7% with random embeddings, 86.8–87.2% with
word2vec). The vectors must have `d_model` dimensions: train them on your own text, in the model's own tokens
(every token then has a vector of its own) or in words:

    hf-seq2seq train-vectors --text train.tsv --output vectors.txt --size 256 --tokenizer outputs/en-fr/tokenizer

and copy them into a model:

    from hf_seq2seq.word_vectors import init_token_embeddings, load_word_vectors

    report = init_token_embeddings(model, tokenizer, load_word_vectors("vectors.txt"))
    logger.info("%s", report)  # "Word vectors (token match) cover 5123 of 8000 vocabulary tokens (64.0%; ..."

Files in word2vec text, word2vec binary and GloVe text format are read (the format is read from the file, not
from its name; `.gz`/`.bz2` files are decompressed by gensim as usual).
"""

import logging
import os
import re
import unicodedata
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from gensim.models import KeyedVectors

logger = logging.getLogger(__name__)

# The byte-level BPE space marker: "Ġcat" is "cat" at the start of a word.
SPACE_MARKER = "\u0120"

TRAIN_COMMAND = "hf-seq2seq train-vectors --text FILE --output vectors.txt --size D_MODEL [--tokenizer MODEL_DIR]"
FORMATS = (
    "word2vec text (a header line 'count dim', then 'word v1 ... vdim' on each line), word2vec binary (the same "
    "header, then each word, a space and dim float32 values) or GloVe text (no header, 'word v1 ... vdim' on each "
    "line)"
)
_PEEK_BYTES = 1 << 16  # what is read to recognise the format


class WordVectorsFormatError(ValueError):
    """A file that is not word vectors in a format `load_word_vectors` reads."""


# --- Reading --------------------------------------------------------------------------------------------------


def load_word_vectors(path: str | os.PathLike) -> "KeyedVectors":
    """Read word vectors in word2vec text, word2vec binary or GloVe text format, whatever the file's name.

    Raises `WordVectorsFormatError` (a `ValueError`) naming the file, the accepted formats and how to make such a
    file, for anything else.
    """
    from gensim.models import KeyedVectors

    path = os.fspath(path)
    file_format = detect_format(path)
    try:
        return KeyedVectors.load_word2vec_format(
            path, binary=file_format == "word2vec-binary", no_header=file_format == "glove"
        )
    except (ValueError, EOFError, UnicodeDecodeError, AssertionError) as error:
        # A damaged file: the first lines looked right, a later one does not (or the header's count is wrong).
        raise _format_error(path, f"it looks like {file_format} but is damaged ({error})") from None


def detect_format(path: str) -> str:
    """`"word2vec-text"`, `"word2vec-binary"` or `"glove"`, from the first bytes of the file."""
    from gensim import utils

    with utils.open(path, "rb") as file:
        first_line = file.readline(_PEEK_BYTES)
        header = re.fullmatch(rb"\s*(\d+)\s+(\d+)\s*", first_line)
        if header is None:
            if _parse_text_vector(_complete_fields(first_line)) is None:
                raise _format_error(
                    path, f"its first line is neither a 'count dim' header nor 'word v1 v2 ...': {first_line[:60]!r}"
                )
            return "glove"
        count, dim = (int(group) for group in header.groups())
        # A text line is a word and dim numbers of at most ~16 characters; a binary record a word, a space and
        # 4 * dim bytes.
        record = file.read(_PEEK_BYTES + 16 * dim)
    if count == 0 or _parse_text_vector(record.split(b"\n", 1)[0], dim) is not None:
        return "word2vec-text"
    space = record.find(b" ")
    if space > 0 and _is_word(record[:space]) and len(record) - space - 1 >= 4 * dim:
        return "word2vec-binary"
    raise _format_error(path, f"it has a 'count dim' header ({count} {dim}) but no vector after it")


def _complete_fields(line: bytes) -> bytes:
    """The line without its last field if it was cut by the read limit (a long GloVe line)."""
    return line if line.endswith(b"\n") or len(line) < _PEEK_BYTES else line.rsplit(b" ", 1)[0]


def _parse_text_vector(line: bytes, dim: int | None = None) -> list[float] | None:
    """The numbers of a 'word v1 ... vdim' line (any dim ≥ 1 when dim is None), or None if it is not one."""
    if not _is_word(line.split(b" ", 1)[0]):
        return None
    fields = line.rstrip().split(b" ")
    try:
        values = [float(value) for value in fields[1:]]
    except ValueError:
        return None
    return values if values and (dim is None or len(values) == dim) else None


def _is_word(data: bytes) -> bool:
    try:
        word = data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return bool(word) and not any(character.isspace() for character in word)


def _format_error(path: str, reason: str) -> WordVectorsFormatError:
    return WordVectorsFormatError(
        f"{path!r} is not a word vector file: {reason}. Accepted formats: {FORMATS}. "
        f"Make one from your own text with `{TRAIN_COMMAND}`."
    )


# --- Initialising the model -----------------------------------------------------------------------------------


@dataclass
class EmbeddingInitReport:
    """What `init_token_embeddings` did; `str()` of it is a one-line log message."""

    covered: int  # vocabulary tokens whose embedding was set from a vector
    vocab_size: int  # tokens in the vocabulary, special tokens included
    special: int  # special tokens, never overwritten
    match: str  # "token": the file is in the model's own tokens, matched exactly; "word": in words
    by_lowercase: int = 0  # of `covered`, tokens found only through their lowercased text
    examples: list[str] = field(default_factory=list)  # some tokens not covered (their text)

    def __str__(self) -> str:
        share = self.covered / max(self.vocab_size, 1)
        lowercase = f", {self.by_lowercase} by lowercase" if self.by_lowercase else ""
        examples = f"; not covered, e.g. {', '.join(map(repr, self.examples))}" if self.examples else ""
        return (
            f"Word vectors ({self.match} match) cover {self.covered} of {self.vocab_size} vocabulary tokens "
            f"({share:.1%}{lowercase}; {self.special} special tokens kept){examples}"
        )


@torch.no_grad()
def init_token_embeddings(model, tokenizer, vectors: "KeyedVectors", max_examples: int = 10) -> EmbeddingInitReport:
    """Copy into the token embedding rows the vectors of the vocabulary tokens the file has, exactly as they are.

    Every token embedding table is filled, in place: `model.get_input_embeddings()` and, when the decoder has a
    table of its own (`share_encoder_decoder_embeddings=False`), the decoder's; the output projection, tied to the
    target embeddings, sees the new rows too. Tokens not in the file keep their initialisation, special tokens
    (`<s>`, `<pad>`, `</s>`, `<unk>`) are never overwritten. The vectors are not rescaled: like every row, they
    are multiplied by `embed_scale` (√d_model when `config.scale_embedding`) in the forward pass.

    Matching a token to a vector:
    1. the token itself ("Ġcat"): a file trained in the model's own tokens (`train_word_vectors(..., tokenizer=)`)
       is matched this way only. In such a file "cat" is the piece inside a word ("con|cat|enate"), so falling
       back to it for a missing "Ġcat" would give a word the vector of another token;
    2. otherwise (a file in words), the token's text, space marker removed ("Ġcat" → "cat", "ĠÃ©tÃ©" → "été").
       A token without the marker also matches its text: after punctuation a whole word starts without one
       ("l'homme" → "Ġl", "'", "homme"), and the marker alone cannot tell it from a piece inside a word;
    3. then that text lowercased ("ĠThe" → "the"), for lowercased files such as GloVe's and those of
       `train_word_vectors` in words.
    A file is taken to be in tokens when it has one of the vocabulary's space-marked tokens.

    The vectors must have `d_model` dimensions: a `ValueError` says so otherwise. We do not project them to
    `d_model`, because a projection changes their geometry (the distances and directions between words), and
    that geometry is the knowledge being transferred.
    """
    tables = _token_embedding_tables(model)
    embedding_dim, num_rows = tables[0].shape[1], tables[0].shape[0]
    if vectors.vector_size != embedding_dim:
        raise ValueError(
            f"The word vectors have {vectors.vector_size} dimensions but the model's token embeddings have "
            f"d_model={embedding_dim}. Train vectors of size {embedding_dim} with `{TRAIN_COMMAND}` "
            f"(--size {embedding_dim}), or choose a model with d_model={vectors.vector_size}."
        )
    if len(tokenizer) > num_rows:
        raise ValueError(f"The tokenizer has {len(tokenizer)} tokens but the model only {num_rows} embedding rows.")

    vocabulary = sorted(tokenizer.get_vocab().items(), key=lambda item: item[1])
    special_ids = set(tokenizer.all_special_ids)
    in_tokens = any(token.startswith(SPACE_MARKER) and token in vectors.key_to_index for token, _ in vocabulary)
    ids, keys, uncovered, by_lowercase = [], [], [], 0
    for token, token_id in vocabulary:
        if token_id in special_ids:
            continue
        key, lowercased = _match(token, tokenizer, vectors, in_tokens)
        if key is None:
            uncovered.append(token)
        else:
            ids.append(token_id)
            keys.append(key)
            by_lowercase += lowercased

    if ids:
        rows = torch.from_numpy(vectors.vectors[[vectors.key_to_index[key] for key in keys]])
        for weight in tables:
            weight[torch.tensor(ids, device=weight.device)] = rows.to(weight.device, weight.dtype)
    return EmbeddingInitReport(
        covered=len(ids),
        vocab_size=len(vocabulary),
        special=len(special_ids),
        match="token" if in_tokens else "word",
        by_lowercase=by_lowercase,
        examples=_examples(uncovered, tokenizer, max_examples),
    )


def _examples(tokens: list[str], tokenizer, count: int) -> list[str]:
    """The first tokens as text, words and pieces before single characters (the byte alphabet opens the vocabulary,
    merges follow in order of frequency)."""
    texts = dict.fromkeys(_token_text(token, tokenizer) or token for token in tokens)  # "Ġcat" and "cat" read alike
    return sorted(texts, key=lambda text: len(text) == 1)[:count]


def _token_embedding_tables(model) -> list[torch.Tensor]:
    """The distinct token embedding matrices: one when source and target share their table, else two."""
    tables = [model.get_input_embeddings().weight]
    decoder = model.get_decoder() if hasattr(model, "get_decoder") else None
    if decoder is not None and decoder.get_input_embeddings() is not None:
        tables.append(decoder.get_input_embeddings().weight)
    return list({id(table): table for table in tables}.values())


def _match(token: str, tokenizer, vectors: "KeyedVectors", in_tokens: bool) -> tuple[str | None, bool]:
    """(the key of the token's vector or None, whether it was found through lowercasing)."""
    if token in vectors.key_to_index:
        return token, False
    text = "" if in_tokens else _token_text(token, tokenizer)
    if not text:
        return None, False
    if text in vectors.key_to_index:
        return text, False
    if text.lower() in vectors.key_to_index:
        return text.lower(), True
    return None, False


def _token_text(token: str, tokenizer) -> str:
    """The text of a token without its space marker; "" for a byte that is only part of a character."""
    text = tokenizer.convert_tokens_to_string([token]).strip()
    return "" if "\ufffd" in text else text


# --- Training -------------------------------------------------------------------------------------------------

# Words for vectors trained in words: runs of letters and digits, lowercased. "l'homme" gives "l" and "homme",
# which is how the byte-level tokenizer splits it too.
WORD = re.compile(r"\w+")


def split_words(text: str) -> list[str]:
    return WORD.findall(unicodedata.normalize("NFC", text).lower())


class TextFiles:
    """The sentences of text files, one per line, read again from disk at each iteration (gensim reads its corpus
    once per epoch, plus once for the vocabulary).

    A line with TABs is the project's `en<TAB>fr[<TAB>attribution]` layout: it gives its first two columns as two
    sentences (both languages, as for a joint vocabulary), or with `column=N` only its N-th column (counted from
    1, as in `cut -f N`; lines without that column are skipped).
    """

    def __init__(self, paths: Iterable[str | os.PathLike], column: int | None = None):
        self.paths = [os.fspath(path) for path in paths]
        if column is not None and column < 1:
            raise ValueError(f"column counts from 1 (as in `cut -f`), got {column}")
        self.column = column

    def __iter__(self) -> Iterator[str]:
        for path in self.paths:
            with open(path, encoding="utf-8") as file:
                try:
                    for line in file:
                        yield from self._sentences(line.rstrip("\r\n"))
                except UnicodeDecodeError as error:
                    raise ValueError(f"{path!r} is not UTF-8 text ({error}).") from None

    def _sentences(self, line: str) -> list[str]:
        columns = line.split("\t")
        if self.column is not None:
            return columns[self.column - 1 : self.column]
        return columns[:2]


class _Sentences:
    """`texts` as lists of words or tokens, re-iterable as gensim needs it, streamed: never all in memory."""

    def __init__(self, texts: Iterable[str], split: Callable[[str], list[str]]):
        self.texts, self.split = texts, split

    def __iter__(self) -> Iterator[list[str]]:
        for text in self.texts:
            words = self.split(text)
            if words:
                yield words


def train_word_vectors(
    texts: Iterable[str] | str | os.PathLike,
    output_path: str | os.PathLike,
    vector_size: int,
    tokenizer=None,
    window: int = 5,
    min_count: int = 2,
    epochs: int = 5,
    seed: int = 0,
    workers: int = 1,
    binary: bool = False,
) -> "KeyedVectors":
    """Train Word2Vec vectors and save them in word2vec text (or binary) format; returns them.

    Args:
        texts: the sentences, a file path (one sentence a line, see `TextFiles`), or a *re-iterable* collection of
            strings (a list, a `datasets` column, a `TextFiles`): gensim reads the corpus `epochs + 1` times, so a
            generator, which can be read once, is refused. It is streamed, never held in memory as a whole.
        vector_size: the model's `d_model`.
        tokenizer: with one, the sentences are split into the model's own tokens (`tokenizer.tokenize`) and the
            saved words are the tokens ("Ġcat"), which `init_token_embeddings` matches exactly: every frequent
            token, subword pieces included, gets a vector. Without one, into lowercased words (`split_words`).
        min_count: words or tokens seen fewer times get no vector.
        workers: with `workers=1` (the default) and the same `seed`, training is deterministic: the same corpus
            gives the same file, in any process (gensim 4 seeds its initial vectors from `seed`, not from Python's
            string hashes, so PYTHONHASHSEED does not matter). More workers train faster but in an order that
            depends on thread scheduling.

    Skip-gram (not CBOW): it learns better vectors for rare words (Mikolov et al. 2013), and in the corpora a
    translation model is trained on most words and subwords are rare; CBOW's advantage, speed, matters only for
    corpora of billions of words.
    """
    from gensim.models import Word2Vec

    if isinstance(texts, str | os.PathLike):
        texts = TextFiles([texts])
    elif iter(texts) is texts:
        raise TypeError(
            "train_word_vectors reads the texts several times (once per epoch): pass a list, a file path or a "
            "re-iterable object such as hf_seq2seq.word_vectors.TextFiles, not a generator or iterator."
        )
    split = tokenizer.tokenize if tokenizer is not None else split_words
    sentences = _Sentences(texts, split)

    model = Word2Vec(
        vector_size=vector_size, window=window, min_count=min_count, sg=1, seed=seed, workers=workers, epochs=epochs
    )
    model.build_vocab(sentences)
    if len(model.wv) == 0:
        raise ValueError(f"No word or token occurs min_count={min_count} times in the texts: nothing to train.")
    model.train(sentences, total_examples=model.corpus_count, epochs=model.epochs)
    model.wv.save_word2vec_format(os.fspath(output_path), binary=binary)
    logger.info("Saved %d vectors of size %d to %s.", len(model.wv), vector_size, output_path)
    return model.wv


# --- Command line ---------------------------------------------------------------------------------------------


def add_train_vectors_command(subparsers) -> None:
    """Add `train-vectors` to the subcommands of `hf-seq2seq`."""
    p = subparsers.add_parser(
        "train-vectors",
        help="train Word2Vec vectors to initialise a model's token embeddings",
        description="Train Word2Vec (skip-gram) vectors on text files and save them in word2vec format, for "
        "`init_token_embeddings` (train.py --init_embeddings PATH).",
    )
    p.add_argument("--text", nargs="+", required=True, metavar="FILE",
                   help="text files, one sentence a line; en<TAB>fr lines give both sentences (see --column)")
    p.add_argument("--output", required=True, help="the vector file to write (e.g. vectors.txt)")
    p.add_argument("--size", type=int, required=True, help="vector size: the model's d_model (small 256, base 512)")
    p.add_argument("--tokenizer", default=None,
                   help="a model or tokenizer folder: train on its tokens (recommended) instead of lowercased words")
    p.add_argument("--column", type=int, default=None, help="of TAB-separated lines, use only column N (from 1)")
    p.add_argument("--binary", action="store_true", help="write word2vec binary instead of text")
    p.add_argument("--window", type=int, default=5)
    p.add_argument("--min_count", type=int, default=2)
    p.add_argument("--epochs", type=int, default=5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--workers", type=int, default=1, help="more is faster but not deterministic")


def run_train_vectors(args) -> None:
    missing = [path for path in args.text if not os.path.isfile(path)]
    if missing:
        raise SystemExit(f"error: text file(s) {', '.join(map(repr, missing))} not found.")
    tokenizer = None
    if args.tokenizer:
        from transformers import AutoTokenizer

        tokenizer = AutoTokenizer.from_pretrained(args.tokenizer)
    try:
        vectors = train_word_vectors(
            TextFiles(args.text, args.column), args.output, args.size, tokenizer=tokenizer, window=args.window,
            min_count=args.min_count, epochs=args.epochs, seed=args.seed, workers=args.workers, binary=args.binary,
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    unit = "tokens" if tokenizer is not None else "words"
    print(f"Wrote {len(vectors)} vectors ({unit}) of size {args.size} to {args.output}.")
