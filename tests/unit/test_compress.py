"""Pattern + connectivity pruning of torch models: projection, masks through training, both
schedules end to end on a tiny CNN, the report, the ONNX export with its metadata, the CLI."""

from __future__ import annotations

import subprocess
import sys
import types
import warnings

import numpy as np
import pytest

torch = pytest.importorskip("torch")
ort = pytest.importorskip("onnxruntime")
onnx = pytest.importorskip("onnx")

from onnx import numpy_helper  # noqa: E402
from torch import nn  # noqa: E402
from torch.utils.data import DataLoader, TensorDataset  # noqa: E402

import xgen  # noqa: E402
from xgen.cli import main  # noqa: E402
from xgen.compress import (  # noqa: E402
    AdmmConfig,
    CompressConfig,
    CompressError,
    DistillConfig,
    GradualConfig,
    Masks,
    OptimizerConfig,
    OptimizerKind,
    PruneConfig,
    Schedule,
    evaluate,
    export_onnx,
)
from xgen.compress.export import conv_initializer_names  # noqa: E402
from xgen.compress.prune import (  # noqa: E402
    choose_library,
    layer_rates,
    mask_tensor,
    project,
    prunable_convs,
    structure_of,
    structure_violations,
)
from xgen.compress.train import _Admm, _Gradual, distillation_loss  # noqa: E402
from xgen.ir.sparsity import METADATA_KEY, assign_patterns, decode_metadata  # noqa: E402

LIBRARY = ((0, 1, 3, 4), (1, 3, 4, 5), (1, 4, 5, 7), (4, 5, 7, 8))


class TinyCNN(nn.Module):
    """Two 3x3 convs (the first followed by a BatchNorm, which the exporter folds into it)."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(1, 8, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(8)
        self.conv2 = nn.Conv2d(8, 16, 3, padding=1)
        self.fc = nn.Linear(16, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.relu(self.bn1(self.conv1(x)))
        return self.fc(torch.relu(self.conv2(x)).mean((2, 3)))


def stripes(n: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Noisy 8x8 images of horizontal (label 0) or vertical (label 1) stripes."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 2, (n,), generator=g)
    patterns = torch.zeros(2, 8, 8)
    patterns[0, ::2, :] = 1
    patterns[1, :, ::2] = 1
    return patterns[labels].unsqueeze(1) + 0.5 * torch.randn(n, 1, 8, 8, generator=g), labels


def loaders() -> tuple[DataLoader, DataLoader]:
    train = DataLoader(
        TensorDataset(*stripes(256, 0)),
        batch_size=32,
        shuffle=True,
        generator=torch.Generator().manual_seed(0),
    )
    return train, DataLoader(TensorDataset(*stripes(128, 1)), batch_size=64)


def fast(schedule: Schedule = Schedule.GRADUAL, **prune: object) -> CompressConfig:
    return CompressConfig(
        prune=PruneConfig(**({"connectivity_rate": 0.5} | prune)),
        schedule=schedule,
        epochs=2,
        finetune_epochs=1,
        gradual=GradualConfig(project_every=3),
        admm=AdmmConfig(rho=0.1),
        progress=False,
    )


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tensors this small run faster on one thread than on two that wait for each other."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def dense() -> TinyCNN:
    torch.manual_seed(0)
    model = TinyCNN()
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
    for _ in range(3):
        for x, y in loaders()[0]:
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
    return model.eval()


@pytest.fixture(scope="module", params=list(Schedule))
def pruned(request, dense):
    before = {k: v.clone() for k, v in dense.state_dict().items()}
    result = xgen.compress(dense, *loaders(), fast(request.param))
    for k, v in dense.state_dict().items():  # the dense model is left as it was
        assert torch.equal(v, before[k]), k
    return result


def test_projection_keeps_the_best_pattern_per_kernel():
    weight = torch.randn(6, 4, 3, 3)
    structure = structure_of(weight, LIBRARY, 0.25)
    np.testing.assert_array_equal(
        structure.assignment, assign_patterns(weight.numpy(), LIBRARY, 0.25)
    )
    mask = mask_tensor(structure, weight)
    assert mask.dtype == weight.dtype and mask.shape == weight.shape
    projected = weight * mask
    # no other library pattern keeps more of any kept kernel
    for o, i in zip(*np.nonzero(structure.assignment >= 0), strict=True):
        best = max(weight[o, i].flatten()[list(p)].square().sum() for p in LIBRARY)
        assert torch.isclose(projected[o, i].square().sum(), best)
    assert int((structure.assignment < 0).sum()) == 6  # floor(0.25 * 24)


@pytest.mark.parametrize("kind", list(OptimizerKind))
def test_masks_hold_through_optimizer_steps(kind):
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 6, 3)
    structure = {"conv": structure_of(conv.weight, LIBRARY, 0.5)}
    mask = torch.from_numpy(structure["conv"].mask())
    if kind is OptimizerKind.SGD:
        optimizer = torch.optim.SGD(conv.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    else:
        optimizer = torch.optim.AdamW(conv.parameters(), lr=0.1, weight_decay=0.01)
    for _ in range(2):  # dense steps first: momentum and Adam state would move pruned weights
        optimizer.zero_grad()
        conv(torch.randn(2, 4, 5, 5)).square().mean().backward()
        optimizer.step()
    start = conv.weight.detach().clone()
    with Masks({"conv": conv}, structure) as masks:
        assert torch.all(conv.weight[~mask] == 0)  # zeroed at once
        for _ in range(5):
            optimizer.zero_grad()
            conv(torch.randn(2, 4, 5, 5)).square().mean().backward()
            assert torch.all(conv.weight.grad[~mask] == 0)  # gradients masked
            optimizer.step()
            masks.enforce()
            assert torch.all(conv.weight[~mask] == 0)
    assert not torch.allclose(conv.weight[mask], start[mask])  # it trained
    assert structure_violations({"conv": conv}, structure) == []
    conv(torch.randn(2, 4, 5, 5)).square().mean().backward()  # hooks are gone after the with
    assert torch.any(conv.weight.grad[~mask] != 0)


def test_admm_pulls_weights_onto_their_projection():
    torch.manual_seed(0)
    conv = nn.Conv2d(4, 8, 3)
    convs, rates = {"conv": conv}, {"conv": 0.5}
    admm = _Admm(convs, LIBRARY, rates, AdmmConfig(rho=1.0, rho_growth=1.0))

    @torch.no_grad()
    def off_structure() -> float:
        projected = conv.weight * mask_tensor(structure_of(conv.weight, LIBRARY, 0.5), conv.weight)
        return float((conv.weight - projected).norm() / conv.weight.norm())

    start = off_structure()
    optimizer = torch.optim.SGD(conv.parameters(), lr=0.2)
    for _ in range(3):  # epochs of the penalty alone
        for _ in range(20):
            optimizer.zero_grad()
            admm.penalty().backward()
            optimizer.step()
        admm.after_epoch()
    assert start > 0.5 and off_structure() < 0.05 * start


def test_gradual_ramps_connectivity_and_holds_the_structure_between_projections():
    torch.manual_seed(0)
    conv = nn.Conv2d(8, 8, 3)
    optimizer = torch.optim.SGD(conv.parameters(), lr=0.1, momentum=0.9, weight_decay=0.01)
    removed = []
    with _Gradual({"conv": conv}, LIBRARY, {"conv": 0.5}, project_every=2, total_steps=8) as g:
        for _ in range(8):
            optimizer.zero_grad()
            conv(torch.randn(2, 8, 5, 5)).square().mean().backward()
            optimizer.step()
            g.after_step()
            taps = (conv.weight.detach() != 0).flatten(2).sum(-1)  # nonzero taps per kernel
            assert taps.max() <= 4
            removed.append(int((taps == 0).sum()))
    # floor(64 * 0.5 * (1 - (1 - step / 8) ** 3)) at the projections, every 2 steps
    assert removed == [0, 18, 18, 28, 28, 31, 31, 32]


def test_distillation_loss_mixes_cross_entropy_and_the_teacher():
    torch.manual_seed(0)
    logits, teacher, labels = torch.randn(8, 5), torch.randn(8, 5), torch.randint(0, 5, (8,))
    ce = nn.functional.cross_entropy(logits, labels)
    assert torch.equal(distillation_loss(logits, labels, None, DistillConfig(weight=0.5)), ce)
    assert torch.equal(distillation_loss(logits, labels, teacher, DistillConfig(weight=0)), ce)
    same = distillation_loss(logits, labels, logits, DistillConfig(weight=1.0))
    assert abs(float(same)) < 1e-6  # nothing to learn from a teacher that agrees
    t = 2.0
    kl = nn.functional.kl_div(
        (logits / t).log_softmax(1), (teacher / t).softmax(1), reduction="batchmean"
    )
    mixed = distillation_loss(logits, labels, teacher, DistillConfig(weight=0.25, temperature=t))
    assert torch.isclose(mixed, 0.75 * ce + 0.25 * t * t * kl)


def test_compress_end_to_end(pruned, dense):
    model, structure, report = pruned.model, pruned.structure, pruned.report
    assert list(structure) == ["conv1", "conv2"]
    assert structure["conv1"].kept_kernels == 8  # the first conv keeps its kernels by default
    assert structure["conv2"].kept_kernels == 64  # 128 kernels at rate 0.5
    for name, conv in prunable_convs(model).items():
        kept = conv.weight.detach() != 0
        np.testing.assert_array_equal(kept.numpy(), structure[name].mask())
    assert report.accuracy_before == evaluate(dense, loaders()[1]) > 0.9
    assert report.accuracy_after == evaluate(model, loaders()[1]) > 0.9
    rows = {layer.name: layer for layer in report.layers}
    assert list(rows) == ["conv1", "conv2", "fc"]
    assert (rows["conv1"].weights_before, rows["conv1"].weights_after) == (72, 32)
    assert (rows["conv2"].weights_before, rows["conv2"].weights_after) == (1152, 256)
    assert (rows["fc"].weights_after, rows["fc"].kernels_after, rows["fc"].pruned) == (
        32,
        None,
        False,
    )
    assert (report.weights_before, report.weights_after) == (72 + 1152 + 32, 32 + 256 + 32)
    table = str(report)
    assert "| conv2 | 16x8x3x3 | 1,152 | 256 | 64/128 | 4.50x |" in table
    assert "| **3x3 convs (pruned)** |  | 1,224 | 288 | 72/136 | 4.25x |" in table
    model.train()  # plain module: no hooks left to mask its gradients
    model(loaders()[1].dataset.tensors[0][:4]).sum().backward()
    assert torch.any(model.conv2.weight.grad[~torch.from_numpy(structure["conv2"].mask())] != 0)
    model.eval()  # the fixture is shared: back in the mode compress returned it in


def test_compress_is_deterministic(dense):
    a = xgen.compress(dense, *loaders(), fast())
    b = xgen.compress(dense, *loaders(), fast())
    for name, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[name]), name


def test_export_has_the_zeros_and_the_metadata(pruned, tmp_path):
    path = tmp_path / "pruned.onnx"
    path.touch()
    x = stripes(4, 2)[0]
    export_onnx(pruned.model, x, path, pruned.structure, overwrite=True)
    with pytest.raises(CompressError, match="already exists"):
        export_onnx(pruned.model, x, path, pruned.structure)

    proto = onnx.load(path)
    metadata = {p.key: p.value for p in proto.metadata_props}
    layers = decode_metadata(metadata[METADATA_KEY])
    names = conv_initializer_names(proto, prunable_convs(pruned.model))
    assert names == {"conv1": "conv1.weight", "conv2": "conv2.weight"}
    initializers = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    for module, name in names.items():
        assert layers[name] == pruned.structure[module]
        np.testing.assert_array_equal(initializers[name] != 0, layers[name].mask())

    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (ours,) = session.run(None, {session.get_inputs()[0].name: x.numpy()})
    with torch.no_grad():
        np.testing.assert_allclose(ours, pruned.model(x).numpy(), atol=1e-4)


def test_xgen_compiles_the_export_onto_its_pattern_kernel(pruned, tmp_path):
    """Prune, export, compile, compare: the metadata agrees with the weights (no warning), and
    conv2 (half its kernels removed) runs on the pattern kernel; conv1 (1 input channel, all
    its kernels kept) stays dense, which the latency model finds faster."""
    path = tmp_path / "pruned.onnx"
    x = stripes(4, 3)[0]
    export_onnx(pruned.model, x, path, pruned.structure)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        compiled = xgen.compile(path)
    with torch.no_grad():
        np.testing.assert_allclose(compiled(x.numpy()), pruned.model(x).numpy(), atol=1e-4)
    assert compiled.source.split("xgen_run")[-1].count(".taps = 4") == 1


def test_initializers_are_found_by_value_when_renamed(pruned, tmp_path):
    from xgen.frontend.torch import export_onnx as torch_to_onnx

    proto = torch_to_onnx(pruned.model, stripes(1, 2)[0])
    renames = {"conv1.weight": "w_a", "conv2.weight": "w_b"}
    for init in proto.graph.initializer:
        init.name = renames.get(init.name, init.name)
    for node in proto.graph.node:
        node.input[:] = [renames.get(i, i) for i in node.input]
    convs = prunable_convs(pruned.model)
    assert conv_initializer_names(proto, convs) == {"conv1": "w_a", "conv2": "w_b"}

    other = TinyCNN()  # weights the exported model does not hold
    with pytest.raises(CompressError, match="'conv2': no Conv weight initializers"):
        conv_initializer_names(proto, {"conv2": other.conv2})


def test_export_refuses_a_structure_that_does_not_fit(pruned, tmp_path):
    dense_model = TinyCNN()
    with pytest.raises(CompressError, match="conv1, conv2 have nonzero weights outside"):
        export_onnx(dense_model, stripes(1, 2)[0], tmp_path / "x.onnx", pruned.structure)
    with pytest.raises(CompressError, match="'fc' is a Linear"):
        export_onnx(
            dense_model, stripes(1, 2)[0], tmp_path / "x.onnx", {"fc": pruned.structure["conv2"]}
        )


def test_layer_rates_and_their_errors(dense):
    config = PruneConfig(connectivity_rate=0.6, layer_rates={"conv2": 0.25})
    assert layer_rates(dense, config) == {"conv1": 0.0, "conv2": 0.25}
    assert layer_rates(dense, PruneConfig(connectivity_rate=0.6, first_conv_rate=None)) == {
        "conv1": 0.6,
        "conv2": 0.6,
    }
    with pytest.raises(CompressError, match=r"'conv3': it is not a module.*conv1, conv2"):
        layer_rates(dense, PruneConfig(layer_rates={"conv3": 0.5}))
    with pytest.raises(CompressError, match="'fc': it is a Linear"):
        layer_rates(dense, PruneConfig(layer_rates={"fc": 0.5}))
    with pytest.raises(CompressError, match="no 3x3 Conv2d"):
        layer_rates(nn.Sequential(nn.Conv2d(3, 3, 1), nn.Conv2d(3, 3, 3, groups=3)), config)
    with pytest.raises(CompressError, match=r"rate of layer 'conv2' must be in \[0, 1\)"):
        PruneConfig(layer_rates={"conv2": 1.0})
    with pytest.raises(CompressError, match="connectivity_rate"):
        PruneConfig(connectivity_rate=-0.1)
    with pytest.raises(CompressError, match="library_size must be in 1..126"):
        PruneConfig(library_size=0)
    with pytest.raises(CompressError, match="lr must be > 0"):
        OptimizerConfig(lr=0)


def test_library_and_projection_cover_every_prunable_conv(dense):
    convs = prunable_convs(dense)
    library = choose_library(convs, PruneConfig(library_size=3))
    assert len(library) == 3 and all(len(p) == 4 for p in library)
    structure = project(convs, library, {"conv1": 0.0, "conv2": 0.75})
    assert structure["conv2"].kept_kernels == 32 and structure["conv2"].patterns == library


def test_import_xgen_leaves_torch_alone_and_xgen_compress_is_callable():
    code = "import sys, xgen; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True)
    # this module imported xgen.compress.*, which binds the package on xgen: still callable
    assert isinstance(xgen.compress, types.ModuleType) and callable(xgen.compress)


@pytest.fixture
def fake_data_and_model(monkeypatch, dense, tmp_path):
    """xgen.data.fashion_mnist and a model module replaced by the tiny stripes ones."""
    data = types.ModuleType("xgen.data.fashion_mnist")
    data.fashion_mnist_loaders = lambda batch_size, augment, seed: loaders()
    monkeypatch.setitem(sys.modules, "xgen.data.fashion_mnist", data)
    models = types.ModuleType("tiny_models")
    models.TinyCNN = TinyCNN
    monkeypatch.setitem(sys.modules, "tiny_models", models)
    checkpoint = tmp_path / "dense.pt"
    torch.save(dense.state_dict(), checkpoint)
    return checkpoint


def test_cli_compress(fake_data_and_model, tmp_path, capsys):
    out = tmp_path / "pruned.onnx"
    args = ["compress", "--model", "tiny_models:TinyCNN", "--data", "fashion-mnist",
            "--out", str(out), "--epochs", "1", "--finetune-epochs", "1", "--rate", "0.5",
            "--layer-rate", "conv2=0.25", "--patterns", "6", "--schedule", "admm"]  # fmt: skip
    assert main([*args, "--checkpoint", str(fake_data_and_model)]) == 0
    printed = capsys.readouterr().out
    assert "top-1 accuracy: 100.00% dense" in printed  # the checkpoint was loaded
    assert "| conv2 | 16x8x3x3 | 1,152 | 384 | 96/128 | 3.00x |" in printed
    layers = decode_metadata({p.key: p.value for p in onnx.load(out).metadata_props}[METADATA_KEY])
    assert layers["conv2.weight"].kept_kernels == 96 and len(layers["conv2.weight"].patterns) == 6

    assert main(args) == 1  # the output exists
    assert "already exists: pass --overwrite" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--layer-rate", "fc=0.5"]) == 1
    assert "'fc': it is a Linear" in capsys.readouterr().err
    assert main([*args, "--overwrite", "--model", "tiny_models:Nope"]) == 1
    assert "tiny_models has no 'Nope'" in capsys.readouterr().err
