// ShuffleBits on the CPU: parallel over runs of words, with two kernels chosen at run time:
//  - AVX-512 VBMI + GFNI (x86-64 processors that have them): 64 bytes at a time. The bytes are
//    transposed into byte planes (plane j = byte j of every word) by vpermb, and each output plane
//    is the XOR of W (word bytes) 8x8 bit-matrix products gf2p8affineqb(plane, A[s][j]); a final
//    vpermb transposes back. About 3W+1 instructions per 64 bytes, no per-bit work.
//  - Portable: byte tables (W x 256 words), out = OR of W lookups. The fallback, and the path the
//    tests compare against the vector kernel.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <array>
#include <cstring>

#include "ops/common/bit_permutation.h"
#include "ops/cpu/avx512_bytes.h"
#include "ops/cpu/cpu_features.h"
#include "ops/shuffle_bits.h"

namespace featperm::ops {
namespace {

// Words per parallel task: large enough to amortise building a key's tables (per-sample keys
// rebuild them for each sample a task touches), small enough to balance threads.
constexpr int64_t kGrainBytes = 256 * 1024;

template <int Bytes>
struct ByteTables {
  using Word = typename WordOf<Bytes>::type;
  Word table[Bytes][256];

  explicit ByteTables(const uint8_t* dest) {
    for (int c = 0; c < Bytes; ++c)
      for (unsigned v = 0; v < 256; ++v) table[c][v] = chunk_table_entry<Word, 8>(dest, c, v);
  }

  void permute(const Word* in, Word* out, int64_t n) const {
    for (int64_t i = 0; i < n; ++i) {
      const Word w = in[i];
      Word acc = 0;
      for (int c = 0; c < Bytes; ++c) acc |= table[c][(w >> (8 * c)) & 0xff];
      out[i] = acc;
    }
  }
};

#ifdef FEATPERM_HAVE_AVX512_VBMI  // ops/cpu/avx512_bytes.h: x86-64, GCC or Clang, <immintrin.h>
#define FEATPERM_HAVE_GFNI_KERNEL 1
#define FEATPERM_TARGET_GFNI __attribute__((target("avx512f,avx512bw,avx512vbmi,gfni")))

// Byte-plane layout of one 64-byte vector of words of `Bytes` bytes: P = 64 / Bytes words; plane j
// holds byte j of each word, at bytes [j*P, (j+1)*P). Rotation d puts source plane (j+d) mod W at
// plane j, so one per-qword matrix vector serves the whole rotation.
template <int Bytes>
struct GfniPlan {
  static constexpr int W = Bytes;
  static constexpr int P = 64 / Bytes;
  alignas(64) uint8_t gather[W][64];  // vpermb indices: word bytes -> rotated planes
  alignas(64) uint64_t matrix[W][8];  // the 8x8 bit matrix for each qword of each rotation
  alignas(64) uint8_t scatter[64];    // vpermb indices: planes -> word bytes

  explicit GfniPlan(const uint8_t* dest) {
    uint8_t source_of[64];  // input bit that lands on each output bit
    for (int b = 0; b < 8 * W; ++b) source_of[dest[b]] = static_cast<uint8_t>(b);
    for (int d = 0; d < W; ++d) {
      for (int j = 0; j < W; ++j)
        for (int w = 0; w < P; ++w) gather[d][j * P + w] = static_cast<uint8_t>(w * W + (j + d) % W);
      for (int q = 0; q < 8; ++q) {
        const int j = q * 8 / P;  // output plane of this qword
        const int s = (j + d) % W;
        uint64_t m = 0;
        // gf2p8affineqb: result bit i = parity(matrix byte (7-i) & input byte).
        for (int i = 0; i < 8; ++i) {
          const int g = source_of[8 * j + i];
          if (g / 8 == s) m |= uint64_t{1u << (g % 8)} << (8 * (7 - i));
        }
        matrix[d][q] = m;
      }
    }
    for (int w = 0; w < P; ++w)
      for (int j = 0; j < W; ++j) scatter[w * W + j] = static_cast<uint8_t>(j * P + w);
  }

  FEATPERM_TARGET_GFNI void permute(const uint8_t* in, uint8_t* out, int64_t bytes) const {
    __m512i gather_v[W], matrix_v[W];
    for (int d = 0; d < W; ++d) {
      gather_v[d] = _mm512_load_si512(gather[d]);
      matrix_v[d] = _mm512_load_si512(matrix[d]);
    }
    const __m512i scatter_v = _mm512_load_si512(scatter);
    auto permute64 = [&](__m512i x) FEATPERM_TARGET_GFNI {
      if constexpr (W == 1) {
        return _mm512_gf2p8affine_epi64_epi8(x, matrix_v[0], 0);
      } else {
        __m512i acc = _mm512_gf2p8affine_epi64_epi8(cpu::permute_bytes(gather_v[0], x), matrix_v[0], 0);
        for (int d = 1; d < W; ++d)
          acc = _mm512_xor_si512(acc, _mm512_gf2p8affine_epi64_epi8(cpu::permute_bytes(gather_v[d], x), matrix_v[d], 0));
        return cpu::permute_bytes(scatter_v, acc);
      }
    };
    int64_t i = 0;
    for (; i + 128 <= bytes; i += 128) {  // two independent vectors per iteration
      const __m512i a = _mm512_loadu_si512(in + i);
      const __m512i b = _mm512_loadu_si512(in + i + 64);
      _mm512_storeu_si512(out + i, permute64(a));
      _mm512_storeu_si512(out + i + 64, permute64(b));
    }
    for (; i < bytes; i += 64) {
      const int64_t left = bytes - i;
      const __mmask64 mask = left >= 64 ? ~__mmask64{0} : (__mmask64{1} << left) - 1;
      _mm512_mask_storeu_epi8(out + i, mask, permute64(_mm512_maskz_loadu_epi8(mask, in + i)));
    }
  }
};
#endif

// Permutes words [begin, end) of a run split into samples of `words_per_sample` words each.
template <int Bytes, bool Inverse>
void permute_range(const WordRun& run, const int64_t* keys, int64_t words_per_sample,
                   int64_t begin, int64_t end, bool vector) {
  using Word = typename WordOf<Bytes>::type;
  const Word* in = static_cast<const Word*>(run.src);
  Word* out = static_cast<Word*>(run.dst);
  uint8_t dest[64];
  while (begin < end) {
    const int64_t sample = begin / words_per_sample;
    const int64_t stop = std::min(end, (sample + 1) * words_per_sample);
    build_destinations<Inverse>(keys + sample * 8 * Bytes, 8 * Bytes, dest);
#ifdef FEATPERM_HAVE_GFNI_KERNEL
    if (vector) {
      GfniPlan<Bytes>(dest).permute(reinterpret_cast<const uint8_t*>(in + begin),
                                    reinterpret_cast<uint8_t*>(out + begin), (stop - begin) * Bytes);
      begin = stop;
      continue;
    }
#endif
    ByteTables<Bytes>(dest).permute(in + begin, out + begin, stop - begin);
    begin = stop;
  }
}

template <int Bytes, bool Inverse>
void permute_run(const WordRun& run) {
  const int64_t* keys = run.keys->const_data_ptr<int64_t>();
  const int64_t words_per_sample = run.words / run.samples;
  const bool vector = cpu::use_vector(cpu::Kernel::kShuffleBits);
  at::parallel_for(0, run.words, kGrainBytes / Bytes, [&](int64_t begin, int64_t end) {
    permute_range<Bytes, Inverse>(run, keys, words_per_sample, begin, end, vector);
  });
}

void cpu_word_kernel(const at::Tensor&, const WordRun& run) {
  const bool supported = dispatch_word_bytes_and_direction(
      run.word_bytes, run.inverse, [&](auto bytes_c, auto inverse_c) {
        permute_run<decltype(bytes_c)::value, decltype(inverse_c)::value>(run);
      });
  TORCH_CHECK(supported, "featperm: unsupported word size ", run.word_bytes);
}

}  // namespace
}  // namespace featperm::ops

TORCH_LIBRARY_IMPL(featperm, CPU, m) {
  featperm::ops::register_shuffle_bits_impls<featperm::ops::cpu_word_kernel>(m);
}
