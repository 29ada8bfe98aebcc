"""The on-disk artefact of a compiled model, and the standalone C package.

An artefact directory holds model.c (the generated source), model.so (built from it), weights.bin
(the weight blob) and manifest.json (what the runtime needs to call it: tensor specs, arena size,
runtime error messages, and the compiler identity that built model.so). Loading it needs no
compiler unless the shared library was built for another machine.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from xgen import __version__
from xgen.codegen.c_text import escape
from xgen.codegen.cc import cpu_identity
from xgen.codegen.emit import ABI_VERSION, GeneratedModel, TensorSpec
from xgen.errors import XgenError

FORMAT = "xgen-compiled-model"
MANIFEST, SOURCE, LIBRARY, WEIGHTS = "manifest.json", "model.c", "model.so", "weights.bin"


def is_artifact(directory: Path) -> bool:
    try:
        return json.loads((directory / MANIFEST).read_text()).get("format") == FORMAT
    except (OSError, ValueError, AttributeError):
        return False


def _prepare(directory: Path, overwrite: bool) -> None:
    """Create directory; refuse to write into a non-empty one that is not an xgen artefact."""
    if directory.exists() and not directory.is_dir():
        raise XgenError(f"{directory} exists and is not a directory")
    occupied = directory.exists() and any(directory.iterdir())
    if occupied and not is_artifact(directory) and not overwrite:
        raise XgenError(
            f"{directory} is not empty and does not hold an xgen model; "
            "pass overwrite=True to write into it anyway"
        )
    directory.mkdir(parents=True, exist_ok=True)


def save_artifact(
    directory: str | Path, model: GeneratedModel, library: Path, overwrite: bool = False
) -> Path:
    directory = Path(directory)
    _prepare(directory, overwrite)
    (directory / SOURCE).write_text(model.source)
    (directory / WEIGHTS).write_bytes(model.weights)
    shutil.copyfile(library, directory / LIBRARY)
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
    }
    (directory / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return directory


def load_artifact(directory: str | Path) -> tuple[GeneratedModel, Path | None]:
    """The saved model, and its shared library if it was built for this machine (else None)."""
    directory = Path(directory)
    if not is_artifact(directory):
        raise XgenError(f"{directory} does not hold a saved xgen model (no valid {MANIFEST})")
    manifest = json.loads((directory / MANIFEST).read_text())
    if manifest["abi_version"] != ABI_VERSION:
        raise XgenError(
            f"{directory} was saved with model ABI {manifest['abi_version']}; this xgen "
            f"({__version__}) runs ABI {ABI_VERSION}: compile the model again"
        )
    weights = (directory / WEIGHTS).read_bytes()
    if len(weights) != manifest["weights_bytes"]:
        raise XgenError(f"{directory / WEIGHTS} holds {len(weights)} bytes, "
                        f"the manifest says {manifest['weights_bytes']}")  # fmt: skip
    model = GeneratedModel(
        name=manifest["name"],
        source=(directory / SOURCE).read_text(),
        weights=weights,
        arena_bytes=manifest["arena_bytes"],
        inputs=tuple(TensorSpec.from_json(s) for s in manifest["inputs"]),
        outputs=tuple(TensorSpec.from_json(s) for s in manifest["outputs"]),
        errors=tuple(manifest["errors"]),
        # absent from artefacts saved before profiling
        nodes=tuple(tuple(node) for node in manifest.get("nodes", ())),
    )
    library = directory / LIBRARY
    native = manifest["build"]["cpu"] == cpu_identity() and library.exists()
    return model, library if native else None


def export_c(directory: str | Path, model: GeneratedModel, overwrite: bool = False) -> Path:
    """A standalone C package: model.c, weights.bin, xgen_model.h and a Makefile."""
    directory = Path(directory)
    _prepare(directory, overwrite)
    (directory / SOURCE).write_text(model.source)
    (directory / WEIGHTS).write_bytes(model.weights)
    (directory / "xgen_model.h").write_text(_header(model))
    (directory / "Makefile").write_text(_MAKEFILE)
    return directory


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
