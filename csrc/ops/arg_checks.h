// Argument rules shared by every featperm op (the C++ half of featperm/_checks.py, whose
// docstring states the rules). A mistake of the same kind raises the same Python exception from
// every op and every device:
//   TypeError  (TORCH_CHECK_TYPE)  the wrong kind of thing: a key of float/bool dtype, an x whose
//                                  dtype the op does not support;
//   ValueError (TORCH_CHECK_VALUE) a bad value: a shape, a size, a key that is not a permutation,
//                                  a key on another device, an in-place target that requires grad
//                                  or whose elements overlap.
// Messages name the op, the argument, what was expected and what was given.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

namespace featperm::ops {

// The largest block size M whose M*M fits in 31 bits (so C*M*M cannot overflow before its check).
constexpr int64_t kMaxBlockSize = 46340;

// key must hold integer positions (not float, complex or bool). `what` names them.
void check_integer_key(const char* op, const at::Tensor& key, const char* what);

// key must be on x's device. A key is never copied between devices inside an op: that copy would
// be a hidden host synchronisation (and fails inside CUDA graph capture). BitKey/BlockKey cache a
// copy per device (key.tensor(device)).
void check_key_device(const char* op, const at::Tensor& key, const at::Tensor& x);

// Every row of n int64 values at `keys` must be a permutation of 0..n-1. Host memory only: a
// device key would need a host synchronisation (the Python layer checks those). `per_row` adds
// the row number to the error, for keys with one row per sample.
void check_permutation_rows(const char* op, const int64_t* keys, int64_t rows, int64_t n, bool per_row);

// 1 <= block_size <= kMaxBlockSize.
void check_block_size(const char* op, int64_t block_size);

// x may be permuted in place: it does not require grad and no two of its elements share memory
// (any other strided view is fine). Then bumps x's version counter, so that autograd refuses a
// backward pass that saved x before the op.
void check_and_mark_in_place(const char* op, const at::Tensor& x);

// True when two elements of x share memory. Exact: cheap metadata rules decide the common cases
// (dense, nested strides, a zero stride, more elements than offsets in the span), and the rare
// layouts they cannot decide are settled with a bitset over the span, stopping at the first
// repeated offset.
bool overlaps_itself(const at::Tensor& x);

}  // namespace featperm::ops
