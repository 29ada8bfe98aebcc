"""ResNet-18 and ResNet-50 (He et al., 2016), written out for the zoo: no torchvision here."""

from __future__ import annotations

from torch import Tensor, nn

from xgen.zoo.initialise import initialise


def _conv_bn(c_in: int, c_out: int, kernel: int, stride: int = 1) -> list[nn.Module]:
    conv = nn.Conv2d(c_in, c_out, kernel, stride, padding=kernel // 2, bias=False)
    return [conv, nn.BatchNorm2d(c_out)]


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        c_out = width * self.expansion
        self.body = nn.Sequential(
            *_conv_bn(c_in, width, 3, stride), nn.ReLU(inplace=True), *_conv_bn(width, c_out, 3)
        )
        self.shortcut = _shortcut(c_in, c_out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, c_in: int, width: int, stride: int):
        super().__init__()
        c_out = width * self.expansion
        self.body = nn.Sequential(
            *_conv_bn(c_in, width, 1),
            nn.ReLU(inplace=True),
            *_conv_bn(width, width, 3, stride),  # stride on the 3x3, as torchvision's v1.5
            nn.ReLU(inplace=True),
            *_conv_bn(width, c_out, 1),
        )
        self.shortcut = _shortcut(c_in, c_out, stride)
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        return self.relu(self.body(x) + self.shortcut(x))


def _shortcut(c_in: int, c_out: int, stride: int) -> nn.Module:
    if stride == 1 and c_in == c_out:
        return nn.Identity()
    return nn.Sequential(*_conv_bn(c_in, c_out, 1, stride))


class ResNet(nn.Module):
    def __init__(
        self, block: type[BasicBlock | Bottleneck], depths: list[int], num_classes: int = 1000
    ):
        super().__init__()
        layers: list[nn.Module] = [
            *_conv_bn(3, 64, 7, 2),
            nn.ReLU(inplace=True),
            nn.MaxPool2d(3, 2, 1),
        ]
        c_in = 64
        for stage, depth in enumerate(depths):
            width = 64 * 2**stage
            for i in range(depth):
                stride = 2 if stage > 0 and i == 0 else 1
                layers.append(block(c_in, width, stride))
                c_in = width * block.expansion
        self.features = nn.Sequential(*layers)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(c_in, num_classes)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc(self.pool(self.features(x)).flatten(1))


def resnet18(num_classes: int = 1000) -> ResNet:
    """With the weights of xgen.zoo.initialise, for 224x224 inputs."""
    return initialise(ResNet(BasicBlock, [2, 2, 2, 2], num_classes), (3, 224, 224))


def resnet50(num_classes: int = 1000) -> ResNet:
    """With the weights of xgen.zoo.initialise, for 224x224 inputs."""
    return initialise(ResNet(Bottleneck, [3, 4, 6, 3], num_classes), (3, 224, 224))
