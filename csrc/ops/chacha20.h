// ChaCha20 keystream XOR and Poly1305 (RFC 8439): argument checking shared by the backends.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>

#include "ops/common/chacha20.h"

namespace featperm::ops {

// A checked request to XOR `bytes` bytes of `src` with the keystream that starts at block
// `counter`. The key and nonce are either read on the host (key_words/nonce_words: host tensors,
// no device synchronisation) or left on the device (key_device/nonce_device: raw bytes the kernel
// reads itself, so a device key needs no host round trip and can change between graph replays).
struct ChaCha20Job {
  const uint8_t* src;
  uint8_t* dst;
  int64_t bytes;
  uint32_t counter;
  uint32_t key_words[chacha20::kKeyWords];
  uint32_t nonce_words[chacha20::kNonceWords];
  const uint8_t* key_device;    // nullptr: use key_words
  const uint8_t* nonce_device;  // nullptr: use nonce_words
  // Keep the (contiguous) inputs alive while the job runs.
  at::Tensor src_holder, key_holder, nonce_holder;
};

// Validates the arguments of featperm::chacha20_xor, allocates the output (contiguous uint8 with
// data's shape, on data's device) and fills `job`.
at::Tensor prepare_chacha20_xor(const at::Tensor& data, const at::Tensor& key, const at::Tensor& nonce,
                                int64_t counter, ChaCha20Job& job);

// Checks a host uint8 tensor argument of exactly `bytes` bytes (or any length when bytes < 0) and
// returns it contiguous.
at::Tensor checked_host_bytes(const char* op, const char* name, const at::Tensor& t, int64_t bytes);

// A checked request for featperm::_poly1305_chunk_sums: the whole 16-byte blocks of `message`
// (contiguous, on its device) split into chunks of `chunk_blocks`.
struct Poly1305Chunks {
  at::Tensor message;
  int64_t blocks;
  int64_t chunk_blocks;
  int64_t chunks;
  uint32_t r_words[4];
};

// Validates the arguments, returns the output (int64, chunks x 3, on message's device).
at::Tensor prepare_poly1305_chunk_sums(const at::Tensor& message, const at::Tensor& one_time_key,
                                       int64_t chunk_blocks, Poly1305Chunks& plan);

// Chunk size the AEAD tag uses for `blocks` blocks: at most about 16384 chunks (few enough to
// join on the host quickly), at least 64 blocks each.
int64_t poly1305_chunk_blocks_for(int64_t blocks);

}  // namespace featperm::ops
