// Poly1305 with AVX-512 IFMA (poly1305_ifma.cpp): declarations for poly1305.h.
#pragma once

#include <cstddef>
#include <cstdint>

namespace featperm::cpu {

// Absorbs 8 * groups whole blocks (with 2^128 added) into the accumulator h (44/44/42-bit limbs,
// partially reduced), given r^1..r^8 in the same limbs (r_powers[3 * (k - 1) + limb] = limb of
// r^k). Returns false, doing nothing, when this build has no IFMA kernel; callers check
// cpu::use_vector(Kernel::kPoly1305).
bool poly1305_absorb_ifma(uint64_t* h, const uint8_t* m, size_t groups, const uint64_t* r_powers);

}  // namespace featperm::cpu
