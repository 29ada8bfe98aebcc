"""The on-disk artefact of a compiled model, and the standalone C package.

An artefact directory holds model.c (the generated source), model.so (built from it), weights.bin
(the weight blob) and manifest.json (what the runtime needs to call it: tensor specs, arena size,
runtime error messages, the compiler identity that built model.so, the threads a run uses by
default, and the sha256 of the three other files). Loading it needs no compiler unless the
shared library was built for another machine. A load trusts nothing it reads: the manifest's
fields and types, each file's digest and, once loaded, the library's own account of its buffer
sizes (CompiledModel) are all checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

from xgen import __version__
from xgen.codegen.c_text import escape
from xgen.codegen.cc import cpu_identity
from xgen.codegen.emit import ABI_VERSION, GeneratedModel, TensorSpec
from xgen.errors import XgenError

FORMAT = "xgen-compiled-model"
MANIFEST, SOURCE, LIBRARY, WEIGHTS = "manifest.json", "model.c", "model.so", "weights.bin"
DIGESTED = (SOURCE, WEIGHTS, LIBRARY)  # the files whose sha256 the manifest records
MAX_THREADS = 4096  # the most a manifest may ask a run for
# The manifest's fields and their JSON types, beyond format and abi_version.
FIELDS: dict[str, type] = {
    "name": str,
    "inputs": list,
    "outputs": list,
    "arena_bytes": int,
    "weights_bytes": int,
    "errors": list,
    "nodes": list,
    "build": dict,
    "sha256": dict,
}


def is_artifact(directory: Path) -> bool:
    try:
        return json.loads((directory / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def check_target(directory: Path, overwrite: bool, knob: str = "overwrite=True") -> None:
    """Refuse to write into an existing non-empty folder unless overwrite is set; knob names
    the setting to the user (overwrite=True in Python, --overwrite on the command line)."""
    if directory.exists() and not directory.is_dir():
        raise XgenError(f"{directory} exists and is not a directory")
    try:
        occupied = directory.is_dir() and any(directory.iterdir())
    except OSError as e:
        raise XgenError(f"cannot read {directory}: {e.strerror or e}") from None
    if occupied and not overwrite:
        held = "a saved xgen model" if is_artifact(directory) else "other files"
        raise XgenError(
            f"{directory} is not empty (it holds {held}); pass {knob} to replace the files "
            "xgen writes there"
        )


def _write(directory: Path, files: dict[str, bytes], overwrite: bool) -> Path:
    """Write files (in order) into directory. Each is staged in a temp folder inside it, then
    renamed into place: an existing file is replaced, never written in place, so a process that
    has the old model.so loaded keeps its inode and runs on, and a killed write leaves no torn
    file. Other files in directory are kept."""
    check_target(directory, overwrite)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=directory, prefix=".xgen-write-") as work:
            for name, data in files.items():
                (Path(work) / name).write_bytes(data)
            for name in files:
                os.replace(Path(work) / name, directory / name)
    except OSError as e:
        raise XgenError(f"cannot write {directory}: {e.strerror or e}") from None
    return directory


def save_artifact(
    directory: str | Path,
    model: GeneratedModel,
    library: Path,
    overwrite: bool = False,
    threads: int = 0,
) -> Path:
    """threads: the default a load runs with (0: OpenMP's)."""
    try:
        binary = library.read_bytes()
    except OSError as e:
        raise XgenError(f"cannot read the model's library {library}: {e.strerror or e}") from None
    files = {SOURCE: model.source.encode(), WEIGHTS: model.weights, LIBRARY: binary}
    manifest = {
        "format": FORMAT,
        "xgen_version": __version__,
        "abi_version": ABI_VERSION,
        "name": model.name,
        "inputs": [s.to_json() for s in model.inputs],
        "outputs": [s.to_json() for s in model.outputs],
        "arena_bytes": model.arena_bytes,
        "weights_bytes": len(model.weights),
        "errors": list(model.errors),
        "nodes": list(model.nodes),
        "build": {"key": library.stem, "cpu": cpu_identity()},
        "threads": threads,
        "sha256": {name: hashlib.sha256(data).hexdigest() for name, data in files.items()},
    }
    files[MANIFEST] = (json.dumps(manifest, indent=2) + "\n").encode()  # last: once all is in
    return _write(Path(directory), files, overwrite)


def load_artifact(directory: str | Path) -> tuple[GeneratedModel, Path | None, int]:
    """The saved model, its shared library if it was built for this machine (else None), and
    the threads it runs with by default (0, OpenMP's, for a model saved without the field)."""
    directory = Path(directory)
    manifest = _read_manifest(directory)
    data = {name: _read_verified(directory / name, manifest["sha256"]) for name in DIGESTED}
    if len(data[WEIGHTS]) != manifest["weights_bytes"]:
        raise XgenError(f"{directory / WEIGHTS} holds {len(data[WEIGHTS])} bytes, "
                        f"the manifest says {manifest['weights_bytes']}")  # fmt: skip
    try:
        source = data[SOURCE].decode()
    except UnicodeDecodeError:
        raise _damaged(directory / SOURCE, "it is not UTF-8 text") from None
    path = directory / MANIFEST
    model = GeneratedModel(
        name=manifest["name"],
        source=source,
        weights=data[WEIGHTS],
        arena_bytes=manifest["arena_bytes"],
        inputs=tuple(_spec(s, path) for s in manifest["inputs"]),
        outputs=tuple(_spec(s, path) for s in manifest["outputs"]),
        errors=tuple(manifest["errors"]),
        nodes=tuple(tuple(node) for node in manifest["nodes"]),
    )
    native = manifest["build"]["cpu"] == cpu_identity()
    return model, directory / LIBRARY if native else None, manifest.get("threads", 0)


def _read_manifest(directory: Path) -> dict:
    """The manifest, once its format, ABI and every field's type are as save_artifact writes."""
    path = directory / MANIFEST
    try:
        manifest = json.loads(path.read_bytes())
    except OSError:
        raise XgenError(f"{directory} does not hold a saved xgen model (no {MANIFEST})") from None
    except ValueError as e:
        raise _damaged(path, f"it is not JSON ({e})") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise XgenError(f"{directory} does not hold a saved xgen model ({path} is not xgen's)")
    if manifest.get("abi_version") != ABI_VERSION:
        raise XgenError(
            f"{directory} was saved with model ABI {manifest.get('abi_version')!r}; this xgen "
            f"({__version__}) runs ABI {ABI_VERSION}: compile the model again"
        )
    for field, kind in FIELDS.items():
        value = manifest.get(field)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise _damaged(path, f"{field!r} is {_short(value)}, not a JSON {kind.__name__}")
    checks = {
        "errors": all(isinstance(e, str) for e in manifest["errors"]),
        "nodes": all(_is_strings(node, 3) for node in manifest["nodes"]),
        "build": isinstance(manifest["build"].get("cpu"), str),
        "sha256": all(isinstance(manifest["sha256"].get(name), str) for name in DIGESTED),
        "threads": _is_count(manifest.get("threads", 0)),  # optional: older saves lack it
    }
    for field, good in checks.items():
        if not good:
            raise _damaged(path, f"{field!r} is {_short(manifest.get(field))}")
    return manifest


def _is_count(value: object) -> bool:
    """A thread count a hostile manifest cannot turn into a fork bomb or a C int overflow."""
    return type(value) is int and 0 <= value <= MAX_THREADS


def _is_strings(value: object, count: int) -> bool:
    return (
        isinstance(value, list) and len(value) == count
        and all(isinstance(v, str) for v in value)
    )


def _spec(data: object, path: Path) -> TensorSpec:
    try:
        spec = TensorSpec.from_json(data)
    except (KeyError, TypeError, ValueError):
        spec = None
    shape_ok = spec is not None and all(type(d) is int and d >= 0 for d in spec.shape)
    if spec is None or not isinstance(spec.name, str) or not shape_ok:
        raise _damaged(path, f"{_short(data)} is not a tensor spec")
    return spec


def _read_verified(path: Path, digests: dict[str, str]) -> bytes:
    """The file's bytes, if their sha256 is the one the manifest recorded."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise XgenError(f"{path} is missing: the saved model is incomplete") from None
    except OSError as e:
        raise XgenError(f"cannot read {path}: {e.strerror or e}") from None
    if hashlib.sha256(data).hexdigest() != digests[path.name]:
        raise _damaged(path, f"its sha256 is not the one {MANIFEST} recorded when it was saved")
    return data


def _damaged(path: Path, what: str) -> XgenError:
    return XgenError(
        f"{path} was modified or damaged since it was saved: {what}; save the model again"
    )


def _short(value: object) -> str:
    text = json.dumps(value)
    return text if len(text) <= 80 else text[:77] + "..."


def export_c(directory: str | Path, model: GeneratedModel, overwrite: bool = False) -> Path:
    """A standalone C package: model.c, weights.bin, xgen_model.h and a Makefile."""
    files = {
        SOURCE: model.source.encode(),
        WEIGHTS: model.weights,
        "xgen_model.h": _header(model).encode(),
        "Makefile": _MAKEFILE.encode(),
    }
    return _write(Path(directory), files, overwrite)


def _describe(specs: tuple[TensorSpec, ...]) -> str:
    return "\n".join(f" *   [{i}] {escape(s.name)}: {s}" for i, s in enumerate(specs))


def _header(model: GeneratedModel) -> str:
    return _HEADER.format(
        name=escape(model.name),
        inputs=_describe(model.inputs),
        outputs=_describe(model.outputs),
        arena=model.arena_bytes,
        weights=len(model.weights),
        n_in=len(model.inputs),
        n_out=len(model.outputs),
    )


_HEADER = """\
/* xgen model {name}: the C API of model.c.
 *
 * inputs (dense row-major buffers, in this order):
{inputs}
 * outputs:
{outputs}
 *
 * Load weights.bin (XGEN_MODEL_WEIGHTS_BYTES bytes) into a 64-byte aligned buffer, allocate a
 * 64-byte aligned arena of XGEN_MODEL_ARENA_BYTES, then call xgen_run as often as needed. One
 * arena per concurrent caller.
 */
#ifndef XGEN_MODEL_H
#define XGEN_MODEL_H

#define XGEN_MODEL_NUM_INPUTS {n_in}
#define XGEN_MODEL_NUM_OUTPUTS {n_out}
#define XGEN_MODEL_ARENA_BYTES {arena}L
#define XGEN_MODEL_WEIGHTS_BYTES {weights}L

int xgen_abi_version(void);
long xgen_arena_bytes(void);
long xgen_weights_bytes(void);
/* The buffer sizes it was built for: ABI, arena, weights, input and output types by position. */
const char *xgen_signature(void);
void xgen_set_threads(int n); /* 0: the OpenMP default */
int xgen_get_threads(void);
/* Returns 0, or k > 0 when a runtime check failed (e.g. a Gather index out of range). */
int xgen_run(void *const *inputs, void *const *outputs, const char *weights, char *arena);

#endif
"""

_MAKEFILE = """\
CC ?= cc
CFLAGS ?= -O3 -march=native -fopenmp -fno-math-errno -ffp-contract=fast

all: libxgen_model.so libxgen_model.a

libxgen_model.so: model.c xgen_model.h
\t$(CC) $(CFLAGS) -fPIC -shared model.c -o $@ -lm

libxgen_model.a: model.c xgen_model.h
\t$(CC) $(CFLAGS) -c model.c -o model.o
\tar rcs $@ model.o

clean:
\trm -f libxgen_model.so libxgen_model.a model.o

.PHONY: all clean
"""
