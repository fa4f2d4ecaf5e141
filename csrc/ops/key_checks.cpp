#include "ops/key_checks.h"

#include <cstdint>
#include <string>
#include <vector>

#include <c10/util/Exception.h>

namespace featperm::ops {

void check_integer_key(const char* op, const at::Tensor& key, const char* what) {
  const auto t = key.scalar_type();
  TORCH_CHECK(!at::isFloatingType(t) && !at::isComplexType(t) && t != at::kBool, op,
              ": key must be an integer tensor of ", what, ", got dtype ", t);
}

void check_permutation_rows(const char* op, const int64_t* keys, int64_t rows, int64_t n, bool per_row) {
  std::vector<uint8_t> seen(n);  // bytes: faster to test and set than vector<bool>'s bits
  for (int64_t row = 0; row < rows; ++row) {
    std::fill(seen.begin(), seen.end(), 0);
    const int64_t* k = keys + row * n;
    for (int64_t i = 0; i < n; ++i) {
      const int64_t v = k[i];
      const bool in_range = v >= 0 && v < n;
      TORCH_CHECK(in_range && !seen[v], op, ": key", (per_row ? " row " + std::to_string(row) : std::string()),
                  " is not a permutation of 0..", n - 1, " (position ", i, " holds ", v,
                  (in_range ? ", which appears twice)" : ", out of range)"));
      seen[v] = 1;
    }
  }
}

}  // namespace featperm::ops
