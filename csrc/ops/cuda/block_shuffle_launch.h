// Interface between the torch glue (block_shuffle_cuda.cpp) and the CUDA kernel
// (block_shuffle_kernel.cu), kept free of torch headers so that nvcc compiles the kernel quickly.
#pragma once

#include <cuda_runtime_api.h>

#include <cstddef>
#include <cstdint>

#include "ops/common/block_permutation.h"

namespace featperm::cuda {

struct BlockShuffleLaunch {
  const void* src;
  void* dst;               // may equal src (in place, same strides)
  int64_t n, c, h, w;      // numel() > 0
  int64_t block_size;      // M, divides h and w; C*M*M < 2^31
  Strides4 src_strides;    // in elements
  Strides4 dst_strides;
  int element_bytes;       // 1, 2, 4 or 8
  bool inverse;
  bool channels_inner;     // load order (r, column, ch): channels_last
  const int64_t* key;      // device pointer, C*M*M entries
  void* scratch;           // device memory of block_shuffle_scratch_bytes() bytes
  int device;
  cudaStream_t stream;
};

// Bytes of device scratch the launch needs: a table of C*M*M 32-bit entries (source deltas for
// the gather kernels, stage positions for the staged one), plus, for the staged kernel when a
// block does not fit in shared memory (very large C*M*M), one block's worth of global staging
// per thread block of the grid.
cudaError_t block_shuffle_scratch_bytes(const BlockShuffleLaunch& args, size_t* bytes);

// Enqueues the kernel on args.stream; no host synchronisation. Returns the launch status.
cudaError_t launch_block_shuffle(const BlockShuffleLaunch& args);

}  // namespace featperm::cuda
