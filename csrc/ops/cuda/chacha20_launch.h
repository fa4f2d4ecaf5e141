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

namespace featperm::cuda {

struct Poly1305ChunksLaunch {
  const uint8_t* message;  // device pointer
  int64_t blocks;          // whole 16-byte blocks to absorb, > 0
  int64_t chunk_blocks;    // blocks per chunk (the last chunk may be shorter)
  uint32_t r_words[4];     // the first 16 bytes of the one-time key, little-endian words
  int64_t* out;            // device pointer: ceil(blocks / chunk_blocks) x 3 limbs (44/44/42 bits)
  int device;
  cudaStream_t stream;
};

// Enqueues the chunk sums (ops/common/poly1305_chunks.h) on args.stream; no synchronisation.
cudaError_t launch_poly1305_chunk_sums(const Poly1305ChunksLaunch& args);

}  // namespace featperm::cuda
