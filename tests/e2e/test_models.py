"""Zoo models end to end: torch -> ONNX -> xgen's compiled C, against onnxruntime on the same ONNX.

Every model is built and exported once per session (xdist_group keeps a model's tests on one
worker). The oracle (oracle.py) also checks that the reference's outputs depend on the input by
far more than the tolerance, so that a wrong compiler cannot pass by outputting the bias.
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import pytest
from oracle import (
    RTOL,
    SENSITIVITY,
    Outputs,
    assert_close,
    assert_input_matters,
    mutants,
    onnxruntime_outputs,
    relative_error,
    zeroed,
)

import xgen
from xgen import zoo

pytestmark = pytest.mark.model


@functools.cache
def built(name: str):  # -> (module, example inputs), kept for the session
    entry = zoo.get(name)
    if not entry.available():
        pytest.skip(f"{name} needs `pip install {entry.requires}`")
    return entry.build()


@functools.cache
def exported(name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The zoo model as ONNX, and its example inputs by input name."""
    return zoo.get(name).export(built(name))


@functools.cache
def reference(name: str) -> tuple[Outputs, Outputs]:
    """onnxruntime's outputs for the example inputs and for zeroed ones."""
    model, feeds = exported(name)
    want, zero_input = onnxruntime_outputs(model, feeds, zeroed(feeds))
    return want, zero_input


@functools.cache
def compiled(name: str):  # -> the compiled model, kept for the session
    return xgen.compile(exported(name)[0])


def outputs(result: dict[str, np.ndarray], model: onnx.ModelProto) -> Outputs:
    return [result[o.name] for o in model.graph.output]


def in_group(names: list[str]) -> list:
    return [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in names]


@pytest.mark.parametrize("name", in_group(zoo.names()))
def test_matches_onnxruntime(name: str) -> None:
    model, feeds = exported(name)
    want, zero_input = reference(name)
    assert_input_matters(model, want, zero_input)
    assert_close(outputs(compiled(name).run(feeds), model), want, name)


@pytest.mark.parametrize("name", in_group(zoo.names()))
def test_oracle_fails_wrong_outputs(name: str) -> None:
    """The mutation check: a compiler that output the model's bias alone, or ignored the input,
    would fail test_matches_onnxruntime's comparison (the reference runs only; cached)."""
    model, _ = exported(name)
    want, zero_input = reference(name)
    found = mutants(model, want, zero_input)
    for what, wrong in found.items():
        with pytest.raises(AssertionError):
            assert_close(wrong, want, f"{name} with the {what}")
    if name not in NO_FINAL_BIAS:
        assert "final bias only" in found, f"{name}: no last-layer bias found"


NO_FINAL_BIAS = {"gpt2", "minilm"}  # GPT-2's LM head has none; MiniLM's output is L2-normalised
CALIBRATED = ["fmnist_cnn", "resnet18", "resnet50", "vgg16"]  # xgen.zoo.initialise's weights


@pytest.mark.parametrize("name", in_group(CALIBRATED))
def test_activations_of_order_one(name: str) -> None:
    """Every layer's output of the random-weight CNNs has an RMS within 0.1..10 on the example
    input: nothing fades away (PyTorch's default initialisation left 1e-7) or blows up."""
    import torch

    module, inputs = built(name)
    rms: list[tuple[str, float]] = []
    leaves = [m for m in module.modules() if not list(m.children())]
    hooks = [
        leaf.register_forward_hook(
            lambda m, _, y: rms.append((type(m).__name__, float(y.square().mean().sqrt())))
        )
        for leaf in leaves
    ]
    with torch.no_grad():
        module(*inputs)
    for hook in hooks:
        hook.remove()
    outside = [(i, layer, r) for i, (layer, r) in enumerate(rms) if not 0.1 <= r <= 10]
    assert rms and not outside, outside


UNFUSED = ["fmnist_cnn", "resnet18", "mobilenet_v2", "efficientnet_lite0", "minilm"]


@pytest.mark.parametrize("name", in_group(UNFUSED))
def test_fusion_off_computes_the_same(name: str) -> None:
    """Every node its own kernel (BatchNorm, epilogues, GELU, attention, elementwise chains
    unfused): the same outputs as onnxruntime, as the fused model gives."""
    model, feeds = exported(name)
    want, zero_input = reference(name)
    assert_input_matters(model, want, zero_input)
    unfused = xgen.compile(model, fusion=False).run(feeds)
    assert_close(outputs(unfused, model), want, f"{name} unfused")


@pytest.mark.xdist_group("minilm")
def test_minilm_sentences() -> None:
    """Real weights through the real tokenizer: embeddings match PyTorch and carry meaning."""
    import torch

    from xgen.zoo.transformers_models import minilm_tokenize

    module, _ = built("minilm")
    sentences = [
        "A man is playing a guitar.",
        "Someone plays an acoustic guitar on stage.",
        "The stock market fell sharply on Monday.",
    ]
    embeddings = []
    for sentence in sentences:
        ids, mask = minilm_tokenize([sentence])
        with torch.no_grad():
            want = module(ids, mask).numpy()
        result = compiled("minilm").run({"input_ids": ids.numpy(), "attention_mask": mask.numpy()})
        (got,) = result.values()
        assert relative_error(got, want) <= RTOL, sentence
        embeddings.append(got[0])
    similarity = np.array(embeddings) @ np.array(embeddings).T
    assert np.allclose(np.diag(similarity), 1.0, atol=1e-5)  # L2-normalised
    assert similarity[0, 1] > 0.5 > similarity[0, 2]  # paraphrases close, unrelated far


def test_torch_module_compiles_directly() -> None:
    """xgen.compile on a torch module (the import_torch path) agrees with PyTorch itself."""
    import torch

    module, (x,) = zoo.build("fmnist_cnn")
    model = xgen.compile(module, example_inputs=(x,))
    with torch.no_grad():
        want, zero_input = module(x).numpy(), module(torch.zeros_like(x)).numpy()
    assert relative_error(zero_input, want) > SENSITIVITY * RTOL  # the input matters
    assert_close([model(x.numpy())], [want], "fmnist_cnn through import_torch")
