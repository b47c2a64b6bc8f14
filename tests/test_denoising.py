"""BART's noising (hf_seq2seq/denoising.py): text infilling takes out about 30% of the tokens in Poisson(3) spans,
one <mask> each; sentence permutation keeps every sentence; the target is the passage itself; the noise is seeded
and new every time a passage is batched."""

import numpy as np
import pytest

from hf_seq2seq.denoising import DenoisingCollator
from hf_seq2seq.vocabulary import train_tokenizer

SENTENCES = ["The old mill stood by the river.", "Farmers brought their grain there every autumn.",
             "A fire destroyed it in 1887!", "Did the village build a school?", "The school still teaches children."]


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(SENTENCES * 20, vocab_size=400, min_frequency=1, mask_token=True)


def passages(tokenizer, count: int, seed: int = 0, sentences=(2, 6)) -> list[list[int]]:
    """`count` passages of a random number of sentences in `sentences` (a range), in random order."""
    rng = np.random.default_rng(seed)
    return [tokenizer(" ".join(rng.choice(SENTENCES, size=rng.integers(*sentences))))["input_ids"] for _ in range(count)]


def test_mask_is_a_special_token_after_the_four_others(tokenizer):
    assert tokenizer.mask_token == "<mask>" and tokenizer.mask_token_id == 4
    ids = tokenizer("The <mask> stood.")["input_ids"]
    assert ids.count(4) == 1 and tokenizer.decode(ids, skip_special_tokens=True) == "The  stood."
    assert train_tokenizer(SENTENCES, vocab_size=300).mask_token_id is None  # other vocabularies keep their ids


def test_infilling_masks_about_30_percent_in_poisson_spans(tokenizer):
    collator = DenoisingCollator(tokenizer, permute_sentences=False, seed=0)
    removed = masks = total = 0
    for ids in passages(tokenizer, 400, sentences=(8, 16)):  # about 100 tokens, as pretraining passages are longer
        noised = collator.noise(ids)
        kept = [t for t in noised if t != collator.mask_id]
        assert noised[-1] == tokenizer.eos_token_id and kept[-1] == tokenizer.eos_token_id
        # Without permutation, the kept tokens are the passage's, in order (a subsequence).
        rest = iter(ids)
        assert all(token in rest for token in kept)
        total += len(ids) - 1
        removed += len(ids) - len(kept)
        masks += noised.count(collator.mask_id)
    assert abs(removed / total - 0.3) < 0.02, removed / total
    # The mean span (0-length spans included) is λ = 3, up to the last span of a passage, cut to the budget.
    assert 2.7 < removed / masks < 3.3, removed / masks


def test_permutation_keeps_every_sentence(tokenizer):
    collator = DenoisingCollator(tokenizer, mask_ratio=0.0, seed=1)
    changed = 0
    for ids in passages(tokenizer, 100, seed=1):
        noised = collator.noise(ids)
        assert sorted(map(tuple, collator.sentences(noised[:-1]))) == sorted(map(tuple, collator.sentences(ids[:-1])))
        assert len(collator.sentences(ids[:-1])) >= 2
        changed += noised != ids
    assert changed > 30  # passages of 2 to 5 sentences: most orders change


def test_batches_hold_the_passage_as_target_and_new_seeded_noise_each_time(tokenizer):
    features = [{"input_ids": ids} for ids in passages(tokenizer, 8, seed=2)]
    collator = DenoisingCollator(tokenizer, seed=3)
    first, second = collator(features), collator(features)
    for batch in (first, second):
        for row, feature in zip(batch["labels"].tolist(), features):
            assert [t for t in row if t != -100] == feature["input_ids"]  # the target is the passage
        assert (batch["attention_mask"] == (batch["input_ids"] != tokenizer.pad_token_id)).all()
        assert (batch["input_ids"] == collator.mask_id).any()
    assert not first["input_ids"].equal(second["input_ids"])  # another epoch, other noise
    again = DenoisingCollator(tokenizer, seed=3)
    assert again(features)["input_ids"].equal(first["input_ids"])  # the same seed, the same noise


def test_a_vocabulary_without_mask_is_a_clear_error():
    with pytest.raises(ValueError, match=r"train_tokenizer\(\.\.\., mask_token=True\)"):
        DenoisingCollator(train_tokenizer(SENTENCES, vocab_size=300))


def test_masked_flags_name_the_tokens_infilling_took_out(tokenizer):
    """Evaluation scores the model on the tokens taken out: the flags must name exactly those, in the passage's own
    order although the sentences were permuted before infilling."""
    collator = DenoisingCollator(tokenizer, seed=3)
    for ids in passages(tokenizer, 50):
        noised, masked = collator.noise_with_mask(ids)
        assert len(masked) == len(ids) and not masked[-1]
        assert sum(masked) == round((len(ids) - 1) * 0.3)
        kept = [token for token, taken in zip(ids[:-1], masked) if not taken]
        assert sorted(kept) == sorted(token for token in noised[:-1] if token != collator.mask_id)


def test_passages_pack_whole_lines_and_cut_only_longer_ones():
    from hf_seq2seq.tasks import pack_passages

    lines = [[1] * 3, [2] * 4, [3] * 10, [4] * 2, [5] * 5]
    packed = pack_passages(lines, 6)
    assert packed == [[1] * 3, [2] * 4, [3] * 6, [3] * 4 + [4] * 2, [5] * 5]
    assert [token for passage in packed for token in passage] == [token for line in lines for token in line]


def test_text_files_stream_interleaved_and_blank_lines_are_no_passages(tmp_path):
    import gzip

    from hf_seq2seq.data import DataArguments, DataError, read_text_files
    from hf_seq2seq.tasks import get_task

    with gzip.open(tmp_path / "books.txt.gz", "wt", encoding="utf-8") as f:
        f.write("".join(f"book line {i}\n\n" for i in range(300)))
    (tmp_path / "tasks.txt").write_text("".join(f"task line {i}\n" for i in range(40)), encoding="utf-8")
    files = f"{tmp_path / 'books.txt.gz'},{tmp_path / 'tasks.txt'}"
    task = get_task("denoising")
    args = DataArguments(task="denoising", train_file=files, streaming=True)
    lines = [row["text"] for row in task.load(args)["train"]]
    assert set(lines) == {f"book line {i}" for i in range(300)} | {f"task line {i}" for i in range(40)}
    # Interleaved, not one file after the other: the small file is read beside the first lines of the large one.
    assert any(line.startswith("task") for line in lines[:100])
    assert len(read_text_files(files)) == 640  # in memory: both files whole, blank lines included
    with pytest.raises(DataError, match=r"\.txt or \.txt\.gz"):
        read_text_files(str(tmp_path / "tasks.txt") + "," + __file__)


@pytest.fixture(scope="module")
def denoiser(tmp_path_factory, shared_data):
    """A tiny denoiser trained for 40 steps on a stream of two files of English novels (the first 1,500 paragraphs of
    the books' dev set, and 300 more), scored on 120 other paragraphs."""
    import gzip
    import os
    import sys

    from conftest import ROOT

    sys.path.insert(0, ROOT)
    import train

    folder = tmp_path_factory.mktemp("denoising")
    with gzip.open(os.path.join(shared_data, "english-books", "dev.txt.gz"), "rt", encoding="utf-8") as f:
        lines = [next(f) for _ in range(2000)]
    with gzip.open(folder / "books.txt.gz", "wt", encoding="utf-8") as f:
        f.writelines(lines[:1500])
    (folder / "more.txt").write_text("".join(lines[1500:1800]), encoding="utf-8")
    (folder / "dev.txt").write_text("".join(lines[1800:1920]), encoding="utf-8")
    output = folder / "model"
    results = train.main([
        "--task", "denoising", "--train_file", f"{folder / 'books.txt.gz'},{folder / 'more.txt'}", "--streaming",
        "--validation_file", str(folder / "dev.txt"), "--max_source_length", "64", "--preset", "tiny",
        "--vocab_size", "600", "--max_steps", "40", "--learning_rate", "3e-3", "--warmup_steps", "10",
        "--per_device_train_batch_size", "16", "--per_device_eval_batch_size", "16", "--eval_strategy", "steps",
        "--eval_steps", "20", "--save_strategy", "no", "--logging_steps", "10", "--disable_tqdm", "true",
        "--output_dir", str(output),
    ])
    return str(output), str(folder / "dev.txt"), results


def test_denoiser_trains_on_a_stream_and_scores_the_share_restored(denoiser):
    import json
    import os

    from transformers import AutoTokenizer

    folder, _, results = denoiser
    assert 0 < results["validation"]["validation_restored"] < 100
    assert "eval_restored" in open(os.path.join(folder, "curve.json")).read()  # scored during training too
    config = json.loads(open(os.path.join(folder, "config.json")).read())
    assert config["task_specific_params"] == {"text2text-generation": {"max_source_length": 64}}
    assert AutoTokenizer.from_pretrained(folder).mask_token_id == 4
    card = open(os.path.join(folder, "README.md"), encoding="utf-8").read()
    assert "pipeline_tag: text2text-generation" in card and "<mask>" in card


def test_evaluate_noises_and_scores_as_training_did(denoiser, capsys):
    import json

    from hf_seq2seq.cli import main as cli_main

    folder, dev, results = denoiser
    cli_main(["evaluate", "--model", folder, "--test_file", dev])  # the saved settings say it is a denoiser
    scores = json.loads(capsys.readouterr().out)
    assert scores["restored"] == results["validation"]["validation_restored"]
    assert scores["loss"] == pytest.approx(results["validation"]["validation_loss"], abs=0.05)


def test_fill_mask_fills_each_text_and_needs_a_mask_token(denoiser, tmp_path, capsys):
    from conftest import tiny_model

    from hf_seq2seq.cli import load, main as cli_main
    from hf_seq2seq.inference import generate_texts

    folder = denoiser[0]
    texts = ["He opened the <mask> and looked out.", "She <mask> the letter."]
    cli_main(["fill-mask", "--model", folder, *texts])
    model, tokenizer = load(folder)
    assert capsys.readouterr().out.splitlines() == generate_texts(model, tokenizer, texts)
    translator = tmp_path / "translator"  # a model whose vocabulary has no <mask>
    tiny_model(vocab_size=400).save_pretrained(translator)
    train_tokenizer(SENTENCES, vocab_size=400).save_pretrained(translator)
    with pytest.raises(SystemExit, match="no <mask> token"):
        cli_main(["fill-mask", "--model", str(translator), "The <mask> sleeps."])


def test_every_task_starts_from_the_denoiser_with_its_vocabulary_and_a_new_head(denoiser, tmp_path, shared_data):
    import os
    import sys

    import torch
    from conftest import ROOT
    from transformers import AutoModelForQuestionAnswering, AutoModelForSeq2SeqLM, AutoModelForSequenceClassification

    folder = denoiser[0]
    pretrained = AutoModelForSeq2SeqLM.from_pretrained(folder).state_dict()
    for auto_class, kwargs in ((AutoModelForSequenceClassification, {"num_labels": 2}), (AutoModelForQuestionAnswering, {})):
        model = auto_class.from_pretrained(folder, **kwargs)
        weights = model.state_dict()
        shared = [key for key in weights if key in pretrained]
        assert len(shared) == len(pretrained) - 1  # all but the language-model head; the task's head is new
        assert all(torch.equal(weights[key], pretrained[key]) for key in shared)
    sys.path.insert(0, ROOT)
    import train

    output = tmp_path / "sst2"
    sst2 = os.path.join(shared_data, "sst2")
    train.main(["--task", "text-classification", "--model_name_or_path", folder, "--train_file", f"{sst2}/train.tsv",
                "--validation_file", f"{sst2}/dev.tsv", "--class_names", "negative,positive", "--max_train_samples", "64",
                "--max_eval_samples", "32", "--max_steps", "4", "--per_device_train_batch_size", "16",
                "--eval_strategy", "no", "--save_strategy", "no", "--disable_tqdm", "true", "--output_dir", str(output)])
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(output)  # the denoiser's vocabulary, <mask> included
    assert tokenizer.get_vocab() == AutoTokenizer.from_pretrained(folder).get_vocab() and tokenizer.mask_token_id == 4
