#include "ops/block_shuffle.h"

#include <ATen/ops/empty_like.h>
#include <torch/library.h>

#include <limits>

#include "ops/arg_checks.h"

namespace featperm::ops {
namespace {

// Validates x, key and the block size; returns the key as a contiguous int64 tensor.
at::Tensor checked_key(const char* op, const at::Tensor& x, const at::Tensor& key, int64_t m) {
  TORCH_CHECK_VALUE(x.dim() == 4, op, ": x must have shape (N, C, H, W), got shape ", x.sizes(),
                    " (", x.dim(), " dimensions)");
  const int64_t bytes = x.element_size();
  TORCH_CHECK_TYPE(bytes == 1 || bytes == 2 || bytes == 4 || bytes == 8, op, ": x has dtype ",
                   x.scalar_type(), " of ", bytes, " bytes; expected a dtype of 1, 2, 4 or 8 bytes");
  check_block_size(op, m);
  const int64_t c = x.size(1), h = x.size(2), w = x.size(3);
  TORCH_CHECK_VALUE(h % m == 0 && w % m == 0, op, ": block_size ", m, " must divide the height and width "
                    "of x, got H=", h, ", W=", w, " (x.shape ", x.sizes(), ")");
  check_integer_key(op, key, "positions");
  check_key_device(op, key, x);
  // m <= kMaxBlockSize: m * m < 2^31 cannot overflow or be zero.
  TORCH_CHECK_VALUE(c <= std::numeric_limits<int32_t>::max() / (m * m), op, ": C*M*M = ", c, "*", m, "*", m,
                    " is too large; expected fewer than 2^31 positions per block");
  const int64_t positions = c * m * m;
  TORCH_CHECK_VALUE(key.dim() == 1 && key.numel() == positions, op, ": key must have shape (C*M*M,) = (",
                    positions, ",) for C=", c, " channels and block_size M=", m, ", got shape ", key.sizes());
  at::Tensor k = key.to(at::kLong).contiguous();
  if (k.is_cpu()) {
    // A device key is checked by the Python layer: checking it here would need a host
    // synchronisation, which CUDA graph capture forbids.
    check_permutation_rows(op, k.const_data_ptr<int64_t>(), 1, positions, /*per_row=*/false);
  }
  return k;
}

Strides4 strides_of(const at::Tensor& t) {
  return {t.stride(0), t.stride(1), t.stride(2), t.stride(3)};
}

void run_kernel(BlockKernel kernel, const at::Tensor& src, const at::Tensor& dst, const at::Tensor& key,
                int64_t m, bool inverse) {
  if (src.numel() == 0) return;
  // Load order follows the source's memory: channels fastest when they are closer than columns.
  const bool channels_inner = src.size(1) > 1 && src.stride(1) < src.stride(3);
  const BlockRun run{src.const_data_ptr(), dst.data_ptr(),
                     src.size(0), src.size(1), src.size(2), src.size(3), m,
                     strides_of(src), strides_of(dst), static_cast<int>(src.element_size()),
                     inverse, channels_inner, &key};
  kernel(src, run);
}

}  // namespace

at::Tensor block_shuffle_out_of_place(const at::Tensor& x, const at::Tensor& key, int64_t block_size,
                                      bool inverse, BlockKernel kernel, const char* op) {
  const at::Tensor k = checked_key(op, x, key, block_size);
  // x's strides when x is dense (contiguous or channels_last), else x's suggested memory format.
  // The kernel reads x through its strides: no copy, whatever they are.
  at::Tensor out = at::empty_like(x);
  run_kernel(kernel, x, out, k, block_size, inverse);
  return out;
}

void block_shuffle_in_place(const at::Tensor& x, const at::Tensor& key, int64_t block_size, bool inverse,
                            BlockKernel kernel, const char* op) {
  const at::Tensor k = checked_key(op, x, key, block_size);
  check_and_mark_in_place(op, x);
  run_kernel(kernel, x, x, k, block_size, inverse);
}

}  // namespace featperm::ops

TORCH_LIBRARY_FRAGMENT(featperm, m) {
  m.def("block_shuffle(Tensor x, Tensor key, int block_size) -> Tensor");
  m.def("block_unshuffle(Tensor y, Tensor key, int block_size) -> Tensor");
  m.def("block_shuffle_(Tensor(a!) x, Tensor key, int block_size) -> ()");
  m.def("block_unshuffle_(Tensor(a!) y, Tensor key, int block_size) -> ()");
}
