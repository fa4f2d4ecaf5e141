// Checks of permutation keys shared by the ops (ShuffleBits, block shuffle).
#pragma once

#include <ATen/core/Tensor.h>

namespace featperm::ops {

// The key must hold integer positions (not float, complex or bool). `what` names them in the error.
void check_integer_key(const char* op, const at::Tensor& key, const char* what);

// Every row of n int64 values at `keys` must be a permutation of 0..n-1. Host memory only: a
// device key would need a host synchronisation (the Python layer checks those). `per_row` adds
// the row number to the error, for keys with one row per sample.
void check_permutation_rows(const char* op, const int64_t* keys, int64_t rows, int64_t n, bool per_row);

}  // namespace featperm::ops
