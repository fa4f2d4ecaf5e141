// ShuffleBits: keyed permutation of the bits of every word of a tensor (Ni, Huttunen, Rahtu 2021).
//
// The argument checking and memory-layout handling below are shared by the CPU and CUDA
// backends; a backend supplies only a `WordKernel`, which permutes a dense run of words.
#pragma once

#include <ATen/core/Tensor.h>
#include <torch/library.h>

namespace featperm::ops {

// Permute the bits of `words` words at `src` into `dst` (which may equal `src`).
// `keys` is an int64 (samples, bits) tensor on the tensors' device; the words are split into
// `samples` equal consecutive runs and run k uses key row k. `inverse` selects decryption.
struct WordRun {
  const void* src;
  void* dst;
  int64_t words;
  int word_bytes;
  int64_t samples;
  const at::Tensor* keys;
  bool inverse;
};
using WordKernel = void (*)(const at::Tensor& like, const WordRun& run);

// The ops, parameterised by backend. `op` names the public function in error messages.
at::Tensor shuffle_bits_out_of_place(const at::Tensor& x, const at::Tensor& key, bool inverse,
                                     WordKernel kernel, const char* op);
void shuffle_bits_in_place(const at::Tensor& x, const at::Tensor& key, bool inverse,
                           WordKernel kernel, const char* op);

// Registers the four ops of one backend (one dispatch key) around its word kernel.
template <WordKernel Kernel>
void register_shuffle_bits_impls(torch::Library& m) {
  m.impl("shuffle_bits", [](const at::Tensor& x, const at::Tensor& key) {
    return shuffle_bits_out_of_place(x, key, /*inverse=*/false, Kernel, "shuffle_bits");
  });
  m.impl("unshuffle_bits", [](const at::Tensor& y, const at::Tensor& key) {
    return shuffle_bits_out_of_place(y, key, /*inverse=*/true, Kernel, "unshuffle_bits");
  });
  m.impl("shuffle_bits_", [](const at::Tensor& x, const at::Tensor& key) {
    shuffle_bits_in_place(x, key, /*inverse=*/false, Kernel, "shuffle_bits_");
  });
  m.impl("unshuffle_bits_", [](const at::Tensor& y, const at::Tensor& key) {
    shuffle_bits_in_place(y, key, /*inverse=*/true, Kernel, "unshuffle_bits_");
  });
}

}  // namespace featperm::ops
