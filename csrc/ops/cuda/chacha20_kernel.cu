// ChaCha20 keystream XOR on CUDA. No torch headers here (they make nvcc slow); the torch glue is
// in chacha20_cuda.cpp.
//
// One thread computes one 64-byte keystream block at a time, entirely in registers, with the block
// function shared with the CPU (ops/common/chacha20.h; rotations are __funnelshift_l). It issues
// its four 16-byte loads of data before computing the block, so that the memory latency hides
// behind the 20 rounds, then XORs and stores 16 bytes at a time. Threads stride over the blocks
// (grid-stride loop, 64-bit offsets). The last, partial block and data that is not 16-byte
// aligned go byte by byte.
#include "ops/cuda/chacha20_launch.h"

#include <algorithm>
#include <cstdint>

#include "ops/common/chacha20.h"

namespace featperm::cuda {
namespace {

constexpr int kThreads = 256;

struct KeyMaterial {
  uint32_t key_words[chacha20::kKeyWords];
  uint32_t nonce_words[chacha20::kNonceWords];
  uint32_t counter;
  const uint8_t* key_device;
  const uint8_t* nonce_device;
};

__device__ __forceinline__ uint32_t load_le32(const uint8_t* p) {
  return uint32_t{p[0]} | (uint32_t{p[1]} << 8) | (uint32_t{p[2]} << 16) | (uint32_t{p[3]} << 24);
}

struct Identity {
  __device__ __forceinline__ uint32_t operator()(uint32_t w) const { return w; }
};

template <bool Aligned>
__global__ void __launch_bounds__(kThreads) chacha20_xor_kernel(const uint8_t* __restrict__ src,
                                                                uint8_t* __restrict__ dst, int64_t bytes,
                                                                const KeyMaterial material) {
  using Ops = chacha20::ScalarWords;
  uint32_t key[chacha20::kKeyWords], nonce[chacha20::kNonceWords];
#pragma unroll
  for (int i = 0; i < chacha20::kKeyWords; ++i)
    key[i] = material.key_device ? load_le32(material.key_device + 4 * i) : material.key_words[i];
#pragma unroll
  for (int i = 0; i < chacha20::kNonceWords; ++i)
    nonce[i] = material.nonce_device ? load_le32(material.nonce_device + 4 * i) : material.nonce_words[i];
  uint32_t state[16];
  chacha20::initial_state<Ops>(key, nonce, Identity{}, state);

  const int64_t blocks = (bytes + chacha20::kBlockBytes - 1) / chacha20::kBlockBytes;
  const int64_t stride = int64_t{gridDim.x} * blockDim.x;
  for (int64_t b = int64_t{blockIdx.x} * blockDim.x + threadIdx.x; b < blocks; b += stride) {
    const int64_t offset = b * chacha20::kBlockBytes;
    const bool whole = Aligned && offset + chacha20::kBlockBytes <= bytes;
    uint4 in[4];
    if (whole) {
      const uint4* s = reinterpret_cast<const uint4*>(src + offset);
#pragma unroll
      for (int j = 0; j < 4; ++j) in[j] = s[j];
    }
    state[12] = material.counter + static_cast<uint32_t>(b);  // no wrap: checked by the caller
    uint32_t x[16];
    chacha20::block<Ops>(state, x);
    if (whole) {
      uint4* d = reinterpret_cast<uint4*>(dst + offset);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        d[j] = make_uint4(in[j].x ^ x[4 * j], in[j].y ^ x[4 * j + 1], in[j].z ^ x[4 * j + 2],
                          in[j].w ^ x[4 * j + 3]);
      }
    } else {
      const int64_t n = bytes - offset < chacha20::kBlockBytes ? bytes - offset : chacha20::kBlockBytes;
#pragma unroll
      for (int i = 0; i < chacha20::kBlockBytes; ++i) {
        if (i < n) dst[offset + i] = src[offset + i] ^ static_cast<uint8_t>(x[i / 4] >> (8 * (i % 4)));
      }
    }
  }
}

// How many blocks of the kernel the device holds at once (multiprocessors x resident blocks per
// multiprocessor), cached per device and variant. Host-side queries only: safe in graph capture.
template <bool Aligned>
cudaError_t resident_blocks(int device, int64_t* blocks) {
  static int64_t cached[64] = {0};
  if (device >= 0 && device < 64 && cached[device] > 0) {
    *blocks = cached[device];
    return cudaSuccess;
  }
  int multiprocessors = 0, per_multiprocessor = 0;
  cudaError_t err = cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, device);
  if (err != cudaSuccess) return err;
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(&per_multiprocessor, chacha20_xor_kernel<Aligned>, kThreads, 0);
  if (err != cudaSuccess) return err;
  *blocks = int64_t{std::max(multiprocessors, 1)} * std::max(per_multiprocessor, 1);
  if (device >= 0 && device < 64) cached[device] = *blocks;
  return cudaSuccess;
}

template <bool Aligned>
cudaError_t launch(const ChaCha20Launch& a, const KeyMaterial& material) {
  int64_t resident = 1;
  const cudaError_t err = resident_blocks<Aligned>(a.device, &resident);
  if (err != cudaSuccess) return err;
  // Enough blocks for one 64-byte block per thread, capped at what the device holds at once: the
  // grid-stride loop covers the rest without a tail of half-empty waves.
  const int64_t blocks = (a.bytes + chacha20::kBlockBytes - 1) / chacha20::kBlockBytes;
  const int64_t grid = std::max<int64_t>(1, std::min<int64_t>((blocks + kThreads - 1) / kThreads, resident));
  chacha20_xor_kernel<Aligned><<<static_cast<unsigned>(grid), kThreads, 0, a.stream>>>(a.src, a.dst, a.bytes, material);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_chacha20_xor(const ChaCha20Launch& a) {
  KeyMaterial material{};
  for (int i = 0; i < chacha20::kKeyWords; ++i) material.key_words[i] = a.key_words[i];
  for (int i = 0; i < chacha20::kNonceWords; ++i) material.nonce_words[i] = a.nonce_words[i];
  material.counter = a.counter;
  material.key_device = a.key_device;
  material.nonce_device = a.nonce_device;

  const bool aligned = ((reinterpret_cast<uintptr_t>(a.src) | reinterpret_cast<uintptr_t>(a.dst)) & 15) == 0;
  return aligned ? launch<true>(a, material) : launch<false>(a, material);
}

}  // namespace featperm::cuda
