// FEATPERM_HOST_DEVICE marks functions that the CPU and CUDA kernels share: compiled for both by
// nvcc, plain inline functions for the host compiler. No torch headers here (nvcc includes it).
#pragma once

#if defined(__CUDACC__)
#define FEATPERM_HOST_DEVICE __host__ __device__ __forceinline__
#else
#define FEATPERM_HOST_DEVICE inline
#endif
