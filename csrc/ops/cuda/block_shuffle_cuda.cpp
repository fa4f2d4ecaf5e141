// CUDA registration of the block-shuffle ops: device guard, current stream, device scratch (from
// the caching allocator, stream-ordered), launch check.
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "ops/block_shuffle.h"
#include "ops/cuda/block_shuffle_launch.h"

namespace featperm::ops {
namespace {

void cuda_block_kernel(const at::Tensor& like, const BlockRun& run) {
  const c10::cuda::CUDAGuard device_guard(like.device());
  cuda::BlockShuffleLaunch launch{run.src, run.dst, run.n, run.c, run.h, run.w, run.block_size,
                                  run.src_strides, run.dst_strides, run.element_bytes, run.inverse,
                                  run.channels_inner, run.key->const_data_ptr<int64_t>(), nullptr,
                                  like.get_device(),
                                  c10::cuda::getCurrentCUDAStream(like.get_device()).stream()};
  size_t scratch_bytes = 0;
  C10_CUDA_CHECK(cuda::block_shuffle_scratch_bytes(launch, &scratch_bytes));
  // Freed after the launch: the caching allocator hands it out again only in stream order.
  const at::Tensor scratch = at::empty({static_cast<int64_t>(scratch_bytes)}, like.options().dtype(at::kByte));
  launch.scratch = scratch.data_ptr();
  C10_CUDA_CHECK(cuda::launch_block_shuffle(launch));
}

}  // namespace
}  // namespace featperm::ops

TORCH_LIBRARY_IMPL(featperm, CUDA, m) {
  featperm::ops::register_block_shuffle_impls<featperm::ops::cuda_block_kernel>(m);
}
