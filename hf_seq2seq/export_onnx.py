"""Export a trained model to ONNX, in the layout Hugging Face's optimum and transformers.js read.

    hf-seq2seq export-onnx --model outputs/en-fr --output outputs/en-fr-onnx [--quantize int8]

A generation model becomes four files beside its config, generation config and tokenizer:

- `encoder_model.onnx`: input_ids, attention_mask -> last_hidden_state;
- `decoder_model.onnx`, the first step: input_ids, encoder_attention_mask, encoder_hidden_states -> logits and the
  `present.{i}.decoder.{key,value}` / `present.{i}.encoder.{key,value}` of every layer;
- `decoder_with_past_model.onnx`, every later step: the same with `past_key_values.{i}...` instead of the encoder
  output -> logits and the `present.{i}.decoder...` (past and this step);
- `decoder_model_merged.onnx`, both in one file (an `If` on `use_cache_branch`, one copy of the weights), which is
  what transformers.js runs.

Cache tensors are (batch, heads, length, head_dim) with heads and head_dim fixed. A classifier becomes one
`model.onnx`: input_ids, attention_mask -> logits; an extractive reader, the same with start_logits and end_logits. Exported with PyTorch's own exporter (`torch.onnx.export`,
dynamo path) with the eager attention, which runs everywhere ONNX runs; batch and lengths are dynamic.

`onnx`, `onnxscript` and `onnxruntime` are optional: `pip install "hf_seq2seq[onnx]"`.
"""

import copy
import json
import os
import shutil
import tempfile
import warnings

import torch
from torch import nn

try:
    import onnx
    import onnxruntime
    from onnx import TensorProto, helper
except ImportError as error:
    raise ImportError(
        'ONNX export needs onnx, onnxscript and onnxruntime: pip install "hf_seq2seq[onnx]" '
        "(or pip install onnx onnxscript onnxruntime)."
    ) from error

from transformers import AutoConfig, AutoTokenizer, DynamicCache, EncoderDecoderCache

import hf_seq2seq
from hf_seq2seq import export_cache

ENCODER, DECODER, DECODER_WITH_PAST, DECODER_MERGED = (
    "encoder_model.onnx", "decoder_model.onnx", "decoder_with_past_model.onnx", "decoder_model_merged.onnx",
)
CLASSIFIER = "model.onnx"
OPSET = 18
COPIED_FILES = ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json",
                "special_tokens_map.json")


class ExportError(ValueError):
    """A model folder that cannot be exported, with what is missing."""


def cache_names(num_layers: int, prefix: str, parts=("decoder", "encoder")) -> list[str]:
    """`past_key_values.{i}.decoder.key`, ... in optimum's order: per layer, self-attention key and value, then
    cross-attention key and value."""
    return [f"{prefix}.{i}.{part}.{kv}" for i in range(num_layers) for part in parts for kv in ("key", "value")]


# --- the modules that are traced ----------------------------------------------------------------------------------


class EncoderForExport(nn.Module):
    def __init__(self, model):
        super().__init__()
        self.encoder = model.get_encoder()

    def forward(self, input_ids, attention_mask):
        return self.encoder(input_ids=input_ids, attention_mask=attention_mask).last_hidden_state


class DecoderForExport(nn.Module):
    """One decoder step with the cache as flat tensors (optimum's names and order). Without a past, the step is the
    first: it projects the encoder output to the cross-attention keys/values and returns them with the self-attention
    ones. With a past, the cross-attention keys/values come from it and only the self-attention ones are returned."""

    def __init__(self, model, with_past: bool):
        super().__init__()
        self.config, self.decoder, self.lm_head, self.with_past = model.config, model.get_decoder(), model.lm_head, with_past

    def forward(self, input_ids, encoder_attention_mask, inputs: tuple):
        layers = self.config.decoder_layers
        cache = EncoderDecoderCache(DynamicCache(config=self.config), DynamicCache(config=self.config))
        if self.with_past:
            for i in range(layers):
                self_key, self_value, cross_key, cross_value = inputs[4 * i : 4 * i + 4]
                cache.self_attention_cache.update(self_key, self_value, i)
                cache.cross_attention_cache.update(cross_key, cross_value, i)
                cache.is_updated[i] = True
            # The cross-attention reads its keys/values from the cache; the decoder takes the encoder output's
            # shape (batch, source length) for the mask from this tensor, of that shape, and nothing else.
            encoder_hidden_states = inputs[2][:, 0]
        else:
            (encoder_hidden_states,) = inputs
        hidden_states = self.decoder(
            input_ids=input_ids, encoder_hidden_states=encoder_hidden_states,
            encoder_attention_mask=encoder_attention_mask, cache=cache, use_cache=True,
        ).last_hidden_state
        presents = []
        for i in range(layers):
            presents += [cache.self_attention_cache.layers[i].keys, cache.self_attention_cache.layers[i].values]
            if not self.with_past:
                presents += [cache.cross_attention_cache.layers[i].keys, cache.cross_attention_cache.layers[i].values]
        return (self.lm_head(hidden_states), *presents)


# The heads exported as one `model.onnx` (input_ids, attention_mask -> these outputs), as optimum exports them.
HEAD_OUTPUTS = {
    "HFSeq2SeqForSequenceClassification": ("logits",),
    "HFSeq2SeqForQuestionAnswering": ("start_logits", "end_logits"),
}


class HeadForExport(nn.Module):
    """A classifier or an extractive reader: input_ids, attention_mask -> its `HEAD_OUTPUTS`."""

    def __init__(self, model):
        super().__init__()
        self.model, self.outputs = model, HEAD_OUTPUTS[type(model).__name__]

    def forward(self, input_ids, attention_mask):
        outputs = self.model(input_ids=input_ids, attention_mask=attention_mask)
        return tuple(getattr(outputs, name) for name in self.outputs)


# --- export -------------------------------------------------------------------------------------------------------


def _export(module: nn.Module, args: tuple, input_names: list[str], output_names: list[str], dynamic: dict, path: str):
    """torch.onnx.export (dynamo) of `module` on example `args`; `dynamic` maps input names to {axis: name}."""
    batch = torch.export.Dim("batch", min=1, max=1024)
    dims = {}

    def dim(name):
        if name == "batch":
            return batch
        return dims.setdefault(name, torch.export.Dim(name, min=1, max=4096))

    shapes = [{axis: dim(name) for axis, name in dynamic.get(input_name, {}).items()} for input_name in input_names]
    # The decoder takes its third argument as a tuple (the encoder output, or the past): shapes follow that nesting.
    dynamic_shapes = (*shapes[:2], tuple(shapes[2:])) if isinstance(args[-1], tuple) else tuple(shapes)
    import logging

    # (the exporter logs a warning for every torchvision operator it cannot register when torchvision is absent)
    logging.getLogger("torch.onnx._internal.exporter._registration").setLevel(logging.ERROR)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            module, args, input_names=input_names, output_names=output_names, dynamic_shapes=dynamic_shapes,
            opset_version=OPSET, dynamo=True, external_data=False, verbose=False,
        )
    program.save(path)


def check_model_folder(model_dir: str) -> None:
    """A folder with a config and safetensors weights of a model this package knows, or a one-line ExportError."""
    if not os.path.isdir(model_dir):
        raise ExportError(f"No model folder at {model_dir!r}: give the output folder of train.py.")
    for name in ("config.json", "model.safetensors"):
        if not os.path.isfile(os.path.join(model_dir, name)):
            raise ExportError(f"{model_dir!r} has no {name}: give a folder written by train.py or save_pretrained.")
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    architecture = (config.get("architectures") or [None])[0]
    if config.get("model_type") != "hf_seq2seq" or not hasattr(hf_seq2seq, architecture or ""):
        raise ExportError(
            f"{model_dir!r} holds a {config.get('model_type')!r} model ({architecture}): the ONNX export knows "
            f"hf_seq2seq's HFSeq2SeqForConditionalGeneration, HFSeq2SeqForSequenceClassification and "
            "HFSeq2SeqForQuestionAnswering."
        )


def load_for_export(model_dir: str):
    check_model_folder(model_dir)
    architecture = AutoConfig.from_pretrained(model_dir).architectures[0]
    # The eager attention is the paper's formula in plain ONNX operators, which every ONNX runtime runs.
    return getattr(hf_seq2seq, architecture).from_pretrained(model_dir, attn_implementation="eager").eval()


def export_onnx(model_dir: str, output_dir: str, quantize: str | None = None) -> str:
    """Write the ONNX files of the model in `model_dir` (see the module docstring) with its config, generation
    config and tokenizer to `output_dir`; `quantize="int8"` adds `*_quantized.onnx` files (onnxruntime's dynamic
    quantisation). Returns `output_dir`."""
    if quantize not in (None, "int8"):
        raise ExportError(f"Unknown quantisation {quantize!r}: the export knows 'int8'.")
    model = load_for_export(model_dir)
    os.makedirs(output_dir, exist_ok=True)
    ids = torch.tensor([[5, 6, 7, 8, 9, 2], [10, 11, 12, 2, 1, 1]])  # sizes >= 2 so that nothing is specialised
    mask = (ids != model.config.pad_token_id).long()
    if type(model).__name__ in HEAD_OUTPUTS:
        head = HeadForExport(model)
        _export(head, (ids, mask), ["input_ids", "attention_mask"], list(head.outputs),
                {"input_ids": {0: "batch", 1: "source"}, "attention_mask": {0: "batch", 1: "source"}},
                os.path.join(output_dir, CLASSIFIER))
        files = [CLASSIFIER]
    else:
        files = _export_generation_model(model, ids, mask, output_dir)
    for name in COPIED_FILES:
        if os.path.isfile(os.path.join(model_dir, name)):
            shutil.copy(os.path.join(model_dir, name), output_dir)
    if quantize == "int8":
        for name in files:
            if name != DECODER_MERGED:
                quantize_int8(os.path.join(output_dir, name))
        if DECODER_MERGED in files:
            # The merged decoder's weights live in its main graph and are read inside the If's branches, where the
            # quantiser does not look: the quantised decoders are merged instead, as the float ones were.
            merge_decoders(*(os.path.join(output_dir, quantized_name(name)) for name in (DECODER, DECODER_WITH_PAST, DECODER_MERGED)))
    return output_dir


def _export_generation_model(model, ids, mask, output_dir: str) -> list[str]:
    config = model.config
    layers = config.decoder_layers
    source = {0: "batch", 1: "source"}
    _export(EncoderForExport(model), (ids, mask), ["input_ids", "attention_mask"], ["last_hidden_state"],
            {"input_ids": source, "attention_mask": source}, os.path.join(output_dir, ENCODER))

    with torch.no_grad():
        encoder_states = model.get_encoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    decoder_ids = torch.tensor([[config.decoder_start_token_id, 5, 6], [config.decoder_start_token_id, 7, 8]])
    presents_first = cache_names(layers, "present")
    _export(DecoderForExport(model, with_past=False), (decoder_ids, mask, (encoder_states,)),
            ["input_ids", "encoder_attention_mask", "encoder_hidden_states"], ["logits", *presents_first],
            {"input_ids": {0: "batch", 1: "target"}, "encoder_attention_mask": source,
             "encoder_hidden_states": source}, os.path.join(output_dir, DECODER))

    with torch.no_grad():
        past = DecoderForExport(model, with_past=False)(decoder_ids, mask, (encoder_states,))[1:]
    past_names = cache_names(layers, "past_key_values")
    past_axes = {name: {0: "batch", 2: "source" if ".encoder." in name else "past"} for name in past_names}
    _export(DecoderForExport(model, with_past=True), (decoder_ids[:, -1:], mask, tuple(past)),
            ["input_ids", "encoder_attention_mask", *past_names], ["logits", *cache_names(layers, "present", ("decoder",))],
            {"input_ids": {0: "batch"}, "encoder_attention_mask": source, **past_axes},
            os.path.join(output_dir, DECODER_WITH_PAST))
    merge_decoders(os.path.join(output_dir, DECODER), os.path.join(output_dir, DECODER_WITH_PAST),
                   os.path.join(output_dir, DECODER_MERGED))
    return [ENCODER, DECODER, DECODER_WITH_PAST, DECODER_MERGED]


# --- the browser: transformers.js -----------------------------------------------------------------------------------

WEB_SUBFOLDER = "onnx"


def export_for_web(model_dir: str, output_dir: str) -> str:
    """The folder transformers.js (the browser, Node) loads as a Marian-type translation model:
    `onnx/encoder_model.onnx` and `onnx/decoder_model_merged.onnx` with their `_quantized` (int8) variants — what
    transformers.js runs for `dtype: "fp32"` and `dtype: "q8"`, the default of its WebAssembly backend — beside a
    `config.json` that names the model type "marian" (transformers.js has no class of ours; Marian's is the same
    architecture and reads the same fields: d_model, encoder/decoder_layers, encoder/decoder_attention_heads), the
    generation config and the tokenizer (its class named as transformers.js knows it). Returns `output_dir`.

        const translator = await pipeline("translation", "/path/to/output_dir", { dtype: "fp32" });"""
    check_model_folder(model_dir)
    with open(os.path.join(model_dir, "config.json")) as f:
        config = json.load(f)
    if config["architectures"][0] != "HFSeq2SeqForConditionalGeneration":
        raise ExportError(f"{model_dir!r} holds a {config['architectures'][0]}: the transformers.js bundle is for "
                          "translation, summarisation and question-answering models (HFSeq2SeqForConditionalGeneration).")
    onnx_dir = os.path.join(output_dir, WEB_SUBFOLDER)
    os.makedirs(onnx_dir, exist_ok=True)
    with tempfile.TemporaryDirectory() as staging:
        export_onnx(model_dir, staging, quantize="int8")
        for name in (ENCODER, DECODER_MERGED):  # transformers.js runs the merged decoder only
            for file in (name, quantized_name(name)):
                shutil.move(os.path.join(staging, file), os.path.join(onnx_dir, file))
        for name in ("generation_config.json", "tokenizer.json", "special_tokens_map.json"):
            if os.path.isfile(os.path.join(staging, name)):
                shutil.move(os.path.join(staging, name), os.path.join(output_dir, name))
    web_config = {**config, "model_type": "marian", "architectures": ["MarianMTModel"], "is_encoder_decoder": True}
    for name in ("auto_map", "custom_pipelines"):  # the Python remote code does not come along
        web_config.pop(name, None)
    with open(os.path.join(output_dir, "config.json"), "w") as f:
        json.dump(web_config, f, indent=2)
    with open(os.path.join(model_dir, "tokenizer_config.json")) as f:
        tokenizer_config = json.load(f)
    # transformers 5 writes its generic fast tokenizer as "TokenizersBackend", a name transformers.js does not know;
    # decoding must keep the text as generate()'s batch_decode gives it (no clean-up of spaces before punctuation).
    tokenizer_config |= {"tokenizer_class": "PreTrainedTokenizerFast", "clean_up_tokenization_spaces": False}
    with open(os.path.join(output_dir, "tokenizer_config.json"), "w") as f:
        json.dump(tokenizer_config, f, indent=2)
    return output_dir


# --- the merged decoder -------------------------------------------------------------------------------------------


def _local_names(graph) -> set[str]:
    names = {init.name for init in graph.initializer}
    for node in graph.node:
        names.update(node.output)
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs] if attribute.type in (5, 10) else []:
                names |= _local_names(subgraph) | {i.name for i in subgraph.input}
    return names - {""}


def _rename(graph, rename: dict) -> None:
    """Rename tensors in `graph` and its subgraphs (a name not in `rename` is kept)."""
    for node in graph.node:
        node.input[:] = [rename.get(name, name) for name in node.input]
        node.output[:] = [rename.get(name, name) for name in node.output]
        for attribute in node.attribute:
            for subgraph in [attribute.g, *attribute.graphs] if attribute.type in (5, 10) else []:
                _rename(subgraph, rename)
    for proto in [*graph.initializer, *graph.output, *graph.value_info]:
        proto.name = rename.get(proto.name, proto.name)


def _branch(model, prefix: str, outputs: list[str], shared: dict, extra_nodes=()) -> "onnx.GraphProto":
    """The graph of `model` as an `If` branch: no inputs (its inputs are the merged model's), its tensors renamed
    with `prefix` so that the two branches cannot clash, its weights moved to `shared` (one copy of equal tensors),
    and its outputs those named in `outputs`, in that order."""
    graph = model.graph
    inputs = {i.name for i in graph.input}
    _rename(graph, {name: prefix + name for name in _local_names(graph) - inputs})
    for node in graph.node:
        node.name = prefix + node.name
    for init in list(graph.initializer):
        key = (init.data_type, tuple(init.dims), onnx.numpy_helper.to_array(init).tobytes())
        if key not in shared:
            shared[key] = onnx.TensorProto()
            shared[key].CopyFrom(init)
            shared[key].name = f"shared_{len(shared)}.{init.name.removeprefix(prefix)}"
        _rename(graph, {init.name: shared[key].name})
    del graph.initializer[:]
    graph.node.extend(extra_nodes)
    by_name = {o.name.removeprefix(prefix): o for o in graph.output}
    branch_outputs = []
    for name in outputs:
        if name in by_name:
            branch_outputs.append(by_name[name])
        else:  # made by `extra_nodes`
            branch_outputs.append(helper.make_empty_tensor_value_info(prefix + name))
    del graph.output[:]
    graph.output.extend(branch_outputs)
    del graph.input[:]
    del graph.value_info[:]
    return graph


def merge_decoders(decoder_path: str, with_past_path: str, merged_path: str) -> None:
    """optimum's `decoder_model_merged.onnx`: both decoders in one model, one copy of their weights, chosen by the
    boolean input `use_cache_branch` (an `If`). Its inputs are the union of theirs (the first step gets an empty
    past; later steps any encoder_hidden_states of the right batch and width, unread) and its outputs the first
    step's: the with-past branch passes the cross-attention past through as its present."""
    first, later = onnx.load(decoder_path), onnx.load(with_past_path)
    outputs = [o.name for o in first.graph.output]
    # Copies: making the branches renames the graphs' own protos.
    graph_inputs = [copy.deepcopy(i) for i in first.graph.input]
    graph_inputs += [copy.deepcopy(i) for i in later.graph.input if i.name.startswith("past_key_values.")]
    output_info = [copy.deepcopy(o) for o in first.graph.output]
    for info in output_info:  # the branches' lengths differ (target, past + 1): the merged model names neither
        dims = info.type.tensor_type.shape.dim
        axis = 1 if info.name == "logits" else 2
        if ".decoder." in info.name or info.name == "logits":
            dims[axis].Clear()
            dims[axis].dim_param = "decoder_sequence_length" if info.name == "logits" else "present_decoder_sequence_length"
    shared = {}
    pass_through = [
        helper.make_node("Identity", [name.replace("present", "past_key_values")], ["later/" + name])
        for name in outputs if ".encoder." in name
    ]
    then_branch = _branch(later, "later/", outputs, shared, pass_through)
    else_branch = _branch(first, "first/", outputs, shared)
    then_branch.name, else_branch.name = "with_past", "first_step"
    use_cache_branch = helper.make_tensor_value_info("use_cache_branch", TensorProto.BOOL, [1])
    merged_graph = helper.make_graph(
        [helper.make_node("If", ["use_cache_branch"], outputs, then_branch=then_branch, else_branch=else_branch)],
        "decoder_merged", [*graph_inputs, use_cache_branch], output_info, initializer=list(shared.values()),
    )
    functions = {(f.domain, f.name): f for f in [*first.functions, *later.functions]}
    merged = helper.make_model(merged_graph, opset_imports=first.opset_import, functions=list(functions.values()))
    merged.ir_version = first.ir_version
    onnx.checker.check_model(merged)
    onnx.save(merged, merged_path)


def quantized_name(name: str) -> str:
    """`*_quantized.onnx`, the name optimum and transformers.js look for."""
    return name.removesuffix(".onnx") + "_quantized.onnx"


def quantize_int8(path: str) -> str:
    """onnxruntime's dynamic int8 quantisation of the model at `path` (int8 weights, activations quantised on the fly),
    written beside it under `quantized_name`."""
    import logging

    from onnxruntime.quantization import QuantType, quantize_dynamic

    output = quantized_name(path)
    root = logging.getLogger()
    level, root.level = root.level, logging.ERROR  # its advice to run "pre-processing" is for static quantisation
    try:
        quantize_dynamic(path, output, weight_type=QuantType.QInt8)
    finally:
        root.setLevel(level)
    return output


# --- the ONNX Runtime engine --------------------------------------------------------------------------------------


def default_session_options() -> "onnxruntime.SessionOptions":
    """As many threads as torch uses, and no spinning: ONNX Runtime's workers otherwise spin after each call, on the
    cores where generate()'s own Python work between two decoder calls (about half of the time) has to run. Measured
    on 2 cores (bench/README.md): 1.2-1.7x faster than spinning, every batch size and length."""
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads, options.inter_op_num_threads = torch.get_num_threads(), 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


class ORTEncoder(nn.Module):
    """The encoder session as generate() calls an encoder: input_ids, attention_mask -> BaseModelOutput."""

    def __init__(self, session):
        super().__init__()
        self.session = session

    def forward(self, input_ids, attention_mask=None, **kwargs):
        from transformers.modeling_outputs import BaseModelOutput

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        (states,) = self.session.run(None, {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})
        return BaseModelOutput(last_hidden_state=torch.from_numpy(states))


class ORTModelForSeq2SeqLM(hf_seq2seq.HFSeq2SeqForConditionalGeneration):
    """An exported model run by ONNX Runtime behind transformers' `generate()`, as optimum's ORTModelForSeq2SeqLM
    does: greedy, beam search, sampling, streamers and the source-length bound are the PyTorch model's own code; only
    the forward is ONNX Runtime's (the encoder session, then the merged decoder, whose presents fill generate()'s
    cache). It holds no PyTorch weights.

        model = ORTModelForSeq2SeqLM.from_export("outputs/en-fr-onnx")   # written by export_onnx
        model.generate(**tokenizer(["The cat sleeps."], return_tensors="pt"), num_beams=4)
    """

    def __init__(self, config, export_dir: str, file_suffix: str = "", session_options=None):
        transformers_init = super(hf_seq2seq.HFSeq2SeqForConditionalGeneration, self).__init__
        transformers_init(config)  # PreTrainedModel's: no layers are built
        providers = ["CPUExecutionProvider"]
        session_options = session_options or default_session_options()

        def session(name):
            path = os.path.join(export_dir, name.replace(".onnx", f"{file_suffix}.onnx"))
            return onnxruntime.InferenceSession(path, session_options, providers=providers)

        self.encoder_session = ORTEncoder(session(ENCODER))
        self.decoder_session = session(DECODER_MERGED)
        self.cache_names = cache_names(config.decoder_layers, "past_key_values")
        self.past_shape = (config.decoder_attention_heads, 0, config.d_model // config.decoder_attention_heads)

    @classmethod
    def from_export(cls, export_dir: str, quantized: bool = False, session_options=None):
        from transformers import GenerationConfig

        for name in ("config.json", ENCODER, DECODER_MERGED):
            if not os.path.isfile(os.path.join(export_dir, name)):
                raise ExportError(f"{export_dir!r} has no {name}: write it with `hf-seq2seq export-onnx`.")
        model = cls(AutoConfig.from_pretrained(export_dir), export_dir, "_quantized" if quantized else "", session_options)
        if os.path.isfile(os.path.join(export_dir, "generation_config.json")):
            model.generation_config = GenerationConfig.from_pretrained(export_dir)
        return model.eval()

    def post_init(self):  # no weights to initialise or tie
        pass

    def get_encoder(self):
        return self.encoder_session

    def get_input_embeddings(self):
        return None

    def get_output_embeddings(self):
        return None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    @property
    def dtype(self) -> torch.dtype:
        return torch.float32

    def forward(self, input_ids=None, attention_mask=None, decoder_input_ids=None, encoder_outputs=None, cache=None,
                use_cache=None, **kwargs):
        from transformers.modeling_outputs import Seq2SeqLMOutput

        if encoder_outputs is None:
            encoder_outputs = self.encoder_session(input_ids, attention_mask)
        encoder_states = encoder_outputs[0]
        if attention_mask is None:
            attention_mask = torch.ones(encoder_states.shape[:2], dtype=torch.long)
        past_length = cache.get_seq_length() if cache is not None else 0
        feeds = {"input_ids": decoder_input_ids, "encoder_attention_mask": attention_mask,
                 "encoder_hidden_states": encoder_states, "use_cache_branch": torch.tensor([past_length > 0])}
        if past_length == 0:
            empty = torch.zeros(decoder_input_ids.shape[0], *self.past_shape)  # the first step has no past
            feeds.update({name: empty for name in self.cache_names})
        else:
            for i in range(self.config.decoder_layers):
                own, cross = cache.self_attention_cache.layers[i], cache.cross_attention_cache.layers[i]
                for name, tensor in zip(self.cache_names[4 * i : 4 * i + 4], (own.keys, own.values, cross.keys, cross.values)):
                    feeds[name] = tensor
        logits, *presents = self.decoder_session.run(None, {k: v.contiguous().numpy() for k, v in feeds.items()})
        if cache is not None:
            for i in range(self.config.decoder_layers):
                key, value, cross_key, cross_value = (torch.from_numpy(t) for t in presents[4 * i : 4 * i + 4])
                if past_length == 0:
                    cache.self_attention_cache.update(key, value, i)
                    cache.cross_attention_cache.update(cross_key, cross_value, i)
                    cache.is_updated[i] = True
                else:  # the present holds the past and this step: it becomes the cache (no second concatenation)
                    layer = cache.self_attention_cache.layers[i]
                    layer.keys, layer.values = key, value
        return Seq2SeqLMOutput(logits=torch.from_numpy(logits), cache=cache,
                               encoder_last_hidden_state=encoder_states)


class ORTModelForSequenceClassification(hf_seq2seq.HFSeq2SeqForSequenceClassification):
    """An exported classifier run by ONNX Runtime: `model(input_ids, attention_mask).logits`, as the PyTorch class."""

    def __init__(self, config, export_dir: str, file_suffix: str = "", session_options=None):
        transformers_init = super(hf_seq2seq.HFSeq2SeqForSequenceClassification, self).__init__
        transformers_init(config)
        path = os.path.join(export_dir, CLASSIFIER.replace(".onnx", f"{file_suffix}.onnx"))
        self.session = onnxruntime.InferenceSession(path, session_options or default_session_options(),
                                                    providers=["CPUExecutionProvider"])

    @classmethod
    def from_export(cls, export_dir: str, quantized: bool = False, session_options=None):
        for name in ("config.json", CLASSIFIER):
            if not os.path.isfile(os.path.join(export_dir, name)):
                raise ExportError(f"{export_dir!r} has no {name}: write it with `hf-seq2seq export-onnx`.")
        return cls(AutoConfig.from_pretrained(export_dir), export_dir, "_quantized" if quantized else "", session_options).eval()

    def post_init(self):
        pass

    def get_input_embeddings(self):
        return None

    @property
    def device(self) -> torch.device:
        return torch.device("cpu")

    def forward(self, input_ids=None, attention_mask=None, **kwargs):
        from transformers.modeling_outputs import Seq2SeqSequenceClassifierOutput

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        (logits,) = self.session.run(None, {"input_ids": input_ids.numpy(), "attention_mask": attention_mask.numpy()})
        return Seq2SeqSequenceClassifierOutput(logits=torch.from_numpy(logits))


# --- one flag: an export cached beside the model, rebuilt when the model changes --------------------------------------

EXPORT_FOLDER = "onnxruntime"


def cached_onnx_export(model_dir: str, quantized: bool = False) -> str:
    """The ONNX export of a model folder, made on first use and again whenever the weights change, kept in
    `<model_dir>/onnxruntime/` (or the user cache for a read-only model folder: `hf_seq2seq.export_cache`).
    `quantized` asks for the int8 files too (added to an export that lacks them)."""
    check_model_folder(model_dir)
    with open(os.path.join(model_dir, "config.json")) as f:
        one_file = json.load(f)["architectures"][0] in HEAD_OUTPUTS
    required = [CLASSIFIER] if one_file else [ENCODER, DECODER_MERGED]
    if quantized:
        required += [quantized_name(name) for name in required]
    versions = {"torch": torch.__version__, "onnx": onnx.__version__, "onnxruntime": onnxruntime.__version__}
    return export_cache.cached_export(
        model_dir, EXPORT_FOLDER, lambda staging: export_onnx(model_dir, staging, "int8" if quantized else None),
        versions, required,
    )


def onnxruntime_model(model_dir: str, quantized: bool = False, session_options=None):
    """The model in `model_dir` run by ONNX Runtime from its cached export (see `cached_onnx_export`): an
    `ORTModelForSeq2SeqLM` (generate() as usual) or an `ORTModelForSequenceClassification`."""
    with open(os.path.join(model_dir, "config.json")) as f:
        architecture = json.load(f)["architectures"][0]
    engines = {"HFSeq2SeqForConditionalGeneration": ORTModelForSeq2SeqLM,
               "HFSeq2SeqForSequenceClassification": ORTModelForSequenceClassification}
    if architecture not in engines:
        raise ExportError(f"{model_dir!r} holds a {architecture}: the ONNX Runtime engine runs generation models and "
                          "classifiers (`hf-seq2seq export-onnx` exports it for other runtimes).")
    export_dir = cached_onnx_export(model_dir, quantized)
    model_class = engines[architecture]
    model = model_class.from_export(export_dir, quantized, session_options)
    model.name_or_path = model_dir
    return model
