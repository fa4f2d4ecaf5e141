// featperm's compiled library. Importing featperm._C from Python loads this shared object, whose
// static initialisers register every featperm:: operator with the PyTorch dispatcher. It holds
// no Python bindings: all ops are called through torch.ops.featperm.
#include <Python.h>
#include <torch/library.h>

#include "ops/cpu/cpu_features.h"

// A bare module so that `import featperm._C` works (the pattern of pytorch/extension-cpp).
PyMODINIT_FUNC PyInit__C(void) {
  static struct PyModuleDef module_def = {PyModuleDef_HEAD_INIT, "_C", nullptr, -1, nullptr};
  return PyModule_Create(&module_def);
}

// Each op's schema lives beside its code (TORCH_LIBRARY_FRAGMENT in csrc/ops/<op>.cpp); this block
// owns the namespace and the library-wide utilities.
TORCH_LIBRARY(featperm, m) {
  // Select the CPU kernel variant (-1: query; 0: portable table kernels; 1: AVX-512 + GFNI).
  // Returns the variant in use after the call. Used by tests to cover every path.
  m.def("_cpu_isa(int request=-1) -> int", &featperm::cpu::select_isa);
}
