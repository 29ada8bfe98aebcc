"""CompiledModel: the generated shared library loaded with ctypes, behind a numpy interface.

The weight blob and the arena are allocated once, 64-byte aligned, when the model loads; a run
checks the feeds, allocates the output arrays and makes one C call, which allocates nothing.
"""

from __future__ import annotations

import ctypes
import os
import sys
import tempfile
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from xgen.codegen.cc import compile_shared
from xgen.codegen.emit import ABI_VERSION, GeneratedModel, TensorSpec
from xgen.errors import InputError, XgenError
from xgen.runtime import artifact

ALIGNMENT = 64
# The functions the runtime calls in a model library (kernels' own symbols are not its business).
SYMBOLS = ("xgen_abi_version", "xgen_signature", "xgen_run", "xgen_set_threads", "xgen_get_threads")
# Each library path this process loaded, with the (device, inode) it had then: see _dlopen.
_LOADED: dict[str, tuple[int, int]] = {}


def aligned_bytes(nbytes: int, data: bytes = b"") -> np.ndarray:
    """A uint8 array of nbytes (at least 1) starting at a 64-byte aligned address."""
    raw = np.zeros(max(nbytes, 1) + ALIGNMENT, dtype=np.uint8)
    start = -raw.ctypes.data % ALIGNMENT
    buffer = raw[start : start + max(nbytes, 1)]
    buffer[: len(data)] = np.frombuffer(data, dtype=np.uint8)
    return buffer


@dataclass(frozen=True)
class NodeTime:
    """One row of CompiledModel.profile: a node and its mean milliseconds per run, from the end
    of the previous node to the moment the whole team finished this one."""

    node: str
    op: str
    output: str  # the type of its (first) output, e.g. float32[1,64,56,56]
    ms: float


def load_library(path: Path, model: GeneratedModel) -> ctypes.CDLL:
    """The shared library at path, once it says it was built for model's buffer sizes.

    Nothing the library does is checked (it is code: load only libraries you trust), but a
    library of another model, or a model description edited since the build, is refused before
    any call could write past a buffer."""
    try:
        lib = _dlopen(path)
    except OSError as e:
        raise XgenError(f"{path} is not a loadable shared library: {e}") from None
    missing = [name for name in SYMBOLS if not hasattr(lib, name)]
    if missing:
        raise XgenError(
            f"{path} is not an xgen model library of ABI {ABI_VERSION} (it has no "
            f"{', '.join(missing)}): compile the model again"
        )
    if lib.xgen_abi_version() != ABI_VERSION:
        raise XgenError(f"{path} was built for model ABI {lib.xgen_abi_version()}, this xgen "
                        f"runs ABI {ABI_VERSION}: compile the model again")  # fmt: skip
    lib.xgen_signature.restype = ctypes.c_char_p
    built = (lib.xgen_signature() or b"").decode("ascii", "replace")
    if built != model.signature:
        theirs, ours = built.split("; "), model.signature.split("; ")
        differ = [f"{b} (the model says {m})" for b, m in zip(theirs, ours, strict=False) if b != m]
        raise XgenError(
            f"{path} does not match the model {model.name!r} it is loaded for: the library was "
            f"built for {', '.join(differ) or built}"
        )
    return lib


def _dlopen(path: Path) -> ctypes.CDLL:
    """dlopen(path). dlopen hands back the library it loaded before from the same path even
    when the file was replaced since (a model saved again into its folder): such a file is
    loaded from a private copy under a fresh name instead."""
    name = str(path.absolute())  # a bare name would be looked up in the system's folders
    stat = os.stat(name)
    identity = (stat.st_dev, stat.st_ino)
    if _LOADED.setdefault(name, identity) == identity:
        return ctypes.CDLL(name)
    # Beside the original: a folder just written to, where code may be mapped (unlike a noexec
    # /tmp). Unlinked at once: the mapping keeps the file alive.
    fd, copy = tempfile.mkstemp(suffix=".so", prefix=".xgen-load-", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(path.read_bytes())
        return ctypes.CDLL(copy)
    finally:
        os.unlink(copy)


class CompiledModel:
    """A model compiled to C. Call it with arrays, or run({name: array}) for a dict of outputs."""

    def __init__(self, model: GeneratedModel, library: Path, threads: int | None = None):
        self.threads = threads  # validates
        self._model, self._library = model, Path(library)
        self._lib = lib = load_library(self._library, model)
        self._run = lib.xgen_run
        self._run.argtypes = [ctypes.c_void_p] * 4
        self._run.restype = ctypes.c_int
        self._set_threads = lib.xgen_set_threads
        self._set_threads.argtypes = [ctypes.c_int]
        self._get_threads = lib.xgen_get_threads
        self._get_threads.restype = ctypes.c_int
        self._weights = aligned_bytes(len(model.weights), model.weights)
        self._arena = aligned_bytes(model.arena_bytes)
        self._lock = threading.Lock()  # one arena: runs of one model are serialised

    # ---- description -------------------------------------------------------------------------

    @property
    def name(self) -> str:
        return self._model.name

    @property
    def inputs(self) -> tuple[TensorSpec, ...]:
        return self._model.inputs

    @property
    def outputs(self) -> tuple[TensorSpec, ...]:
        return self._model.outputs

    @property
    def input_names(self) -> list[str]:
        return [s.name for s in self._model.inputs]

    @property
    def output_names(self) -> list[str]:
        return [s.name for s in self._model.outputs]

    @property
    def source(self) -> str:
        """The generated C."""
        return self._model.source

    @property
    def arena_bytes(self) -> int:
        return self._model.arena_bytes

    @property
    def weights_bytes(self) -> int:
        return len(self._model.weights)

    @property
    def threads(self) -> int:
        """Threads a run may use; setting 0 or None restores the OpenMP default."""
        with self._lock:
            self._set_threads(self._threads)
            return self._get_threads()

    @threads.setter
    def threads(self, n: int | None) -> None:
        if n is not None and (not isinstance(n, int) or n < 0):
            raise ValueError(f"threads must be a non-negative int or None, got {n!r}")
        self._threads = n or 0

    def __repr__(self) -> str:
        ins = ", ".join(f"{s.name}: {s}" for s in self.inputs)
        outs = ", ".join(f"{s.name}: {s}" for s in self.outputs)
        return f"CompiledModel({self.name!r}, ({ins}) -> ({outs}))"

    # ---- running -----------------------------------------------------------------------------

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Outputs by name for inputs by name: torch tensors if any input is one (on the CPU),
        numpy arrays otherwise."""
        if not isinstance(feeds, Mapping):
            kind = type(feeds).__name__
            raise InputError(f"run() takes a dict of arrays by input name, not a {kind}")
        expected = f"the model's inputs are {self.input_names}"
        unknown = sorted(set(feeds) - set(self.input_names))
        if unknown:
            raise InputError(f"unknown input(s) {unknown}; {expected}")
        missing = [n for n in self.input_names if n not in feeds]
        if missing:
            raise InputError(f"missing input(s) {missing}; {expected}")
        tensors = any(_is_tensor(feeds[name]) for name in self.input_names)
        arrays = [_checked(spec, _as_array(feeds[spec.name])) for spec in self.inputs]
        outputs = [np.empty(s.shape, s.dtype.numpy) for s in self.outputs]
        self._call(arrays, outputs)
        if tensors:
            import torch  # already imported: the caller made the tensors

            outputs = [torch.from_numpy(a) for a in outputs]
        return {s.name: a for s, a in zip(self.outputs, outputs, strict=True)}

    def __call__(self, *arrays: np.ndarray) -> np.ndarray | tuple[np.ndarray, ...]:
        """Inputs in order; one output comes back as an array (a tensor for tensor inputs),
        several as a tuple."""
        if len(arrays) != len(self.inputs):
            raise InputError(
                f"the model takes {len(self.inputs)} input(s) {self.input_names}, got {len(arrays)}"
            )
        result = self.run(dict(zip(self.input_names, arrays, strict=True)))
        values = tuple(result[n] for n in self.output_names)
        return values[0] if len(values) == 1 else values

    def _call(self, inputs: list[np.ndarray], outputs: list[np.ndarray]) -> None:
        in_ptrs = (ctypes.c_void_p * max(len(inputs), 1))(*(a.ctypes.data for a in inputs))
        out_ptrs = (ctypes.c_void_p * max(len(outputs), 1))(*(a.ctypes.data for a in outputs))
        with self._lock:
            self._set_threads(self._threads)
            code = self._run(in_ptrs, out_ptrs, self._weights.ctypes.data, self._arena.ctypes.data)
        if code != 0:
            raise InputError(f"model {self.name!r} stopped: {self._model.errors[code - 1]}")

    def profile(self, feeds: Mapping[str, np.ndarray], runs: int = 20) -> list[NodeTime]:
        """Milliseconds per run of each node with code, in graph order, over `runs` runs of a
        build with timers (compiled once, beside the model's library in the cache)."""
        if runs < 1:
            raise ValueError(f"runs must be at least 1, got {runs}")
        if not self._model.nodes:
            raise XgenError(f"model {self.name!r} has no node with code to profile")
        timed = CompiledModel(self._model, compile_shared(self._model.source, profile=True))
        timed._threads = self._threads
        timed.run(feeds)  # warm-up, not counted
        seconds = (ctypes.c_double * len(self._model.nodes))()
        take = timed._lib.xgen_profile
        take(seconds)
        for _ in range(runs):
            timed.run(feeds)
        take(seconds)
        nodes = self._model.nodes
        return [NodeTime(*node, s * 1000 / runs) for node, s in zip(nodes, seconds, strict=True)]

    # ---- persistence -------------------------------------------------------------------------

    def save(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write the artefact (model.c, model.so, weights.bin, manifest.json) for xgen.load into
        a new or empty folder; overwrite=True replaces those files in an occupied one. The
        threads the model was given are saved as its default."""
        return artifact.save_artifact(
            directory, self._model, self._library, overwrite, self._threads
        )

    def export_c(self, directory: str | Path, overwrite: bool = False) -> Path:
        """Write a standalone C package (model.c, weights.bin, xgen_model.h, Makefile) into a
        new or empty folder; overwrite=True replaces those files in an occupied one."""
        return artifact.export_c(directory, self._model, overwrite)


def _is_tensor(value: object) -> bool:
    """A torch tensor, told without importing torch (numpy callers need not have it)."""
    return type(value).__module__.startswith("torch")


def _as_array(value: object) -> object:
    """A torch tensor's values as numpy (detached, on the CPU); anything else as it is."""
    return value.detach().cpu().numpy() if _is_tensor(value) else value  # type: ignore[attr-defined]


def _checked(spec: TensorSpec, value: object) -> np.ndarray:
    """The feed as a C-contiguous array of exactly the spec's dtype and shape."""
    try:
        array = np.asarray(value)
    except ValueError as e:  # a ragged nested list
        raise InputError(f"input {spec.name!r} is not an array: {e}") from None
    if array.dtype != spec.dtype.numpy or array.shape != spec.shape:
        got = f"{array.dtype.name}[{','.join(map(str, array.shape))}]"
        if not array.dtype.isnative:  # same name, other byte order: say so, or both read alike
            got += f" in {_foreign_byte_order()} byte order ({array.dtype.str!r})"
        hint = ""
        if array.dtype != spec.dtype.numpy:
            hint = (f" (xgen never casts inputs implicitly: convert it with "
                    f".astype({spec.dtype.numpy.name!r}))")  # fmt: skip
        raise InputError(f"input {spec.name!r} must be {spec}, got {got}{hint}")
    return np.ascontiguousarray(array)


def _foreign_byte_order() -> str:
    return "big-endian" if sys.byteorder == "little" else "little-endian"
