// Poly1305 with AVX-512 IFMA: eight blocks at a time, one per 64-bit lane, in the radix-2^44
// limbs of poly1305.h (52-bit multipliers take 44-bit limbs with room to spare).
//
// Lane j absorbs blocks j, j+8, j+16, ... by Horner in r^8; the last group multiplies lane j by
// r^(8-j) instead, so that block i ends up multiplied by r^(n-i+1) exactly as in the serial
// definition, and the lanes are summed. The previous accumulator enters lane 0 with the first
// block. Like chacha20_avx512.cpp, this translation unit is compiled for AVX-512 by a pragma
// after the standard headers, and only the function below (reached through a run-time check)
// is built with it.
#include "ops/cpu/poly1305_ifma.h"

#include <cstdint>
#include <cstring>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FEATPERM_POLY1305_IFMA 1
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx512f,avx512ifma")
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"  // GCC 12 false positive in the intrinsics
#endif

namespace featperm::cpu {

#ifdef FEATPERM_POLY1305_IFMA

namespace {

struct Vec3 {
  __m512i l[3];
};

// a * b (b's limbs 1 and 2 also given times 20), reduced to limbs of 44/44/42 bits (+ a carry bit).
inline Vec3 multiply(const Vec3& a, const __m512i (&b)[3], const __m512i (&b20)[3]) {
  const __m512i zero = _mm512_setzero_si512();
  const __m512i mask44 = _mm512_set1_epi64((int64_t{1} << 44) - 1);
  const __m512i mask42 = _mm512_set1_epi64((int64_t{1} << 42) - 1);
  // d_k = lo_k + hi_k * 2^52, from 52x52-bit products split at bit 52.
  __m512i lo0 = _mm512_madd52lo_epu64(zero, a.l[0], b[0]);
  __m512i hi0 = _mm512_madd52hi_epu64(zero, a.l[0], b[0]);
  lo0 = _mm512_madd52lo_epu64(lo0, a.l[1], b20[2]);
  hi0 = _mm512_madd52hi_epu64(hi0, a.l[1], b20[2]);
  lo0 = _mm512_madd52lo_epu64(lo0, a.l[2], b20[1]);
  hi0 = _mm512_madd52hi_epu64(hi0, a.l[2], b20[1]);
  __m512i lo1 = _mm512_madd52lo_epu64(zero, a.l[0], b[1]);
  __m512i hi1 = _mm512_madd52hi_epu64(zero, a.l[0], b[1]);
  lo1 = _mm512_madd52lo_epu64(lo1, a.l[1], b[0]);
  hi1 = _mm512_madd52hi_epu64(hi1, a.l[1], b[0]);
  lo1 = _mm512_madd52lo_epu64(lo1, a.l[2], b20[2]);
  hi1 = _mm512_madd52hi_epu64(hi1, a.l[2], b20[2]);
  __m512i lo2 = _mm512_madd52lo_epu64(zero, a.l[0], b[2]);
  __m512i hi2 = _mm512_madd52hi_epu64(zero, a.l[0], b[2]);
  lo2 = _mm512_madd52lo_epu64(lo2, a.l[1], b[1]);
  hi2 = _mm512_madd52hi_epu64(hi2, a.l[1], b[1]);
  lo2 = _mm512_madd52lo_epu64(lo2, a.l[2], b[0]);
  hi2 = _mm512_madd52hi_epu64(hi2, a.l[2], b[0]);
  // hi_k * 2^52 is hi_k * 2^8 one limb up; hi_2 * 2^(88+52) = hi_2 * 2^10 * 2^130 = hi_2 * 5 * 2^10.
  __m512i t0 = _mm512_add_epi64(lo0, _mm512_slli_epi64(_mm512_add_epi64(_mm512_slli_epi64(hi2, 2), hi2), 10));
  __m512i t1 = _mm512_add_epi64(lo1, _mm512_slli_epi64(hi0, 8));
  __m512i t2 = _mm512_add_epi64(lo2, _mm512_slli_epi64(hi1, 8));
  __m512i c = _mm512_srli_epi64(t0, 44);
  t0 = _mm512_and_si512(t0, mask44);
  t1 = _mm512_add_epi64(t1, c);
  c = _mm512_srli_epi64(t1, 44);
  t1 = _mm512_and_si512(t1, mask44);
  t2 = _mm512_add_epi64(t2, c);
  c = _mm512_srli_epi64(t2, 42);
  t2 = _mm512_and_si512(t2, mask42);
  t0 = _mm512_add_epi64(t0, _mm512_add_epi64(_mm512_slli_epi64(c, 2), c));  // + 5c
  c = _mm512_srli_epi64(t0, 44);
  t0 = _mm512_and_si512(t0, mask44);
  t1 = _mm512_add_epi64(t1, c);
  return Vec3{{t0, t1, t2}};
}

// The limbs of blocks j (lane j) of the 128 bytes at m, with 2^128 added.
inline Vec3 load_blocks(const uint8_t* m) {
  const __m512i a = _mm512_loadu_si512(m);
  const __m512i b = _mm512_loadu_si512(m + 64);
  const __m512i even = _mm512_setr_epi64(0, 2, 4, 6, 8, 10, 12, 14);
  const __m512i odd = _mm512_setr_epi64(1, 3, 5, 7, 9, 11, 13, 15);
  const __m512i t0 = _mm512_permutex2var_epi64(a, even, b);  // low 8 bytes of each block
  const __m512i t1 = _mm512_permutex2var_epi64(a, odd, b);   // high 8 bytes
  const __m512i mask44 = _mm512_set1_epi64((int64_t{1} << 44) - 1);
  const __m512i mask42 = _mm512_set1_epi64((int64_t{1} << 42) - 1);
  Vec3 v;
  v.l[0] = _mm512_and_si512(t0, mask44);
  v.l[1] = _mm512_and_si512(_mm512_or_si512(_mm512_srli_epi64(t0, 44), _mm512_slli_epi64(t1, 20)), mask44);
  v.l[2] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi64(t1, 24), mask42),
                           _mm512_set1_epi64(int64_t{1} << 40));
  return v;
}

inline __m512i times20(__m512i x) { return _mm512_add_epi64(_mm512_slli_epi64(x, 4), _mm512_slli_epi64(x, 2)); }

}  // namespace

bool poly1305_absorb_ifma(uint64_t* h, const uint8_t* m, size_t groups, const uint64_t* r_powers) {
  auto power = [r_powers](int exponent, int limb) { return static_cast<int64_t>(r_powers[3 * (exponent - 1) + limb]); };
  if (groups == 0) return true;
  // r^8 for every lane, and r^(8-j) in lane j for the last group (limbs 1, 2 also times 20).
  __m512i r8[3], r8_20[3], last[3], last_20[3];
  for (int k = 0; k < 3; ++k) {
    r8[k] = _mm512_set1_epi64(power(8, k));
    last[k] = _mm512_setr_epi64(power(8, k), power(7, k), power(6, k), power(5, k), power(4, k), power(3, k),
                                power(2, k), power(1, k));
    r8_20[k] = times20(r8[k]);
    last_20[k] = times20(last[k]);
  }
  Vec3 acc;
  for (int k = 0; k < 3; ++k) {
    acc.l[k] = _mm512_maskz_mov_epi64(1, _mm512_set1_epi64(static_cast<int64_t>(h[k])));  // lane 0 only
  }
  for (size_t g = 0; g < groups; ++g, m += 128) {
    const Vec3 blocks = load_blocks(m);
    for (int k = 0; k < 3; ++k) acc.l[k] = _mm512_add_epi64(acc.l[k], blocks.l[k]);
    acc = g + 1 < groups ? multiply(acc, r8, r8_20) : multiply(acc, last, last_20);
  }
  // Sum the lanes (each below 2^45: eight of them cannot overflow).
  for (int k = 0; k < 3; ++k) h[k] = static_cast<uint64_t>(_mm512_reduce_add_epi64(acc.l[k]));
  return true;
}

#else

bool poly1305_absorb_ifma(uint64_t*, const uint8_t*, size_t, const uint64_t*) { return false; }

#endif

}  // namespace featperm::cpu

#ifdef FEATPERM_POLY1305_IFMA
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
