"""The committed FashionVGG checkpoints, dense and pattern + connectivity pruned by
benchmarks/prune_fmnist.py, compiled by xgen and run on the 10k Fashion-MNIST test images: the
pruned model keeps at most 1/8 of the 3x3 conv weights, runs on the pattern kernel, agrees with
PyTorch and stays within 0.3 points of the dense model's top-1 (issue 5's accuracy bar)."""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import xgen  # noqa: E402
from xgen.compress.prune import kept_conv3x3_weights  # noqa: E402
from xgen.data import fashion_mnist  # noqa: E402
from xgen.zoo import fmnist_vgg  # noqa: E402

pytestmark = pytest.mark.model
BATCH = 500


def checkpoint_or_skip(kind: str) -> torch.nn.Module:
    if not (fmnist_vgg.WEIGHTS_DIR / f"fmnist_vgg_{kind}.pt").is_file():
        pytest.skip(f"no {kind} checkpoint (benchmarks/train_fmnist.py, prune_fmnist.py)")
    return fmnist_vgg.load_pretrained(kind)


@pytest.fixture(scope="module")
def test_set() -> tuple[np.ndarray, np.ndarray]:
    if not fashion_mnist.DATA_DIR.is_dir():  # only an absent dataset skips: a bad one fails
        pytest.skip(f"Fashion-MNIST is not installed ({fashion_mnist.DATA_DIR} is absent)")
    images, labels = fashion_mnist.load_fashion_mnist("test")
    return fashion_mnist.normalize(images).numpy(), labels


def xgen_top1(module: torch.nn.Module, x: np.ndarray, labels: np.ndarray):
    """(top-1 of xgen's compiled model, the compiled model); its first batch is checked
    against PyTorch's logits."""
    compiled = xgen.compile(module, example_inputs=(torch.from_numpy(x[:BATCH]),))
    logits = [compiled(x[i : i + BATCH]) for i in range(0, len(x), BATCH)]
    with torch.no_grad():
        expected = module(torch.from_numpy(x[:BATCH])).numpy()
    np.testing.assert_allclose(logits[0], expected, rtol=1e-3, atol=1e-3)
    return float(np.mean(np.concatenate(logits).argmax(axis=1) == labels)), compiled


def test_pruned_model_keeps_the_dense_accuracy_in_xgen(test_set) -> None:
    x, labels = test_set
    dense, pruned = checkpoint_or_skip("dense"), checkpoint_or_skip("pruned")
    assert kept_conv3x3_weights(pruned) * 8 <= kept_conv3x3_weights(dense)
    dense_top1, _ = xgen_top1(dense, x, labels)
    pruned_top1, compiled = xgen_top1(pruned, x, labels)
    assert dense_top1 >= 0.93
    assert pruned_top1 >= dense_top1 - 0.003, f"pruned {pruned_top1:.2%}, dense {dense_top1:.2%}"
    # all the 3x3 convs but the first (1 input channel, patterns only) run on the pattern kernel
    assert compiled.source.split("xgen_run")[-1].count(".taps = 4") == 5
