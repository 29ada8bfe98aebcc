"""The closed op set of the IR.

Every op declares its DNNFusion mapping type (how input elements map to output elements), which
the fusion planner reads, and its attributes as a frozen dataclass whose fields are fully resolved
by the frontend: axes are non-negative, pads explicit, shapes static. Anything an external format
passes as a constant input (Reshape's shape, Slice's starts, Clip's bounds...) is an attribute here,
so that passes and code generators see only data tensors as inputs.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import TYPE_CHECKING, TypeVar

from xgen.ir.dtypes import DType

if TYPE_CHECKING:
    from xgen.ir.graph import Node, Value

T = TypeVar("T")


class MappingType(Enum):
    """DNNFusion's classification of an operator by its input-to-output element mapping."""

    ONE_TO_ONE = "one-to-one"
    ONE_TO_MANY = "one-to-many"
    MANY_TO_MANY = "many-to-many"
    REORGANIZE = "reorganize"
    SHUFFLE = "shuffle"


class Op(Enum):
    # one-to-one, unary
    IDENTITY = "Identity"
    RELU = "Relu"
    SIGMOID = "Sigmoid"
    TANH = "Tanh"
    ERF = "Erf"
    SQRT = "Sqrt"
    EXP = "Exp"
    LOG = "Log"
    NEG = "Neg"
    ABS = "Abs"
    RECIPROCAL = "Reciprocal"
    FLOOR = "Floor"
    CEIL = "Ceil"
    ROUND = "Round"
    SIGN = "Sign"
    SIN = "Sin"
    COS = "Cos"
    SOFTPLUS = "Softplus"
    SOFTSIGN = "Softsign"
    HARD_SWISH = "HardSwish"
    NOT = "Not"
    IS_NAN = "IsNaN"
    GELU = "Gelu"
    HARD_SIGMOID = "HardSigmoid"
    LEAKY_RELU = "LeakyRelu"
    ELU = "Elu"
    CLIP = "Clip"
    CAST = "Cast"
    # one-to-one, binary with numpy broadcasting
    ADD = "Add"
    SUB = "Sub"
    MUL = "Mul"
    DIV = "Div"
    POW = "Pow"
    MAX = "Max"
    MIN = "Min"
    MOD = "Mod"
    PRELU = "PRelu"
    AND = "And"
    OR = "Or"
    XOR = "Xor"
    EQUAL = "Equal"
    LESS = "Less"
    LESS_OR_EQUAL = "LessOrEqual"
    GREATER = "Greater"
    GREATER_OR_EQUAL = "GreaterOrEqual"
    WHERE = "Where"
    BATCH_NORM = "BatchNormalization"
    FUSED_ELEMENTWISE = "FusedElementwise"  # a chain of the above (xgen.passes.elementwise)
    # many-to-many
    CONV = "Conv"
    CONV_TRANSPOSE = "ConvTranspose"
    GEMM = "Gemm"
    MATMUL = "MatMul"
    LAYER_NORM = "LayerNormalization"
    INSTANCE_NORM = "InstanceNormalization"
    SOFTMAX = "Softmax"
    LOG_SOFTMAX = "LogSoftmax"
    REDUCE_MEAN = "ReduceMean"
    REDUCE_SUM = "ReduceSum"
    REDUCE_MAX = "ReduceMax"
    REDUCE_MIN = "ReduceMin"
    REDUCE_PROD = "ReduceProd"
    ARG_MAX = "ArgMax"
    ARG_MIN = "ArgMin"
    MAX_POOL = "MaxPool"
    AVERAGE_POOL = "AveragePool"
    ATTENTION = "Attention"  # fused by xgen.passes.attention, never imported
    # one-to-many
    EXPAND = "Expand"
    TILE = "Tile"
    RESIZE = "Resize"
    # reorganize
    RESHAPE = "Reshape"
    CONCAT = "Concat"
    SPLIT = "Split"
    SLICE = "Slice"
    PAD = "Pad"
    GATHER = "Gather"
    GATHER_ND = "GatherND"
    # shuffle
    TRANSPOSE = "Transpose"

    @property
    def mapping(self) -> MappingType:
        return _MAPPING[self]

    @property
    def attrs_type(self) -> type | None:
        return ATTRS_TYPES.get(self)


UNARY_OPS = frozenset(
    {
        Op.IDENTITY, Op.RELU, Op.SIGMOID, Op.TANH, Op.ERF, Op.SQRT, Op.EXP, Op.LOG, Op.NEG,
        Op.ABS, Op.RECIPROCAL, Op.FLOOR, Op.CEIL, Op.ROUND, Op.SIGN, Op.SIN, Op.COS,
        Op.SOFTPLUS, Op.SOFTSIGN, Op.HARD_SWISH, Op.NOT, Op.IS_NAN, Op.GELU, Op.HARD_SIGMOID,
        Op.LEAKY_RELU, Op.ELU, Op.CLIP, Op.CAST,
    }
)  # fmt: skip
COMPARISON_OPS = frozenset({Op.EQUAL, Op.LESS, Op.LESS_OR_EQUAL, Op.GREATER, Op.GREATER_OR_EQUAL})
LOGICAL_OPS = frozenset({Op.AND, Op.OR, Op.XOR})
BINARY_OPS = frozenset(
    {Op.ADD, Op.SUB, Op.MUL, Op.DIV, Op.POW, Op.MAX, Op.MIN, Op.MOD, Op.PRELU}
    | COMPARISON_OPS
    | LOGICAL_OPS
)
REDUCE_OPS = frozenset(
    {Op.REDUCE_MEAN, Op.REDUCE_SUM, Op.REDUCE_MAX, Op.REDUCE_MIN, Op.REDUCE_PROD}
)
POOL_OPS = frozenset({Op.MAX_POOL, Op.AVERAGE_POOL})

_MAPPING: dict[Op, MappingType] = {
    **{op: MappingType.ONE_TO_ONE for op in UNARY_OPS | BINARY_OPS},
    Op.WHERE: MappingType.ONE_TO_ONE,
    Op.BATCH_NORM: MappingType.ONE_TO_ONE,
    Op.FUSED_ELEMENTWISE: MappingType.ONE_TO_ONE,
    **{
        op: MappingType.MANY_TO_MANY
        for op in REDUCE_OPS
        | POOL_OPS
        | {
            Op.CONV,
            Op.CONV_TRANSPOSE,
            Op.GEMM,
            Op.MATMUL,
            Op.LAYER_NORM,
            Op.INSTANCE_NORM,
            Op.SOFTMAX,
            Op.LOG_SOFTMAX,
            Op.ARG_MAX,
            Op.ARG_MIN,
            Op.ATTENTION,
        }
    },  # fmt: skip
    Op.EXPAND: MappingType.ONE_TO_MANY,
    Op.TILE: MappingType.ONE_TO_MANY,
    Op.RESIZE: MappingType.ONE_TO_MANY,
    **{
        op: MappingType.REORGANIZE
        for op in (Op.RESHAPE, Op.CONCAT, Op.SPLIT, Op.SLICE, Op.PAD, Op.GATHER, Op.GATHER_ND)
    },
    Op.TRANSPOSE: MappingType.SHUFFLE,
}


# ---- attributes: one frozen dataclass per op family, every field resolved ----------------------


@dataclass(frozen=True)
class GeluAttrs:
    tanh_approximation: bool = False


@dataclass(frozen=True)
class AlphaBetaAttrs:
    """HardSigmoid: max(0, min(1, alpha*x + beta)); LeakyRelu and Elu use alpha only."""

    alpha: float
    beta: float = 0.0


@dataclass(frozen=True)
class ClipAttrs:
    min: float  # -inf when absent
    max: float  # +inf when absent


@dataclass(frozen=True)
class CastAttrs:
    to: DType


@dataclass(frozen=True)
class ModAttrs:
    fmod: bool  # C fmod semantics (sign of dividend) instead of Python's (sign of divisor)


@dataclass(frozen=True)
class EpsilonAttrs:
    """BatchNormalization (inference) and InstanceNormalization."""

    epsilon: float


class ConvKernel(Enum):
    """The kernels that compute a channels-last 3x3 stride-1 Conv faster than the direct one,
    where they apply: two sparse ones (kernels/pattern.h) for a weight that is mostly zeros,
    Winograd's minimal filtering (kernels/winograd.h) for a dense one."""

    PATTERN = "pattern"  # PatDNN: each kept kernel 4 taps of a pattern library, by run
    CSR = "csr"  # generic: each non-zero weight with its own (channel, tap) index
    WINOGRAD = "winograd"  # F(4x4, 3x3): 4x fewer multiply-adds, a few times the rounding


WINOGRAD_TILE = 4  # F(4x4, 3x3): output pixels per side of a tile
WINOGRAD_POINTS = (WINOGRAD_TILE + 2) ** 2  # its input tile, and its transform domain: 6 x 6


class Activation(Enum):
    """The activations an Epilogue can apply: Relu and Clip (ReLU6) in CNNs, GELU after the
    first linear layer of a transformer's feed-forward block."""

    NONE = "none"
    RELU = "relu"
    CLIP = "clip"  # min(max(v, clip_min), clip_max)
    GELU = "gelu"  # the erf form
    GELU_TANH = "gelu_tanh"


@dataclass(frozen=True)
class Epilogue:
    """Work fused into the store of a Conv or Gemm output (by xgen.passes.fuse):
    y = activation(op(...) + residual), where the residual, present if `residual`, is the node's
    last input, of the output's shape. The default is a plain store."""

    activation: Activation = Activation.NONE
    clip_min: float = float("-inf")
    clip_max: float = float("inf")
    residual: bool = False

    @property
    def is_plain(self) -> bool:
        return self == Epilogue()


@dataclass(frozen=True)
class ConvAttrs:
    """Conv and ConvTranspose over N spatial dims; pads = begins + ends, as in ONNX.

    channels_last (Conv only, set by xgen.passes.layout): the input, output and residual are laid
    out N x spatial x C instead of ONNX's N x C x spatial; the weight keeps ONNX's layout.

    kernel (Conv only): the kernel that computes it when not the direct one. A sparse one
    (xgen.passes.sparsity) when its weight's zeros make it faster: the weight stays the whole
    array, with its zeros, and the kernel's compact form is packed from it; Winograd
    (xgen.passes.winograd) for a dense weight where it pays.

    expand (depthwise channels-last Conv only, set by xgen.passes.expand_depthwise): the Conv
    also computes its own input, a 1x1 convolution expanding channels with this epilogue (an
    activation): its inputs are then x, w, bias, w_expand, bias_expand (then the residual)."""

    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    group: int
    output_padding: tuple[int, ...] = ()  # ConvTranspose only
    epilogue: Epilogue = Epilogue()  # Conv only
    channels_last: bool = False  # Conv only
    kernel: ConvKernel | None = None  # Conv only
    expand: Epilogue | None = None  # depthwise Conv only


@dataclass(frozen=True)
class GemmAttrs:
    alpha: float
    beta: float
    trans_a: bool
    trans_b: bool
    epilogue: Epilogue = Epilogue()


def split_epilogue_inputs(
    inputs: list[T], attrs: ConvAttrs | GemmAttrs
) -> tuple[list[T], T | None]:
    """(the op's own inputs, the residual or None) of a Conv or Gemm node's inputs."""
    if attrs.epilogue.residual:
        return inputs[:-1], inputs[-1]
    return inputs, None


@dataclass(frozen=True)
class MatMulAttrs:
    """Operands read through a transpose (set by passes/matmul.py, which absorbs Transpose nodes
    into the strides of a batched MatMul): A is transpose(inputs[0], a_perm), B likewise; an
    empty perm reads the input as it is."""

    a_perm: tuple[int, ...] = ()
    b_perm: tuple[int, ...] = ()


@dataclass(frozen=True)
class AttentionAttrs:
    """Scaled dot-product attention, softmax(scale * Q @ K^T + mask) @ V, of inputs q, k, v and
    an optional additive mask (set by passes/attention.py, which fuses the MatMul, scaling, mask
    Add, Softmax and MatMul that spell it). Each operand is read through a perm as MatMulAttrs'
    are: Q = transpose(q, q_perm) is [..., Sq, D], K likewise [..., Sk, D] (not transposed),
    V [..., Sk, Dv], whose batch dims broadcast together as a MatMul's do (K and V shared by
    heads); the mask broadcasts to [..., Sq, Sk]. The output
    is transpose(result, out_perm) of the [..., Sq, Dv] result. Empty perms are identities.
    nan_to_zero: the probabilities that are NaN (a row whose mask is -inf throughout) count as 0,
    as scaled_dot_product_attention's export writes it (Where(IsNaN(p), 0, p)).
    k and v may each come in parts, inputs that a Concat along the key axis would join (a KV
    cache and the new token's keys): the inputs are q, k_parts of K, v_parts of V, then the
    mask (see attention_inputs)."""

    scale: float
    q_perm: tuple[int, ...] = ()
    k_perm: tuple[int, ...] = ()
    v_perm: tuple[int, ...] = ()
    out_perm: tuple[int, ...] = ()
    masked: bool = False
    nan_to_zero: bool = False
    k_parts: int = 1
    v_parts: int = 1


def attention_inputs(node: Node) -> tuple[Value, list[Value], list[Value], Value | None]:
    """An Attention node's (q, K's parts, V's parts, mask or None)."""
    a: AttentionAttrs = node.attrs
    k_end = 1 + a.k_parts
    v_end = k_end + a.v_parts
    mask = node.inputs[v_end] if a.masked else None
    return node.inputs[0], node.inputs[1:k_end], node.inputs[k_end:v_end], mask


def key_axis(perm: tuple[int, ...], rank: int) -> int:
    """The dim of K or V (read through perm as [..., Sk, features]) that runs over the keys."""
    return perm[-2] if perm else rank - 2


@dataclass(frozen=True)
class FusedElementwiseAttrs:
    """A block of elementwise nodes (unary, binary, Where) computed in one loop over the output
    (set by passes/elementwise.py): nodes in order, each reading the node's inputs or an earlier
    member's output, every member's output of the block's shape (only the inputs broadcast);
    the last one writes the node's output."""

    nodes: tuple[Node, ...]


@dataclass(frozen=True)
class LayerNormAttrs:
    axis: int  # normalise over dims [axis, rank)
    epsilon: float


@dataclass(frozen=True)
class AxisAttrs:
    """Softmax, LogSoftmax, Concat, Gather: one non-negative axis."""

    axis: int


@dataclass(frozen=True)
class GatherNDAttrs:
    """The leading batch_dims dims of data and indices are paired, not indexed."""

    batch_dims: int


@dataclass(frozen=True)
class ReduceAttrs:
    axes: tuple[int, ...]  # sorted, non-negative, never empty (empty ONNX axes = all dims)
    keepdims: bool


@dataclass(frozen=True)
class ArgReduceAttrs:
    axis: int
    keepdims: bool
    select_last_index: bool


@dataclass(frozen=True)
class PoolAttrs:
    """MaxPool and AveragePool over N spatial dims; pads = begins + ends."""

    kernel_shape: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    ceil_mode: bool
    count_include_pad: bool  # AveragePool only
    channels_last: bool = False  # N x spatial x C, as ConvAttrs.channels_last


@dataclass(frozen=True)
class ShapeAttrs:
    """Reshape and Expand: the static output shape."""

    shape: tuple[int, ...]


@dataclass(frozen=True)
class TileAttrs:
    repeats: tuple[int, ...]


class ResizeMode(Enum):
    NEAREST = "nearest"
    LINEAR = "linear"
    CUBIC = "cubic"


class CoordinateTransform(Enum):
    HALF_PIXEL = "half_pixel"
    HALF_PIXEL_SYMMETRIC = "half_pixel_symmetric"
    PYTORCH_HALF_PIXEL = "pytorch_half_pixel"
    ALIGN_CORNERS = "align_corners"
    ASYMMETRIC = "asymmetric"
    TF_HALF_PIXEL_FOR_NN = "tf_half_pixel_for_nn"


class NearestMode(Enum):
    ROUND_PREFER_FLOOR = "round_prefer_floor"
    ROUND_PREFER_CEIL = "round_prefer_ceil"
    FLOOR = "floor"
    CEIL = "ceil"


@dataclass(frozen=True)
class ResizeAttrs:
    """Resize of every dim: output sizes and the scales used by the coordinate transform."""

    mode: ResizeMode
    coordinate_transform: CoordinateTransform
    nearest_mode: NearestMode
    sizes: tuple[int, ...]
    scales: tuple[float, ...]
    cubic_coeff_a: float = -0.75
    exclude_outside: bool = False


@dataclass(frozen=True)
class SplitAttrs:
    axis: int
    sizes: tuple[int, ...]


@dataclass(frozen=True)
class SliceAttrs:
    """One entry per dim of the input: output element i of a dim reads start + i * step.

    starts are non-negative and in range, steps non-zero, sizes the output length of each dim.
    """

    starts: tuple[int, ...]
    steps: tuple[int, ...]
    sizes: tuple[int, ...]


class PadMode(Enum):
    CONSTANT = "constant"
    REFLECT = "reflect"
    EDGE = "edge"
    WRAP = "wrap"


@dataclass(frozen=True)
class PadAttrs:
    pads: tuple[int, ...]  # begins + ends for every dim; may be negative (crop)
    mode: PadMode
    value: float


@dataclass(frozen=True)
class TransposeAttrs:
    perm: tuple[int, ...]


ATTRS_TYPES: dict[Op, type] = {
    Op.GELU: GeluAttrs,
    Op.HARD_SIGMOID: AlphaBetaAttrs,
    Op.LEAKY_RELU: AlphaBetaAttrs,
    Op.ELU: AlphaBetaAttrs,
    Op.CLIP: ClipAttrs,
    Op.CAST: CastAttrs,
    Op.MOD: ModAttrs,
    Op.BATCH_NORM: EpsilonAttrs,
    Op.INSTANCE_NORM: EpsilonAttrs,
    Op.CONV: ConvAttrs,
    Op.CONV_TRANSPOSE: ConvAttrs,
    Op.GEMM: GemmAttrs,
    Op.MATMUL: MatMulAttrs,
    Op.ATTENTION: AttentionAttrs,
    Op.FUSED_ELEMENTWISE: FusedElementwiseAttrs,
    Op.LAYER_NORM: LayerNormAttrs,
    Op.SOFTMAX: AxisAttrs,
    Op.LOG_SOFTMAX: AxisAttrs,
    Op.CONCAT: AxisAttrs,
    Op.GATHER: AxisAttrs,
    Op.GATHER_ND: GatherNDAttrs,
    **{op: ReduceAttrs for op in REDUCE_OPS},
    Op.ARG_MAX: ArgReduceAttrs,
    Op.ARG_MIN: ArgReduceAttrs,
    **{op: PoolAttrs for op in POOL_OPS},
    Op.RESHAPE: ShapeAttrs,
    Op.EXPAND: ShapeAttrs,
    Op.TILE: TileAttrs,
    Op.RESIZE: ResizeAttrs,
    Op.SPLIT: SplitAttrs,
    Op.SLICE: SliceAttrs,
    Op.PAD: PadAttrs,
    Op.TRANSPOSE: TransposeAttrs,
}
