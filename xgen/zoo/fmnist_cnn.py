"""A small BatchNorm CNN for 1x28x28 images (Fashion-MNIST sized), about 140k parameters."""

from __future__ import annotations

from torch import Tensor, nn

from xgen.zoo.initialise import initialise


def _block(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, padding=1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class FashionCNN(nn.Module):
    def __init__(self, num_classes: int = 10):
        super().__init__()
        self.features = nn.Sequential(
            *_block(1, 32), *_block(32, 32), nn.MaxPool2d(2),  # 14x14
            *_block(32, 64), *_block(64, 64), nn.MaxPool2d(2),  # 7x7
            *_block(64, 128), nn.AdaptiveAvgPool2d(1),
        )  # fmt: skip
        self.classifier = nn.Linear(128, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def fashion_cnn() -> FashionCNN:
    """With the weights of xgen.zoo.initialise, for 1x28x28 inputs."""
    return initialise(FashionCNN(), (1, 28, 28))
