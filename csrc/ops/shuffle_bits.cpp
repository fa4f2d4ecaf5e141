#include "ops/shuffle_bits.h"

#include "ops/arg_checks.h"

#include <ATen/ops/empty_like.h>
#include <torch/csrc/autograd/autograd_not_implemented_fallback.h>
#include <torch/library.h>

namespace featperm::ops {
namespace {

bool is_bit_word_dtype(at::ScalarType t) {
  switch (t) {
    case at::kByte: case at::kChar:
    case at::kShort: case at::kHalf: case at::kBFloat16:
    case at::kInt: case at::kFloat:
    case at::kLong: case at::kDouble:
    case at::kUInt16: case at::kUInt32: case at::kUInt64:
      return true;
    default:
      return false;
  }
}

// The signed integer dtype of a word width: ciphertext is moved and copied as integers so that
// no float operation can touch a bit pattern (signalling NaNs, NaN payloads).
at::ScalarType word_dtype(int64_t bytes) {
  switch (bytes) {
    case 1: return at::kByte;
    case 2: return at::kShort;
    case 4: return at::kInt;
    default: return at::kLong;
  }
}

// Validates x and key; returns the key as a contiguous int64 tensor ((bits,) or (samples, bits))
// on x's device.
at::Tensor checked_keys(const char* op, const at::Tensor& x, const at::Tensor& key) {
  TORCH_CHECK_TYPE(is_bit_word_dtype(x.scalar_type()), op, ": x has dtype ", x.scalar_type(),
                   "; expected a dtype of 8, 16, 32 or 64 bits (float16, bfloat16, float32, float64 "
                   "or an integer dtype of those widths)");
  const int64_t bits = x.element_size() * 8;
  check_integer_key(op, key, "bit positions");
  TORCH_CHECK_VALUE(key.dim() == 1 || key.dim() == 2, op, ": key must have shape (", bits,
                    ",) for one key or (N, ", bits, ") for one key per sample, got ", key.dim(),
                    " dimensions");
  TORCH_CHECK_VALUE(key.size(-1) == bits, op, ": key has ", key.size(-1), " positions but x has ",
                    bits, "-bit words (dtype ", x.scalar_type(), "); expected a ", bits, "-bit key");
  if (key.dim() == 2) {
    TORCH_CHECK_VALUE(x.dim() >= 1 && key.size(0) == x.size(0), op, ": per-sample key has ",
                      key.size(0), " rows but x has ", (x.dim() >= 1 ? x.size(0) : 0),
                      " samples (x.shape[0]); expected one key row per sample");
  }
  check_key_device(op, key, x);
  // Only convert what needs converting: each extra dispatcher call costs small tensors latency.
  at::Tensor keys = key.scalar_type() == at::kLong ? key : key.to(at::kLong);
  if (!keys.is_contiguous()) keys = keys.contiguous();
  if (keys.is_cpu()) {
    // Cheap on the host; a device key is checked by the Python layer (checking it here would
    // need a host synchronisation, which CUDA graph capture forbids).
    check_permutation_rows(op, keys.const_data_ptr<int64_t>(), keys.numel() / bits, bits, keys.dim() == 2);
  }
  return keys;
}

int64_t samples_of(const at::Tensor& keys) { return keys.dim() == 2 ? keys.size(0) : 1; }

// True when the kernel may process x's storage as one dense run of words in which each sample
// (x[k], for per-sample keys) is a consecutive run.
bool is_linear_run(const at::Tensor& x, int64_t samples) {
  if (!x.is_non_overlapping_and_dense()) return false;
  if (samples <= 1) return true;
  return x.stride(0) * samples == x.numel() && x.select(0, 0).is_non_overlapping_and_dense();
}

void run_kernel(WordKernel kernel, const at::Tensor& src, const at::Tensor& dst,
                const at::Tensor& keys, bool inverse) {
  if (src.numel() == 0) return;
  const WordRun run{src.const_data_ptr(), dst.data_ptr(), src.numel(),
                    static_cast<int>(src.element_size()), samples_of(keys), &keys, inverse};
  kernel(src, run);
}

}  // namespace

at::Tensor shuffle_bits_out_of_place(const at::Tensor& x, const at::Tensor& key, bool inverse,
                                     WordKernel kernel, const char* op) {
  const at::Tensor keys = checked_keys(op, x, key);
  if (is_linear_run(x, samples_of(keys))) {
    at::Tensor out = at::empty_like(x);  // same strides as x: one pass over the storage
    run_kernel(kernel, x, out, keys, inverse);
    return out;
  }
  // Strided input: gather it (as integers) into a fresh contiguous tensor, then permute that in
  // place. The result has x's shape with contiguous strides.
  at::Tensor out = x.view(word_dtype(x.element_size())).contiguous().view(x.scalar_type());
  run_kernel(kernel, out, out, keys, inverse);
  return out;
}

void shuffle_bits_in_place(const at::Tensor& x, const at::Tensor& key, bool inverse,
                           WordKernel kernel, const char* op) {
  const at::Tensor keys = checked_keys(op, x, key);
  check_and_mark_in_place(op, x);
  if (is_linear_run(x, samples_of(keys))) {
    run_kernel(kernel, x, x, keys, inverse);
    return;
  }
  // A strided view whose elements are distinct: permute a contiguous copy and write it back
  // through a view of x's words (integers: no float operation touches a bit pattern).
  at::Tensor as_words = x.view(word_dtype(x.element_size()));
  at::Tensor tmp = as_words.contiguous();
  run_kernel(kernel, tmp, tmp, keys, inverse);
  as_words.copy_(tmp);
}

}  // namespace featperm::ops

TORCH_LIBRARY_FRAGMENT(featperm, m) {
  m.def("shuffle_bits(Tensor x, Tensor key) -> Tensor");
  m.def("unshuffle_bits(Tensor y, Tensor key) -> Tensor");
  m.def("shuffle_bits_(Tensor(a!) x, Tensor key) -> ()");
  m.def("unshuffle_bits_(Tensor(a!) y, Tensor key) -> ()");
}

// Not differentiable (bits of float words are not a function of their values that has a
// gradient): outputs keep a grad_fn that raises "derivative for featperm::shuffle_bits is not
// implemented" if anyone backpropagates through them. Registered in C++ rather than with
// torch.library.register_autograd to keep the per-call overhead of small tensors low. The
// in-place ops have no autograd kernel, like the block-shuffle ones: their kernels refuse
// tensors that require grad and bump the version counter (check_and_mark_in_place), so both
// families follow one rule.
TORCH_LIBRARY_IMPL(featperm, Autograd, m) {
  for (const char* op : {"shuffle_bits", "unshuffle_bits"}) {
    m.impl(op, torch::autograd::autogradNotImplementedFallback());
  }
}
