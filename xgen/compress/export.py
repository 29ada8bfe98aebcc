"""A pruned model as an ONNX file: the zeros are in the weights, the structure in metadata_props."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
from onnx import numpy_helper
from torch import Tensor, nn

from xgen.compress.prune import structure_violations
from xgen.errors import CompressError
from xgen.frontend.torch import export_onnx as torch_to_onnx
from xgen.ir.sparsity import METADATA_KEY, PatternStructure, encode_metadata


def export_onnx(
    model: nn.Module,
    example_input: Tensor | Sequence[Tensor],
    path: str | os.PathLike,
    structure: Mapping[str, PatternStructure],
    overwrite: bool = False,
) -> onnx.ModelProto:
    """Write model (traced at example_input's shapes) to path with its structure (keyed by
    module name, as compress returns it) in metadata_props[METADATA_KEY], keyed there by each
    conv's weight initializer name. Returns the model written."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise CompressError(f"{path} already exists: pass overwrite=True to replace it")
    convs = _convs(model, structure)
    violating = structure_violations(convs, structure)
    if violating:
        raise CompressError(
            f"layers {', '.join(violating)} have nonzero weights outside their structure: "
            "export the model compress returned, with the structure it returned"
        )
    proto = torch_to_onnx(model, example_input)
    names = conv_initializer_names(proto, convs)
    initializers = {init.name: init for init in proto.graph.initializer}
    for name, s in structure.items():
        if np.any(numpy_helper.to_array(initializers[names[name]])[~s.mask()] != 0):
            raise CompressError(
                f"the exported weight {names[name]!r} of layer {name!r} has nonzeros outside "
                "its structure"
            )
    entry = proto.metadata_props.add()
    entry.key = METADATA_KEY
    entry.value = encode_metadata({names[name]: s for name, s in structure.items()})
    _write_atomically(proto, path)
    return proto


def conv_initializer_names(
    proto: onnx.ModelProto, convs: Mapping[str, nn.Conv2d]
) -> dict[str, str]:
    """Module name -> name of the initializer that is that conv's weight in proto.

    The exporter names initializers after the parameter ("features.0.weight") but does not
    promise to, and it folds an eval-mode BatchNorm into the conv before it, which scales each
    output channel of the weight. So the candidates are the Conv weight initializers equal to
    the module's weight up to a scale per output channel; the one of the parameter's name is
    taken, else the only candidate."""
    weights = _conv_weight_initializers(proto)
    names = {}
    for module_name, conv in convs.items():
        weight = conv.weight.detach().cpu().numpy()
        same = [name for name, value in weights.items() if _channel_scaled(value, weight)]
        by_name = f"{module_name}.weight"
        if by_name in same:
            names[module_name] = by_name
        elif len(same) == 1:
            names[module_name] = same[0]
        else:
            found = "no" if not same else f"{len(same)} ({', '.join(same)})"
            raise CompressError(
                f"layer {module_name!r}: {found} Conv weight initializers of the exported model "
                f"hold its weight {list(weight.shape)}; cannot attach its structure"
            )
    return names


def _channel_scaled(exported: np.ndarray, weight: np.ndarray) -> bool:
    """exported == s[o] * weight[o] for every output channel o, for some nonzero scales s."""
    if exported.shape != weight.shape:
        return False
    a, b = exported.reshape(len(exported), -1), weight.reshape(len(weight), -1)
    norms = np.einsum("ij,ij->i", b, b)
    scales = np.einsum("ij,ij->i", a, b) / np.where(norms > 0, norms, 1.0)
    close = np.allclose(a, scales[:, None] * b, rtol=1e-5, atol=1e-6 * np.abs(a).max())
    return close and bool(np.all(scales[norms > 0] != 0))


def _convs(model: nn.Module, structure: Mapping[str, PatternStructure]) -> dict[str, nn.Conv2d]:
    modules = dict(model.named_modules())
    convs = {}
    for name, s in structure.items():
        conv = modules.get(name)
        if not isinstance(conv, nn.Conv2d) or tuple(conv.weight.shape) != s.shape:
            raise CompressError(
                f"the structure of {name!r} is for a Conv2d weight {list(s.shape)}, but the "
                f"model's {name!r} is {_describe(conv)}"
            )
        convs[name] = conv
    return convs


def _describe(module: nn.Module | None) -> str:
    if module is None:
        return "not a module"
    weight = getattr(module, "weight", None)
    shape = f" with weight {list(weight.shape)}" if isinstance(weight, Tensor) else ""
    return f"a {type(module).__name__}{shape}"


def _conv_weight_initializers(proto: onnx.ModelProto) -> dict[str, np.ndarray]:
    """Initializers used as a Conv's weight (input 1), as arrays."""
    conv_weights = {
        n.input[1] for n in proto.graph.node if n.op_type == "Conv" and len(n.input) > 1
    }
    return {
        init.name: numpy_helper.to_array(init)
        for init in proto.graph.initializer
        if init.name in conv_weights
    }


def _write_atomically(proto: onnx.ModelProto, path: Path) -> None:
    """A crash mid-write leaves no truncated model behind."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        onnx.save_model(proto, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
