// Block-wise shuffle on the CPU: parallel over tiles of T adjacent blocks of one block row.
// Each task copies a tile into a staging buffer in the tensor's memory order and writes it back
// with one side permuted (ops/common/block_permutation.h), so reads and writes run along memory
// (whole rows of W values for NCHW, whole pixels of C values for channels_last) and only the
// accesses to the staging buffer, which stays in cache, are random.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <vector>

#include "ops/block_shuffle.h"
#include "ops/common/block_permutation.h"

namespace featperm::ops {
namespace {

// Staging buffer per task: small enough to stay in a core's L2 beside the rows it is copied from.
constexpr int64_t kStageBytes = 128 * 1024;
// Bytes per parallel task.
constexpr int64_t kGrainBytes = 256 * 1024;

// Calls f(i, permuted, ch, r, column) for every element of a tile of `blocks` blocks, in load
// order: i is the element's staging position and permuted = slot(v[k]) + b*S its partner's
// (`partner[k]` = slot(v[k]), precomputed per call).
template <bool ChannelsInner, typename F>
inline void visit_tile(const TileLayout& layout, const uint32_t* partner, uint32_t blocks, F&& f) {
  const uint32_t C = layout.C(), M = layout.M(), TW = layout.TW(), S = layout.block_step();
  if constexpr (!ChannelsInner) {
    for (uint32_t ch = 0; ch < C; ++ch) {
      for (uint32_t r = 0; r < M; ++r) {
        const uint32_t row = (ch * M + r) * TW;
        const uint32_t* row_partner = partner + r * M * C + ch;  // + c*C: key index (r*M+c)*C+ch
        for (uint32_t b = 0; b < blocks; ++b) {
          for (uint32_t c = 0; c < M; ++c) {
            const uint32_t column = b * M + c;
            f(row + column, row_partner[c * C] + b * S, ch, r, column);
          }
        }
      }
    }
  } else {
    for (uint32_t r = 0; r < M; ++r) {
      for (uint32_t b = 0; b < blocks; ++b) {
        for (uint32_t c = 0; c < M; ++c) {
          const uint32_t column = b * M + c;
          const uint32_t pixel = (r * TW + column) * C;
          const uint32_t* pixel_partner = partner + (r * M + c) * C;
          for (uint32_t ch = 0; ch < C; ++ch) f(pixel + ch, pixel_partner[ch] + b * S, ch, r, column);
        }
      }
    }
  }
}

template <int Bytes, bool Inverse, bool ChannelsInner>
void permute_tiles(const BlockRun& run) {
  using Word = typename WordOf<Bytes>::type;
  const int64_t m = run.block_size;
  const int64_t blocks_per_row = run.w / m, block_rows = run.h / m;
  const int64_t block_elements = run.c * m * m;
  const int64_t blocks_per_tile = std::clamp<int64_t>(kStageBytes / (block_elements * Bytes), 1, blocks_per_row);
  const TileLayout layout(static_cast<uint32_t>(run.c), static_cast<uint32_t>(m),
                          static_cast<uint32_t>(blocks_per_tile), ChannelsInner);
  const int64_t tiles_per_row = (blocks_per_row + blocks_per_tile - 1) / blocks_per_tile;
  const int64_t tiles = run.n * block_rows * tiles_per_row;

  std::vector<uint32_t> partner(block_elements);
  const int64_t* key = run.key->const_data_ptr<int64_t>();
  for (int64_t k = 0; k < block_elements; ++k) {
    partner[k] = layout.slot(clamp_key_entry(key[k], static_cast<uint32_t>(block_elements)));
  }

  const Word* src = static_cast<const Word*>(run.src);
  Word* dst = static_cast<Word*>(run.dst);
  const Strides4 is = run.src_strides, os = run.dst_strides;
  const int64_t tile_bytes = static_cast<int64_t>(layout.tile_elements()) * Bytes;
  const int64_t grain = std::max<int64_t>(1, kGrainBytes / tile_bytes);
  at::parallel_for(0, tiles, grain, [&](int64_t begin, int64_t end) {
    std::vector<Word> stage(layout.tile_elements());
    Word* st = stage.data();
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t tile_col = tile % tiles_per_row;
      const int64_t rest = tile / tiles_per_row;
      const int64_t block_row = rest % block_rows, n = rest / block_rows;
      const int64_t first_block = tile_col * blocks_per_tile;
      const auto blocks = static_cast<uint32_t>(std::min(blocks_per_tile, blocks_per_row - first_block));
      const Word* in = src + n * is.n + block_row * m * is.h + first_block * m * is.w;
      Word* out = dst + n * os.n + block_row * m * os.h + first_block * m * os.w;
      visit_tile<ChannelsInner>(layout, partner.data(), blocks,
                                [&](uint32_t i, uint32_t permuted, uint32_t ch, uint32_t r, uint32_t col) {
                                  st[load_position<Inverse>(i, permuted)] = in[ch * is.c + r * is.h + col * is.w];
                                });
      visit_tile<ChannelsInner>(layout, partner.data(), blocks,
                                [&](uint32_t i, uint32_t permuted, uint32_t ch, uint32_t r, uint32_t col) {
                                  out[ch * os.c + r * os.h + col * os.w] = st[store_position<Inverse>(i, permuted)];
                                });
    }
  });
}

void cpu_block_kernel(const at::Tensor&, const BlockRun& run) {
  const bool supported = dispatch_word_bytes_and_direction(
      run.element_bytes, run.inverse, [&](auto bytes_c, auto inverse_c) {
        constexpr int kBytes = decltype(bytes_c)::value;
        constexpr bool kInverse = decltype(inverse_c)::value;
        if (run.channels_inner) {
          permute_tiles<kBytes, kInverse, true>(run);
        } else {
          permute_tiles<kBytes, kInverse, false>(run);
        }
      });
  TORCH_CHECK(supported, "featperm: unsupported element size ", run.element_bytes);
}

}  // namespace
}  // namespace featperm::ops

TORCH_LIBRARY_IMPL(featperm, CPU, m) {
  featperm::ops::register_block_shuffle_impls<featperm::ops::cpu_block_kernel>(m);
}
