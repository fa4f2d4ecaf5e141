// Run-time choice of each CPU kernel's variant, by the processor features that variant needs.
//
// Every CPU kernel has a portable variant and one vector variant; each vector variant needs only
// the instructions it really uses, so a processor with AVX-512F but without GFNI (e.g. Cascade
// Lake) still runs the AVX-512 ChaCha20 kernel:
//
//   kernel         vector variant      needs
//   shuffle_bits   avx512_vbmi_gfni    AVX-512F, BW, VBMI, GFNI
//   block_shuffle  avx512_vbmi         AVX-512F, BW, VBMI
//   chacha20       avx512f             AVX-512F, BW
//   poly1305       avx512_ifma         AVX-512F, IFMA
//
// At load time each kernel uses the best variant the processor supports; featperm::_cpu_kernel
// (featperm.ops.use_cpu_kernels in Python) selects another, e.g. to test every variant.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

namespace featperm::cpu {

enum class Kernel : int { kShuffleBits = 0, kBlockShuffle, kChaCha20, kPoly1305, kCount };

// True when `kernel` runs its vector variant now.
bool use_vector(Kernel kernel);

// featperm::_cpu_kernel(kernel, variant): selects `variant` ("portable", the kernel's vector
// variant, or "best") unless it is empty; returns {active variant, supported variants...}.
// ValueError for an unknown kernel or variant, or one this processor cannot run.
std::vector<std::string> select_kernel(const std::string& kernel, const std::string& variant);

}  // namespace featperm::cpu
