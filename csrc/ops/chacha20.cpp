#include "ops/chacha20.h"

#include <ATen/core/dispatch/Dispatcher.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <utility>

namespace featperm::ops {
namespace {

constexpr const char* kOp = "chacha20_xor";

void check_byte_tensor(const char* op, const char* name, const at::Tensor& t, int64_t bytes) {
  TORCH_CHECK_TYPE(t.scalar_type() == at::kByte, op, ": ", name, " must be a uint8 tensor, got dtype ",
                   t.scalar_type());
  if (bytes >= 0) {
    TORCH_CHECK_VALUE(t.numel() == bytes, op, ": ", name, " must hold exactly ", bytes, " bytes, got ",
                t.numel(), " (shape ", t.sizes(), ")");
  }
}

// Little-endian 32-bit words of a host byte tensor (RFC 8439 reads key and nonce this way).
void read_le_words(const at::Tensor& bytes, uint32_t* words, int count) {
  const uint8_t* p = bytes.const_data_ptr<uint8_t>();
  for (int i = 0; i < count; ++i) {
    words[i] = uint32_t{p[4 * i]} | (uint32_t{p[4 * i + 1]} << 8) | (uint32_t{p[4 * i + 2]} << 16) |
               (uint32_t{p[4 * i + 3]} << 24);
  }
}

}  // namespace

at::Tensor checked_host_bytes(const char* op, const char* name, const at::Tensor& t, int64_t bytes) {
  check_byte_tensor(op, name, t, bytes);
  TORCH_CHECK_VALUE(t.is_cpu(), op, ": ", name, " must be a CPU tensor, got device ", t.device());
  return t.contiguous();
}

at::Tensor prepare_chacha20_xor(const at::Tensor& data, const at::Tensor& key, const at::Tensor& nonce,
                                int64_t counter, ChaCha20Job& job) {
  check_byte_tensor(kOp, "data", data, -1);
  check_byte_tensor(kOp, "key", key, 4 * chacha20::kKeyWords);
  check_byte_tensor(kOp, "nonce", nonce, 4 * chacha20::kNonceWords);
  TORCH_CHECK_VALUE(counter >= 0 && static_cast<uint64_t>(counter) < chacha20::kCounterLimit, kOp,
              ": counter must be in [0, 2^32-1] (RFC 8439's 32-bit block counter), got ", counter);
  const int64_t bytes = data.numel();
  const uint64_t blocks = (static_cast<uint64_t>(bytes) + chacha20::kBlockBytes - 1) / chacha20::kBlockBytes;
  TORCH_CHECK_VALUE(static_cast<uint64_t>(counter) + blocks <= chacha20::kCounterLimit, kOp, ": data has ",
              bytes, " bytes (", blocks, " blocks of 64) but counter ", counter, " leaves only ",
              chacha20::kCounterLimit - static_cast<uint64_t>(counter), " blocks before the 32-bit "
              "block counter would wrap, which would repeat keystream; RFC 8439 limits one (key, "
              "nonce) to 2^32 blocks (256 GiB). Split the data under different nonces");

  job = ChaCha20Job{};
  job.counter = static_cast<uint32_t>(counter);
  job.bytes = bytes;
  for (const auto& [name, t] : {std::pair<const char*, const at::Tensor*>{"key", &key}, {"nonce", &nonce}}) {
    TORCH_CHECK_VALUE(t->is_cpu() || t->device() == data.device(), kOp, ": ", name, " is on ", t->device(),
                " but data is on ", data.device(), "; expected the CPU or data's device");
  }
  job.key_holder = key.contiguous();
  job.nonce_holder = nonce.contiguous();
  if (key.is_cpu()) {
    read_le_words(job.key_holder, job.key_words, chacha20::kKeyWords);
  } else {
    job.key_device = job.key_holder.const_data_ptr<uint8_t>();  // read by the kernel: no sync
  }
  if (nonce.is_cpu()) {
    read_le_words(job.nonce_holder, job.nonce_words, chacha20::kNonceWords);
  } else {
    job.nonce_device = job.nonce_holder.const_data_ptr<uint8_t>();
  }
  job.src_holder = data.contiguous();
  at::Tensor out = at::empty(data.sizes(), data.options().memory_format(at::MemoryFormat::Contiguous));
  job.src = job.src_holder.const_data_ptr<uint8_t>();
  job.dst = out.data_ptr<uint8_t>();
  return out;
}

at::Tensor prepare_poly1305_chunk_sums(const at::Tensor& message, const at::Tensor& one_time_key,
                                       int64_t chunk_blocks, Poly1305Chunks& plan) {
  constexpr const char* op = "_poly1305_chunk_sums";
  check_byte_tensor(op, "message", message, -1);
  const at::Tensor key = checked_host_bytes(op, "one_time_key", one_time_key, 32);
  TORCH_CHECK_VALUE(chunk_blocks > 0, op, ": chunk_blocks must be positive, got ", chunk_blocks);
  plan.message = message.reshape(-1).contiguous();
  plan.blocks = message.numel() / 16;
  plan.chunk_blocks = chunk_blocks;
  plan.chunks = (plan.blocks + chunk_blocks - 1) / chunk_blocks;
  read_le_words(key, plan.r_words, 4);
  return at::empty({plan.chunks, 3}, message.options().dtype(at::kLong));
}

int64_t poly1305_chunk_blocks_for(int64_t blocks) {
  constexpr int64_t kMaxChunks = 16384, kMinChunkBlocks = 64;
  return std::max(kMinChunkBlocks, (blocks + kMaxChunks - 1) / kMaxChunks);
}

namespace {

// RFC 8439 section 2.8 in one call (one crossing from Python instead of five): the ciphertext
// from block 1 on data's device, the Poly1305 key from block 0 where the key is, and the tag
// where the ciphertext is. Composed of the featperm ops above, so every backend has it.
std::tuple<at::Tensor, at::Tensor> chacha20_poly1305_encrypt(const at::Tensor& data, const at::Tensor& key,
                                                             const at::Tensor& nonce, const at::Tensor& aad) {
  static const auto xor_op = c10::Dispatcher::singleton()
      .findSchemaOrThrow("featperm::chacha20_xor", "")
      .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&, int64_t)>();
  static const auto tag_op = c10::Dispatcher::singleton()
      .findSchemaOrThrow("featperm::chacha20_poly1305_tag", "")
      .typed<at::Tensor(const at::Tensor&, const at::Tensor&, const at::Tensor&)>();
  at::Tensor ciphertext = xor_op.call(data, key, nonce, 1);
  const at::Tensor one_time_key = xor_op.call(at::zeros({32}, key.options()), key, nonce, 0).cpu();
  at::Tensor tag = tag_op.call(aad, ciphertext.reshape(-1), one_time_key);
  return {ciphertext, tag};
}

}  // namespace
}  // namespace featperm::ops

TORCH_LIBRARY_IMPL(featperm, CompositeImplicitAutograd, m) {
  m.impl("chacha20_poly1305_encrypt", &featperm::ops::chacha20_poly1305_encrypt);
}

TORCH_LIBRARY_FRAGMENT(featperm, m) {
  // XOR data (uint8, any shape) with the RFC 8439 ChaCha20 keystream of key (32 uint8), nonce
  // (12 uint8) starting at block `counter`. key and nonce may be on the CPU (read on the host, no
  // synchronisation) or on data's device. Returns a new contiguous uint8 tensor on data's device.
  m.def("chacha20_xor(Tensor data, Tensor key, Tensor nonce, int counter) -> Tensor");
  // Poly1305 (RFC 8439 section 2.5) of a CPU uint8 message under a 32-byte one-time key: 16 bytes.
  m.def("poly1305_mac(Tensor message, Tensor key) -> Tensor");
  // The ChaCha20-Poly1305 tag (RFC 8439 section 2.8): Poly1305 under one_time_key of
  // aad | pad16 | ciphertext | pad16 | le64(len aad) | le64(len ciphertext), without building it.
  // On CUDA, ciphertext may stay on the device (aad and one_time_key are host tensors): the
  // blocks are absorbed there in chunks and only the chunk sums come back. The tag is a host tensor.
  m.def("chacha20_poly1305_tag(Tensor aad, Tensor ciphertext, Tensor one_time_key) -> Tensor");
  // RFC 8439 AEAD encryption: (ciphertext on data's device, 16-byte host tag). key: 32 uint8 on
  // the CPU or data's device; nonce and aad: uint8 host tensors.
  m.def("chacha20_poly1305_encrypt(Tensor data, Tensor key, Tensor nonce, Tensor aad) -> (Tensor, Tensor)");
  // Internal: Poly1305 of each chunk of `chunk_blocks` whole 16-byte blocks of message, from a zero
  // accumulator, as int64 (chunks, 3) limbs of 44/44/42 bits (value mod 2^130-5).
  m.def("_poly1305_chunk_sums(Tensor message, Tensor one_time_key, int chunk_blocks) -> Tensor");
}
