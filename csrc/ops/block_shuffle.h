// Block-wise feature-map shuffle (AprilPyone & Kiya 2021): every M x M block of an (N, C, H, W)
// tensor, across all channels, is permuted by one key of C*M*M positions (see
// ops/common/block_permutation.h for the flatten order).
//
// The argument checks and tensor handling below are shared by the CPU and CUDA backends; a backend
// supplies only a `BlockKernel`, which permutes every block of src into dst (possibly equal).
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include "ops/common/block_permutation.h"

namespace featperm::ops {

struct BlockRun {
  const void* src;
  void* dst;              // == src in place (then the strides are equal too)
  int64_t n, c, h, w;     // shape; numel() > 0
  int64_t block_size;     // M, divides h and w
  Strides4 src_strides;   // in elements
  Strides4 dst_strides;
  int element_bytes;      // 1, 2, 4 or 8
  bool inverse;           // decrypt (unshuffle)
  bool channels_inner;    // channels are closer together in memory than columns (channels_last)
  const at::Tensor* key;  // int64 (C*M*M,), contiguous, on the tensors' device
};
using BlockKernel = void (*)(const at::Tensor& like, const BlockRun& run);

at::Tensor block_shuffle_out_of_place(const at::Tensor& x, const at::Tensor& key, int64_t block_size,
                                      bool inverse, BlockKernel kernel, const char* op);
void block_shuffle_in_place(const at::Tensor& x, const at::Tensor& key, int64_t block_size,
                            bool inverse, BlockKernel kernel, const char* op);

// Registers the four ops of one backend (one dispatch key) around its block kernel.
template <BlockKernel Kernel>
void register_block_shuffle_impls(torch::Library& m) {
  m.impl("block_shuffle", [](const at::Tensor& x, const at::Tensor& key, int64_t block_size) {
    return block_shuffle_out_of_place(x, key, block_size, /*inverse=*/false, Kernel, "block_shuffle");
  });
  m.impl("block_unshuffle", [](const at::Tensor& y, const at::Tensor& key, int64_t block_size) {
    return block_shuffle_out_of_place(y, key, block_size, /*inverse=*/true, Kernel, "block_unshuffle");
  });
  m.impl("block_shuffle_", [](const at::Tensor& x, const at::Tensor& key, int64_t block_size) {
    block_shuffle_in_place(x, key, block_size, /*inverse=*/false, Kernel, "block_shuffle_");
  });
  m.impl("block_unshuffle_", [](const at::Tensor& y, const at::Tensor& key, int64_t block_size) {
    block_shuffle_in_place(y, key, block_size, /*inverse=*/true, Kernel, "block_unshuffle_");
  });
}

}  // namespace featperm::ops
