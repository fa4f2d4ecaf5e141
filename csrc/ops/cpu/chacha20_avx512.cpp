// ChaCha20 with AVX-512F/BW: 16 consecutive blocks in the 16 32-bit lanes of each state vector.
//
// This whole translation unit is compiled for AVX-512 (#pragma GCC target below), so that the
// shared block function of ops/common/chacha20.h is instantiated, inlined and register-allocated
// for zmm registers. Nothing here may be reached on a processor without AVX-512: the caller
// (chacha20_kernel.cpp) dispatches on cpu::use_vector(Kernel::kChaCha20). Standard headers are included before the
// pragma, and the header's templates are instantiated only with the internal-linkage word type
// below, so no AVX-512 code can leak into an inline function used elsewhere.
#include "ops/cpu/chacha20_cpu.h"

#include <cstdint>

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FEATPERM_CHACHA20_AVX512 1
#include <immintrin.h>
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw")
// GCC 12 warns that the intrinsics' internal _mm512_undefined_epi32() is uninitialised (a false
// positive of the headers themselves).
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#include "ops/common/chacha20.h"
#endif

namespace featperm::cpu {

#ifdef FEATPERM_CHACHA20_AVX512
namespace {

struct Avx512Words {
  using Word = __m512i;
  static inline Word add(Word a, Word b) { return _mm512_add_epi32(a, b); }
  static inline Word bit_xor(Word a, Word b) { return _mm512_xor_si512(a, b); }
  template <int N>
  static inline Word rotl(Word x) { return _mm512_rol_epi32(x, N); }
};

struct Splat {
  __m512i operator()(uint32_t w) const { return _mm512_set1_epi32(static_cast<int>(w)); }
};

// Keystream of 16 blocks, `ks[b]` = block b's 64 bytes, from the lane-sliced output `x` (x[i]
// holds word i of the 16 blocks). A 16x16 transpose of 32-bit words: a 4x4 transpose of words in
// each 128-bit lane, then a 4x4 transpose of the 128-bit lanes.
inline void transpose_to_blocks(const __m512i (&x)[16], __m512i (&ks)[16]) {
  __m512i rows[4][4];  // rows[j][r]: 128-bit lane k = row r (words 4r..4r+3) of block 4k+j
  for (int r = 0; r < 4; ++r) {
    const __m512i t0 = _mm512_unpacklo_epi32(x[4 * r], x[4 * r + 1]);
    const __m512i t1 = _mm512_unpackhi_epi32(x[4 * r], x[4 * r + 1]);
    const __m512i t2 = _mm512_unpacklo_epi32(x[4 * r + 2], x[4 * r + 3]);
    const __m512i t3 = _mm512_unpackhi_epi32(x[4 * r + 2], x[4 * r + 3]);
    rows[0][r] = _mm512_unpacklo_epi64(t0, t2);
    rows[1][r] = _mm512_unpackhi_epi64(t0, t2);
    rows[2][r] = _mm512_unpacklo_epi64(t1, t3);
    rows[3][r] = _mm512_unpackhi_epi64(t1, t3);
  }
  for (int j = 0; j < 4; ++j) {
    const __m512i p0 = _mm512_shuffle_i32x4(rows[j][0], rows[j][1], 0x44);  // A0 A1 B0 B1
    const __m512i p1 = _mm512_shuffle_i32x4(rows[j][0], rows[j][1], 0xEE);  // A2 A3 B2 B3
    const __m512i p2 = _mm512_shuffle_i32x4(rows[j][2], rows[j][3], 0x44);  // C0 C1 D0 D1
    const __m512i p3 = _mm512_shuffle_i32x4(rows[j][2], rows[j][3], 0xEE);  // C2 C3 D2 D3
    ks[0 + j] = _mm512_shuffle_i32x4(p0, p2, 0x88);   // A0 B0 C0 D0: block j
    ks[4 + j] = _mm512_shuffle_i32x4(p0, p2, 0xDD);   // block 4 + j
    ks[8 + j] = _mm512_shuffle_i32x4(p1, p3, 0x88);   // block 8 + j
    ks[12 + j] = _mm512_shuffle_i32x4(p1, p3, 0xDD);  // block 12 + j
  }
}

}  // namespace

bool chacha20_xor_avx512(const uint8_t* src, uint8_t* dst, int64_t bytes, const uint32_t* key,
                         const uint32_t* nonce, uint32_t counter) {
  __m512i state[16];
  chacha20::initial_state<Avx512Words>(key, nonce, Splat{}, state);
  const __m512i lane = _mm512_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15);
  // Lanes past the end of the data may wrap the counter: their keystream is never used.
  state[12] = _mm512_add_epi32(_mm512_set1_epi32(static_cast<int>(counter)), lane);
  const __m512i sixteen = _mm512_set1_epi32(16);
  constexpr int64_t kGroupBytes = 16 * chacha20::kBlockBytes;

  for (int64_t offset = 0; offset < bytes; offset += kGroupBytes) {
    __m512i x[16], ks[16];
    chacha20::block<Avx512Words>(state, x);
    state[12] = _mm512_add_epi32(state[12], sixteen);
    transpose_to_blocks(x, ks);
    if (bytes - offset >= kGroupBytes) {
      for (int b = 0; b < 16; ++b) {
        const __m512i in = _mm512_loadu_si512(src + offset + 64 * b);
        _mm512_storeu_si512(dst + offset + 64 * b, _mm512_xor_si512(in, ks[b]));
      }
    } else {
      for (int b = 0; b < 16 && offset + 64 * b < bytes; ++b) {
        const int64_t left = bytes - offset - 64 * b;
        const __mmask64 mask = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
        const __m512i in = _mm512_maskz_loadu_epi8(mask, src + offset + 64 * b);
        _mm512_mask_storeu_epi8(dst + offset + 64 * b, mask, _mm512_xor_si512(in, ks[b]));
      }
    }
  }
  return true;
}

#else

bool chacha20_xor_avx512(const uint8_t*, uint8_t*, int64_t, const uint32_t*, const uint32_t*, uint32_t) {
  return false;
}

#endif

}  // namespace featperm::cpu

#ifdef FEATPERM_CHACHA20_AVX512
#pragma GCC diagnostic pop
#pragma GCC pop_options
#endif
