"""Pattern + connectivity structure of 3x3 Conv weights (PatDNN), shared by compression and the
compiler.

A pruned Conv weight [cout, cin, 3, 3] keeps, in every kernel (one output-input channel pair),
the taps of one pattern of a small library (each pattern keeps 4 of the 9 taps, tap = 3*ky + kx),
or no tap at all when connectivity pruning removed the kernel. The structure travels in an ONNX
file as JSON in metadata_props[METADATA_KEY], keyed by the Conv weight's initializer name; the
zeros are in the weights too, and the compiler checks one against the other: it finds the
structure in the weights themselves (pattern_structure).

numpy only: the compiler imports this module, and it must not pull in torch.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from xgen.errors import ModelLoadError

METADATA_KEY = "xgen.sparsity"
REMOVED = -1  # assignment of a kernel removed by connectivity pruning
TAPS = 9  # taps of a 3x3 kernel
FORMAT_VERSION = 1
_CHUNK = 1 << 14  # kernels scored at a time: bounds the [kernels, candidates] score matrix
PATTERN_TAPS = 4  # taps a pattern keeps (what the compiler's pattern kernel sums per kernel)
PATTERN_SLOTS = 16  # the largest library the compiler's pattern kernel takes (XG_PATTERN_SLOTS)
_TAP_BITS = 1 << np.arange(TAPS)


@dataclass(frozen=True, eq=False)
class PatternStructure:
    """The structure of one Conv weight [cout, cin, 3, 3]."""

    patterns: tuple[tuple[int, ...], ...]  # the library: sorted kept taps of each pattern
    assignment: np.ndarray  # int16 [cout, cin]: index into patterns, or REMOVED

    def __post_init__(self) -> None:
        patterns = tuple(tuple(int(t) for t in p) for p in self.patterns)
        for p in patterns:
            if not p or list(p) != sorted(set(p)) or p[0] < 0 or p[-1] >= TAPS:
                raise ValueError(f"pattern {p} is not a sorted set of taps in 0..8")
        if len(set(patterns)) != len(patterns):
            raise ValueError(f"the pattern library {patterns} holds a pattern twice")
        assignment = np.asarray(self.assignment)
        if assignment.ndim != 2 or 0 in assignment.shape or assignment.dtype.kind not in "iu":
            raise ValueError(
                f"assignment must be a non-empty 2-D integer array [cout, cin], got "
                f"{assignment.dtype}{list(assignment.shape)}"
            )
        if assignment.min() < REMOVED or assignment.max() >= len(patterns):
            raise ValueError(
                f"assignment values must be in [{REMOVED}, {len(patterns) - 1}] "
                f"(a pattern index or REMOVED), got [{assignment.min()}, {assignment.max()}]"
            )
        assignment = assignment.astype(np.int16)  # a copy: the caller's array may change
        assignment.flags.writeable = False
        object.__setattr__(self, "patterns", patterns)
        object.__setattr__(self, "assignment", assignment)

    @property
    def shape(self) -> tuple[int, int, int, int]:
        """The shape of the Conv weight this structure describes."""
        cout, cin = self.assignment.shape
        return cout, cin, 3, 3

    def mask(self) -> np.ndarray:
        """bool [cout, cin, 3, 3]: True where a weight is kept."""
        table = np.zeros((len(self.patterns) + 1, TAPS), dtype=bool)
        for i, pattern in enumerate(self.patterns):
            table[i, list(pattern)] = True
        # REMOVED = -1 indexes the last row, which keeps nothing
        return table[self.assignment].reshape(self.shape)

    @property
    def kept_kernels(self) -> int:
        return int(np.count_nonzero(self.assignment != REMOVED))

    @property
    def kept_weights(self) -> int:
        sizes = np.array([len(p) for p in self.patterns] + [0])  # last entry: REMOVED
        return int(sizes[self.assignment].sum())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, PatternStructure):
            return NotImplemented
        return self.patterns == other.patterns and np.array_equal(self.assignment, other.assignment)

    __hash__ = None  # type: ignore[assignment]  # holds an array


def encode_metadata(layers: Mapping[str, PatternStructure]) -> str:
    """JSON text for metadata_props[METADATA_KEY]; keys are Conv weight initializer names."""
    return json.dumps(
        {
            "version": FORMAT_VERSION,
            "layers": {
                name: {"patterns": s.patterns, "assignment": s.assignment.tolist()}
                for name, s in layers.items()
            },
        },
        separators=(",", ":"),
    )


def decode_metadata(text: str) -> dict[str, PatternStructure]:
    """The structures encode_metadata wrote; ModelLoadError on anything malformed."""
    try:
        doc = json.loads(text)
    except (json.JSONDecodeError, TypeError) as e:
        raise ModelLoadError(f"{METADATA_KEY} metadata is not valid JSON: {e}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("layers"), dict):
        raise ModelLoadError(f"{METADATA_KEY} metadata must be an object with a 'layers' object")
    if doc.get("version") != FORMAT_VERSION:
        raise ModelLoadError(
            f"{METADATA_KEY} metadata version {doc.get('version')!r} is not supported "
            f"(this xgen reads version {FORMAT_VERSION})"
        )
    return {name: _decode_layer(name, entry) for name, entry in doc["layers"].items()}


def _decode_layer(name: str, entry: object) -> PatternStructure:
    where = f"{METADATA_KEY} metadata of {name!r}"
    if not isinstance(entry, dict) or set(entry) != {"patterns", "assignment"}:
        raise ModelLoadError(f"{where} must be an object with 'patterns' and 'assignment'")
    patterns, assignment = entry["patterns"], entry["assignment"]
    if not isinstance(patterns, list) or not all(
        isinstance(p, list) and all(type(t) is int for t in p) for p in patterns
    ):
        raise ModelLoadError(f"{where}: 'patterns' must be a list of lists of tap indices")
    try:
        array = np.array(assignment)
        # rejects bools, floats, strings, ragged rows (which numpy refuses or makes objects)
        if array.ndim != 2 or 0 in array.shape or array.dtype.kind not in "iu":
            raise ValueError("'assignment' must be a non-empty 2-D list [cout][cin] of integers")
        return PatternStructure(tuple(tuple(p) for p in patterns), array)
    except ValueError as e:
        raise ModelLoadError(f"{where}: {e}") from None


def candidate_patterns(taps_kept: int = 4) -> tuple[tuple[int, ...], ...]:
    """Every choice of taps_kept taps of 9, sorted, in lexicographic order (126 for 4)."""
    if not 1 <= taps_kept <= TAPS:
        raise ValueError(f"taps_kept must be in 1..{TAPS}, got {taps_kept}")
    return tuple(itertools.combinations(range(TAPS), taps_kept))


def select_library(
    weights: Sequence[np.ndarray], size: int = 8, taps_kept: int = 4
) -> tuple[tuple[int, ...], ...]:
    """The size candidate patterns that are most often a kernel's best fit (the candidate
    keeping the most squared magnitude) over all kernels of weights ([cout, cin, 3, 3] each).

    All-zero kernels have no best fit and are not counted. Ties go to the candidate first in
    candidate_patterns order, so the library is deterministic; it is returned in that order.
    """
    candidates = candidate_patterns(taps_kept)
    if not 1 <= size <= len(candidates):
        raise ValueError(f"library size must be in 1..{len(candidates)}, got {size}")
    if not weights:
        raise ValueError("select_library needs at least one weight")
    counts = np.zeros(len(candidates), dtype=np.int64)
    members = _membership(candidates)
    for i, weight in enumerate(weights):
        squares = _kernel_squares(weight, f"weight {i}")
        for start in range(0, len(squares), _CHUNK):
            chunk = squares[start : start + _CHUNK]
            best = np.argmax(chunk @ members.T, axis=1)[chunk.any(axis=1)]
            counts += np.bincount(best, minlength=len(candidates))
    chosen = np.argsort(-counts, kind="stable")[:size]  # stable: ties keep candidate order
    return tuple(candidates[i] for i in sorted(chosen))


def assign_patterns(
    weight: np.ndarray, library: Sequence[Sequence[int]], connectivity_rate: float
) -> np.ndarray:
    """int16 [cout, cin]: each kernel's library pattern keeping the most squared magnitude (the
    Euclidean projection onto the library), then the floor(rate * kernels) kernels of smallest
    norm after that projection set to REMOVED. Ties go to the lower index, for determinism."""
    if not 0.0 <= connectivity_rate < 1.0:
        raise ValueError(f"connectivity rate must be in [0, 1), got {connectivity_rate}")
    if not library:
        raise ValueError("the pattern library is empty")
    squares = _kernel_squares(weight, "weight")
    members = _membership(library)
    best = np.empty(len(squares), dtype=np.int16)
    kept = np.empty(len(squares), dtype=squares.dtype)
    for start in range(0, len(squares), _CHUNK):
        scores = squares[start : start + _CHUNK] @ members.T
        best[start : start + _CHUNK] = np.argmax(scores, axis=1)
        kept[start : start + _CHUNK] = scores.max(axis=1)
    # 1e-9: 0.29 * 100 is 28.999999999999996 in floating point, and should remove 29
    removed = math.floor(connectivity_rate * len(squares) + 1e-9)
    best[np.argsort(kept, kind="stable")[:removed]] = REMOVED
    return best.reshape(weight.shape[:2])


def _kernel_squares(weight: np.ndarray, what: str) -> np.ndarray:
    """[cout * cin, 9] squared weights, as float64 whatever the weight dtype (float16 squares
    lose the small differences that decide between patterns)."""
    weight = np.asarray(weight)
    if weight.ndim != 4 or weight.shape[2:] != (3, 3) or 0 in weight.shape:
        raise ValueError(
            f"{what} must be a [cout, cin, 3, 3] array, got shape {list(weight.shape)}"
        )
    return np.square(weight.reshape(-1, TAPS), dtype=np.float64)


def _membership(patterns: Sequence[Sequence[int]]) -> np.ndarray:
    """[patterns, 9] float64, 1 where a pattern keeps a tap."""
    members = np.zeros((len(patterns), TAPS))
    for i, pattern in enumerate(patterns):
        members[i, list(pattern)] = 1.0
    return members


def pattern_structure(weight: np.ndarray) -> PatternStructure | None:
    """The pattern + connectivity structure of a [cout, cin, 3, 3] weight, or None when some
    kernel keeps more than 4 taps, no kernel is kept or the patterns do not fit PATTERN_SLOTS.
    A kernel with fewer non-zero taps (a weight that is 0 by chance) takes the first library
    pattern that covers them."""
    nonzero = weight.reshape(-1, TAPS) != 0
    taps = nonzero.sum(axis=1)
    if taps.max(initial=0) > PATTERN_TAPS or not taps.any():
        return None
    bits = nonzero.astype(np.int64) @ _TAP_BITS
    library = sorted(set(bits[taps == PATTERN_TAPS].tolist()))
    for partial in np.unique(bits[(taps > 0) & (taps < PATTERN_TAPS)]).tolist():
        if not any(partial & full == partial for full in library):
            library.append(_first_cover(partial))
    if len(library) > PATTERN_SLOTS:
        return None
    library.sort()
    covers = (bits[:, None] & np.array(library)) == bits[:, None]
    assignment = np.where(taps > 0, np.argmax(covers, axis=1), REMOVED)
    patterns = tuple(tuple(int(t) for t in np.flatnonzero(m & _TAP_BITS)) for m in library)
    return PatternStructure(patterns, assignment.reshape(weight.shape[:2]))


def _first_cover(bits: int) -> int:
    """The first 4-tap candidate pattern (in candidate_patterns order) holding the taps bits."""
    for pattern in candidate_patterns(PATTERN_TAPS):
        full = int(_TAP_BITS[list(pattern)].sum())
        if bits & full == bits:
            return full
    raise AssertionError(f"no 4-tap pattern covers tap bits {bits:#b}")  # at most 3 taps: one does
