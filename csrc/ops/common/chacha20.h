// The ChaCha20 block function of RFC 8439, shared by the CPU and CUDA kernels (no torch headers:
// nvcc includes it).
//
// Everything is a template over a word type `Ops`: `Ops::Word` holds one 32-bit state word for
// each of the blocks computed at once (uint32_t for one block; an AVX-512 vector for 16 blocks in
// 16 lanes), and `Ops` supplies add, xor and rotate-left for it. Every backend therefore runs the
// same quarter round, round sequence and feed-forward, and only the word type differs.
//
// Only templates live here: the AVX-512 translation unit compiles this header with AVX-512 enabled
// and instantiates it only for its own (internal-linkage) word type, so no inline function built
// for AVX-512 can be shared, by the linker, with code that runs on processors without it.
#pragma once

#include <cstdint>

#include "ops/common/host_device.h"

#if defined(__CUDACC__)
#define FEATPERM_CHACHA_UNROLL(n) _Pragma(n)
#else
#define FEATPERM_CHACHA_UNROLL(n)  // host compilers unroll these short loops on their own
#endif

namespace featperm::chacha20 {

constexpr int kBlockBytes = 64;
constexpr int kKeyWords = 8;
constexpr int kNonceWords = 3;
// Counter values are 0 .. 2^32-1: one (key, nonce) pair yields at most 2^32 blocks.
constexpr uint64_t kCounterLimit = uint64_t{1} << 32;

// "expand 32-byte k", the first row of the state (RFC 8439 section 2.3).
template <class Ops>
FEATPERM_HOST_DEVICE uint32_t sigma(int i) {
  return i == 0 ? 0x61707865u : i == 1 ? 0x3320646eu : i == 2 ? 0x79622d32u : 0x6b206574u;
}

// One 32-bit word per block, for the portable CPU path and for a CUDA thread.
struct ScalarWords {
  using Word = uint32_t;
  static FEATPERM_HOST_DEVICE Word add(Word a, Word b) { return a + b; }
  static FEATPERM_HOST_DEVICE Word bit_xor(Word a, Word b) { return a ^ b; }
  template <int N>
  static FEATPERM_HOST_DEVICE Word rotl(Word x) {
#if defined(__CUDA_ARCH__)
    return __funnelshift_l(x, x, N);  // one SHF instruction
#else
    return (x << N) | (x >> (32 - N));
#endif
  }
};

// RFC 8439 section 2.1.
template <class Ops>
FEATPERM_HOST_DEVICE void quarter_round(typename Ops::Word& a, typename Ops::Word& b,
                                        typename Ops::Word& c, typename Ops::Word& d) {
  a = Ops::add(a, b); d = Ops::bit_xor(d, a); d = Ops::template rotl<16>(d);
  c = Ops::add(c, d); b = Ops::bit_xor(b, c); b = Ops::template rotl<12>(b);
  a = Ops::add(a, b); d = Ops::bit_xor(d, a); d = Ops::template rotl<8>(d);
  c = Ops::add(c, d); b = Ops::bit_xor(b, c); b = Ops::template rotl<7>(b);
}

// The block function (RFC 8439 section 2.3): out = 20 rounds of `in`, plus `in`.
template <class Ops>
FEATPERM_HOST_DEVICE void block(const typename Ops::Word (&in)[16], typename Ops::Word (&out)[16]) {
  typename Ops::Word x[16];
FEATPERM_CHACHA_UNROLL("unroll")
  for (int i = 0; i < 16; ++i) x[i] = in[i];
FEATPERM_CHACHA_UNROLL("unroll 1")
  for (int round = 0; round < 10; ++round) {
    quarter_round<Ops>(x[0], x[4], x[8], x[12]);   // column round
    quarter_round<Ops>(x[1], x[5], x[9], x[13]);
    quarter_round<Ops>(x[2], x[6], x[10], x[14]);
    quarter_round<Ops>(x[3], x[7], x[11], x[15]);
    quarter_round<Ops>(x[0], x[5], x[10], x[15]);  // diagonal round
    quarter_round<Ops>(x[1], x[6], x[11], x[12]);
    quarter_round<Ops>(x[2], x[7], x[8], x[13]);
    quarter_round<Ops>(x[3], x[4], x[9], x[14]);
  }
FEATPERM_CHACHA_UNROLL("unroll")
  for (int i = 0; i < 16; ++i) out[i] = Ops::add(x[i], in[i]);
}

// The input state for one block: constants | key | counter | nonce (words are little-endian
// readings of the key and nonce bytes). `splat` turns a uint32_t into an Ops::Word; the counter
// word is left to the caller (it differs between the blocks of a vector).
template <class Ops, class Splat>
FEATPERM_HOST_DEVICE void initial_state(const uint32_t* key, const uint32_t* nonce, Splat splat,
                                        typename Ops::Word (&state)[16]) {
FEATPERM_CHACHA_UNROLL("unroll")
  for (int i = 0; i < 4; ++i) state[i] = splat(sigma<Ops>(i));
FEATPERM_CHACHA_UNROLL("unroll")
  for (int i = 0; i < kKeyWords; ++i) state[4 + i] = splat(key[i]);
FEATPERM_CHACHA_UNROLL("unroll")
  for (int i = 0; i < kNonceWords; ++i) state[13 + i] = splat(nonce[i]);
}

}  // namespace featperm::chacha20
