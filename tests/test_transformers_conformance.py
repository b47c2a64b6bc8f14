"""transformers' own model tests, run on this model: `ModelTesterMixin`, `GenerationTesterMixin` and `ConfigTester`,
combined as `tests/models/marian/test_modeling_marian.py` combines them for MarianMT.

The mixins are read from a copy of transformers' test folder, never copied into this project: the folder named by
`HF_SEQ2SEQ_TRANSFORMERS_TESTS`, or else the copy beside the project that matches the installed transformers
(`TESTS_FOLDERS`: `../shared/transformers-tests` for 5.24.x, `../shared/transformers-tests-5.25` for 5.25.x), since
the mixins follow the library's internals of their own release (`$HF_SEQ2SEQ_SHARED` in place of `../shared`, as for
the data). Without it the module is skipped, with a message that says how to get it; under CI (`CI` set) its
collection fails with that message instead (tests/conftest.py, `require_shared`).

One mismatch is bridged here, not in the model: transformers 5.25 removed the class attribute
`PreTrainedModel._is_stateful`, but the copy of `tests/generation/test_utils.py` in the 5.25 folder is older and
still reads it (four tests: assisted decoding, prompt lookup, assisted sampling, packed sequences), so every model,
MarianMT included, fails them with an `AttributeError`. Where the installed transformers lacks the attribute, the test
class puts it back on `PreTrainedModel` as `False` (its value in 5.24 for every non-recurrent model, ours included)
while the class runs, so those tests run as they do on 5.24.
"""

import os
import sys
import tempfile
import unittest
from unittest import mock

import torch

import transformers
from packaging.version import Version
from transformers import PreTrainedModel

from conftest import SHARED, require_shared

# The copy of transformers' tests that matches each minor release the project supports (see pyproject.toml).
TESTS_FOLDERS = {(5, 24): "transformers-tests", (5, 25): "transformers-tests-5.25"}
TRANSFORMERS_VERSION = Version(transformers.__version__)
_minor = (TRANSFORMERS_VERSION.major, TRANSFORMERS_VERSION.minor)
TRANSFORMERS_TESTS = os.path.abspath(
    os.environ.get(
        "HF_SEQ2SEQ_TRANSFORMERS_TESTS",
        os.path.join(SHARED, TESTS_FOLDERS.get(_minor, "transformers-tests-%d.%d" % _minor)),
    )
)
# Every test of this module comes from these mixins: without them there is no module to collect.
require_shared(
    os.path.join(TRANSFORMERS_TESTS, "tests", "test_modeling_common.py"),
    f"transformers' model tests (tests/test_modeling_common.py of transformers {TRANSFORMERS_VERSION.base_version}; "
    f"get the `tests/` folder of that release: git clone --depth 1 --branch v{TRANSFORMERS_VERSION.base_version} "
    "https://github.com/huggingface/transformers, and set HF_SEQ2SEQ_TRANSFORMERS_TESTS to the folder that holds "
    "`tests/`)",
    module_level=True,
)
# transformers' tests import themselves as the package `tests` (`from tests.exporters...`): their folder goes first.
sys.path.insert(0, TRANSFORMERS_TESTS)

from tests.generation.test_utils import GenerationTesterMixin  # noqa: E402
from tests.test_configuration_common import ConfigTester  # noqa: E402
from tests import test_modeling_common  # noqa: E402
from tests.test_modeling_common import ModelTesterMixin, ids_tensor  # noqa: E402
from transformers.models.auto import modeling_auto  # noqa: E402

from hf_seq2seq import (  # noqa: E402
    HFSeq2SeqConfig,
    HFSeq2SeqForConditionalGeneration,
    HFSeq2SeqForQuestionAnswering,
    HFSeq2SeqModel,
)
from hf_seq2seq.modeling_hf_seq2seq import HFSeq2SeqDecoder, HFSeq2SeqEncoder  # noqa: E402


class HFSeq2SeqModelTester:
    """A tiny config and its inputs, with the attribute names the mixins read (those of MarianModelTester)."""

    def __init__(self, parent, batch_size=13, seq_length=7, vocab_size=99, hidden_size=16, num_hidden_layers=2,
                 num_attention_heads=4, intermediate_size=4, is_training=True):
        self.parent = parent
        self.batch_size = batch_size
        self.seq_length = seq_length
        self.is_training = is_training
        self.vocab_size = vocab_size
        self.hidden_size = hidden_size
        self.num_hidden_layers = num_hidden_layers
        self.num_attention_heads = num_attention_heads
        self.intermediate_size = intermediate_size
        self.max_position_embeddings = 100
        self.bos_token_id, self.pad_token_id, self.eos_token_id = 0, 1, 2
        self.decoder_start_token_id = 0

    def get_config(self) -> HFSeq2SeqConfig:
        return HFSeq2SeqConfig(
            vocab_size=self.vocab_size,
            d_model=self.hidden_size,
            encoder_layers=self.num_hidden_layers,
            decoder_layers=self.num_hidden_layers,
            encoder_attention_heads=self.num_attention_heads,
            decoder_attention_heads=self.num_attention_heads,
            encoder_ffn_dim=self.intermediate_size,
            decoder_ffn_dim=self.intermediate_size,
            activation_function="gelu",
            dropout=0.1,
            attention_dropout=0.1,
            max_position_embeddings=self.max_position_embeddings,
            bos_token_id=self.bos_token_id,
            pad_token_id=self.pad_token_id,
            eos_token_id=self.eos_token_id,
            decoder_start_token_id=self.decoder_start_token_id,
        )

    def prepare_config_and_inputs(self):
        input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(3)
        input_ids[:, -1] = self.eos_token_id
        # A decoder prefix of real tokens, as MarianModelTester's: with a <pad> inside it, generate() puts
        # decoder_start in front of the ids and of the mask, while the cache-continuation test pads the mask on the
        # right only, so the two calls it compares would see the pad at different positions.
        decoder_input_ids = ids_tensor([self.batch_size, self.seq_length], self.vocab_size).clamp(3)
        attention_mask = input_ids.ne(self.pad_token_id)
        inputs = {
            "input_ids": input_ids,
            "decoder_input_ids": decoder_input_ids,
            "attention_mask": attention_mask,
            "decoder_attention_mask": decoder_input_ids.ne(self.pad_token_id),
        }
        return self.get_config(), inputs

    def prepare_config_and_inputs_for_common(self):
        return self.prepare_config_and_inputs()


class HFSeq2SeqModelTest(ModelTesterMixin, GenerationTesterMixin, unittest.TestCase):
    all_model_classes = (HFSeq2SeqModel, HFSeq2SeqForConditionalGeneration, HFSeq2SeqForQuestionAnswering)
    all_generative_model_classes = (HFSeq2SeqForConditionalGeneration,)
    is_encoder_decoder = True

    @classmethod
    def setUpClass(cls):
        # The mixins know what a class is for (a base model, which they do not train; a seq2seq LM, which gets
        # labels) from the names in transformers' Auto mappings, where a model of the library is listed. Ours is
        # listed there for the duration of this class, the way it would be if it lived in transformers.
        cls._listed = [
            mock.patch.dict(modeling_auto.MODEL_MAPPING_NAMES, {"hf_seq2seq": "HFSeq2SeqModel"}),
            mock.patch.dict(
                modeling_auto.MODEL_FOR_SEQ_TO_SEQ_CAUSAL_LM_MAPPING_NAMES,
                {"hf_seq2seq": "HFSeq2SeqForConditionalGeneration"},
            ),
            mock.patch.dict(
                modeling_auto.MODEL_FOR_QUESTION_ANSWERING_MAPPING_NAMES, {"hf_seq2seq": "HFSeq2SeqForQuestionAnswering"}
            ),
        ]
        # transformers 5.25 dropped `PreTrainedModel._is_stateful`; the older generation tests still read it (see the
        # module docstring). Put back the value 5.24 gave every non-recurrent model, for this class only.
        if not hasattr(PreTrainedModel, "_is_stateful"):
            cls._listed.append(mock.patch.object(PreTrainedModel, "_is_stateful", False, create=True))
        for patch in cls._listed:
            patch.start()

    @classmethod
    def tearDownClass(cls):
        for patch in cls._listed:
            patch.stop()

    def setUp(self):
        test_modeling_common.global_rng.seed(0)  # the mixins' random inputs come from this generator
        self.model_tester = HFSeq2SeqModelTester(self)
        self.config_tester = ConfigTester(self, config_class=HFSeq2SeqConfig, d_model=16)

    def test_config(self):
        self.config_tester.run_common_tests()

    def test_encoder_decoder_model_standalone(self):
        """The encoder and decoder saved and loaded on their own give the outputs they give inside the model."""
        config, inputs = self.model_tester.prepare_config_and_inputs()
        model = HFSeq2SeqModel(config).eval()
        outputs = model(**inputs)
        with tempfile.TemporaryDirectory() as folder:
            model.get_encoder().save_pretrained(folder)
            encoder = HFSeq2SeqEncoder.from_pretrained(folder).eval()
        encoded = encoder(inputs["input_ids"], attention_mask=inputs["attention_mask"]).last_hidden_state
        torch.testing.assert_close(encoded, outputs.encoder_last_hidden_state)
        with tempfile.TemporaryDirectory() as folder:
            model.get_decoder().save_pretrained(folder)
            decoder = HFSeq2SeqDecoder.from_pretrained(folder).eval()
        decoded = decoder(
            input_ids=inputs["decoder_input_ids"], attention_mask=inputs["decoder_attention_mask"],
            encoder_hidden_states=encoded, encoder_attention_mask=inputs["attention_mask"],
        ).last_hidden_state
        torch.testing.assert_close(decoded, outputs.last_hidden_state)
