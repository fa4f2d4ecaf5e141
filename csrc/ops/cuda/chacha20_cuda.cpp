// CUDA registration of featperm::chacha20_xor: device guard, current stream, launch check.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/chacha20.h"
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

}  // namespace
}  // namespace featperm::ops

TORCH_LIBRARY_IMPL(featperm, CUDA, m) {
  m.impl("chacha20_xor", &featperm::ops::chacha20_xor_cuda);
}
