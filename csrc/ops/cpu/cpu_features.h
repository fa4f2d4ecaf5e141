#pragma once
#include <cstdint>

namespace featperm::cpu {

// CPU kernel variants, chosen at run time from the processor's features.
enum class Isa : int64_t { kPortable = 0, kAvx512Gfni = 1 };

// The best variant this processor supports.
Isa best_isa();
// The variant the kernels use now (best_isa() unless a test asked for another).
Isa active_isa();
// -1 queries; 0 or 1 selects (an error if the processor lacks it). Returns the active variant.
int64_t select_isa(int64_t request);

}  // namespace featperm::cpu
