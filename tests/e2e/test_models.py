"""Zoo models end to end: torch -> ONNX -> xgen's compiled C, against onnxruntime on the same ONNX.

Every model is exported once per session (xdist_group keeps a model's tests on one worker).
"""

from __future__ import annotations

import functools

import numpy as np
import onnx
import onnxruntime as ort
import pytest

import xgen
from xgen import zoo

pytestmark = pytest.mark.model

RTOL = 1e-4  # max|xgen - ort| / max|ort|, fp32


@functools.cache
def exported(name: str) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The zoo model as ONNX, and its example inputs by input name."""
    entry = zoo.get(name)
    if not entry.available():
        pytest.skip(f"{name} needs `pip install {entry.requires}`")
    return entry.export()


@functools.cache
def compiled(name: str):  # -> the compiled model, kept for the session
    return xgen.compile(exported(name)[0])


def run_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.abs(got.astype(np.float64) - want).max() / np.abs(want).max())


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in zoo.names()]
)
def test_matches_onnxruntime(name: str) -> None:
    model, feeds = exported(name)
    want = run_onnxruntime(model, feeds)
    result = compiled(name).run(feeds)
    got = [result[o.name] for o in model.graph.output]
    for o, g, w in zip(model.graph.output, got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype, o.name
        assert relative_error(g, w) <= RTOL, f"{name} output {o.name}"


UNFUSED = ["fmnist_cnn", "resnet18", "mobilenet_v2", "efficientnet_lite0", "minilm"]


@pytest.mark.parametrize(
    "name", [pytest.param(n, marks=pytest.mark.xdist_group(n)) for n in UNFUSED]
)
def test_fusion_off_computes_the_same(name: str) -> None:
    """Every node its own kernel (BatchNorm, epilogues, GELU, attention, elementwise chains
    unfused): the same outputs as the fused model, each within fp32 rounding of the other."""
    model, feeds = exported(name)
    fused = compiled(name).run(feeds)
    unfused = xgen.compile(model, fusion=False).run(feeds)
    for o in model.graph.output:
        assert relative_error(fused[o.name], unfused[o.name]) <= RTOL, f"{name} output {o.name}"


@pytest.mark.xdist_group("minilm")
def test_minilm_sentences() -> None:
    """Real weights through the real tokenizer: embeddings match PyTorch and carry meaning."""
    import torch

    from xgen.zoo.transformers_models import minilm_tokenize

    model, _ = exported("minilm")
    module, _ = zoo.build("minilm")
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
        want = module(x).numpy()
    assert relative_error(model(x.numpy()), want) <= RTOL
