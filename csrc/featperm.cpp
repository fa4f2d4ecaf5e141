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
  // Query or select one CPU kernel's variant (see ops/cpu/cpu_features.h): returns the active
  // variant, then the variants this processor supports. featperm.ops.use_cpu_kernels wraps it.
  m.def("_cpu_kernel(str kernel, str variant=\"\") -> str[]", &featperm::cpu::select_kernel);
}
