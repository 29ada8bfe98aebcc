"""The C compiler driver: finds a compiler, builds a shared library, caches it by content hash.

The cache key covers everything that decides the binary: the source, the flags and the
compiler's identity (its --version banner). Writes are atomic (a temp file in the cache dir, then
os.replace), so processes compiling the same model at once all succeed and none sees a torn file.
"""

from __future__ import annotations

import functools
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

from xgen.errors import CompilerError

CANDIDATES = ("cc", "gcc", "clang")
# No -ffast-math: NaN and infinity must behave as in numpy. -fno-math-errno only lets sqrtf and
# friends compile to instructions; results are unchanged.
FLAGS = ("-O3", "-fopenmp", "-fPIC", "-shared", "-fno-math-errno", "-ffp-contract=fast")
# The instruction set the kernels are built for, which also picks their code path (AVX-512,
# AVX2 + FMA, NEON or portable C): this machine's unless $XGEN_MARCH names another (x86-64-v3,
# x86-64, armv8-a, ...), e.g. to check a slower machine's path here.
MARCH_ENV = "XGEN_MARCH"
LIBS = ("-lm",)
TAIL_CHARS = 4000


@dataclass(frozen=True)
class Compiler:
    path: str
    version: str  # first line of `cc --version`


def find_compiler() -> Compiler:
    """$CC if set, else the first of cc, gcc, clang on PATH; CompilerError when none is found."""
    wanted = os.environ.get("CC")
    names = [wanted] if wanted else list(CANDIDATES)
    for name in names:
        path = shutil.which(name)
        if path:
            return Compiler(path, _version(path))
    looked = f"$CC={wanted!r}" if wanted else f"{', '.join(CANDIDATES)} on PATH"
    raise CompilerError(
        f"no C compiler found (looked for {looked}). Install one, e.g. `apt-get install gcc` "
        "(Debian/Ubuntu), `xcode-select --install` (macOS), or set CC to a compiler's path."
    )


@functools.cache
def _version(path: str) -> str:
    try:
        result = subprocess.run([path, "--version"], capture_output=True, text=True, timeout=60)
    except OSError as e:
        raise CompilerError(f"cannot run the C compiler {path}: {e}") from None
    return (result.stdout or result.stderr).splitlines()[0] if result.returncode == 0 else path


def cache_dir(override: str | os.PathLike | None = None) -> Path:
    """The compile cache: the argument, else $XGEN_CACHE_DIR, else ~/.cache/xgen."""
    path = override or os.environ.get("XGEN_CACHE_DIR") or Path.home() / ".cache" / "xgen"
    return Path(path)


@functools.cache
def cpu_identity() -> str:
    """What -march=native depends on: a cache shared between machines must not mix their CPUs."""
    cpuinfo = Path("/proc/cpuinfo")
    lines = cpuinfo.read_text().splitlines() if cpuinfo.exists() else []
    wanted = [line for line in lines if line.startswith(("model name", "flags", "Features"))]
    return platform.machine() + "\n" + "\n".join(dict.fromkeys(wanted))


def flags(profile: bool = False) -> tuple[str, ...]:
    """The compiler flags; profile adds the per-node timers of emit.py's XGEN_PROFILE."""
    march = f"-march={os.environ.get(MARCH_ENV) or 'native'}"
    return (march, *FLAGS, *(("-DXGEN_PROFILE",) if profile else ()))


def cache_key(source: str, compiler: Compiler, profile: bool = False) -> str:
    digest = hashlib.sha256()
    for part in (source, " ".join(flags(profile) + LIBS), compiler.version, cpu_identity()):
        digest.update(part.encode())
        digest.update(b"\0")
    return digest.hexdigest()[:32]


def compile_shared(
    source: str, cache: str | os.PathLike | None = None, profile: bool = False
) -> Path:
    """Path to a shared library built from source: from the cache, or compiled into it."""
    compiler = find_compiler()
    directory = cache_dir(cache)
    directory.mkdir(parents=True, exist_ok=True)
    key = cache_key(source, compiler, profile)
    library = directory / f"{key}.so"
    if library.exists():
        return library
    with tempfile.TemporaryDirectory(dir=directory, prefix=f".{key}-") as work:
        c_file, so_file = Path(work) / "model.c", Path(work) / "model.so"
        c_file.write_text(source)
        command = [compiler.path, *flags(profile), str(c_file), "-o", str(so_file), *LIBS]
        try:
            result = subprocess.run(command, capture_output=True, text=True)
        except OSError as e:
            raise CompilerError(f"cannot run the C compiler {compiler.path}: {e}") from None
        if result.returncode != 0:
            output = (result.stderr + result.stdout)[-TAIL_CHARS:]
            raise CompilerError(
                f"{compiler.path} failed (exit {result.returncode}) on the generated C; "
                f"this is a bug in xgen, please report it.\n{' '.join(command)}\n{output}"
            )
        # Same directory, so the rename is atomic; a concurrent build of the same key is identical.
        os.replace(so_file, library)
    return library
