// Block-wise shuffle on CUDA. No torch headers here (they make nvcc slow); the torch glue is in
// block_shuffle_cuda.cpp.
//
// Three kernels:
// * Gather (out of place, source and output in one dense layout, fewer than 2^31 elements: the
//   forward, inverse and backward ops in practice). Each output element reads exactly one source
//   element: out[e] = src[e + delta[position(e)]], with a table of C*M*M int32 deltas built from
//   the key at each call (ops/common/block_permutation.h, GatherLayout): by each thread block in
//   its shared memory when it fits in kMaxSharedTableBytes (no extra launch), else by a small
//   kernel in global memory, read through L1. Each thread writes a run of 16 bytes of
//   consecutive output elements with one vector store. The output is visited tile by tile (T
//   adjacent blocks of a block row, at most kGatherTileBytes), so the gathered reads fall in the
//   tile being written, which L1/L2 keep: DRAM sees about one read and one write per element, as
//   a copy does.
// * Tile gather (in place, same dense layouts, the table and a tile in 48 KiB of shared memory).
//   Each thread block builds a table of deltas between stage positions in shared memory, stages
//   a tile with 16-byte loads and writes it back with 16-byte stores, each element gathered from
//   the stage through the table.
// * Staged (anything else: other strides, large tiles, 2^31 elements or more). One thread block
//   per tile (T adjacent M x M blocks of one block row, all channels; grid-stride over tiles).
//   Phase 1 copies the tile into a staging buffer in load order (memory order of the tensor:
//   along W for NCHW, along C for channels_last, so that a warp's accesses are coalesced);
//   phase 2 writes it back in the same order. One side of the copy is permuted through the key:
//   encryption gathers in phase 2, decryption scatters in phase 1, so a single kernel template
//   serves both through `Inverse`.
//   The staging buffer is shared memory when one block fits (up to kMaxSharedBytes), otherwise a
//   slice of global scratch per thread block (very large C*M*M, e.g. C=2048, M=4), which mostly
//   stays in L2. Each thread issues kUnroll independent loads before storing, to keep enough
//   bytes in flight to saturate memory bandwidth.
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
// Gather kernel: the delta table is built in shared memory up to this size (small enough for
// kGatherBlocksPerMultiprocessor thread blocks of kThreads to be resident), read through L1 above.
constexpr int64_t kMaxSharedTableBytes = 24 * 1024;
constexpr int kGatherBlocksPerMultiprocessor = 8;
constexpr int64_t kGatherTileBytes = 16 * 1024;
// In place, the table and one tile in shared memory, within the default 48 KiB.
constexpr int64_t kMaxTileGatherSharedBytes = 48 * 1024;
constexpr int kStageLoads = 4;

struct Params {
  const void* src;
  void* dst;
  void* global_stage;  // null: stage in shared memory
  Strides4 is, os;
  TileLayout layout;
  const uint32_t* partner_slot;  // slot(v[k]) for every key index k
  int64_t tiles, tiles_per_row, block_rows, blocks_per_row, blocks_per_tile, block_size;
};

enum class Path {
  kGather,        // out of place, dense: block_gather_kernel
  kTileGather,    // in place, dense, a tile fits in shared memory: block_tile_gather_kernel
  kStaged,        // anything else: block_shuffle_kernel
};

struct Plan {
  Path path;
  int64_t blocks_per_tile;
  int64_t tiles;
  int64_t grid;
  bool global_stage;
  size_t shared_bytes;
  size_t table_bytes;    // scratch for partner_slot (staged) or source_delta (gather), first
  size_t scratch_bytes;  // table + global staging
};

constexpr size_t kScratchAlign = 256;

// Whether src and dst both have the dense strides of the load order (contiguous NCHW, or
// channels_last); dimensions of size 1 may have any stride.
bool dense_in_load_order(const BlockShuffleLaunch& a) {
  const int64_t sizes[4] = {a.n, a.c, a.h, a.w};
  const int64_t expected[4] = {a.c * a.h * a.w, a.channels_inner ? 1 : a.h * a.w,
                               a.channels_inner ? a.w * a.c : a.w, a.channels_inner ? a.c : 1};
  for (const Strides4& s : {a.src_strides, a.dst_strides}) {
    const int64_t strides[4] = {s.n, s.c, s.h, s.w};
    for (int d = 0; d < 4; ++d) {
      if (sizes[d] != 1 && strides[d] != expected[d]) return false;
    }
  }
  return true;
}

// Both gather kernels need one dense layout and 32-bit linear indices.
bool gather_applies(const BlockShuffleLaunch& a) {
  return dense_in_load_order(a) && a.n * a.c * a.h * a.w < (int64_t{1} << 31);
}

// Gather tiles: T divides W/M (no partial tiles) and keeps a tile within kGatherTileBytes, so that
// the tiles of the resident thread blocks stay in L1. Preferred: NCHW tile rows of whole 16-byte
// runs; at least 32 bytes (one sector) per NCHW tile row when W allows.
int64_t gather_blocks_per_tile(const BlockShuffleLaunch& a) {
  const int64_t m = a.block_size, blocks_per_row = a.w / m;
  const int64_t block_bytes = a.c * m * m * a.element_bytes, vector_run = 16 / a.element_bytes;
  int64_t best = 1, best_whole_runs = 0;
  for (int64_t t = 1; t <= blocks_per_row; ++t) {
    const bool narrow = !a.channels_inner && best * m * a.element_bytes < 32;
    if (t > 1 && t * block_bytes > kGatherTileBytes && !narrow) break;
    if (blocks_per_row % t != 0) continue;
    best = t;
    if ((t * m) % vector_run == 0) best_whole_runs = t;
  }
  return !a.channels_inner && best_whole_runs > 0 ? best_whole_runs : best;
}

cudaError_t make_plan(const BlockShuffleLaunch& a, Plan* plan) {
  int multiprocessors = 1;
  const cudaError_t err = cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, a.device);
  if (err != cudaSuccess) return err;
  const int64_t m = a.block_size;
  plan->table_bytes = (static_cast<size_t>(a.c * m * m) * sizeof(uint32_t) + kScratchAlign - 1) / kScratchAlign * kScratchAlign;
  plan->path = Path::kStaged;
  if (gather_applies(a)) {
    plan->blocks_per_tile = gather_blocks_per_tile(a);
    // The most thread blocks: enough resident threads to keep the memory system busy; the grid
    // strides over the rest (the launch takes fewer when there is less work).
    plan->grid = int64_t{multiprocessors} * kGatherBlocksPerMultiprocessor;
    plan->scratch_bytes = plan->table_bytes;
    const size_t table_bytes = static_cast<size_t>(a.c * m * m) * sizeof(int32_t);
    if (a.src != a.dst) {
      // Out of place: each output element read straight from the source.
      plan->path = Path::kGather;
      plan->shared_bytes = table_bytes <= static_cast<size_t>(kMaxSharedTableBytes) ? table_bytes : 0;
      return cudaSuccess;
    }
    // In place: a tile is staged in shared memory (after the table) and gathered back.
    const size_t table_end = (table_bytes + 15) / 16 * 16;
    const size_t tile_bytes = static_cast<size_t>(plan->blocks_per_tile * a.c * m * m * a.element_bytes);
    if (table_end + tile_bytes <= static_cast<size_t>(kMaxTileGatherSharedBytes)) {
      plan->path = Path::kTileGather;
      plan->shared_bytes = table_end + tile_bytes;
      return cudaSuccess;
    }
  }
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

// One entry of the delta table: delta[position(out)] = offset(in) - offset(out) for the pair
// (output element, source element) of key index k. The inverse scatters into the table: an entry
// that an invalid device key misses keeps its zero (a copy of the element itself).
// `staged`: deltas between positions in a tile's stage (in place) rather than in memory.
__device__ __forceinline__ void write_delta_entry(const int64_t* __restrict__ key, const GatherLayout& layout,
                                                  bool inverse, bool staged, uint32_t k, int32_t* table) {
  const uint32_t v_k = clamp_key_entry(key[k], layout.block_elements());
  uint32_t position;
  int32_t delta;
  if (inverse) {
    layout.delta_entry<true>(k, v_k, staged, &position, &delta);
  } else {
    layout.delta_entry<false>(k, v_k, staged, &position, &delta);
  }
  table[position] = delta;
}

// The table in global memory (too large for shared memory), once per launch; the caller zeroes it
// first for the inverse.
__global__ void source_delta_kernel(const int64_t* __restrict__ key, const GatherLayout layout, bool inverse,
                                    int32_t* __restrict__ source_delta) {
  const uint32_t positions = layout.block_elements();
  for (uint32_t k = blockIdx.x * blockDim.x + threadIdx.x; k < positions; k += gridDim.x * blockDim.x) {
    write_delta_entry(key, layout, inverse, /*staged=*/false, k, source_delta);
  }
}

// The table in shared memory, built by each thread block from the key (C*M*M int64 reads, from
// L2): no extra launch per call. Ends with a barrier.
__device__ void build_shared_delta_table(const int64_t* __restrict__ key, const GatherLayout& layout, bool inverse,
                                         bool staged, int32_t* table) {
  const uint32_t positions = layout.block_elements();
  if (inverse) {
    for (uint32_t i = threadIdx.x; i < positions; i += kThreads) table[i] = 0;
    __syncthreads();
  }
  for (uint32_t k = threadIdx.x; k < positions; k += kThreads) write_delta_entry(key, layout, inverse, staged, k, table);
  __syncthreads();
}

struct GatherParams {
  const void* src;
  void* dst;
  const int64_t* key;           // C*M*M entries
  const int32_t* source_delta;  // global table (C*M*M entries, by position in block) or null
  GatherLayout layout;
  uint32_t elements;            // numel < 2^31
  bool inverse;
};

// A run of Run consecutive elements moved with one access (16 bytes when Run > 1).
template <typename Word, int Run>
union OutputRun {
  Word word[Run];
  uint4 vector;
};
template <typename Word>
union OutputRun<Word, 1> {
  Word word[1];
};

// One run to and from memory (global or shared), 16 bytes at once when Run > 1.
template <typename Word, int Run>
__device__ __forceinline__ void store_run(Word* to, const OutputRun<Word, Run>& run) {
  if constexpr (Run == 1) {
    *to = run.word[0];
  } else {
    *reinterpret_cast<uint4*>(to) = run.vector;
  }
}
template <typename Word, int Run>
__device__ __forceinline__ OutputRun<Word, Run> load_run(const Word* from) {
  OutputRun<Word, Run> run;
  if constexpr (Run == 1) {
    run.word[0] = *from;
  } else {
    run.vector = *reinterpret_cast<const uint4*>(from);
  }
  return run;
}

// Out-of-place gather: each thread writes runs of Run consecutive output elements (grid-stride),
// each element read from src at its own index plus the table's delta.
template <int Bytes, int Run>
__global__ void __launch_bounds__(kThreads) block_gather_kernel(const GatherParams p) {
  using Word = typename WordOf<Bytes>::type;
  static_assert(Run == 1 || Run * Bytes == 16, "a run is one element or one 16-byte vector");
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const int32_t* source_delta = p.source_delta;
  if (source_delta == nullptr) {
    auto* shared_delta = reinterpret_cast<int32_t*>(shared_bytes);
    build_shared_delta_table(p.key, p.layout, p.inverse, /*staged=*/false, shared_delta);
    source_delta = shared_delta;
  }
  const Word* __restrict__ src = static_cast<const Word*>(p.src);
  Word* __restrict__ dst = static_cast<Word*>(p.dst);
  const uint32_t runs = p.elements / Run;
  // runs < 2^31 and the stride < 2^31: no 32-bit overflow.
  for (uint32_t q = blockIdx.x * kThreads + threadIdx.x; q < runs; q += gridDim.x * kThreads) {
    uint32_t positions[Run], in_tile;
    const uint32_t first = p.layout.run_at<Run>(q, positions, &in_tile);
    OutputRun<Word, Run> out;
#pragma unroll
    for (int i = 0; i < Run; ++i) {
      // Source index in [0, numel): its 32-bit sum cannot overflow.
      out.word[i] = __ldg(src + (static_cast<int32_t>(first + i) + source_delta[positions[i]]));
    }
    store_run(dst + first, out);
  }
}

// In place: each thread block stages a tile (grid-stride over tiles) in shared memory with
// coalesced run loads, then writes it back, each element gathered from the stage at its own
// load-order position plus the table's (stage) delta. Tiles are disjoint, so in place is safe.
template <int Bytes, int Run>
__global__ void __launch_bounds__(kThreads) block_tile_gather_kernel(const GatherParams p) {
  using Word = typename WordOf<Bytes>::type;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  const uint32_t positions_in_block = p.layout.block_elements();
  auto* stage_delta = reinterpret_cast<int32_t*>(shared_bytes);
  build_shared_delta_table(p.key, p.layout, p.inverse, /*staged=*/true, stage_delta);
  Word* stage = reinterpret_cast<Word*>(shared_bytes + (positions_in_block * sizeof(int32_t) + 15) / 16 * 16);
  Word* data = static_cast<Word*>(p.dst);
  const uint32_t runs_in_tile = p.layout.runs_in_tile();
  const uint32_t tiles = p.elements / (runs_in_tile * Run);
  for (uint32_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    const uint32_t tile_first_run = tile * runs_in_tile;
    // kStageLoads independent loads per thread before their stores: bytes in flight.
    for (uint32_t base = threadIdx.x; base < runs_in_tile; base += kThreads * kStageLoads) {
      OutputRun<Word, Run> loaded[kStageLoads];
      uint32_t stage_at[kStageLoads];
#pragma unroll
      for (int u = 0; u < kStageLoads; ++u) {
        const uint32_t j = base + u * kThreads;
        stage_at[u] = kSkip;
        if (j < runs_in_tile) {
          uint32_t positions[Run];
          const uint32_t first = p.layout.run_at<Run>(tile_first_run + j, positions, &stage_at[u]);
          loaded[u] = load_run<Word, Run>(data + first);
        }
      }
#pragma unroll
      for (int u = 0; u < kStageLoads; ++u) {
        if (stage_at[u] != kSkip) store_run(stage + stage_at[u], loaded[u]);
      }
    }
    __syncthreads();
#pragma unroll 4
    for (uint32_t j = threadIdx.x; j < runs_in_tile; j += kThreads) {
      uint32_t positions[Run], in_tile;
      const uint32_t first = p.layout.run_at<Run>(tile_first_run + j, positions, &in_tile);
      OutputRun<Word, Run> out;
#pragma unroll
      for (int i = 0; i < Run; ++i) out.word[i] = stage[static_cast<int32_t>(in_tile + i) + stage_delta[positions[i]]];
      store_run(data + first, out);
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
cudaError_t launch_gather(const BlockShuffleLaunch& a, const Plan& plan) {
  const bool in_place = plan.path == Path::kTileGather;
  GatherParams p;
  p.src = a.src;
  p.dst = a.dst;
  // 16-byte runs need a run to stay in one tile row (NCHW) or pixel (channels_last) and aligned
  // data (in place, the loads too); otherwise one element per run.
  constexpr int kVectorRun = 16 / Bytes;
  const int64_t run_extent = a.channels_inner ? a.c : plan.blocks_per_tile * a.block_size;
  const bool vector_runs = run_extent % kVectorRun == 0 && reinterpret_cast<uintptr_t>(a.dst) % 16 == 0;
  const int run = vector_runs ? kVectorRun : 1;
  p.layout = GatherLayout(static_cast<uint32_t>(a.c), static_cast<uint32_t>(a.h), static_cast<uint32_t>(a.w),
                          static_cast<uint32_t>(a.block_size), static_cast<uint32_t>(plan.blocks_per_tile), run,
                          a.channels_inner);
  p.elements = static_cast<uint32_t>(a.n * a.c * a.h * a.w);
  p.key = a.key;
  p.inverse = Inverse;
  p.source_delta = nullptr;  // built in shared memory by each thread block
  if (plan.shared_bytes == 0) {
    auto* source_delta = static_cast<int32_t*>(a.scratch);
    p.source_delta = source_delta;
    const uint32_t positions = p.layout.block_elements();
    if (Inverse) {
      const cudaError_t err = cudaMemsetAsync(source_delta, 0, positions * sizeof(int32_t), a.stream);
      if (err != cudaSuccess) return err;
    }
    const unsigned table_grid = static_cast<unsigned>(std::min<uint32_t>((positions + kThreads - 1) / kThreads, 1024));
    source_delta_kernel<<<table_grid, kThreads, 0, a.stream>>>(a.key, p.layout, Inverse, source_delta);
    const cudaError_t err = cudaGetLastError();
    if (err != cudaSuccess) return err;
  }
  const int64_t work_items = in_place ? p.elements / (int64_t{p.layout.runs_in_tile()} * run)  // tiles
                                      : (p.elements / run + kThreads - 1) / kThreads;        // run groups
  const auto grid = static_cast<unsigned>(std::clamp<int64_t>(work_items, 1, plan.grid));
  const size_t shared = plan.shared_bytes;
  if (in_place && vector_runs) {
    block_tile_gather_kernel<Bytes, kVectorRun><<<grid, kThreads, shared, a.stream>>>(p);
  } else if (in_place) {
    block_tile_gather_kernel<Bytes, 1><<<grid, kThreads, shared, a.stream>>>(p);
  } else if (vector_runs) {
    block_gather_kernel<Bytes, kVectorRun><<<grid, kThreads, shared, a.stream>>>(p);
  } else {
    block_gather_kernel<Bytes, 1><<<grid, kThreads, shared, a.stream>>>(p);
  }
  return cudaGetLastError();
}

template <int Bytes, bool Inverse>
cudaError_t launch_staged(const BlockShuffleLaunch& a, const Plan& plan) {
  cudaError_t err = allow_shared_bytes<Bytes, Inverse>(a.device, plan.shared_bytes);
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

template <int Bytes, bool Inverse>
cudaError_t launch(const BlockShuffleLaunch& a) {
  Plan plan;
  const cudaError_t err = make_plan(a, &plan);
  if (err != cudaSuccess) return err;
  if (a.scratch == nullptr) return cudaErrorInvalidValue;
  return plan.path == Path::kStaged ? launch_staged<Bytes, Inverse>(a, plan) : launch_gather<Bytes, Inverse>(a, plan);
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
