// FEATPERM_HOST_DEVICE marks functions that the CPU and CUDA kernels share: compiled for both by
// nvcc, plain inline functions for the host compiler. No torch headers here (nvcc includes it).
#pragma once

#if defined(__CUDACC__)
#define FEATPERM_HOST_DEVICE __host__ __device__ __forceinline__
#define FEATPERM_UNROLL _Pragma("unroll")
#else
#define FEATPERM_HOST_DEVICE inline
#define FEATPERM_UNROLL  // GCC would warn of an unknown pragma; it unrolls these short loops itself
#endif
