// AVX-512 VBMI helpers shared by the CPU kernels (compiled for x86-64 with GCC or Clang; callers
// run them only when cpu::use_vector() says their kernel may (AVX-512 with VBMI)).
#pragma once

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>

#define FEATPERM_HAVE_AVX512_VBMI 1
#define FEATPERM_TARGET_VBMI __attribute__((target("avx512f,avx512bw,avx512vbmi")))

namespace featperm::cpu {

// vpermb: out[p] = v[index[p] & 63]. The all-lanes mask compiles to the unmasked instruction; the
// unmasked intrinsic makes GCC 12 warn of an uninitialised pass-through operand.
FEATPERM_TARGET_VBMI inline __m512i permute_bytes(__m512i index, __m512i v) {
  return _mm512_maskz_permutexvar_epi8(~__mmask64{0}, index, v);
}

}  // namespace featperm::cpu
#endif
