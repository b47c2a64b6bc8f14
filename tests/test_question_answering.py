"""Extractive question answering: HFSeq2SeqForQuestionAnswering's start/end scores and loss, saving (remote code
included) and its start from a translator."""

import json
import os
import subprocess
import sys
import textwrap

import torch
from torch.nn import functional as F

from conftest import padded_batch, tiny_config, tiny_model


def tiny_reader(seed: int = 0, **overrides):
    from hf_seq2seq import HFSeq2SeqForQuestionAnswering

    torch.manual_seed(seed)
    return HFSeq2SeqForQuestionAnswering(tiny_config(**overrides)).eval()


def test_scores_every_input_position_and_the_loss_is_the_mean_of_two_cross_entropies():
    model = tiny_reader(init_std=0.3)
    input_ids, attention_mask = padded_batch([9, 5, 7])
    starts, ends = torch.tensor([2, 1, 3]), torch.tensor([4, 1, 5])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, start_positions=starts, end_positions=ends)
    assert out.start_logits.shape == out.end_logits.shape == input_ids.shape
    by_hand = (F.cross_entropy(out.start_logits, starts) + F.cross_entropy(out.end_logits, ends)) / 2
    torch.testing.assert_close(out.loss, by_hand)
    assert out.start_logits.std() > 0.1 and not torch.equal(out.start_logits, out.end_logits)

    # An answer cut off by truncation (a position past the input) is left out of the loss, as in BART.
    with torch.no_grad():
        cut = model(input_ids=input_ids, attention_mask=attention_mask, start_positions=torch.tensor([2, 1, 99]),
                    end_positions=torch.tensor([4, 1, 99]))
    kept = (F.cross_entropy(out.start_logits[:2], starts[:2]) + F.cross_entropy(out.end_logits[:2], ends[:2])) / 2
    torch.testing.assert_close(cut.loss, kept)


def test_padding_does_not_change_the_scores_of_real_positions():
    model = tiny_reader(init_std=0.3)
    input_ids, attention_mask = padded_batch([9, 5])
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask)
        alone = model(input_ids=input_ids[1:, :5], attention_mask=attention_mask[1:, :5])
    torch.testing.assert_close(batched.start_logits[1, :5], alone.start_logits[0], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(batched.end_logits[1, :5], alone.end_logits[0], rtol=1e-5, atol=1e-5)


def test_saved_reader_loads_with_auto_class_and_without_the_package(tmp_path):
    from transformers import AutoModelForQuestionAnswering

    model = tiny_reader(seed=4, init_std=0.3)
    input_ids, attention_mask = padded_batch([6, 4], seed=5)
    model.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForQuestionAnswering"] == "modeling_hf_seq2seq.HFSeq2SeqForQuestionAnswering"
    loaded = AutoModelForQuestionAnswering.from_pretrained(tmp_path / "model").eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask)
        again = loaded(input_ids=input_ids, attention_mask=attention_mask)
    assert torch.equal(again.start_logits, expected.start_logits) and torch.equal(again.end_logits, expected.end_logits)
    script = textwrap.dedent("""
        import json, sys, torch
        sys.modules["hf_seq2seq"] = None
        from transformers import AutoModelForQuestionAnswering
        model = AutoModelForQuestionAnswering.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
        inputs = json.loads(sys.argv[2])
        with torch.no_grad():
            out = model(input_ids=torch.tensor(inputs["ids"]), attention_mask=torch.tensor(inputs["mask"]))
        print(json.dumps({"module": type(model).__module__, "start": out.start_logits.tolist(), "end": out.end_logits.tolist()}))
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model"),
                             json.dumps({"ids": input_ids.tolist(), "mask": attention_mask.tolist()})],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["module"].startswith("transformers_modules")
    torch.testing.assert_close(torch.tensor(remote["start"]), expected.start_logits)
    torch.testing.assert_close(torch.tensor(remote["end"]), expected.end_logits)


def test_reader_starts_from_a_translator_with_a_new_span_head(tmp_path):
    from transformers import AutoModelForQuestionAnswering

    translator = tiny_model(seed=6)
    translator.save_pretrained(tmp_path)
    reader, info = AutoModelForQuestionAnswering.from_pretrained(tmp_path, output_loading_info=True)
    assert set(info["missing_keys"]) == {"qa_outputs.weight", "qa_outputs.bias"}
    for name, weight in translator.model.state_dict().items():
        assert torch.equal(reader.model.state_dict()[name], weight), name
    # The new head is initialised as transformers initialises a new layer: N(0, init_std), bias zero.
    assert reader.qa_outputs.weight.std().item() < 3 * reader.config.init_std and torch.all(reader.qa_outputs.bias == 0)
