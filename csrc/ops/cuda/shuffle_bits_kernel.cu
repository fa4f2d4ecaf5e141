// ShuffleBits on CUDA. No torch headers here (they make nvcc slow); the torch glue is in
// shuffle_bits_cuda.cpp.
//
// Each word is split into 4-bit chunks; out = OR over chunks c of table[c][chunk value]. The
// tables live in shared memory, replicated once per warp lane (entry e of lane l at e*32 + l), so
// a warp's 32 lookups always hit 32 different banks: random data cannot cause bank conflicts.
// 32-bit words: 8 chunks x 16 values x 32 lanes x 4 bytes = 16 KiB per block.
// Forward and inverse are the same kernel: `Inverse` only changes how the table is built.
#include "ops/cuda/shuffle_bits_launch.h"

#include <algorithm>
#include <cstdint>

#include "ops/common/bit_permutation.h"

namespace featperm::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kLanes = 32;
constexpr int kChunkBits = 4;
constexpr int kUnroll = 2;  // 16-byte vectors per group; two groups (2 x kUnroll loads) in flight
// 6 blocks of 256 threads per multiprocessor caps registers at 40.
constexpr int kMinBlocksPerSm = 6;

template <int Bytes>
struct Traits {
  using Word = typename WordOf<Bytes>::type;
  // 32-bit entries for words up to 32 bits keep one lane's lookups in one bank.
  using Entry = typename std::conditional<(Bytes == 8), uint64_t, uint32_t>::type;
  static constexpr int kBits = 8 * Bytes;
  static constexpr int kChunks = kBits / kChunkBits;
  static constexpr int kEntries = kChunks * (1 << kChunkBits);
  static constexpr size_t kTableBytes = size_t{kEntries} * kLanes * sizeof(Entry);
  static constexpr int kWordsPerVector = 16 / Bytes;
};

// Byte offset of a chunk's entry for this lane, relative to its chunk's table: value * 32 lanes *
// sizeof(Entry) | lane * sizeof(Entry). Shifting the word so the chunk lands at that position
// makes it one shift + one LOP3 ((w >> s) & mask | lane_offset) per chunk; the chunk's table offset
// becomes the load's immediate.
template <typename Entry>
__device__ __forceinline__ uint32_t chunk_byte_offset(uint64_t w, int chunk, uint32_t lane_offset) {
  constexpr int kEntryShift = sizeof(Entry) == 8 ? 3 : 2;
  constexpr int kValueShift = 5 + kEntryShift;  // log2(kLanes * sizeof(Entry))
  constexpr uint32_t kMask = 0xfu << kValueShift;
  const int right = kChunkBits * chunk - kValueShift;
  const uint32_t moved = right >= 0 ? static_cast<uint32_t>(w >> right) : static_cast<uint32_t>(w << -right);
  return (moved & kMask) | lane_offset;
}

template <int Bytes>
__device__ __forceinline__ typename Traits<Bytes>::Word permute_word(
    typename Traits<Bytes>::Word w, const unsigned char* table_bytes, uint32_t lane_offset) {
  using T = Traits<Bytes>;
  using Entry = typename T::Entry;
  constexpr uint32_t kChunkTableBytes = 16 * kLanes * sizeof(Entry);
  Entry acc = 0;
#pragma unroll
  for (int c = 0; c < T::kChunks; ++c) {
    const uint32_t offset = chunk_byte_offset<Entry>(w, c, lane_offset);
    acc |= *reinterpret_cast<const Entry*>(table_bytes + c * kChunkTableBytes + offset);
  }
  return static_cast<typename T::Word>(acc);
}

template <int Bytes>
__device__ __forceinline__ uint4 permute_vector(uint4 v, const unsigned char* table_bytes, uint32_t lane_offset) {
  using Word = typename Traits<Bytes>::Word;
  union { uint4 v; Word w[Traits<Bytes>::kWordsPerVector]; } u;
  u.v = v;
#pragma unroll
  for (int i = 0; i < Traits<Bytes>::kWordsPerVector; ++i) u.w[i] = permute_word<Bytes>(u.w[i], table_bytes, lane_offset);
  return u.v;
}

// Grid: tasks = samples x parts; a block walks tasks with a grid stride, rebuilding its table when
// the sample changes (once, for a single key). Within a task, threads stride over the sample's
// 16-byte vectors; the unaligned head and tail words of a sample are done one word at a time.
template <int Bytes, bool Inverse>
__global__ void __launch_bounds__(kThreads, kMinBlocksPerSm) shuffle_bits_kernel(
    const typename Traits<Bytes>::Word* __restrict__ in, typename Traits<Bytes>::Word* __restrict__ out,
    int64_t words_per_sample, int64_t samples, int64_t parts_per_sample, const int64_t* __restrict__ keys,
    bool vectorize) {
  using T = Traits<Bytes>;
  using Word = typename T::Word;
  extern __shared__ __align__(16) unsigned char shared_bytes[];
  auto* table = reinterpret_cast<typename T::Entry*>(shared_bytes);
  __shared__ uint8_t dest[T::kBits];
  const uint32_t lane_offset = (threadIdx.x & (kLanes - 1)) * sizeof(typename T::Entry);

  int64_t table_sample = -1;
  const int64_t tasks = samples * parts_per_sample;
  for (int64_t task = blockIdx.x; task < tasks; task += gridDim.x) {
    const int64_t sample = task / parts_per_sample;
    const int64_t part = task - sample * parts_per_sample;
    const int64_t first = sample * words_per_sample;
    const Word* src = in + first;
    Word* dst = out + first;
    // Words before the first 16-byte boundary (in and out share their misalignment when vectorize).
    int64_t head = words_per_sample;
    if (vectorize) {
      const auto misalignment = reinterpret_cast<uintptr_t>(src) & 15;
      const int64_t to_boundary = misalignment ? (16 - misalignment) / Bytes : 0;
      head = to_boundary < words_per_sample ? to_boundary : words_per_sample;
    }
    const int64_t vectors = (words_per_sample - head) / T::kWordsPerVector;
    const int64_t tail_begin = head + vectors * T::kWordsPerVector;
    const int64_t stride = parts_per_sample * blockDim.x;
    const int64_t thread = part * blockDim.x + threadIdx.x;
    const uint4* src_v = reinterpret_cast<const uint4*>(src + head);
    uint4* dst_v = reinterpret_cast<uint4*>(dst + head);

    // The first group of loads goes out before the table is (re)built, so that its DRAM latency
    // overlaps the table build instead of adding to it.
    int64_t v = thread;
    uint4 loaded[kUnroll];
#pragma unroll
    for (int u = 0; u < kUnroll; ++u)
      if (v + u * stride < vectors) loaded[u] = src_v[v + u * stride];

    if (sample != table_sample) {  // uniform across the block: the barriers are safe
      __syncthreads();
      // One key entry per thread: a serial loop of dependent-latency global loads would cost
      // microseconds per block.
      if (threadIdx.x < T::kBits) build_destination<Inverse>(keys + sample * T::kBits, T::kBits, threadIdx.x, dest);
      __syncthreads();
      for (int i = threadIdx.x; i < T::kEntries * kLanes; i += blockDim.x) {
        const int entry = i / kLanes;
        table[i] = chunk_table_entry<typename T::Entry, kChunkBits>(dest, entry >> kChunkBits, entry & 15);
      }
      __syncthreads();
      table_sample = sample;
    }

    for (int64_t i = thread; i < head; i += stride) dst[i] = permute_word<Bytes>(src[i], shared_bytes, lane_offset);
    // Groups of kUnroll independent vectors, the last one partial (predicated), so that no thread
    // ends with a chain of dependent single loads.
    // Software pipelined: the next group's loads are issued before this group is permuted, so
    // DRAM latency overlaps the table lookups instead of alternating with them.
    while (v < vectors) {
      const int64_t next = v + kUnroll * stride;
      uint4 prefetched[kUnroll];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        if (next + u * stride < vectors) prefetched[u] = src_v[next + u * stride];
#pragma unroll
      for (int u = 0; u < kUnroll; ++u)
        if (v + u * stride < vectors) dst_v[v + u * stride] = permute_vector<Bytes>(loaded[u], shared_bytes, lane_offset);
#pragma unroll
      for (int u = 0; u < kUnroll; ++u) loaded[u] = prefetched[u];
      v = next;
    }
    for (int64_t i = tail_begin + thread; i < words_per_sample; i += stride)
      dst[i] = permute_word<Bytes>(src[i], shared_bytes, lane_offset);
  }
}

template <int Bytes, bool Inverse>
cudaError_t prepare_kernel(int device, int* blocks_per_sm) {
  // Per device and instantiation: allow > 48 KiB of dynamic shared memory (64-bit words), and
  // ask how many blocks fit on a multiprocessor. Host-side calls only: safe during graph capture.
  static int cached[64] = {0};
  if (device < 64 && cached[device] > 0) {
    *blocks_per_sm = cached[device];
    return cudaSuccess;
  }
  auto kernel = shuffle_bits_kernel<Bytes, Inverse>;
  cudaError_t err = cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                         static_cast<int>(Traits<Bytes>::kTableBytes));
  if (err != cudaSuccess) return err;
  err = cudaOccupancyMaxActiveBlocksPerMultiprocessor(blocks_per_sm, kernel, kThreads, Traits<Bytes>::kTableBytes);
  if (err != cudaSuccess) return err;
  *blocks_per_sm = std::max(*blocks_per_sm, 1);
  if (device < 64) cached[device] = *blocks_per_sm;
  return cudaSuccess;
}

template <int Bytes, bool Inverse>
cudaError_t launch(const ShuffleBitsLaunch& a) {
  using Word = typename Traits<Bytes>::Word;
  int blocks_per_sm = 1, multiprocessors = 1;
  cudaError_t err = prepare_kernel<Bytes, Inverse>(a.device, &blocks_per_sm);
  if (err != cudaSuccess) return err;
  err = cudaDeviceGetAttribute(&multiprocessors, cudaDevAttrMultiProcessorCount, a.device);
  if (err != cudaSuccess) return err;

  const int64_t words_per_sample = a.words / a.samples;
  const int64_t vectors_per_sample = (words_per_sample + Traits<Bytes>::kWordsPerVector - 1) / Traits<Bytes>::kWordsPerVector;
  const int64_t resident_blocks = int64_t{blocks_per_sm} * multiprocessors;
  // Enough parts per sample to give each thread about kUnroll vectors, without exceeding what
  // the chip holds at once; the grid then strides over the remaining tasks.
  const int64_t parts_per_sample = std::max<int64_t>(1, std::min<int64_t>(
      resident_blocks, (vectors_per_sample + kThreads * kUnroll - 1) / (kThreads * kUnroll)));
  const int64_t grid = std::min<int64_t>(resident_blocks, a.samples * parts_per_sample);
  // 16-byte vectors need src and dst equally misaligned; otherwise every word goes alone.
  const bool vectorize = ((reinterpret_cast<uintptr_t>(a.src) ^ reinterpret_cast<uintptr_t>(a.dst)) & 15) == 0;
  shuffle_bits_kernel<Bytes, Inverse><<<static_cast<unsigned>(grid), kThreads, Traits<Bytes>::kTableBytes, a.stream>>>(
      static_cast<const Word*>(a.src), static_cast<Word*>(a.dst), words_per_sample, a.samples, parts_per_sample,
      a.keys, vectorize);
  return cudaGetLastError();
}

}  // namespace

cudaError_t launch_shuffle_bits(const ShuffleBitsLaunch& args) {
  cudaError_t err = cudaErrorInvalidValue;
  dispatch_word_bytes_and_direction(args.word_bytes, args.inverse, [&](auto bytes_c, auto inverse_c) {
    err = launch<decltype(bytes_c)::value, decltype(inverse_c)::value>(args);
  });
  return err;
}

}  // namespace featperm::cuda
