#include "ops/arg_checks.h"

#include <algorithm>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include <c10/core/TensorImpl.h>
#include <c10/util/Exception.h>

namespace featperm::ops {

void check_integer_key(const char* op, const at::Tensor& key, const char* what) {
  const auto t = key.scalar_type();
  TORCH_CHECK_TYPE(!at::isFloatingType(t) && !at::isComplexType(t) && t != at::kBool, op,
                   ": key must be an integer tensor of ", what, ", got dtype ", t);
}

void check_key_device(const char* op, const at::Tensor& key, const at::Tensor& x) {
  TORCH_CHECK_VALUE(key.device() == x.device(), op, ": key is on ", key.device(), " but x is on ",
                    x.device(), "; expected the key on x's device (a BitKey or BlockKey moves and "
                    "caches itself: key.tensor(x.device))");
}

void check_permutation_rows(const char* op, const int64_t* keys, int64_t rows, int64_t n, bool per_row) {
  std::vector<uint8_t> seen(n);  // bytes: faster to test and set than vector<bool>'s bits
  for (int64_t row = 0; row < rows; ++row) {
    std::fill(seen.begin(), seen.end(), 0);
    const int64_t* k = keys + row * n;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = k[i];
      const bool in_range = v >= 0 && v < n;
      TORCH_CHECK_VALUE(in_range && !seen[v], op, ": key",
                        (per_row ? " row " + std::to_string(row) : std::string()),
                        " is not a permutation of 0..", n - 1, " (position ", i, " holds ", v,
                        (in_range ? ", which appears twice)" : ", out of range)"));
      seen[v] = 1;
    }
  }
}

void check_block_size(const char* op, int64_t block_size) {
  TORCH_CHECK_VALUE(block_size >= 1 && block_size <= kMaxBlockSize, op, ": block_size must be in [1, ",
                    kMaxBlockSize, "], got ", block_size);
}

bool overlaps_itself(const at::Tensor& x) {
  if (x.numel() <= 1 || x.is_non_overlapping_and_dense()) return false;
  // Dimensions of size > 1, by increasing stride. Each stride beyond the extent of the smaller
  // ones (strictly nested) proves no overlap; a zero stride proves overlap.
  std::vector<std::pair<int64_t, int64_t>> dims;  // (stride, size)
  for (int64_t d = 0; d < x.dim(); ++d) {
    if (x.size(d) > 1) dims.emplace_back(x.stride(d), x.size(d));
  }
  std::sort(dims.begin(), dims.end());
  bool nested = true;
  int64_t extent = 0;  // largest offset reachable with the smaller strides
  for (const auto& [stride, size] : dims) {
    if (stride <= 0) return true;  // 0: every index of this dimension is the same element
    if (stride <= extent) nested = false;
    extent += stride * (size - 1);
  }
  if (nested) return false;
  // More elements than offsets in the span: two must share one (e.g. unfold() with step < size).
  if (x.numel() > extent + 1) return true;
  // Interleaved strides that might not collide: mark each element's offset in a bitset of the
  // span (at most a bit per element of the underlying storage), stopping at the first repeat.
  std::vector<uint64_t> seen(static_cast<size_t>(extent / 64 + 1), 0);
  std::vector<int64_t> index(dims.size(), 0);
  int64_t offset = 0;
  while (true) {
    uint64_t& word = seen[static_cast<size_t>(offset / 64)];
    const uint64_t bit = uint64_t{1} << (offset % 64);
    if (word & bit) return true;
    word |= bit;
    size_t d = 0;  // odometer over the dimensions, smallest stride fastest
    for (; d < dims.size(); ++d) {
      if (++index[d] < dims[d].second) {
        offset += dims[d].first;
        break;
      }
      offset -= dims[d].first * (dims[d].second - 1);
      index[d] = 0;
    }
    if (d == dims.size()) return false;
  }
}

void check_and_mark_in_place(const char* op, const at::Tensor& x) {
  TORCH_CHECK_VALUE(!x.requires_grad(), op, ": x requires grad; an in-place permutation would "
                    "overwrite values autograd may need. Use the out-of-place op or x.detach()");
  TORCH_CHECK_VALUE(!overlaps_itself(x), op, ": x has elements that share memory (e.g. a result of "
                    "expand() or unfold()), so it cannot be permuted in place; expected a tensor whose "
                    "elements are distinct. Use the out-of-place op or x.clone()");
  // The op writes x behind autograd's back (its schema returns nothing): bump the version counter
  // as torch's own in-place ops do, so a graph that saved x refuses to backpropagate.
  x.unsafeGetTensorImpl()->bump_version();
}

}  // namespace featperm::ops
