// The CPU ChaCha20 keystream kernels (one call = one contiguous run of blocks on one thread).
#pragma once

#include <cstdint>

namespace featperm::cpu {

// dst[i] = src[i] ^ keystream[i] for i < bytes, where the keystream starts at block `counter` of
// (key, nonce). The caller guarantees that counter + ceil(bytes / 64) <= 2^32.
void chacha20_xor_portable(const uint8_t* src, uint8_t* dst, int64_t bytes, const uint32_t* key,
                           const uint32_t* nonce, uint32_t counter);

// The same with AVX-512F: 16 blocks at once, one block per 32-bit lane. Returns false (doing
// nothing) when this build has no AVX-512 kernel; the caller must have checked the processor.
bool chacha20_xor_avx512(const uint8_t* src, uint8_t* dst, int64_t bytes, const uint32_t* key,
                         const uint32_t* nonce, uint32_t counter);

}  // namespace featperm::cpu
