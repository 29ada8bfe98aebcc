"""Fashion-MNIST from the idx ``.gz`` files of the ``dataset-fashion-mnist`` Debian package.

``load_fashion_mnist`` needs numpy only; ``fashion_mnist_loaders`` imports torch when called.
The directory is ``/usr/share/datasets/fashion-mnist`` unless ``XGEN_FASHION_MNIST_DIR`` is set.
"""

from __future__ import annotations

import gzip
import os
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from xgen.errors import ModelLoadError

if TYPE_CHECKING:
    import torch
    from torch import Tensor
    from torch.utils.data import DataLoader

DATA_DIR = Path(os.environ.get("XGEN_FASHION_MNIST_DIR", "/usr/share/datasets/fashion-mnist"))
CLASSES = (
    "T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
    "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot",
)  # fmt: skip
# Mean and std of the 60k training pixels scaled to [0, 1].
MEAN = 0.2860
STD = 0.3530

_FILES = {"train": ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz"),
          "test": ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")}  # fmt: skip
_SIZES = {"train": 60000, "test": 10000}
_UBYTE = 0x08  # idx type code of unsigned bytes


def read_idx(path: Path) -> np.ndarray:
    """An idx file (gzip-compressed when its name ends in .gz) of unsigned bytes, as uint8."""
    try:
        with gzip.open(path, "rb") if path.suffix == ".gz" else open(path, "rb") as f:
            data = f.read()
    except FileNotFoundError:
        raise ModelLoadError(
            f"{path}: not found; install Fashion-MNIST with `apt-get install dataset-fashion-mnist`"
            " or point XGEN_FASHION_MNIST_DIR at a directory holding its idx .gz files"
        ) from None
    except (OSError, EOFError, zlib.error) as e:  # bad gzip header, truncated or corrupt stream
        raise ModelLoadError(f"{path}: not a readable idx file ({e})") from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != _UBYTE:
        raise ModelLoadError(f"{path}: bad idx magic number {data[:4].hex()} (want 0000 08 nn)")
    ndim = data[3]
    header = 4 + 4 * ndim
    if len(data) < header:
        raise ModelLoadError(f"{path}: truncated idx header ({len(data)} bytes)")
    shape = tuple(int(d) for d in np.frombuffer(data, ">u4", ndim, offset=4))
    if len(data) - header != int(np.prod(shape)):
        raise ModelLoadError(
            f"{path}: {len(data) - header} data bytes, but the header gives shape {shape}"
        )
    return np.frombuffer(data, np.uint8, offset=header).reshape(shape)


def load_fashion_mnist(split: str) -> tuple[np.ndarray, np.ndarray]:
    """(images uint8 [N, 28, 28], labels int64 [N]) of split "train" (60k) or "test" (10k)."""
    if split not in _FILES:
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    image_file, label_file = (DATA_DIR / name for name in _FILES[split])
    images, labels = read_idx(image_file), read_idx(label_file)
    n = _SIZES[split]
    if images.shape != (n, 28, 28):
        raise ModelLoadError(f"{image_file}: shape {images.shape}, want {(n, 28, 28)}")
    if labels.shape != (n,) or labels.max() >= len(CLASSES):
        raise ModelLoadError(f"{label_file}: shape {labels.shape}, want ({n},) labels in 0..9")
    return images, labels.astype(np.int64)


def normalize(images: np.ndarray) -> Tensor:
    """uint8 [N, 28, 28] images as the float32 [N, 1, 28, 28] tensor the models take."""
    import torch

    # astype copies: frombuffer arrays are read-only, which torch warns about.
    return ((torch.from_numpy(images.astype(np.float32)) / 255 - MEAN) / STD).unsqueeze(1)


def augment_batch(x: Tensor, generator: torch.Generator) -> Tensor:
    """Each image randomly cropped after 2-pixel zero padding, and flipped left-right half the time.

    Done on the whole batch with one gather, so it costs little next to a training step.
    """
    import torch

    n, _, h, w = x.shape
    pad = 2
    padded = torch.nn.functional.pad(x, (pad,) * 4, value=-MEAN / STD)  # pixel 0, normalized
    dy, dx = torch.randint(0, 2 * pad + 1, (2, n, 1), generator=generator)
    rows, cols = dy + torch.arange(h), dx + torch.arange(w)  # [n, h], [n, w]
    flip = torch.rand(n, 1, generator=generator) < 0.5
    cols = torch.where(flip, cols.flip(1), cols)
    batch = torch.arange(n)[:, None, None]
    return padded[batch, 0, rows[:, :, None], cols[:, None, :]].unsqueeze(1)


def fashion_mnist_loaders(
    batch_size: int = 128, augment: bool = True, seed: int = 0
) -> tuple[DataLoader, DataLoader]:
    """(train loader, shuffled and augmented; test loader, in order) of normalized batches.

    Each batch is gathered from in-memory tensors in one indexing step (no per-image collate).
    """
    import torch
    from torch.utils.data import BatchSampler, DataLoader, RandomSampler, SequentialSampler

    class Batches(torch.utils.data.Dataset):
        def __init__(self, split: str, generator: torch.Generator | None):
            images, labels = load_fashion_mnist(split)
            self.x, self.y, self.generator = normalize(images), torch.from_numpy(labels), generator

        def __len__(self) -> int:
            return len(self.y)

        def __getitem__(self, index: list[int]) -> tuple[Tensor, Tensor]:
            x, y = self.x[index], self.y[index]
            return (x if self.generator is None else augment_batch(x, self.generator)), y

    def loader(data: Batches, sampler: torch.utils.data.Sampler) -> DataLoader:
        # batch_size=None: the sampler yields whole index lists and the dataset returns batches.
        return DataLoader(data, sampler=BatchSampler(sampler, batch_size, False), batch_size=None)

    # Separate generators: the shuffle order does not depend on whether augmentation is on.
    shuffle = torch.Generator().manual_seed(seed)
    train = Batches("train", torch.Generator().manual_seed(seed + 1) if augment else None)
    test = Batches("test", None)
    train_loader = loader(train, RandomSampler(train, generator=shuffle))
    return train_loader, loader(test, SequentialSampler(test))
