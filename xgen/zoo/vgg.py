"""VGG-16 (Simonyan and Zisserman, 2015), configuration D, with BatchNorm-free conv stacks."""

from __future__ import annotations

from torch import Tensor, nn

from xgen.zoo.initialise import initialise

_VGG16 = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]


class VGG(nn.Module):
    def __init__(self, config: list[int | str], num_classes: int = 1000):
        super().__init__()
        layers: list[nn.Module] = []
        c_in = 3
        for item in config:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                layers += [nn.Conv2d(c_in, int(item), 3, padding=1), nn.ReLU(inplace=True)]
                c_in = int(item)
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(
            nn.Linear(c_in * 7 * 7, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096, 4096),
            nn.ReLU(inplace=True),
            nn.Dropout(),
            nn.Linear(4096, num_classes),
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.classifier(self.features(x).flatten(1))


def vgg16(num_classes: int = 1000) -> VGG:
    """Expects 224x224 inputs (the classifier reads the 7x7 map the five pools leave); with the
    weights of xgen.zoo.initialise."""
    return initialise(VGG(_VGG16, num_classes), (3, 224, 224))
