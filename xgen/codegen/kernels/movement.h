/* Data-movement kernels whose index maps do not fit a strided loop nest: Pad, Gather, GatherND.
 * All are generic over the element type (they move elem_size-byte elements with memcpy). */
#ifndef XGEN_MOVEMENT_H
#define XGEN_MOVEMENT_H

#include "common.h"

enum { XG_PAD_CONSTANT = 0, XG_PAD_REFLECT = 1, XG_PAD_EDGE = 2, XG_PAD_WRAP = 3 };

/* Input coordinate read by output coordinate i of a dim of size n padded with `begin` in front;
 * -1 where constant padding supplies the value. */
XG_INLINE long xg_pad_source(long i, long n, long begin, int mode) {
    long j = i - begin;
    if (j >= 0 && j < n) return j;
    switch (mode) {
    case XG_PAD_EDGE: return j < 0 ? 0 : n - 1;
    case XG_PAD_WRAP: return ((j % n) + n) % n;
    case XG_PAD_REFLECT: {
        if (n == 1) return 0;
        long period = 2 * (n - 1);
        j = ((j % period) + period) % period;
        return j < n ? j : period - j;
    }
    default: return -1;
    }
}

/* out = pad(in) over `rank` dims: the input is first cropped to the box of `size` elements from
 * `start` (negative ONNX pads), then padded with begin[d] >= 0 elements in front of each dim.
 * Rows of the last dim are copied with one memcpy for their in-range middle; only padding is
 * mapped element by element. */
static void xg_pad(const char *XG_RESTRICT in, char *XG_RESTRICT out, const void *value,
                   long elem_size, int rank, const long *in_shape, const long *start,
                   const long *size, const long *out_shape, const long *begin, int mode) {
    long rows = 1, in_stride[8], step = 1, base = 0;
    for (int d = rank - 1; d >= 0; d--) {
        in_stride[d] = step;
        base += start[d] * step;
        step *= in_shape[d];
    }
    for (int d = 0; d < rank - 1; d++) rows *= out_shape[d];
    const long w = out_shape[rank - 1], n = size[rank - 1], b = begin[rank - 1];
    /* the columns [b, hi) read the cropped row's columns 0 .. hi - b - 1 in one run */
    const long hi = XG_MIN(b + n, w);
    xg_range share = xg_share(rows, rows * w);
    for (long r = share.lo; r < share.hi; r++) {
        char *dst = out + r * w * elem_size;
        long src = base, rest = r;
        for (int d = rank - 2; d >= 0 && src >= 0; d--) {
            long j = xg_pad_source(rest % out_shape[d], size[d], begin[d], mode);
            rest /= out_shape[d];
            src = j < 0 ? -1 : src + j * in_stride[d];
        }
        if (src < 0) {
            for (long c = 0; c < w; c++) memcpy(dst + c * elem_size, value, elem_size);
            continue;
        }
        const char *row = in + src * elem_size;
        for (long c = 0; c < b; c++) {
            long j = xg_pad_source(c, n, b, mode);
            memcpy(dst + c * elem_size, j < 0 ? value : row + j * elem_size, elem_size);
        }
        memcpy(dst + b * elem_size, row, (hi - b) * elem_size);
        for (long c = hi; c < w; c++) {
            long j = xg_pad_source(c, n, b, mode);
            memcpy(dst + c * elem_size, j < 0 ? value : row + j * elem_size, elem_size);
        }
    }
}

/* Index i of an int64 (idx64) or int32 index tensor. */
XG_INLINE long xg_index_at(const void *indices, int idx64, long i) {
    return idx64 ? (long)((const int64_t *)indices)[i] : (long)((const int32_t *)indices)[i];
}

/* out[o, j, i] = data[o, idx[j], i], negatives counted from the end.
 * Returns -1 without writing when an index is out of range. */
static int xg_gather(const char *XG_RESTRICT data, const void *indices, int idx64,
                     char *XG_RESTRICT out, long outer, long n_idx, long axis_dim,
                     long inner_bytes) {
    for (long j = 0; j < n_idx; j++) {
        long k = xg_index_at(indices, idx64, j);
        if (k < -axis_dim || k >= axis_dim) return -1;
    }
    xg_range share = xg_share(outer, (outer * n_idx * inner_bytes) / 4);
    for (long o = share.lo; o < share.hi; o++) {
        for (long j = 0; j < n_idx; j++) {
            long k = xg_index_at(indices, idx64, j);
            if (k < 0) k += axis_dim;
            memcpy(out + (o * n_idx + j) * inner_bytes,
                   data + (o * axis_dim + k) * inner_bytes, inner_bytes);
        }
    }
    return 0;
}

/* GatherND: data is [batch, dims[0], ..., dims[m-1], slice] and the indices [batch, n_rows, m];
 * out[b, r] = data[b, idx[b, r, 0], ..., idx[b, r, m-1]], a slice of slice_bytes, negatives
 * counted from the end. Returns -1 without writing when an index is out of range. */
static int xg_gather_nd(const char *XG_RESTRICT data, const void *indices, int idx64,
                        char *XG_RESTRICT out, long batch, long n_rows, int m, const long *dims,
                        long slice_bytes) {
    long slices_per_batch = 1;
    for (int d = 0; d < m; d++) slices_per_batch *= dims[d];
    for (long i = 0; i < batch * n_rows * m; i++) {
        long k = xg_index_at(indices, idx64, i), n = dims[i % m];
        if (k < -n || k >= n) return -1;
    }
    xg_range share = xg_share(batch * n_rows, (batch * n_rows * slice_bytes) / 4);
    for (long r = share.lo; r < share.hi; r++) {
        long slice = 0; /* row-major position of the slice among the batch's slices */
        for (int d = 0; d < m; d++) {
            long k = xg_index_at(indices, idx64, r * m + d);
            slice = slice * dims[d] + (k < 0 ? k + dims[d] : k);
        }
        slice += (r / n_rows) * slices_per_batch;
        memcpy(out + r * slice_bytes, data + slice * slice_bytes, slice_bytes);
    }
    return 0;
}

#endif /* XGEN_MOVEMENT_H */
