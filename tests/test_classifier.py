"""Sentence in, label out: HFSeq2SeqForSequenceClassification's losses, padding, saving (remote code included) and
its start from a translator."""

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch

from conftest import padded_batch, tiny_config, tiny_model


def tiny_classifier(seed: int = 0, **overrides):
    from hf_seq2seq import HFSeq2SeqForSequenceClassification

    torch.manual_seed(seed)
    labels = dict(num_labels=3, id2label={0: "neg", 1: "neu", 2: "pos"}, label2id={"neg": 0, "neu": 1, "pos": 2})
    config = tiny_config(**{**labels, **overrides})
    return HFSeq2SeqForSequenceClassification(config).eval()


def test_classifier_loss_is_cross_entropy_of_its_logits_and_other_problem_types():
    model = tiny_classifier(init_std=0.3)
    input_ids, attention_mask = padded_batch([7, 4, 6])
    labels = torch.tensor([2, 0, 1])
    with torch.no_grad():
        out = model(input_ids=input_ids, attention_mask=attention_mask, labels=labels)
    assert out.logits.shape == (3, 3) and model.config.problem_type == "single_label_classification"
    by_hand = -torch.log_softmax(out.logits, -1)[torch.arange(3), labels].mean()
    torch.testing.assert_close(out.loss, by_hand)
    multi = torch.tensor([[1.0, 0.0, 1.0], [0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])
    model.config.problem_type = "multi_label_classification"
    loss = model(input_ids=input_ids, attention_mask=attention_mask, labels=multi).loss
    torch.testing.assert_close(loss, torch.nn.functional.binary_cross_entropy_with_logits(out.logits, multi))
    regression = tiny_classifier(num_labels=1, id2label={0: "score"}, label2id={"score": 0})
    targets = torch.tensor([0.5, -1.0, 2.0])
    out = regression(input_ids=input_ids, attention_mask=attention_mask, labels=targets)
    assert regression.config.problem_type == "regression"
    torch.testing.assert_close(out.loss, ((out.logits.squeeze(-1) - targets) ** 2).mean())


@pytest.mark.parametrize("attn_implementation", ["eager", "sdpa"])
def test_classifier_logits_do_not_depend_on_padding(attn_implementation):
    model = tiny_classifier(seed=2, init_std=0.3, attn_implementation=attn_implementation)
    input_ids, attention_mask = padded_batch([9, 4, 6], seed=3)
    with torch.no_grad():
        batched = model(input_ids=input_ids, attention_mask=attention_mask).logits
        alone = [model(input_ids=input_ids[i : i + 1, :n]).logits[0] for i, n in enumerate([9, 4, 6])]
    torch.testing.assert_close(batched, torch.stack(alone), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="must end with `</s>`"):
        model(input_ids=torch.tensor([[5, 6, 7]]))


def test_classifier_saves_loads_and_loads_as_remote_code_without_the_package(tmp_path):
    from transformers import AutoModelForSequenceClassification

    model = tiny_classifier(seed=4, init_std=0.3)
    input_ids, attention_mask = padded_batch([6, 4], seed=5)
    model.save_pretrained(tmp_path / "model")
    config = json.loads((tmp_path / "model" / "config.json").read_text())
    assert config["auto_map"]["AutoModelForSequenceClassification"] == "modeling_hf_seq2seq.HFSeq2SeqForSequenceClassification"
    loaded = AutoModelForSequenceClassification.from_pretrained(tmp_path / "model").eval()
    with torch.no_grad():
        expected = model(input_ids=input_ids, attention_mask=attention_mask).logits
        assert torch.equal(loaded(input_ids=input_ids, attention_mask=attention_mask).logits, expected)
    script = textwrap.dedent("""
        import json, sys, torch
        sys.modules["hf_seq2seq"] = None
        from transformers import AutoModelForSequenceClassification
        model = AutoModelForSequenceClassification.from_pretrained(sys.argv[1], trust_remote_code=True).eval()
        inputs = json.loads(sys.argv[2])
        with torch.no_grad():
            logits = model(input_ids=torch.tensor(inputs["ids"]), attention_mask=torch.tensor(inputs["mask"])).logits
        print(json.dumps({"module": type(model).__module__, "logits": logits.tolist(), "labels": model.config.id2label}))
    """)
    env = {**os.environ, "HF_HOME": str(tmp_path / "hf"), "HF_HUB_OFFLINE": "1", "PYTHONPATH": ""}
    result = subprocess.run([sys.executable, "-c", script, str(tmp_path / "model"),
                             json.dumps({"ids": input_ids.tolist(), "mask": attention_mask.tolist()})],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    remote = json.loads(result.stdout.strip().splitlines()[-1])
    assert remote["module"].startswith("transformers_modules") and remote["labels"] == {"0": "neg", "1": "neu", "2": "pos"}
    torch.testing.assert_close(torch.tensor(remote["logits"]), expected)


def test_classifier_starts_from_a_translator_with_a_new_head(tmp_path):
    from transformers import AutoModelForSequenceClassification

    translator = tiny_model(seed=6)
    translator.save_pretrained(tmp_path)
    classifier, info = AutoModelForSequenceClassification.from_pretrained(tmp_path, num_labels=2, output_loading_info=True)
    assert {k for k in info["missing_keys"]} == {"classification_head.dense.weight", "classification_head.dense.bias",
                                                 "classification_head.out_proj.weight", "classification_head.out_proj.bias"}
    assert "lm_head.weight" not in info["missing_keys"]
    for name, weight in translator.model.state_dict().items():
        assert torch.equal(classifier.model.state_dict()[name], weight), name
