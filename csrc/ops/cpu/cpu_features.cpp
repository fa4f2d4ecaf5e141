#include "ops/cpu/cpu_features.h"

#include <atomic>

#include <c10/util/Exception.h>

namespace featperm::cpu {
namespace {

bool has_avx512_gfni() {
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
  __builtin_cpu_init();
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
         __builtin_cpu_supports("avx512vbmi") && __builtin_cpu_supports("gfni");
#else
  return false;
#endif
}

std::atomic<int64_t>& active_isa_slot() {
  static std::atomic<int64_t> slot{static_cast<int64_t>(best_isa())};
  return slot;
}

}  // namespace

Isa best_isa() {
  static const Isa best = has_avx512_gfni() ? Isa::kAvx512Gfni : Isa::kPortable;
  return best;
}

Isa active_isa() { return static_cast<Isa>(active_isa_slot().load(std::memory_order_relaxed)); }

int64_t select_isa(int64_t request) {
  if (request >= 0) {
    TORCH_CHECK(request <= static_cast<int64_t>(best_isa()),
                "featperm._cpu_isa: request=", request, " is not supported by this processor "
                "(best available: ", static_cast<int64_t>(best_isa()), "; 0 = portable tables, "
                "1 = AVX-512 VBMI + GFNI)");
    active_isa_slot().store(request, std::memory_order_relaxed);
  }
  return active_isa_slot().load(std::memory_order_relaxed);
}

}  // namespace featperm::cpu
