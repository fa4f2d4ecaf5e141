// CUDA registration of featperm::chacha20_xor, _poly1305_chunk_sums and chacha20_poly1305_tag:
// device guard, current stream, launch check.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>

#include "ops/chacha20.h"
#include "ops/cpu/poly1305.h"
#include "ops/cuda/chacha20_launch.h"

namespace featperm::ops {
namespace {

at::Tensor chacha20_xor_cuda(const at::Tensor& data, const at::Tensor& key, const at::Tensor& nonce,
                             int64_t counter) {
  const c10::cuda::CUDAGuard device_guard(data.device());
  ChaCha20Job job;
  at::Tensor out = prepare_chacha20_xor(data, key, nonce, counter, job);
  if (job.bytes == 0) return out;
  cuda::ChaCha20Launch launch{};
  launch.src = job.src;
  launch.dst = job.dst;
  launch.bytes = job.bytes;
  launch.counter = job.counter;
  for (int i = 0; i < chacha20::kKeyWords; ++i) launch.key_words[i] = job.key_words[i];
  for (int i = 0; i < chacha20::kNonceWords; ++i) launch.nonce_words[i] = job.nonce_words[i];
  launch.key_device = job.key_device;
  launch.nonce_device = job.nonce_device;
  launch.device = data.get_device();
  launch.stream = c10::cuda::getCurrentCUDAStream(data.get_device()).stream();
  C10_CUDA_CHECK(cuda::launch_chacha20_xor(launch));
  return out;
}

at::Tensor poly1305_chunk_sums_cuda(const at::Tensor& message, const at::Tensor& one_time_key, int64_t chunk_blocks) {
  const c10::cuda::CUDAGuard device_guard(message.device());
  Poly1305Chunks plan;
  at::Tensor out = prepare_poly1305_chunk_sums(message, one_time_key, chunk_blocks, plan);
  if (plan.chunks == 0) return out;
  cuda::Poly1305ChunksLaunch launch{};
  launch.message = plan.message.const_data_ptr<uint8_t>();
  launch.blocks = plan.blocks;
  launch.chunk_blocks = plan.chunk_blocks;
  for (int i = 0; i < 4; ++i) launch.r_words[i] = plan.r_words[i];
  launch.out = out.data_ptr<int64_t>();
  launch.device = message.get_device();
  launch.stream = c10::cuda::getCurrentCUDAStream(message.get_device()).stream();
  C10_CUDA_CHECK(cuda::launch_poly1305_chunk_sums(launch));
  return out;
}

// The AEAD tag of a ciphertext in device memory: Poly1305 of its whole blocks runs on the GPU in
// chunks; the host absorbs the aad, joins the chunk sums with powers of r, and adds the last
// partial block (at most 15 bytes are copied back) and the lengths.
at::Tensor chacha20_poly1305_tag_cuda(const at::Tensor& aad, const at::Tensor& ciphertext,
                                      const at::Tensor& one_time_key) {
  constexpr const char* op = "chacha20_poly1305_tag";
  const at::Tensor a = checked_host_bytes(op, "aad", aad, -1);
  const at::Tensor k = checked_host_bytes(op, "one_time_key", one_time_key, cpu::Poly1305::kKeyBytes);
  TORCH_CHECK_TYPE(ciphertext.scalar_type() == at::kByte, op, ": ciphertext must be a uint8 tensor, got dtype ",
                   ciphertext.scalar_type());
  const at::Tensor ct = ciphertext.reshape(-1);
  cpu::Poly1305 mac(k.const_data_ptr<uint8_t>());
  if (a.numel() > 0) mac.update(a.const_data_ptr<uint8_t>(), static_cast<size_t>(a.numel()));
  mac.pad_to_block();
  const int64_t bytes = ct.numel(), blocks = bytes / cpu::Poly1305::kBlockBytes;
  if (blocks > 0) {
    const int64_t chunk_blocks = poly1305_chunk_blocks_for(blocks);
    const at::Tensor sums = poly1305_chunk_sums_cuda(ct, k, chunk_blocks).cpu();  // synchronises
    const int64_t* s = sums.const_data_ptr<int64_t>();
    const cpu::Poly1305::Limbs r_to_chunk = mac.r_power(static_cast<uint64_t>(chunk_blocks));
    for (int64_t c = 0; c < sums.size(0); ++c) {
      const int64_t n = std::min(chunk_blocks, blocks - c * chunk_blocks);
      const cpu::Poly1305::Limbs chunk = {static_cast<uint64_t>(s[3 * c]), static_cast<uint64_t>(s[3 * c + 1]),
                                          static_cast<uint64_t>(s[3 * c + 2])};
      mac.append_chunk(chunk, n == chunk_blocks ? r_to_chunk : mac.r_power(static_cast<uint64_t>(n)));
    }
  }
  if (bytes > blocks * cpu::Poly1305::kBlockBytes) {
    const at::Tensor tail = ct.slice(0, blocks * cpu::Poly1305::kBlockBytes).cpu().contiguous();
    mac.update(tail.const_data_ptr<uint8_t>(), static_cast<size_t>(tail.numel()));
  }
  mac.pad_to_block();
  mac.update_lengths(static_cast<uint64_t>(a.numel()), static_cast<uint64_t>(bytes));
  at::Tensor tag = at::empty({cpu::Poly1305::kTagBytes}, k.options());
  mac.finish(tag.data_ptr<uint8_t>());
  return tag;
}

}  // namespace
}  // namespace featperm::ops

TORCH_LIBRARY_IMPL(featperm, CUDA, m) {
  m.impl("chacha20_xor", &featperm::ops::chacha20_xor_cuda);
  m.impl("_poly1305_chunk_sums", &featperm::ops::poly1305_chunk_sums_cuda);
  m.impl("chacha20_poly1305_tag", &featperm::ops::chacha20_poly1305_tag_cuda);
}
