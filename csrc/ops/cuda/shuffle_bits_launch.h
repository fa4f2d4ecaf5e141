// Interface between the torch glue (shuffle_bits_cuda.cpp) and the CUDA kernel
// (shuffle_bits_kernel.cu), kept free of torch headers so that nvcc compiles the kernel quickly.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace featperm::cuda {

struct ShuffleBitsLaunch {
  const void* src;
  void* dst;             // may equal src (in place)
  int64_t words;         // > 0
  int word_bytes;        // 1, 2, 4 or 8
  int64_t samples;       // words split into this many equal runs, run k uses key row k
  const int64_t* keys;   // device pointer, (samples, 8 * word_bytes) int64
  bool inverse;          // decrypt
  int device;
  cudaStream_t stream;
};

// Enqueues the kernel on args.stream; no host synchronisation. Returns the launch status.
cudaError_t launch_shuffle_bits(const ShuffleBitsLaunch& args);

}  // namespace featperm::cuda
