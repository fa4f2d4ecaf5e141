// Interface between the torch glue (chacha20_cuda.cpp) and the CUDA kernel (chacha20_kernel.cu),
// free of torch headers so that nvcc compiles the kernel quickly.
#pragma once

#include <cuda_runtime_api.h>

#include <cstdint>

namespace featperm::cuda {

struct ChaCha20Launch {
  const uint8_t* src;
  uint8_t* dst;
  int64_t bytes;                 // > 0; counter + ceil(bytes / 64) <= 2^32 (checked by the caller)
  uint32_t counter;              // block counter of the first 64 bytes
  uint32_t key_words[8];         // used when key_device is null
  uint32_t nonce_words[3];       // used when nonce_device is null
  const uint8_t* key_device;     // 32 key bytes in device memory, or null
  const uint8_t* nonce_device;   // 12 nonce bytes in device memory, or null
  int device;
  cudaStream_t stream;
};

// Enqueues dst = src ^ keystream on args.stream; no host synchronisation, safe in graph capture.
cudaError_t launch_chacha20_xor(const ChaCha20Launch& args);

}  // namespace featperm::cuda
