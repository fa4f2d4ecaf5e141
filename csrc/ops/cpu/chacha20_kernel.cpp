// ChaCha20 and Poly1305 on the CPU.
//  - chacha20_xor: at::parallel_for over runs of 64-byte blocks; each run uses the AVX-512 kernel
//    (16 blocks per step, chacha20_avx512.cpp) when cpu::use_vector(Kernel::kChaCha20) allows, otherwise the
//    portable one-block-at-a-time kernel below. Both run ops/common/chacha20.h's block function.
//  - poly1305_mac, chacha20_poly1305_tag: Poly1305 (poly1305.h). Long messages are split into
//    chunks evaluated on all threads and joined with powers of r; the AEAD tag streams aad,
//    ciphertext, paddings and lengths without concatenating them.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <cstring>
#include <vector>

#include "ops/chacha20.h"
#include "ops/common/chacha20.h"
#include "ops/common/poly1305_chunks.h"
#include "ops/cpu/chacha20_cpu.h"
#include "ops/cpu/cpu_features.h"
#include "ops/cpu/poly1305.h"

static_assert(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__,
              "the CPU ChaCha20 kernels serialise keystream words with memcpy (little-endian)");

namespace featperm::cpu {

void chacha20_xor_portable(const uint8_t* src, uint8_t* dst, int64_t bytes, const uint32_t* key,
                           const uint32_t* nonce, uint32_t counter) {
  using Ops = chacha20::ScalarWords;
  uint32_t state[16];
  chacha20::initial_state<Ops>(key, nonce, [](uint32_t w) { return w; }, state);
  for (int64_t offset = 0; offset < bytes; offset += chacha20::kBlockBytes, ++counter) {
    state[12] = counter;
    uint32_t x[16];
    chacha20::block<Ops>(state, x);
    uint8_t keystream[chacha20::kBlockBytes];
    std::memcpy(keystream, x, sizeof(keystream));
    const int64_t n = std::min<int64_t>(chacha20::kBlockBytes, bytes - offset);
    for (int64_t i = 0; i < n; ++i) dst[offset + i] = src[offset + i] ^ keystream[i];
  }
}

}  // namespace featperm::cpu

namespace featperm::ops {
namespace {

// Blocks per parallel task: 256 KiB, a multiple of the AVX-512 kernel's 16-block step.
constexpr int64_t kGrainBlocks = 4096;

at::Tensor chacha20_xor_cpu(const at::Tensor& data, const at::Tensor& key, const at::Tensor& nonce,
                            int64_t counter) {
  ChaCha20Job job;
  at::Tensor out = prepare_chacha20_xor(data, key, nonce, counter, job);
  if (job.bytes == 0) return out;
  const bool vector = cpu::use_vector(cpu::Kernel::kChaCha20);
  const int64_t blocks = (job.bytes + chacha20::kBlockBytes - 1) / chacha20::kBlockBytes;
  at::parallel_for(0, blocks, kGrainBlocks, [&](int64_t begin, int64_t end) {
    const int64_t offset = begin * chacha20::kBlockBytes;
    const int64_t bytes = std::min(job.bytes, end * chacha20::kBlockBytes) - offset;
    // counter + blocks <= 2^32 was checked, so this block's counter fits in 32 bits.
    const uint32_t first = static_cast<uint32_t>(job.counter + static_cast<uint64_t>(begin));
    if (!(vector && cpu::chacha20_xor_avx512(job.src + offset, job.dst + offset, bytes, job.key_words,
                                             job.nonce_words, first))) {
      cpu::chacha20_xor_portable(job.src + offset, job.dst + offset, bytes, job.key_words,
                                 job.nonce_words, first);
    }
  });
  return out;
}

// Poly1305 chunk for threads: 256 KiB of 16-byte blocks.
constexpr size_t kPolyChunkBlocks = 16384;

// mac.update(m, bytes), with the whole blocks spread over threads. Poly1305 is the polynomial
// sum of block_i * r^(n-i+1): each chunk is evaluated from zero on its own, and the chunks are
// joined in order by h = h * r^(chunk blocks) + chunk, which is exact (no approximation).
void poly1305_update_parallel(cpu::Poly1305& mac, const uint8_t* m, size_t bytes) {
  const size_t blocks = bytes / cpu::Poly1305::kBlockBytes;
  if (!mac.block_aligned() || blocks < 2 * kPolyChunkBlocks || at::get_num_threads() == 1) {
    if (bytes > 0) mac.update(m, bytes);
    return;
  }
  const int64_t chunks = static_cast<int64_t>((blocks + kPolyChunkBlocks - 1) / kPolyChunkBlocks);
  auto chunk_blocks = [&](int64_t c) {
    return std::min(kPolyChunkBlocks, blocks - static_cast<size_t>(c) * kPolyChunkBlocks);
  };
  std::vector<cpu::Poly1305::Limbs> partial(chunks);
  at::parallel_for(0, chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      partial[c] = mac.absorb_from_zero(m + static_cast<size_t>(c) * kPolyChunkBlocks * cpu::Poly1305::kBlockBytes,
                                        chunk_blocks(c) * cpu::Poly1305::kBlockBytes);
    }
  });
  const cpu::Poly1305::Limbs r_to_chunk = mac.r_power(kPolyChunkBlocks);
  for (int64_t c = 0; c < chunks; ++c) {
    const size_t n = chunk_blocks(c);
    mac.append_chunk(partial[c], n == kPolyChunkBlocks ? r_to_chunk : mac.r_power(n));
  }
  const size_t done = blocks * cpu::Poly1305::kBlockBytes;
  if (bytes > done) mac.update(m + done, bytes - done);
}

at::Tensor tag_tensor(const at::Tensor& like) { return at::empty({cpu::Poly1305::kTagBytes}, like.options()); }

at::Tensor poly1305_mac_cpu(const at::Tensor& message, const at::Tensor& key) {
  const at::Tensor m = checked_host_bytes("poly1305_mac", "message", message, -1);
  const at::Tensor k = checked_host_bytes("poly1305_mac", "key", key, cpu::Poly1305::kKeyBytes);
  cpu::Poly1305 mac(k.const_data_ptr<uint8_t>());
  poly1305_update_parallel(mac, m.const_data_ptr<uint8_t>(), static_cast<size_t>(m.numel()));
  at::Tensor tag = tag_tensor(k);
  mac.finish(tag.data_ptr<uint8_t>());
  return tag;
}

at::Tensor chacha20_poly1305_tag_cpu(const at::Tensor& aad, const at::Tensor& ciphertext,
                                     const at::Tensor& one_time_key) {
  constexpr const char* op = "chacha20_poly1305_tag";
  const at::Tensor a = checked_host_bytes(op, "aad", aad, -1);
  const at::Tensor c = checked_host_bytes(op, "ciphertext", ciphertext, -1);
  const at::Tensor k = checked_host_bytes(op, "one_time_key", one_time_key, cpu::Poly1305::kKeyBytes);
  cpu::Poly1305 mac(k.const_data_ptr<uint8_t>());
  if (a.numel() > 0) mac.update(a.const_data_ptr<uint8_t>(), static_cast<size_t>(a.numel()));
  mac.pad_to_block();
  poly1305_update_parallel(mac, c.const_data_ptr<uint8_t>(), static_cast<size_t>(c.numel()));
  mac.pad_to_block();
  mac.update_lengths(static_cast<uint64_t>(a.numel()), static_cast<uint64_t>(c.numel()));
  at::Tensor tag = tag_tensor(k);
  mac.finish(tag.data_ptr<uint8_t>());
  return tag;
}

// The CPU twin of the CUDA chunk kernel (same shared code): used by tests to check the chunked
// evaluation against the reference on any machine.
at::Tensor poly1305_chunk_sums_cpu(const at::Tensor& message, const at::Tensor& one_time_key, int64_t chunk_blocks) {
  Poly1305Chunks plan;
  at::Tensor out = prepare_poly1305_chunk_sums(message, one_time_key, chunk_blocks, plan);
  if (plan.chunks == 0) return out;
  const poly1305::R26 key = poly1305::clamped_r(plan.r_words);
  const uint8_t* m = plan.message.const_data_ptr<uint8_t>();
  int64_t* sums = out.data_ptr<int64_t>();
  auto load = [m](int64_t block, uint32_t (&w)[4]) { std::memcpy(w, m + block * poly1305::kBlockBytes, 16); };
  at::parallel_for(0, plan.chunks, 1, [&](int64_t begin, int64_t end) {
    for (int64_t c = begin; c < end; ++c) {
      uint64_t limbs[3];
      const int64_t first = c * plan.chunk_blocks;
      poly1305::chunk_sum(load, first, std::min(plan.chunk_blocks, plan.blocks - first), key, limbs);
      for (int i = 0; i < 3; ++i) sums[3 * c + i] = static_cast<int64_t>(limbs[i]);
    }
  });
  return out;
}

}  // namespace
}  // namespace featperm::ops

TORCH_LIBRARY_IMPL(featperm, CPU, m) {
  m.impl("_poly1305_chunk_sums", &featperm::ops::poly1305_chunk_sums_cpu);
  m.impl("chacha20_xor", &featperm::ops::chacha20_xor_cpu);
  m.impl("poly1305_mac", &featperm::ops::poly1305_mac_cpu);
  m.impl("chacha20_poly1305_tag", &featperm::ops::chacha20_poly1305_tag_cpu);
}
