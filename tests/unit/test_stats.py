"""Parameter and FLOP counts against published figures."""

from __future__ import annotations

import pytest

from xgen import zoo
from xgen.frontend.torch import import_torch
from xgen.ir.stats import graph_stats


@pytest.mark.parametrize(
    "name, gmacs, mparams",
    [
        ("resnet18", 1.82, 11.7),  # He et al. / torchvision: 1.8 GMACs, 11.7M parameters
        ("mobilenet_v2", 0.30, 3.5),  # Sandler et al.: 300M MACs, 3.4M (+ BN folded into bias)
    ],
)
def test_published_counts(name: str, gmacs: float, mparams: float) -> None:
    entry = zoo.get(name)
    if not entry.available():
        pytest.skip(f"{name} needs `pip install {entry.requires}`")
    module, inputs = entry.build()
    stats = graph_stats(import_torch(module, inputs))
    conv_and_fc_macs = stats.flops / 2  # other ops add well under 1%
    assert conv_and_fc_macs == pytest.approx(gmacs * 1e9, rel=0.02)
    assert stats.parameters == pytest.approx(mparams * 1e6, rel=0.02)
    assert stats.op_counts["Conv"] == {"resnet18": 20, "mobilenet_v2": 52}[name]
