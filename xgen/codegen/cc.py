"""The C compiler driver: finds a compiler, builds a shared library, caches it by content hash.

The cache key covers everything that decides the binary: the source, the flags and the
compiler's identity (its --version banner). An entry is KEY.so and KEY.sha256 (the library's
digest), each written atomically (built in a temp folder in the cache dir, then os.replace), so
processes compiling the same model at once all succeed and none sees a torn file. A library is
loaded only when its digest matches: a truncated or damaged one (a full disk, a killed copy) is
rebuilt, never mapped (that would be SIGBUS). Temp folders left by killed compiles are removed.
"""

from __future__ import annotations

import functools
import hashlib
import logging
import os
import platform
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from xgen.errors import CompilerError, XgenError

log = logging.getLogger(__name__)

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
# A temp build folder is .KEY-PID-RANDOM; one whose process is gone and that is older than this
# is a killed compile's leftover (the age spares a live compile by a process on another machine
# sharing the cache, whose PID means nothing here).
STALE_SECONDS = 600


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
    key = cache_key(source, compiler, profile)
    library = directory / f"{key}.so"
    try:
        directory.mkdir(parents=True, exist_ok=True)
        if _verified(library):
            log.info("compile cache hit: %s", library)
            return library
        log.info("compile cache miss: compiling with %s into %s", compiler.path, library)
        _remove_stale_builds(directory)
        with tempfile.TemporaryDirectory(dir=directory, prefix=f".{key}-{os.getpid()}-") as work:
            so_file = _build(source, compiler, profile, Path(work))
            digest_file = Path(work) / "digest"
            digest_file.write_text(_digest(so_file) + "\n")
            # Same directory, so each rename is atomic; a concurrent build of the key is identical.
            os.replace(so_file, library)
            os.replace(digest_file, library.with_suffix(".sha256"))
    except OSError as e:
        raise XgenError(
            f"cannot use the compile cache {directory}: {e.strerror or e}; "
            "set $XGEN_CACHE_DIR to a writable folder"
        ) from None
    return library


def _build(source: str, compiler: Compiler, profile: bool, work: Path) -> Path:
    c_file, so_file = work / "model.c", work / "model.so"
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
    return so_file


def _digest(path: Path) -> str:
    with path.open("rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def _verified(library: Path) -> bool:
    """Whether the cache entry exists and its library still has the digest it was built with."""
    try:
        expected = library.with_suffix(".sha256").read_text().strip()
        return _digest(library) == expected
    except (OSError, UnicodeDecodeError):
        return False  # missing or unreadable: build it (again)


def _remove_stale_builds(directory: Path) -> None:
    """Remove the temp build folders of compiles that were killed (see STALE_SECONDS)."""
    now = time.time()
    for path in directory.glob(".*-*"):
        try:
            old = now - path.stat().st_mtime > STALE_SECONDS
            if old and path.is_dir() and not _alive(path.name):
                shutil.rmtree(path, ignore_errors=True)
        except OSError:
            pass  # another process removed it first


def _alive(build_name: str) -> bool:
    """Whether the process that named a temp build folder .KEY-PID-RANDOM still runs (False
    for the folders of older xgen versions, .KEY-RANDOM)."""
    parts = build_name.split("-")
    pid = parts[1] if len(parts) > 2 else ""
    if not pid.isdigit():
        return False
    try:
        os.kill(int(pid), 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # it runs, under another user
    return True
