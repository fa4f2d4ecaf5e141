#include "ops/cpu/cpu_features.h"

#include <atomic>

#include <c10/util/Exception.h>

namespace featperm::cpu {
namespace {

// A vector variant is offered when this build compiled it (the guards of its source file) and the
// processor has what it needs. __builtin_cpu_supports takes only literals: one function per set.
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
bool avx512_vbmi() {  // block_shuffle_kernel.cpp, avx512_bytes.h
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vbmi");
}
bool avx512_vbmi_gfni() { return avx512_vbmi() && __builtin_cpu_supports("gfni"); }  // shuffle_bits_kernel.cpp
#else
bool avx512_vbmi() { return false; }
bool avx512_vbmi_gfni() { return false; }
#endif
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
bool avx512f_bw() {  // chacha20_avx512.cpp
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
}
bool avx512_ifma() {  // poly1305_ifma.cpp
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512ifma");
}
#else
bool avx512f_bw() { return false; }
bool avx512_ifma() { return false; }
#endif

struct KernelInfo {
  const char* name;
  const char* vector_variant;
  bool (*vector_supported)();
};

constexpr KernelInfo kKernels[] = {
    {"shuffle_bits", "avx512_vbmi_gfni", avx512_vbmi_gfni},
    {"block_shuffle", "avx512_vbmi", avx512_vbmi},
    {"chacha20", "avx512f", avx512f_bw},
    {"poly1305", "avx512_ifma", avx512_ifma},
};
static_assert(sizeof(kKernels) / sizeof(kKernels[0]) == static_cast<size_t>(Kernel::kCount));

bool supported(Kernel kernel) {
  static const bool table[] = {kKernels[0].vector_supported(), kKernels[1].vector_supported(),
                               kKernels[2].vector_supported(), kKernels[3].vector_supported()};
  return table[static_cast<int>(kernel)];
}

std::atomic<bool>& slot(Kernel kernel) {
  static std::atomic<bool> slots[] = {supported(Kernel::kShuffleBits), supported(Kernel::kBlockShuffle),
                                      supported(Kernel::kChaCha20), supported(Kernel::kPoly1305)};
  return slots[static_cast<int>(kernel)];
}

std::string known_kernels() {
  std::string names;
  for (const auto& info : kKernels) names += (names.empty() ? "" : ", ") + std::string(info.name);
  return names;
}

}  // namespace

bool use_vector(Kernel kernel) { return slot(kernel).load(std::memory_order_relaxed); }

std::vector<std::string> select_kernel(const std::string& name, const std::string& variant) {
  int index = -1;
  for (int i = 0; i < static_cast<int>(Kernel::kCount); ++i) {
    if (name == kKernels[i].name) index = i;
  }
  TORCH_CHECK_VALUE(index >= 0, "featperm._cpu_kernel: kernel must be one of ", known_kernels(),
                    ", got '", name, "'");
  const Kernel kernel = static_cast<Kernel>(index);
  const KernelInfo& info = kKernels[index];
  if (!variant.empty()) {
    const bool vector = variant == info.vector_variant || (variant == "best" && supported(kernel));
    TORCH_CHECK_VALUE(vector || variant == "portable" || variant == "best", "featperm._cpu_kernel: variant of ",
                      name, " must be 'portable', '", info.vector_variant, "' or 'best', got '", variant, "'");
    TORCH_CHECK_VALUE(!vector || supported(kernel), "featperm._cpu_kernel: this processor cannot run the ",
                      info.vector_variant, " variant of ", name, " (it lacks an instruction set extension it needs)");
    slot(kernel).store(vector, std::memory_order_relaxed);
  }
  std::vector<std::string> out{use_vector(kernel) ? info.vector_variant : "portable", "portable"};
  if (supported(kernel)) out.emplace_back(info.vector_variant);
  return out;
}

}  // namespace featperm::cpu
