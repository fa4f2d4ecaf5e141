// Block-wise feature-map shuffle (AprilPyone & Kiya 2021): index logic shared by the CPU and CUDA
// kernels (no torch headers: nvcc includes it).
//
// x has shape (N, C, H, W) and block size M (dividing H and W). Each M x M block across all C
// channels is a vector of C*M*M values in the order of the authors' segment() code: key index
//     k = (r * M + c) * C + ch      (row in block r, column in block c, channel ch fastest)
// Encryption is a gather, out[k] = in[v[k]], with the same key v for every block of every sample.
//
// Both kernels work on tiles: T horizontally adjacent blocks of one block row (all C channels, M
// image rows, TW = T*M image columns). A tile is copied to a staging buffer in *load order* (the
// order of the tensor's memory, so that reads and writes run along it) and written back with one
// side of the copy permuted:
//   encrypt (gather):  stage[i] = in(i);                 out(i) = stage[slot(v[k_i]) + b_i * S]
//   decrypt (scatter): stage[slot(v[k_i]) + b_i * S] = in(i);   out(i) = stage[i]
// where i enumerates the tile in load order, element i has key index k_i and is in block b_i of the
// tile, slot(k) is the load-order position of key index k within block 0, and S the distance
// between the positions of blocks b and b+1. Decryption works because slot(k_i) + b_i*S = i.
// (The CUDA kernels do exactly this, choosing the side with load_position/store_position. The
// CPU kernel, ops/cpu/block_shuffle_kernel.cpp, uses only the flatten order: it builds per-key
// tables of source offsets, in its own stage layouts, and decrypts by gathering with v^-1.)
// Load order is (ch, r, column) with columns fastest when W is the innermost of the two dimensions
// in memory (contiguous NCHW) and (r, column, ch) with channels fastest otherwise (channels_last).
#pragma once

#include <cstdint>

#include "ops/common/bit_permutation.h"  // WordOf
#include "ops/common/host_device.h"

namespace featperm {

// Division by a run-time constant as a multiply-high and shift (the method of PyTorch's
// IntDivider, after Granlund & Montgomery): exact for 0 <= n < 2^31 and 1 <= d < 2^31.
struct FastDivmod {
  uint32_t divisor = 1;
  uint32_t multiplier = 0;
  uint32_t shift = 0;

  FastDivmod() = default;
  explicit FastDivmod(uint32_t d) : divisor(d) {
    while (shift < 32 && (uint32_t{1} << shift) < d) ++shift;
    const uint64_t one = 1;
    multiplier = static_cast<uint32_t>(((one << 32) * ((one << shift) - d)) / d + 1);
  }

  FEATPERM_HOST_DEVICE uint32_t div(uint32_t n) const {
#if defined(__CUDA_ARCH__)
    const uint32_t high = __umulhi(n, multiplier);
#else
    const uint32_t high = static_cast<uint32_t>((uint64_t{n} * multiplier) >> 32);
#endif
    return (high + n) >> shift;
  }
  // Quotient, and the remainder in *rem.
  FEATPERM_HOST_DEVICE uint32_t divmod(uint32_t n, uint32_t* rem) const {
    const uint32_t q = div(n);
    *rem = n - q * divisor;
    return q;
  }
};

// Coordinates of one element inside a block.
struct BlockCoord {
  uint32_t r;   // row in block, 0..M-1
  uint32_t c;   // column in block, 0..M-1
  uint32_t ch;  // channel, 0..C-1
};

// The shape of a tile and its load order. All sizes are small enough for 32-bit arithmetic: the
// caller guarantees C*M*TW < 2^31.
struct TileLayout {
  FastDivmod channels;      // C
  FastDivmod block_size;    // M
  FastDivmod tile_columns;  // TW = blocks per tile * M
  bool channels_inner;      // load order (r, column, ch) instead of (ch, r, column)

  TileLayout() = default;
  TileLayout(uint32_t c, uint32_t m, uint32_t blocks_per_tile, bool channels_inner_)
      : channels(c), block_size(m), tile_columns(blocks_per_tile * m), channels_inner(channels_inner_) {}

  FEATPERM_HOST_DEVICE uint32_t C() const { return channels.divisor; }
  FEATPERM_HOST_DEVICE uint32_t M() const { return block_size.divisor; }
  FEATPERM_HOST_DEVICE uint32_t TW() const { return tile_columns.divisor; }
  FEATPERM_HOST_DEVICE uint32_t block_elements() const { return C() * M() * M(); }
  FEATPERM_HOST_DEVICE uint32_t tile_elements() const { return C() * M() * TW(); }

  // Key index of an element (the authors' flatten order).
  FEATPERM_HOST_DEVICE static uint32_t key_index(const BlockCoord& e, uint32_t m, uint32_t c) {
    return (e.r * m + e.c) * c + e.ch;
  }
  FEATPERM_HOST_DEVICE BlockCoord coord_of_key(uint32_t k) const {
    uint32_t ch, c;
    const uint32_t rc = channels.divmod(k, &ch);
    const uint32_t r = block_size.divmod(rc, &c);
    return {r, c, ch};
  }

  // Load-order position of (coordinate in block, tile column) in the staging buffer.
  FEATPERM_HOST_DEVICE uint32_t position(uint32_t r, uint32_t column, uint32_t ch) const {
    return channels_inner ? (r * TW() + column) * C() + ch : (ch * M() + r) * TW() + column;
  }
  // slot(k): position of key index k in block 0 of the tile.
  FEATPERM_HOST_DEVICE uint32_t slot(uint32_t k) const {
    const BlockCoord e = coord_of_key(k);
    return position(e.r, e.c, e.ch);
  }
  // S: distance between the positions of the same element in blocks b and b + 1.
  FEATPERM_HOST_DEVICE uint32_t block_step() const { return channels_inner ? M() * C() : M(); }

  // Inverse of position(): the element at load-order position i; *column is its tile column and
  // *block the tile's block that holds it (column / M).
  FEATPERM_HOST_DEVICE BlockCoord element_at(uint32_t i, uint32_t* column, uint32_t* block) const {
    uint32_t r, ch, col, rest;
    if (channels_inner) {
      rest = channels.divmod(i, &ch);
      r = tile_columns.divmod(rest, &col);
    } else {
      rest = tile_columns.divmod(i, &col);
      ch = block_size.divmod(rest, &r);
    }
    *column = col;
    uint32_t c;
    *block = block_size.divmod(col, &c);
    return {r, c, ch};
  }
};

// A key entry made safe to index with: an invalid device key (which the raw op cannot check
// without a host synchronisation) gives wrong output, never an out-of-bounds access.
FEATPERM_HOST_DEVICE uint32_t clamp_key_entry(int64_t v, uint32_t block_elements) {
  return static_cast<uint64_t>(v) < block_elements ? static_cast<uint32_t>(v) : 0u;
}

// The staging positions that the load (from `in`) and the store (to `out`) of load-order element
// `i` use, for a tile element whose permuted partner sits at `permuted` (= slot(v[k_i]) + b_i*S).
// Encrypt gathers on the store side; decrypt scatters on the load side.
template <bool Inverse>
FEATPERM_HOST_DEVICE uint32_t load_position(uint32_t i, uint32_t permuted) {
  return Inverse ? permuted : i;
}
template <bool Inverse>
FEATPERM_HOST_DEVICE uint32_t store_position(uint32_t i, uint32_t permuted) {
  return Inverse ? i : permuted;
}

// Out-of-place gather (CUDA): when source and output share one dense layout (contiguous NCHW, or
// channels_last) and fewer than 2^31 elements, the output element at linear index e reads the
// source element at e + delta[position], where `position` is the element's load-order position
// inside its block and delta (one int32 per block position, built once per call from the key) the
// offset from the element to the source element it takes. Forward: output key index k takes input
// key index v[k]; inverse: output key index v[k] takes input key index k.
// Output elements are visited tile by tile (a tile as in TileLayout, T a divisor of W/M), in load
// order inside a tile, so that the reads of a stretch of output fall in the same tile as it.
// A run is Run consecutive elements in load order and in memory: NCHW needs TW % Run == 0,
// channels_last C % Run == 0.
// In place, a tile is staged in load order and the table holds deltas between stage positions
// (delta_entry's `staged`), which do not depend on the block of the tile.
struct GatherLayout {
  TileLayout tile;
  FastDivmod runs_per_tile;
  FastDivmod tiles_per_row;  // W / TW
  FastDivmod block_rows;     // H / M
  uint32_t H = 1, W = 1;

  GatherLayout() = default;
  GatherLayout(uint32_t c, uint32_t h, uint32_t w, uint32_t m, uint32_t blocks_per_tile, uint32_t run,
               bool channels_inner)
      : tile(c, m, blocks_per_tile, channels_inner),
        runs_per_tile(c * m * m * blocks_per_tile / run),
        tiles_per_row(w / (m * blocks_per_tile)),
        block_rows(h / m),
        H(h),
        W(w) {}

  FEATPERM_HOST_DEVICE uint32_t C() const { return tile.C(); }
  FEATPERM_HOST_DEVICE uint32_t M() const { return tile.M(); }
  FEATPERM_HOST_DEVICE uint32_t block_elements() const { return tile.block_elements(); }

  // Memory offset of an element from its block's origin (< numel < 2^31).
  FEATPERM_HOST_DEVICE int32_t offset(const BlockCoord& e) const {
    return static_cast<int32_t>(tile.channels_inner ? (e.r * W + e.c) * C() + e.ch
                                                    : (e.ch * H + e.r) * W + e.c);
  }
  // Load-order position of an element inside its block (indexes the delta table, so that
  // neighbouring threads read neighbouring entries).
  FEATPERM_HOST_DEVICE uint32_t position(const BlockCoord& e) const {
    return tile.channels_inner ? (e.r * M() + e.c) * C() + e.ch : (e.ch * M() + e.r) * M() + e.c;
  }
  // Table entry for key index k and key entry v_k (clamped by the caller). `staged`: the delta
  // between load-order positions in a tile's stage (the same for every block of the tile)
  // instead of between memory offsets.
  template <bool Inverse>
  FEATPERM_HOST_DEVICE void delta_entry(uint32_t k, uint32_t v_k, bool staged, uint32_t* position_out,
                                        int32_t* delta_out) const {
    const BlockCoord out = tile.coord_of_key(Inverse ? v_k : k);
    const BlockCoord in = tile.coord_of_key(Inverse ? k : v_k);
    *position_out = position(out);
    *delta_out = staged ? static_cast<int32_t>(tile.position(in.r, in.c, in.ch)) -
                              static_cast<int32_t>(tile.position(out.r, out.c, out.ch))
                        : offset(in) - offset(out);
  }
  FEATPERM_HOST_DEVICE uint32_t runs_in_tile() const { return runs_per_tile.divisor; }
  // Run q (0 <= q < numel / Run): returns the linear index of its first element and stores the
  // block positions of its Run elements and, in *in_tile, its first element's load-order
  // position in its tile (tile q / runs_in_tile()).
  template <int Run>
  FEATPERM_HOST_DEVICE uint32_t run_at(uint32_t q, uint32_t* positions, uint32_t* in_tile) const {
    uint32_t run_in_tile, tile_column, column, block;
    const uint32_t t = runs_per_tile.divmod(q, &run_in_tile);
    const uint32_t row_of_blocks = tiles_per_row.divmod(t, &tile_column);  // n * H/M + block row
    *in_tile = run_in_tile * Run;
    const BlockCoord e = tile.element_at(*in_tile, &column, &block);
    const uint32_t w = tile_column * tile.TW() + column;
    if (tile.channels_inner) {
      const uint32_t p0 = (e.r * M() + e.c) * C() + e.ch;
      for (int i = 0; i < Run; ++i) positions[i] = p0 + i;
      return ((row_of_blocks * M() + e.r) * W + w) * C() + e.ch;
    }
    const uint32_t row_position = (e.ch * M() + e.r) * M();
    uint32_t c = e.c;
    for (int i = 0; i < Run; ++i) {
      positions[i] = row_position + c;
      c = c + 1 == M() ? 0 : c + 1;
    }
    uint32_t block_row;
    const uint32_t n = block_rows.divmod(row_of_blocks, &block_row);
    return ((n * C() + e.ch) * H + block_row * M() + e.r) * W + w;
  }
};

// Strides (in elements) of an (N, C, H, W) tensor.
struct Strides4 {
  int64_t n, c, h, w;
};

}  // namespace featperm
