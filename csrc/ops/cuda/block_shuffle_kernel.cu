// Block-wise shuffle on CUDA. No torch headers here (they make nvcc slow); the torch glue is in
// block_shuffle_cuda.cpp.
//
// One thread block per tile (T adjacent M x M blocks of one block row, all channels; grid-stride
// over tiles). Phase 1 copies the tile into a staging buffer in load order (memory order of the
// tensor: along W for NCHW, along C for channels_last, so that a warp's accesses are coalesced);
// phase 2 writes it back in the same order. One side of the copy is permuted through the key
// (ops/common/block_permutation.h): encryption gathers in phase 2, decryption scatters in phase 1,
// so a single kernel template serves both through `Inverse`.
// The staging buffer is shared memory when one block fits (up to kMaxSharedBytes), otherwise a
// slice of global scratch per thread block (very large C*M*M, e.g. C=2048, M=4), which mostly
// stays in L2. Each thread issues kUnroll independent loads before storing, to keep enough bytes
// in flight to saturate memory bandwidth.
#include "ops/cuda/block_shuffle_launch.h"

#include <algorithm>
#include <cstdint>

#include "ops/common/block_permutation.h"

namespace featperm::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kUnroll = 8;
// Tiles of several blocks are kept to this size so that 8 thread blocks fit on a multiprocessor.
constexpr int64_t kTargetTileBytes = 24 * 1024;
// One block up to this size is staged in shared memory (opting in above the default 48 KiB).
constexpr int64_t kMaxSharedBytes = 96 * 1024;
constexpr uint32_t kSkip = 0xffffffffu;

struct Params {
  const void* src;
  void* dst;
  void* global_stage;  // null: stage in shared memory
  Strides4 is, os;
  TileLayout layout;
  const uint32_t* partner_slot;  // slot(v[k]) for every key index k
  int64_t tiles, tiles_per_row, block_rows, blocks_per_row, blocks_per_tile, block_size;
};

struct Plan {
  int64_t blocks_per_tile;
  int64_t tiles;
  int64_t grid;
  bool global_stage;
  size_t shared_bytes;
  size_t table_bytes;    // scratch for partner_slot, first
  size_t scratch_bytes;  // table + global staging
};

constexpr size_t kScratchAlign = 256;

cudaError_t make_plan(const BlockShuffleLaunch& a, Plan* plan) {
  int multiprocessors = 1;
  const cudaError_t err = cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, a.device);
  if (err != cudaSuccess) return err;
  const int64_t m = a.block_size;
  const int64_t block_bytes = a.c * m * m * a.element_bytes;
  const int64_t blocks_per_row = a.w / m;
  plan->global_stage = block_bytes > kMaxSharedBytes;
  plan->blocks_per_tile = plan->global_stage
      ? 1 : std::clamp<int64_t>(kTargetTileBytes / block_bytes, 1, blocks_per_row);
  plan->tiles = a.n * (a.h / m) * ((blocks_per_row + plan->blocks_per_tile - 1) / plan->blocks_per_tile);
  const int64_t tile_bytes = plan->blocks_per_tile * block_bytes;
  // Shared staging: enough thread blocks for several waves of resident blocks; the grid strides
  // over the rest. Global staging: two per multiprocessor, each with its own scratch slice.
  plan->grid = std::min<int64_t>(plan->tiles, int64_t{multiprocessors} * (plan->global_stage ? 2 : 64));
  plan->shared_bytes = plan->global_stage ? 0 : static_cast<size_t>(tile_bytes);
  plan->table_bytes = (static_cast<size_t>(a.c * m * m) * sizeof(uint32_t) + kScratchAlign - 1) / kScratchAlign * kScratchAlign;
  plan->scratch_bytes = plan->table_bytes + (plan->global_stage ? static_cast<size_t>(plan->grid * tile_bytes) : 0);
  return cudaSuccess;
}

// slot(v[k]) for every key index, once per launch, so that the main kernel reads one 32-bit
// value per element instead of an int64 key entry and two divisions.
__global__ void partner_slot_kernel(const int64_t* __restrict__ key, const TileLayout layout,
                                    uint32_t* __restrict__ partner_slot) {
  const uint32_t positions = layout.block_elements();
  for (uint32_t k = blockIdx.x * blockDim.x + threadIdx.x; k < positions; k += gridDim.x * blockDim.x) {
    partner_slot[k] = layout.slot(clamp_key_entry(key[k], positions));
  }
}

template <int Bytes, bool Inverse>
__global__ void __launch_bounds__(kThreads) block_shuffle_kernel(const Params p) {
  using Word = typename WordOf<Bytes>::type;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const TileLayout& layout = p.layout;
  const uint32_t elements = layout.tile_elements();
  const uint32_t step = layout.block_step();
  const uint32_t M = layout.M(), C = layout.C();
  Word* stage = p.global_stage ? static_cast<Word*>(p.global_stage) + blockIdx.x * size_t{elements}
                               : reinterpret_cast<Word*>(shared_bytes);
  const Word* src = static_cast<const Word*>(p.src);
  Word* dst = static_cast<Word*>(p.dst);
  // Staging position of the permuted partner of an element: slot(v[k]) + b*S.
  auto partner = [&](const BlockCoord& e, uint32_t block) {
    return __ldg(p.partner_slot + TileLayout::key_index(e, M, C)) + block * step;
  };

  for (int64_t tile = blockIdx.x; tile < p.tiles; tile += gridDim.x) {
    const int64_t tile_col = tile % p.tiles_per_row;
    const int64_t rest = tile / p.tiles_per_row;
    const int64_t block_row = rest % p.block_rows, n = rest / p.block_rows;
    const int64_t first_block = tile_col * p.blocks_per_tile;
    const auto columns = static_cast<uint32_t>(std::min(p.blocks_per_tile, p.blocks_per_row - first_block) * M);
    const int64_t row0 = block_row * p.block_size, col0 = first_block * p.block_size;
    const Word* in = src + n * p.is.n + row0 * p.is.h + col0 * p.is.w;
    Word* out = dst + n * p.os.n + row0 * p.os.h + col0 * p.os.w;

    // Phase 1: tile -> stage (decryption scatters here).
    for (uint32_t base = threadIdx.x; base < elements; base += kThreads * kUnroll) {
      Word value[kUnroll];
      uint32_t to[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        to[u] = kSkip;
        const uint32_t i = base + u * kThreads;
        if (i < elements) {
          uint32_t col, block;
          const BlockCoord e = layout.element_at(i, &col, &block);
          if (col < columns) {
            to[u] = load_position<Inverse>(i, Inverse ? partner(e, block) : 0u);
            value[u] = in[e.ch * p.is.c + e.r * p.is.h + col * p.is.w];
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (to[u] != kSkip) stage[to[u]] = value[u];
      }
    }
    __syncthreads();

    // Phase 2: stage -> output (encryption gathers here).
    for (uint32_t base = threadIdx.x; base < elements; base += kThreads * kUnroll) {
      Word value[kUnroll];
      int64_t to[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        to[u] = -1;
        const uint32_t i = base + u * kThreads;
        if (i < elements) {
          uint32_t col, block;
          const BlockCoord e = layout.element_at(i, &col, &block);
          if (col < columns) {
            value[u] = stage[store_position<Inverse>(i, Inverse ? 0u : partner(e, block))];
            to[u] = e.ch * p.os.c + e.r * p.os.h + col * p.os.w;
          }
        }
      }
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) {
        if (to[u] >= 0) out[to[u]] = value[u];
      }
    }
    __syncthreads();  // the stage is reused by the next tile
  }
}

template <int Bytes, bool Inverse>
cudaError_t allow_shared_bytes(int device, size_t bytes) {
  // Above 48 KiB a kernel must opt in, once per device and instantiation (host-side call: safe
  // during graph capture).
  static size_t allowed[64] = {0};
  if (bytes <= 48 * 1024 || (device >= 0 && device < 64 && allowed[device] >= bytes)) return cudaSuccess;
  const cudaError_t err = cudaFuncSetAttribute(block_shuffle_kernel<Bytes, Inverse>,
                                               cudaFuncAttributeMaxDynamicSharedMemorySize,
                                               static_cast<int>(kMaxSharedBytes));
  if (err == cudaSuccess && device >= 0 && device < 64) allowed[device] = kMaxSharedBytes;
  return err;
}

template <int Bytes, bool Inverse>
cudaError_t launch(const BlockShuffleLaunch& a) {
  Plan plan;
  cudaError_t err = make_plan(a, &plan);
  if (err != cudaSuccess) return err;
  if (a.scratch == nullptr) return cudaErrorInvalidValue;
  err = allow_shared_bytes<Bytes, Inverse>(a.device, plan.shared_bytes);
  if (err != cudaSuccess) return err;
  Params p;
  p.src = a.src;
  p.dst = a.dst;
  auto* scratch = static_cast<unsigned char*>(a.scratch);
  p.global_stage = plan.global_stage ? scratch + plan.table_bytes : nullptr;
  p.is = a.src_strides;
  p.os = a.dst_strides;
  p.layout = TileLayout(static_cast<uint32_t>(a.c), static_cast<uint32_t>(a.block_size),
                        static_cast<uint32_t>(plan.blocks_per_tile), a.channels_inner);
  p.partner_slot = reinterpret_cast<uint32_t*>(scratch);
  p.tiles = plan.tiles;
  p.blocks_per_row = a.w / a.block_size;
  p.blocks_per_tile = plan.blocks_per_tile;
  p.tiles_per_row = (p.blocks_per_row + plan.blocks_per_tile - 1) / plan.blocks_per_tile;
  p.block_rows = a.h / a.block_size;
  p.block_size = a.block_size;
  const uint32_t positions = p.layout.block_elements();
  const unsigned table_grid = static_cast<unsigned>(std::min<uint32_t>((positions + kThreads - 1) / kThreads, 1024));
  partner_slot_kernel<<<table_grid, kThreads, 0, a.stream>>>(a.key, p.layout, reinterpret_cast<uint32_t*>(scratch));
  err = cudaGetLastError();
  if (err != cudaSuccess) return err;
  block_shuffle_kernel<Bytes, Inverse><<<static_cast<unsigned>(plan.grid), kThreads, plan.shared_bytes, a.stream>>>(p);
  return cudaGetLastError();
}

}  // namespace

cudaError_t block_shuffle_scratch_bytes(const BlockShuffleLaunch& args, size_t* bytes) {
  Plan plan;
  const cudaError_t err = make_plan(args, &plan);
  *bytes = err == cudaSuccess ? plan.scratch_bytes : 0;
  return err;
}

cudaError_t launch_block_shuffle(const BlockShuffleLaunch& args) {
  cudaError_t err = cudaErrorInvalidValue;
  dispatch_word_bytes_and_direction(args.element_bytes, args.inverse, [&](auto bytes_c, auto inverse_c) {
    err = launch<decltype(bytes_c)::value, decltype(inverse_c)::value>(args);
  });
  return err;
}

}  // namespace featperm::cuda
