// Block-wise shuffle on the CPU: parallel over tiles of T adjacent blocks of one block row.
// Each task copies a tile into a staging buffer in the tensor's memory order and gathers it back
// through a table of stage positions built once per call (ops/common/block_permutation.h), so
// reads and writes run along memory (rows of W values for NCHW, pixels of C values for
// channels_last) and only the reads from the staging buffer, which stays in cache, are random.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <utility>
#include <vector>

#include "ops/block_shuffle.h"
#include "ops/common/block_permutation.h"

namespace featperm::ops {
namespace {

// Staging buffer per task: with its gather table, small enough to stay in a core's L1/L2.
constexpr int64_t kStageBytes = 128 * 1024;
// Bytes per parallel task.
constexpr int64_t kGrainBytes = 256 * 1024;

// A tile of `block_rows` (G) block rows, in load order, is a sequence of `rows` rows of
// `row_length` elements that are evenly spaced in memory (`inner` apart): the (ch, g, r) rows of TW
// columns for NCHW, the (g, r, column) pixels of C channels for channels_last. row_offset[q] is
// row q's offset from the tile's origin. Consecutive rows that continue each other in memory (the
// G*M rows of a channel in a full-width NCHW tile, the pixels of a channels_last tile) also form
// longer `runs` (first row, row count), which full tiles copy in one go: W is often small, and
// per-row overhead would dominate.
struct Rows {
  int64_t rows, row_length, inner;
  std::vector<int64_t> row_offset;
  std::vector<std::pair<int64_t, int64_t>> runs;

  Rows(const TileLayout& layout, int64_t block_rows, const Strides4& s) {
    const int64_t C = layout.C(), image_rows = block_rows * layout.M(), TW = layout.TW();
    if (layout.channels_inner) {
      rows = image_rows * TW, row_length = C, inner = s.c;
      for (int64_t r = 0; r < image_rows; ++r)
        for (int64_t col = 0; col < TW; ++col) row_offset.push_back(r * s.h + col * s.w);
    } else {
      rows = C * image_rows, row_length = TW, inner = s.w;
      for (int64_t ch = 0; ch < C; ++ch)
        for (int64_t r = 0; r < image_rows; ++r) row_offset.push_back(ch * s.c + r * s.h);
    }
    for (int64_t q = 0; q < rows; ++q) {
      if (!runs.empty()) {
        auto& [first, count] = runs.back();
        if (row_offset[q] == row_offset[first] + count * row_length * inner) {
          ++count;
          continue;
        }
      }
      runs.emplace_back(q, 1);
    }
  }
};

template <typename Word>
inline void copy_in(const Word* in, int64_t inner, int64_t n, Word* out) {
  if (inner == 1) {
    std::memcpy(out, in, n * sizeof(Word));
  } else {
    for (int64_t j = 0; j < n; ++j) out[j] = in[j * inner];
  }
}

template <typename Word>
inline void gather_out(const Word* stage, const uint32_t* index, int64_t n, Word* out, int64_t inner) {
  if (inner == 1) {
    for (int64_t j = 0; j < n; ++j) out[j] = stage[index[j]];
  } else {
    for (int64_t j = 0; j < n; ++j) out[j * inner] = stage[index[j]];
  }
}

// The CPU kernel copies each tile to the stage as is and gathers it back (decryption gathers
// with the inverse key: no scatter, so both directions run the same loops). A CPU tile is G
// TileLayout tiles stacked vertically (G > 1 only for full-width tiles), staged in memory order.
template <int Bytes, bool Inverse>
void permute_tiles(const BlockRun& run) {
  using Word = typename WordOf<Bytes>::type;
  const int64_t m = run.block_size;
  const int64_t blocks_per_row = run.w / m, block_rows = run.h / m;
  const int64_t block_elements = run.c * m * m;
  const int64_t blocks_per_tile = std::clamp<int64_t>(kStageBytes / (block_elements * Bytes), 1, blocks_per_row);
  // G: several full-width block rows when they fit the stage (G divides the block rows, so that
  // no tile is cut at the bottom).
  int64_t tile_block_rows = 1;
  if (blocks_per_tile == blocks_per_row) {
    const int64_t row_bytes = block_elements * blocks_per_row * Bytes;
    for (int64_t g = std::min(block_rows, kStageBytes / row_bytes); g > 1; --g) {
      if (block_rows % g == 0) {
        tile_block_rows = g;
        break;
      }
    }
  }
  const TileLayout layout(static_cast<uint32_t>(run.c), static_cast<uint32_t>(m),
                          static_cast<uint32_t>(blocks_per_tile), run.channels_inner);
  const int64_t tiles_per_row = (blocks_per_row + blocks_per_tile - 1) / blocks_per_tile;
  const int64_t tile_rows = block_rows / tile_block_rows;
  const int64_t tiles = run.n * tile_rows * tiles_per_row;
  const int64_t row_elements = layout.tile_elements();             // one block row of the tile
  const int64_t elements = row_elements * tile_block_rows;

  const int64_t* key = run.key->const_data_ptr<int64_t>();
  const auto positions = static_cast<uint32_t>(block_elements);
  std::vector<uint32_t> source_key(positions);  // u[k]: the key index that output k is taken from
  for (uint32_t k = 0; k < positions; ++k) {
    const uint32_t vk = clamp_key_entry(key[k], positions);
    if (Inverse) {
      source_key[vk] = k;
    } else {
      source_key[k] = vk;
    }
  }
  // Stage position of element i of the g-th TileLayout tile: the tiles' load orders interleaved
  // into memory order ((ch, g, r, column) for NCHW, (g, r, column, ch) for channels_last).
  const uint32_t plane = layout.M() * layout.TW();  // one channel's part of a block row
  const FastDivmod by_plane(plane);                 // (the table is built per call: no 64-bit div)
  const auto rows_g = static_cast<uint32_t>(tile_block_rows);
  auto stage_position = [&](uint32_t g, uint32_t i) -> uint32_t {
    if (layout.channels_inner) return g * static_cast<uint32_t>(row_elements) + i;
    uint32_t within;
    const uint32_t ch = by_plane.divmod(i, &within);
    return (ch * rows_g + g) * plane + within;
  };
  // gather[p]: the stage position that the element at stage position p receives,
  // slot(u[k]) + b * S in the same TileLayout tile.
  // Built per call, so with loops over the coordinates rather than divisions per entry.
  std::vector<uint32_t> source_slot(positions);
  for (uint32_t k = 0; k < positions; ++k) source_slot[k] = layout.slot(source_key[k]);
  const uint32_t C = layout.C(), M = layout.M(), step = layout.block_step();
  const auto blocks = static_cast<uint32_t>(blocks_per_tile);
  std::vector<uint32_t> gather(elements);
  for (uint32_t ch = 0; ch < C; ++ch) {
    for (uint32_t r = 0; r < M; ++r) {
      for (uint32_t c = 0; c < M; ++c) {
        const uint32_t k = TileLayout::key_index(BlockCoord{r, c, ch}, M, C);
        for (uint32_t b = 0; b < blocks; ++b) {
          const uint32_t i = layout.position(r, b * M + c, ch);
          const uint32_t source = source_slot[k] + b * step;
          for (uint32_t g = 0; g < rows_g; ++g) gather[stage_position(g, i)] = stage_position(g, source);
        }
      }
    }
  }

  const Rows in_rows(layout, tile_block_rows, run.src_strides), out_rows(layout, tile_block_rows, run.dst_strides);
  const Word* src = static_cast<const Word*>(run.src);
  Word* dst = static_cast<Word*>(run.dst);
  const Strides4 is = run.src_strides, os = run.dst_strides;
  const int64_t grain = std::max<int64_t>(1, kGrainBytes / (int64_t{elements} * Bytes));
  at::parallel_for(0, tiles, grain, [&](int64_t begin, int64_t end) {
    std::vector<Word> stage(elements);
    Word* st = stage.data();
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t tile_col = tile % tiles_per_row;
      const int64_t rest = tile / tiles_per_row;
      const int64_t block_row = (rest % tile_rows) * tile_block_rows, n = rest / tile_rows;
      const int64_t first_block = tile_col * blocks_per_tile;
      const int64_t columns = std::min(blocks_per_tile, blocks_per_row - first_block) * m;
      const Word* in = src + n * is.n + block_row * m * is.h + first_block * m * is.w;
      Word* out = dst + n * os.n + block_row * m * os.h + first_block * m * os.w;
      if (columns == layout.TW()) {  // full tile: whole runs
        for (const auto& [first, count] : in_rows.runs) {
          copy_in(in + in_rows.row_offset[first], in_rows.inner, count * in_rows.row_length,
                  st + first * in_rows.row_length);
        }
        for (const auto& [first, count] : out_rows.runs) {
          gather_out(st, gather.data() + first * out_rows.row_length, count * out_rows.row_length,
                     out + out_rows.row_offset[first], out_rows.inner);
        }
        continue;
      }
      // A partial last tile (G = 1) has shorter NCHW rows, or fewer channels_last pixels per row.
      const bool pixels = layout.channels_inner;
      const int64_t length = pixels ? in_rows.row_length : columns;
      for (int64_t q = 0; q < in_rows.rows; ++q) {
        if (pixels && q % layout.TW() >= columns) continue;
        copy_in(in + in_rows.row_offset[q], in_rows.inner, length, st + q * in_rows.row_length);
      }
      for (int64_t q = 0; q < out_rows.rows; ++q) {
        if (pixels && q % layout.TW() >= columns) continue;
        gather_out(st, gather.data() + q * out_rows.row_length, length, out + out_rows.row_offset[q],
                   out_rows.inner);
      }
    }
  });
}

void cpu_block_kernel(const at::Tensor&, const BlockRun& run) {
  const bool supported = dispatch_word_bytes_and_direction(
      run.element_bytes, run.inverse, [&](auto bytes_c, auto inverse_c) {
        constexpr int kBytes = decltype(bytes_c)::value;
        constexpr bool kInverse = decltype(inverse_c)::value;
        permute_tiles<kBytes, kInverse>(run);
      });
  TORCH_CHECK(supported, "featperm: unsupported element size ", run.element_bytes);
}

}  // namespace
}  // namespace featperm::ops

TORCH_LIBRARY_IMPL(featperm, CPU, m) {
  featperm::ops::register_block_shuffle_impls<featperm::ops::cpu_block_kernel>(m);
}
