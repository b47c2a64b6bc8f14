"""hf_seq2seq: the encoder–decoder Transformer of Vaswani et al. (2017) as a first-class transformers model.

Importing the package registers the model with transformers' Auto classes, and marks its classes so that
`save_pretrained` / `push_to_hub` copy the configuration and modeling files beside the weights: the saved folder
then loads with `trust_remote_code=True` where this package is not installed.
"""

from transformers import (
    AutoConfig,
    AutoModel,
    AutoModelForQuestionAnswering,
    AutoModelForSeq2SeqLM,
    AutoModelForSequenceClassification,
)

from .configuration_hf_seq2seq import PRESETS, HFSeq2SeqConfig
from .modeling_hf_seq2seq import (
    HFSeq2SeqForConditionalGeneration,
    HFSeq2SeqForQuestionAnswering,
    HFSeq2SeqForSequenceClassification,
    HFSeq2SeqModel,
    HFSeq2SeqPreTrainedModel,
)

__version__ = "0.1.0"

AutoConfig.register(HFSeq2SeqConfig.model_type, HFSeq2SeqConfig, exist_ok=True)
AutoModel.register(HFSeq2SeqConfig, HFSeq2SeqModel, exist_ok=True)
AutoModelForSeq2SeqLM.register(HFSeq2SeqConfig, HFSeq2SeqForConditionalGeneration, exist_ok=True)
AutoModelForSequenceClassification.register(HFSeq2SeqConfig, HFSeq2SeqForSequenceClassification, exist_ok=True)
AutoModelForQuestionAnswering.register(HFSeq2SeqConfig, HFSeq2SeqForQuestionAnswering, exist_ok=True)

HFSeq2SeqConfig.register_for_auto_class()
HFSeq2SeqModel.register_for_auto_class("AutoModel")
HFSeq2SeqForConditionalGeneration.register_for_auto_class("AutoModelForSeq2SeqLM")
HFSeq2SeqForSequenceClassification.register_for_auto_class("AutoModelForSequenceClassification")
HFSeq2SeqForQuestionAnswering.register_for_auto_class("AutoModelForQuestionAnswering")

__all__ = [
    "PRESETS",
    "HFSeq2SeqConfig",
    "HFSeq2SeqPreTrainedModel",
    "HFSeq2SeqModel",
    "HFSeq2SeqForConditionalGeneration",
    "HFSeq2SeqForSequenceClassification",
    "HFSeq2SeqForQuestionAnswering",
]
