"""Element types of IR tensors: the closed set xgen compiles, with their numpy and C spellings."""

from __future__ import annotations

from enum import Enum

import numpy as np


class DType(Enum):
    FLOAT32 = "float32"
    INT64 = "int64"
    INT32 = "int32"
    INT8 = "int8"
    UINT8 = "uint8"
    BOOL = "bool"

    @property
    def numpy(self) -> np.dtype:
        return np.dtype(self.value)

    @property
    def c_type(self) -> str:
        return _C_TYPES[self]

    @property
    def itemsize(self) -> int:
        return self.numpy.itemsize

    @property
    def is_float(self) -> bool:
        return self is DType.FLOAT32

    @classmethod
    def from_numpy(cls, dtype: np.dtype | type) -> DType:
        name = np.dtype(dtype).name
        try:
            return cls(name)
        except ValueError:
            supported = ", ".join(d.value for d in cls)
            raise TypeError(
                f"dtype {name} is not supported by xgen (supported: {supported})"
            ) from None


# bool is stored as one byte holding 0 or 1, like numpy.
_C_TYPES = {
    DType.FLOAT32: "float",
    DType.INT64: "int64_t",
    DType.INT32: "int32_t",
    DType.INT8: "int8_t",
    DType.UINT8: "uint8_t",
    DType.BOOL: "uint8_t",
}
