// Poly1305 over independent chunks of 16-byte blocks, shared by the CPU and CUDA kernels of
// featperm::_poly1305_chunk_sums (no torch headers: nvcc includes it).
//
// Poly1305's accumulator after n whole blocks is the polynomial sum of block_i * r^(n-i+1) mod
// 2^130-5, so a long message splits into chunks that are evaluated from a zero accumulator in
// parallel (one CUDA thread or CPU task per chunk); the host joins them in order with
// h = h * r^(chunk blocks) + chunk_sum (Poly1305::append_chunk in ops/cpu/poly1305.h).
//
// Arithmetic in five 26-bit limbs with 64-bit products (the radix that suits 32-bit GPU
// multipliers; the classic "donna-32" layout). No branch or index depends on key or data.
#pragma once

#include <cstdint>

#include "ops/common/host_device.h"

namespace featperm::poly1305 {

constexpr int kBlockBytes = 16;
constexpr uint32_t kMask26 = (1u << 26) - 1;

// Clamped r in 26-bit limbs, and 5 * r[1..4] (2^130 = 5 mod p folds the high products back).
struct R26 {
  uint32_t r[5];
  uint32_t s[4];  // s[i] = 5 * r[i + 1]
};

// r from the first 16 bytes of the one-time key, given as four little-endian words.
FEATPERM_HOST_DEVICE R26 clamped_r(const uint32_t (&w)[4]) {
  R26 k;
  k.r[0] = w[0] & 0x3ffffff;
  k.r[1] = ((w[0] >> 26) | (w[1] << 6)) & 0x3ffff03;
  k.r[2] = ((w[1] >> 20) | (w[2] << 12)) & 0x3ffc0ff;
  k.r[3] = ((w[2] >> 14) | (w[3] << 18)) & 0x3f03fff;
  k.r[4] = (w[3] >> 8) & 0x00fffff;
  for (int i = 0; i < 4; ++i) k.s[i] = k.r[i + 1] * 5;
  return k;
}

// h = (h + block + 2^128) * r mod 2^130-5, partially reduced; the block as four LE words.
FEATPERM_HOST_DEVICE void absorb_block(uint32_t (&h)[5], const uint32_t (&w)[4], const R26& k) {
  const uint64_t h0 = h[0] + (w[0] & kMask26);
  const uint64_t h1 = h[1] + (((w[0] >> 26) | (w[1] << 6)) & kMask26);
  const uint64_t h2 = h[2] + (((w[1] >> 20) | (w[2] << 12)) & kMask26);
  const uint64_t h3 = h[3] + (((w[2] >> 14) | (w[3] << 18)) & kMask26);
  const uint64_t h4 = h[4] + ((w[3] >> 8) | (1u << 24));
  const uint32_t* r = k.r;
  const uint32_t* s = k.s;
  const uint64_t d0 = h0 * r[0] + h1 * s[3] + h2 * s[2] + h3 * s[1] + h4 * s[0];
  uint64_t d1 = h0 * r[1] + h1 * r[0] + h2 * s[3] + h3 * s[2] + h4 * s[1];
  uint64_t d2 = h0 * r[2] + h1 * r[1] + h2 * r[0] + h3 * s[3] + h4 * s[2];
  uint64_t d3 = h0 * r[3] + h1 * r[2] + h2 * r[1] + h3 * r[0] + h4 * s[3];
  uint64_t d4 = h0 * r[4] + h1 * r[3] + h2 * r[2] + h3 * r[1] + h4 * r[0];
  uint64_t c = d0 >> 26; h[0] = static_cast<uint32_t>(d0) & kMask26;
  d1 += c; c = d1 >> 26; h[1] = static_cast<uint32_t>(d1) & kMask26;
  d2 += c; c = d2 >> 26; h[2] = static_cast<uint32_t>(d2) & kMask26;
  d3 += c; c = d3 >> 26; h[3] = static_cast<uint32_t>(d3) & kMask26;
  d4 += c; c = d4 >> 26; h[4] = static_cast<uint32_t>(d4) & kMask26;
  h[0] += static_cast<uint32_t>(c) * 5; c = h[0] >> 26; h[0] &= kMask26;
  h[1] += static_cast<uint32_t>(c);
}

// The same number in the 44/44/42-bit limbs of the host code (exact: additions, no masking of
// value; the top limb may exceed 42 bits slightly, which the host code allows).
FEATPERM_HOST_DEVICE void to_radix44(const uint32_t (&h)[5], uint64_t (&out)[3]) {
  constexpr uint64_t kMask44 = (uint64_t{1} << 44) - 1;
  const uint64_t v0 = uint64_t{h[0]} + (uint64_t{h[1]} << 26);
  const uint64_t v1 = (v0 >> 44) + (uint64_t{h[2]} << 8) + (uint64_t{h[3]} << 34);
  const uint64_t v2 = (v1 >> 44) + (uint64_t{h[4]} << 16);
  out[0] = v0 & kMask44;
  out[1] = v1 & kMask44;
  out[2] = v2;
}

// The chunk's contribution: blocks [first, first + count) absorbed from a zero accumulator.
// `load(block, words)` fills the four little-endian words of a block (the backends read memory
// their own way).
template <class LoadWords>
FEATPERM_HOST_DEVICE void chunk_sum(LoadWords load, int64_t first, int64_t count, const R26& k,
                                    uint64_t (&out)[3]) {
  uint32_t h[5] = {0, 0, 0, 0, 0};
  for (int64_t i = first; i < first + count; ++i) {
    uint32_t w[4];
    load(i, w);
    absorb_block(h, w, k);
  }
  to_radix44(h, out);
}

}  // namespace featperm::poly1305
