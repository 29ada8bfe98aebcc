"""A model's generated C built into a small program with its own main, compiled and run apart
from Python: on another instruction set (under qemu), without OpenMP, or under the sanitizers.

The program reads in{i}.bin and weights.bin, runs xgen_run once into buffers of exactly the
outputs' sizes and an arena of xgen_arena_bytes (+64), and writes out{i}.bin, so that a kernel
touching a byte outside what its lowering reserved shows up under AddressSanitizer.
"""

from __future__ import annotations

import copy
import subprocess
from pathlib import Path

import numpy as np

from xgen import passes, reference
from xgen.codegen.cc import find_compiler
from xgen.codegen.emit import generate
from xgen.ir import Graph

HARNESS = """
#include <stdio.h>
#include <stdlib.h>

int xgen_run(void *const *inputs, void *const *outputs, const char *weights, char *arena);
long xgen_arena_bytes(void);
long xgen_weights_bytes(void);

/* Reads n bytes of a file into 64-byte aligned memory. */
static char *load(const char *path, long n) {
    char *p = aligned_alloc(64, (size_t)(n + 63) / 64 * 64 + 64);
    FILE *f = fopen(path, "rb");
    if (!f || (n && fread(p, 1, (size_t)n, f) != (size_t)n)) exit(2);
    fclose(f);
    return p;
}

int main(void) {
    static const long in_bytes[] = {IN_BYTES}, out_bytes[] = {OUT_BYTES};
    enum { N_IN = sizeof in_bytes / sizeof in_bytes[0] };
    enum { N_OUT = sizeof out_bytes / sizeof out_bytes[0] };
    void *inputs[N_IN], *outputs[N_OUT];
    char name[32];
    for (unsigned i = 0; i < N_IN; i++) {
        snprintf(name, sizeof name, "in%u.bin", i);
        inputs[i] = load(name, in_bytes[i]);
    }
    for (unsigned i = 0; i < N_OUT; i++)
        outputs[i] = aligned_alloc(64, (size_t)(out_bytes[i] + 63) / 64 * 64);
    char *weights = load("weights.bin", xgen_weights_bytes());
    char *arena = aligned_alloc(64, (size_t)(xgen_arena_bytes() + 63) / 64 * 64 + 64);
    if (xgen_run(inputs, outputs, weights, arena) != 0) return 3;
    for (unsigned i = 0; i < N_OUT; i++) {
        snprintf(name, sizeof name, "out%u.bin", i);
        FILE *f = fopen(name, "wb");
        fwrite(outputs[i], 1, (size_t)out_bytes[i], f);
        fclose(f);
        free(outputs[i]);
    }
    for (unsigned i = 0; i < N_IN; i++) free(inputs[i]);
    free(weights);
    free(arena);
    return 0;
}
"""


def sanitized() -> list[str]:
    """The host compiler under AddressSanitizer and UBSan (with float-to-integer conversions
    out of range, which gcc leaves out of -fsanitize=undefined); any report stops the
    program."""
    flags = ["-fsanitize=address,undefined,float-cast-overflow", "-fno-sanitize-recover=all"]
    return [find_compiler().path, "-march=native", "-fopenmp", "-g", *flags]


def float_feeds(g: Graph, rng: np.random.Generator) -> dict[str, np.ndarray]:
    return {v.name: rng.uniform(-1, 1, v.shape).astype(np.float32) for v in g.inputs}


def assert_matches_reference(g: Graph, inputs: dict, outputs: dict[str, np.ndarray]) -> None:
    for name, want in reference.run(g, inputs).items():
        scale = max(1.0, float(np.abs(want).max(initial=0, where=np.isfinite(want))))
        np.testing.assert_allclose(outputs[name], want, rtol=2e-5, atol=2e-5 * scale, err_msg=name)


def build_and_run(
    directory: Path, compiler: list[str], runner: list[str], g: Graph, inputs: dict[str, np.ndarray]
) -> dict[str, np.ndarray]:
    """g, optimised, as a C program (model.c + the harness) built with `compiler` (a command:
    path and flags) and run with `runner` on inputs; its outputs must match the numpy reference.
    Returns them."""
    generated = generate(passes.optimize(copy.deepcopy(g)))
    (directory / "model.c").write_text(generated.source)
    (directory / "weights.bin").write_bytes(generated.weights)
    harness = HARNESS.replace("IN_BYTES", ", ".join(str(s.nbytes) for s in generated.inputs))
    harness = harness.replace("OUT_BYTES", ", ".join(str(s.nbytes) for s in generated.outputs))
    (directory / "main.c").write_text(harness)
    for i, spec in enumerate(generated.inputs):
        inputs[spec.name].tofile(directory / f"in{i}.bin")
    build = [*compiler, "-O2", "-fno-math-errno", "-ffp-contract=fast", "model.c", "main.c"]
    subprocess.run([*build, "-o", "model", "-lm"], cwd=directory, check=True, capture_output=True)
    run = subprocess.run(
        [*runner, "./model"], cwd=directory, capture_output=True, env={"OMP_NUM_THREADS": "2"}
    )
    assert run.returncode == 0, run.stderr.decode(errors="replace")[-4000:]
    outputs = {
        spec.name: np.fromfile(directory / f"out{i}.bin", spec.dtype.numpy).reshape(spec.shape)
        for i, spec in enumerate(generated.outputs)
    }
    assert_matches_reference(g, inputs, outputs)
    return outputs
