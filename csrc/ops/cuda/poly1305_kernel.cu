// Poly1305 chunk sums on CUDA: one thread evaluates one chunk of 16-byte blocks from a zero
// accumulator (ops/common/poly1305_chunks.h); the host joins the chunks with powers of r. No
// torch headers here; the glue is in chacha20_cuda.cpp.
#include <algorithm>
#include <cstdint>

#include "ops/common/poly1305_chunks.h"
#include "ops/cuda/chacha20_launch.h"

namespace featperm::cuda {
namespace {

constexpr int kThreads = 128;

template <bool Aligned>
__global__ void __launch_bounds__(kThreads) poly1305_chunk_sums_kernel(const uint8_t* __restrict__ message,
                                                                       int64_t blocks, int64_t chunk_blocks,
                                                                       int64_t chunks, poly1305::R26 key,
                                                                       int64_t* __restrict__ out) {
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t c = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; c < chunks; c += stride) {
    const int64_t first = c * chunk_blocks;
    const int64_t count = blocks - first < chunk_blocks ? blocks - first : chunk_blocks;
    auto load = [message](int64_t block, uint32_t (&w)[4]) {
      const uint8_t* p = message + block * poly1305::kBlockBytes;
      if (Aligned) {
        const uint4 v = *reinterpret_cast<const uint4*>(p);
        w[0] = v.x; w[1] = v.y; w[2] = v.z; w[3] = v.w;
      } else {
#pragma unroll
        for (int i = 0; i < 4; ++i)
          w[i] = uint32_t{p[4 * i]} | (uint32_t{p[4 * i + 1]} << 8) | (uint32_t{p[4 * i + 2]} << 16) |
                 (uint32_t{p[4 * i + 3]} << 24);
      }
    };
    uint64_t limbs[3];
    poly1305::chunk_sum(load, first, count, key, limbs);
    for (int i = 0; i < 3; ++i) out[3 * c + i] = static_cast<int64_t>(limbs[i]);
  }
}

}  // namespace

cudaError_t launch_poly1305_chunk_sums(const Poly1305ChunksLaunch& a) {
  const poly1305::R26 key = poly1305::clamped_r(a.r_words);
  const int64_t chunks = (a.blocks + a.chunk_blocks - 1) / a.chunk_blocks;
  // One thread per chunk; the callers keep chunks to tens of thousands, so the grid is small.
  const int64_t grid = std::max<int64_t>(1, std::min<int64_t>((chunks + kThreads - 1) / kThreads, int64_t{1} << 20));
  if ((reinterpret_cast<uintptr_t>(a.message) & 15) == 0) {
    poly1305_chunk_sums_kernel<true><<<static_cast<unsigned>(grid), kThreads, 0, a.stream>>>(
        a.message, a.blocks, a.chunk_blocks, chunks, key, a.out);
  } else {
    poly1305_chunk_sums_kernel<false><<<static_cast<unsigned>(grid), kThreads, 0, a.stream>>>(
        a.message, a.blocks, a.chunk_blocks, chunks, key, a.out);
  }
  return cudaGetLastError();
}

}  // namespace featperm::cuda
