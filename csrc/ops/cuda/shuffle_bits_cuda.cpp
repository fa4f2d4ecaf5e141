// CUDA registration of the ShuffleBits ops: device guard, current stream, launch check.
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/cuda/shuffle_bits_launch.h"
#include "ops/shuffle_bits.h"

namespace featperm::ops {
namespace {

void cuda_word_kernel(const at::Tensor& like, const WordRun& run) {
  const c10::cuda::CUDAGuard device_guard(like.device());
  const cuda::ShuffleBitsLaunch launch{run.src, run.dst, run.words, run.word_bytes, run.samples,
                                       run.keys->const_data_ptr<int64_t>(), run.inverse,
                                       like.get_device(),
                                       c10::cuda::getCurrentCUDAStream(like.get_device()).stream()};
  C10_CUDA_CHECK(cuda::launch_shuffle_bits(launch));
}

}  // namespace
}  // namespace featperm::ops

TORCH_LIBRARY_IMPL(featperm, CUDA, m) {
  featperm::ops::register_shuffle_bits_impls<featperm::ops::cuda_word_kernel>(m);
}
