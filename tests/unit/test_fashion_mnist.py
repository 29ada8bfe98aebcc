"""Fashion-MNIST loading (idx parsing, loaders, augmentation) and the FashionVGG model."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch

from xgen.data import fashion_mnist
from xgen.data.fashion_mnist import (
    CLASSES,
    augment_batch,
    fashion_mnist_loaders,
    load_fashion_mnist,
    read_idx,
)
from xgen.errors import ModelLoadError
from xgen.zoo.fmnist_vgg import WEIGHTS_DIR, FashionVGG, load_pretrained

needs_data = pytest.mark.skipif(
    not (fashion_mnist.DATA_DIR / "t10k-labels-idx1-ubyte.gz").is_file(),
    reason=f"Fashion-MNIST not in {fashion_mnist.DATA_DIR} (apt-get install dataset-fashion-mnist)",
)


def idx_bytes(array: np.ndarray) -> bytes:
    header = bytes([0, 0, 0x08, array.ndim]) + np.array(array.shape, ">u4").tobytes()
    return header + array.astype(np.uint8).tobytes()


def test_read_idx_parses_a_handmade_file(tmp_path: Path):
    array = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    (tmp_path / "a.idx").write_bytes(idx_bytes(array))
    (tmp_path / "a.idx.gz").write_bytes(gzip.compress(idx_bytes(array)))
    for name in ("a.idx", "a.idx.gz"):
        got = read_idx(tmp_path / name)
        assert got.dtype == np.uint8
        np.testing.assert_array_equal(got, array)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (idx_bytes(np.zeros((2, 3), np.uint8))[:-1], "data bytes"),  # one byte short
        (idx_bytes(np.zeros((2, 3), np.uint8))[:7], "truncated idx header"),
        (b"\0\0\x0d\x01" + bytes(8), "magic number"),  # float32 idx
        (gzip.compress(idx_bytes(np.zeros(100, np.uint8)))[:-9], "not a readable idx file"),
    ],
    ids=["short-data", "short-header", "wrong-type", "truncated-gzip"],
)
def test_bad_idx_files_give_a_clear_error(tmp_path: Path, content: bytes, message: str):
    path = tmp_path / "bad.idx.gz"
    gzipped = content.startswith(b"\x1f\x8b")  # the truncated-gzip case is compressed already
    path.write_bytes(content if gzipped else gzip.compress(content))
    with pytest.raises(ModelLoadError, match=message) as error:
        read_idx(path)
    assert str(path) in str(error.value)


def test_missing_data_says_how_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setattr(fashion_mnist, "DATA_DIR", tmp_path)
    with pytest.raises(ModelLoadError, match="apt-get install dataset-fashion-mnist"):
        load_fashion_mnist("test")
    with pytest.raises(ValueError, match="split"):
        load_fashion_mnist("validation")


@needs_data
def test_splits_have_the_documented_shapes_and_balanced_classes():
    for split, n in (("train", 60000), ("test", 10000)):
        images, labels = load_fashion_mnist(split)
        assert images.shape == (n, 28, 28) and images.dtype == np.uint8
        assert labels.shape == (n,) and labels.dtype == np.int64
        assert (np.bincount(labels, minlength=len(CLASSES)) == n // len(CLASSES)).all()


@needs_data
def test_loaders_give_normalized_batches_in_a_seeded_order():
    train, test = fashion_mnist_loaders(batch_size=256, seed=3)
    x, y = next(iter(train))
    assert x.shape == (256, 1, 28, 28) and x.dtype == torch.float32 and y.dtype == torch.int64
    assert int(y.min()) >= 0 and int(y.max()) < len(CLASSES)
    _, y_again = next(iter(fashion_mnist_loaders(batch_size=256, seed=3)[0]))
    assert torch.equal(y, y_again)
    x_test = torch.cat([x for x, _ in test])
    assert len(x_test) == 10000  # the last partial batch is kept
    assert abs(float(x_test.mean())) < 0.05 and abs(float(x_test.std()) - 1) < 0.05
    _, first_labels = next(iter(test))
    np.testing.assert_array_equal(first_labels.numpy(), load_fashion_mnist("test")[1][:256])


def test_augmentation_is_a_shift_within_two_pixels_and_maybe_a_flip():
    x = torch.randn(16, 1, 28, 28)
    out = augment_batch(x, torch.Generator().manual_seed(0))
    assert out.shape == x.shape
    padded = torch.nn.functional.pad(x, (2,) * 4, value=-fashion_mnist.MEAN / fashion_mnist.STD)
    flips = 0
    for i in range(len(x)):
        crops = [padded[i, :, dy : dy + 28, dx : dx + 28] for dy in range(5) for dx in range(5)]
        if not any(torch.equal(out[i], c) for c in crops):
            assert any(torch.equal(out[i], c.flip(-1)) for c in crops)
            flips += 1
    assert 0 < flips < len(x)


def test_fashion_vgg_is_a_1m_parameter_3x3_network():
    model = FashionVGG()
    assert sum(p.numel() for p in model.parameters()) == 1_128_938
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.kernel_size == (3, 3) and c.bias is None for c in convs)
    assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_missing_checkpoint_is_a_clear_error():
    with pytest.raises(ModelLoadError, match="train_fmnist.py"):
        load_pretrained("no-such-kind")


@pytest.mark.model
@needs_data
@pytest.mark.skipif(
    not (WEIGHTS_DIR / "fmnist_vgg_dense.pt").is_file(), reason="no committed dense checkpoint"
)
def test_dense_checkpoint_reaches_93_percent():
    model = load_pretrained("dense")
    assert all(v.dtype != torch.float16 for v in model.state_dict().values())
    images, labels = load_fashion_mnist("test")
    x = fashion_mnist.normalize(images[:2000])
    with torch.no_grad():
        predicted = torch.cat([model(batch).argmax(1) for batch in x.split(500)])
    accuracy = (predicted.numpy() == labels[:2000]).mean()
    assert accuracy >= 0.93
