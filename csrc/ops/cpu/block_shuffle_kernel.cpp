// Block-wise shuffle on the CPU: parallel over tiles (blocks of one block row, or whole block
// rows of one sample when a row fits), every output element read straight from its source
// element, outputs written in memory order. Out of place there is no staging; in place each tile
// is first copied to a dense per-task stage and the same loops read from the stage.
//
// Two loop shapes, chosen by the source's memory order:
//  - rows (W innermost, contiguous NCHW): output row (ch', r') interleaves M source rows, one
//    per column in block c': out[b*M + c'] = src_row(c')[b*M + c], c the column that source
//    element has in its block. With AVX-512 VBMI and M*bytes dividing 64, 64 bytes of output
//    are M byte permutes (vpermb) of the same 64 bytes of the M source rows. Output channels are
//    written one after another, each channel's rows of the tile in memory order;
//  - pixels (channels innermost, channels_last): the C*M*M outputs of a block are read through
//    a table of source offsets, in output order.
// Both build their per-key tables once per call from the source's strides, so that the same
// loops serve every memory format; the portable loops (any strides, any M) are the fallback.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "ops/block_shuffle.h"
#include "ops/common/block_permutation.h"
#include "ops/cpu/cpu_features.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#include <immintrin.h>
#define FEATPERM_HAVE_AVX512_BLOCK_KERNEL 1
#define FEATPERM_TARGET_AVX512 __attribute__((target("avx512f,avx512bw,avx512vbmi")))
#endif

namespace featperm::ops {
namespace {

// Bytes of one tile: the tile, its output and (in place) its stage stay in a core's L2.
constexpr int64_t kTileBytes = 256 * 1024;
constexpr int64_t kVectorBytes = 64;
// Vector row loops: M <= 16 (per-row arrays of M sources on the stack).
constexpr int64_t kMaxVectorBlockSize = 16;

// Memory view of one tile (or of its stage): the origin of the tile's first block and strides.
template <typename Word>
struct TileView {
  Word* origin;
  int64_t c, h, w;  // element strides
};

// Key index k = (r*M + c)*C + ch (block_permutation.h) of the element that output key index k
// takes: v[k] to encrypt, v^-1[k] to decrypt (both directions are gathers).
std::vector<uint32_t> source_keys(const BlockRun& run) {
  const int64_t* key = run.key->const_data_ptr<int64_t>();
  const auto positions = static_cast<uint32_t>(run.c * run.block_size * run.block_size);
  std::vector<uint32_t> source(positions);
  for (uint32_t k = 0; k < positions; ++k) {
    const uint32_t vk = clamp_key_entry(key[k], positions);
    if (run.inverse) {
      source[vk] = k;
    } else {
      source[k] = vk;
    }
  }
  return source;
}

// Lanes [begin, end) of a 64-byte vector (0 <= begin <= end <= 64).
uint64_t byte_range(int64_t begin, int64_t end) {
  const uint64_t below_end = end >= 64 ? ~uint64_t{0} : (uint64_t{1} << end) - 1;
  const uint64_t below_begin = (uint64_t{1} << begin) - 1;
  return below_end & ~below_begin;
}

template <typename Word>
class BlockPermuter {
 public:
  // One tile: `block_rows` block rows of `columns` columns, from the block row at in/out.
  struct Tile {
    TileView<const Word> in;
    TileView<Word> out;
    int64_t columns, block_rows;
  };

  BlockPermuter(const BlockRun& run, bool vector)
      : run_(run),
        C_(run.c),
        M_(run.block_size),
        blocks_per_row_(run.w / run.block_size),
        block_rows_(run.h / run.block_size),
        rows_(!run.channels_inner),
        staged_(run.src == run.dst) {
    // Tile: as many blocks of a block row as fit kTileBytes (a multiple of one vector of words
    // when the row is split), and then as many whole block rows: full-width tiles of several
    // block rows write each output channel's rows (NCHW) in longer runs.
    const int64_t block_bytes = C_ * M_ * M_ * int64_t{sizeof(Word)};
    tile_blocks_ = std::clamp<int64_t>(kTileBytes / block_bytes, 1, blocks_per_row_);
    const int64_t lanes = kVectorBytes / int64_t{sizeof(Word)};
    if (tile_blocks_ < blocks_per_row_ && lanes % M_ == 0 && tile_blocks_ * M_ > lanes) {
      tile_blocks_ = tile_blocks_ * M_ / lanes * lanes / M_;
    }
    tile_block_rows_ = tile_blocks_ == blocks_per_row_
                           ? std::clamp<int64_t>(kTileBytes / (block_bytes * blocks_per_row_), 1, block_rows_)
                           : 1;
    tiles_per_row_ = (blocks_per_row_ + tile_blocks_ - 1) / tile_blocks_;
    tile_rows_per_sample_ = (block_rows_ + tile_block_rows_ - 1) / tile_block_rows_;
    tile_columns_ = tile_blocks_ * M_;
    // Staged tiles are read from a dense stage: (ch, image row, column) for rows, (image row,
    // column, ch) for pixels.
    const int64_t stage_rows = tile_block_rows_ * M_;
    source_strides_ = staged_ ? (rows_ ? Strides4{0, stage_rows * tile_columns_, tile_columns_, 1}
                                       : Strides4{0, 1, tile_columns_ * C_, C_})
                              : run.src_strides;
    const Strides4& s = source_strides_;
    const Strides4& d = run.dst_strides;
    const std::vector<uint32_t> source = source_keys(run);
    // Decodes key indices into (row, column, channel) in the block.
    const TileLayout block(static_cast<uint32_t>(C_), static_cast<uint32_t>(M_), 1, false);
    if (rows_) {
      // Entry (ch', r', c') in output-row order: source row offset and source column.
      row_offset_.resize(source.size());
      row_column_.resize(source.size());
      for (int64_t ch = 0; ch < C_; ++ch) {
        for (int64_t r = 0; r < M_; ++r) {
          for (int64_t c = 0; c < M_; ++c) {
            const BlockCoord e = block.coord_of_key(source[(r * M_ + c) * C_ + ch]);
            const int64_t entry = (ch * M_ + r) * M_ + c;
            row_offset_[entry] = e.ch * s.c + e.r * s.h;
            row_column_[entry] = e.c;
          }
        }
      }
      vector_ = vector && s.w == 1 && d.w == 1 && lanes % M_ == 0 && M_ <= kMaxVectorBlockSize;
      if (vector_) {
        // Byte lanes of column-in-block c of a 64-byte chunk (chunks start on a block boundary).
        column_lanes_.assign(M_, 0);
        for (int64_t p = 0; p < kVectorBytes; ++p) column_lanes_[p / int64_t{sizeof(Word)} % M_] |= uint64_t{1} << p;
        // Output lane p of column c' reads lane p + (c - c') * bytes for source column c.
        row_shift_.resize(row_column_.size());
        for (size_t e = 0; e < row_column_.size(); ++e) {
          row_shift_[e] = static_cast<uint8_t>(row_column_[e] - static_cast<int64_t>(e % M_) + M_ - 1);
        }
        for (int64_t shift = 0; shift < 2 * M_ - 1; ++shift) {
          for (int64_t p = 0; p < kVectorBytes; ++p) {
            shift_index_[shift][p] = static_cast<uint8_t>(p + (shift - M_ + 1) * int64_t{sizeof(Word)});
          }
        }
      }
    } else {
      // Entry k' in output order (r', c', ch'): source offset from the block's origin.
      pixel_offset_.resize(source.size());
      for (size_t k = 0; k < source.size(); ++k) {
        const BlockCoord e = block.coord_of_key(source[k]);
        pixel_offset_[k] = e.r * s.h + e.c * s.w + e.ch * s.c;
      }
      // Output runs: the M*C values of a block's image row when pixels are adjacent, else the C
      // values of one pixel. (Scalar loads: AVX-512 gathers were no faster on the processor
      // measured; see benchmarks/results/README.md.)
      pixel_run_ = (d.c == 1 && d.w == C_) ? M_ * C_ : C_;
    }
  }

  int64_t tiles() const { return run_.n * tile_rows_per_sample_ * tiles_per_row_; }
  int64_t tile_bytes() const { return C_ * M_ * tile_block_rows_ * tile_columns_ * int64_t{sizeof(Word)}; }
  int64_t stage_elements() const { return staged_ ? C_ * M_ * tile_block_rows_ * tile_columns_ : 0; }

  Tile tile_at(int64_t tile) const {
    const int64_t tile_column = tile % tiles_per_row_, rest = tile / tiles_per_row_;
    const int64_t first_block_row = rest % tile_rows_per_sample_ * tile_block_rows_, n = rest / tile_rows_per_sample_;
    const int64_t first_block = tile_column * tile_blocks_;
    const Strides4 &is = run_.src_strides, &os = run_.dst_strides;
    const int64_t in_origin = n * is.n + first_block_row * M_ * is.h + first_block * M_ * is.w;
    const int64_t out_origin = n * os.n + first_block_row * M_ * os.h + first_block * M_ * os.w;
    return {{static_cast<const Word*>(run_.src) + in_origin, is.c, is.h, is.w},
            {static_cast<Word*>(run_.dst) + out_origin, os.c, os.h, os.w},
            std::min(tile_blocks_, blocks_per_row_ - first_block) * M_,
            std::min(tile_block_rows_, block_rows_ - first_block_row)};
  }

  void permute_tile(const Tile& t, Word* stage) const {
    TileView<const Word> in = t.in;
    if (staged_) {
      stage_tile(t, stage);
      in = {stage, source_strides_.c, source_strides_.h, source_strides_.w};
    }
    if (rows_) {
      permute_rows(in, t.out, t.columns, t.block_rows);
    } else {
      for (int64_t g = 0; g < t.block_rows; ++g) {
        const TileView<const Word> in_row{in.origin + g * M_ * in.h, in.c, in.h, in.w};
        const TileView<Word> out_row{t.out.origin + g * M_ * t.out.h, t.out.c, t.out.h, t.out.w};
        permute_pixels(in_row, out_row, t.columns / M_);
      }
    }
  }

 private:
  // Copies the tile into the dense stage (source_strides_).
  void stage_tile(const Tile& t, Word* stage) const {
    const TileView<const Word>& in = t.in;
    const Strides4& s = source_strides_;
    const int64_t image_rows = t.block_rows * M_, columns = t.columns;
    if (rows_) {
      // A channel's rows are one run when they are adjacent in the tile and in the stage.
      const bool channel_run = in.w == 1 && in.h == columns && s.h == columns;
      for (int64_t ch = 0; ch < C_; ++ch) {
        if (channel_run) {
          copy_run(in.origin + ch * in.c, 1, image_rows * columns, stage + ch * s.c);
          continue;
        }
        for (int64_t r = 0; r < image_rows; ++r) {
          copy_run(in.origin + ch * in.c + r * in.h, in.w, columns, stage + ch * s.c + r * s.h);
        }
      }
      return;
    }
    for (int64_t r = 0; r < image_rows; ++r) {
      if (in.c == 1 && in.w == C_) {
        copy_run(in.origin + r * in.h, 1, columns * C_, stage + r * s.h);
        continue;
      }
      for (int64_t col = 0; col < columns; ++col) {
        copy_run(in.origin + r * in.h + col * in.w, in.c, C_, stage + r * s.h + col * s.w);
      }
    }
  }
  static void copy_run(const Word* in, int64_t stride, int64_t count, Word* out) {
    if (stride == 1 && count * int64_t{sizeof(Word)} >= 512) {
      std::memcpy(out, in, count * sizeof(Word));  // a call pays off for long runs only
    } else {
      for (int64_t j = 0; j < count; ++j) out[j] = in[j * stride];
    }
  }

  // Output rows, channel by channel (each output channel's rows in memory order).
  void permute_rows(const TileView<const Word>& in, const TileView<Word>& out, int64_t columns,
                    int64_t block_rows) const {
#ifdef FEATPERM_HAVE_AVX512_BLOCK_KERNEL
    if (vector_) {
      switch (M_) {  // the paper's block sizes with the loops over columns in block unrolled
        case 2: interleave_rows_avx512<2>(in, out, columns, block_rows); break;
        case 4: interleave_rows_avx512<4>(in, out, columns, block_rows); break;
        default: interleave_rows_avx512<0>(in, out, columns, block_rows); break;
      }
      return;
    }
#endif
    for (int64_t ch = 0; ch < C_; ++ch) {
      for (int64_t g = 0; g < block_rows; ++g) {
        for (int64_t r = 0; r < M_; ++r) {
          const int64_t entry = (ch * M_ + r) * M_;
          Word* out_row = out.origin + ch * out.c + (g * M_ + r) * out.h;
          for (int64_t c = 0; c < M_; ++c) {
            const Word* src = in.origin + g * M_ * in.h + row_offset_[entry + c] + row_column_[entry + c] * in.w;
            for (int64_t col = c; col < columns; col += M_) out_row[col * out.w] = src[(col - c) * in.w];
          }
        }
      }
    }
  }

  void permute_pixels(const TileView<const Word>& in, const TileView<Word>& out, int64_t blocks) const {
    const int64_t runs = C_ * M_ * M_ / pixel_run_, pixels_per_run = pixel_run_ / C_;
    for (int64_t b = 0; b < blocks; ++b) {
      const Word* in_block = in.origin + b * M_ * in.w;
      Word* out_block = out.origin + b * M_ * out.w;
      for (int64_t q = 0; q < runs; ++q) {
        const int64_t pixel = q * pixels_per_run;  // r' * M + c'
        Word* out_run = out_block + pixel / M_ * out.h + pixel % M_ * out.w;
        const int64_t* offset = pixel_offset_.data() + q * pixel_run_;
        if (pixels_per_run > 1 || out.c == 1) {  // the run is contiguous
          for (int64_t j = 0; j < pixel_run_; ++j) out_run[j] = in_block[offset[j]];
        } else {
          for (int64_t j = 0; j < pixel_run_; ++j) out_run[j * out.c] = in_block[offset[j]];
        }
      }
    }
  }

#ifdef FEATPERM_HAVE_AVX512_BLOCK_KERNEL
  // Output row (ch', r'), column b*M + c' takes source row (ch', r', c') (an entry of the row
  // tables) at column b*M + c, c that entry's source column. Per 64 bytes of output and per c':
  // one load of the source row at the same columns and one vpermb into the lanes of column c',
  // with indices shifted by c - c' columns (they stay inside a block). When a row is narrower
  // than a vector and the M rows of a block row are adjacent in the output, R = 64 / row bytes
  // rows share a vector (masked loads of each row's lanes), so that narrow rows fill vectors.
  // A row of 8, 16 or 32 bytes repeated across a vector. (Packing R = 64 / row bytes rows needs
  // R to divide M <= 16 and a row to hold M words, so narrower rows never pack.)
  FEATPERM_TARGET_AVX512 static __m512i broadcast_row(const Word* row, int64_t row_bytes) {
    if (row_bytes == 32) return _mm512_broadcast_i64x4(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(row)));
    if (row_bytes == 16) return _mm512_broadcast_i32x4(_mm_loadu_si128(reinterpret_cast<const __m128i*>(row)));
    int64_t bits;
    std::memcpy(&bits, row, 8);
    return _mm512_set1_epi64(bits);
  }

  template <int kM>  // 0: M known at run time only
  FEATPERM_TARGET_AVX512 void interleave_rows_avx512(const TileView<const Word>& in, const TileView<Word>& out,
                                                     int64_t columns, int64_t block_rows) const {
    const int64_t M = kM ? kM : M_;
    const int64_t row_bytes = columns * int64_t{sizeof(Word)};
    const bool packed = out.h == columns && row_bytes >= 8 && row_bytes < kVectorBytes &&
                        kVectorBytes % row_bytes == 0 && M % (kVectorBytes / row_bytes) == 0;
    const int64_t rows_per_vector = packed ? kVectorBytes / row_bytes : 1;
    __mmask64 lanes[kMaxVectorBlockSize];
    for (int64_t c = 0; c < M; ++c) lanes[c] = column_lanes_[c];
    // Packed: source j = i*M + c of a vector (row i, column c) is its source row broadcast to
    // every row slot of the vector (no masked, line-splitting loads), permuted into the lanes of
    // (row i, column c).
    const int64_t sources_per_vector = rows_per_vector * M;
    __mmask64 store_lanes[kVectorBytes];
    for (int64_t j = 0; packed && j < sources_per_vector; ++j) {
      store_lanes[j] = byte_range(j / M * row_bytes, (j / M + 1) * row_bytes) & lanes[j % M];
    }
    for (int64_t ch = 0; ch < C_; ++ch) {
      for (int64_t g = 0; g < block_rows; ++g) {
        const Word* in_block_row = in.origin + g * M * in.h;
        for (int64_t r0 = 0; r0 < M; r0 += rows_per_vector) {
          const int64_t first = (ch * M + r0) * M;
          auto* o = reinterpret_cast<uint8_t*>(out.origin + ch * out.c + (g * M + r0) * out.h);
          if (packed) {
            const int64_t* offset = row_offset_.data() + first;
            const uint8_t* shift = row_shift_.data() + first;
            // Zero-masked permutes ORed together: independent, rather than a chain of merges.
            __m512i v = _mm512_setzero_si512();
            for (int64_t j = 0; j < sources_per_vector; ++j) {
              const __m512i row = broadcast_row(in_block_row + offset[j], row_bytes);
              v = _mm512_or_si512(v, _mm512_maskz_permutexvar_epi8(store_lanes[j], _mm512_load_si512(shift_index_[shift[j]]), row));
            }
            _mm512_storeu_si512(o, v);
            continue;
          }
          const uint8_t* src[kMaxVectorBlockSize];
          __m512i index[kMaxVectorBlockSize];
          for (int64_t c = 0; c < M; ++c) {
            src[c] = reinterpret_cast<const uint8_t*>(in_block_row + row_offset_[first + c]);
            index[c] = _mm512_load_si512(shift_index_[row_shift_[first + c]]);
          }
          int64_t at = 0;
          for (; at + kVectorBytes <= row_bytes; at += kVectorBytes) {
            __m512i v = _mm512_maskz_permutexvar_epi8(lanes[0], index[0], _mm512_loadu_si512(src[0] + at));
            for (int64_t c = 1; c < M; ++c) {
              v = _mm512_or_si512(v, _mm512_maskz_permutexvar_epi8(lanes[c], index[c], _mm512_loadu_si512(src[c] + at)));
            }
            _mm512_storeu_si512(o + at, v);
          }
          if (at < row_bytes) {  // a whole number of blocks: the masked loads stay inside the rows
            const __mmask64 tail = byte_range(0, row_bytes - at);
            __m512i v = _mm512_maskz_permutexvar_epi8(lanes[0], index[0], _mm512_maskz_loadu_epi8(tail, src[0] + at));
            for (int64_t c = 1; c < M; ++c) {
              v = _mm512_mask_permutexvar_epi8(v, lanes[c], index[c], _mm512_maskz_loadu_epi8(tail, src[c] + at));
            }
            _mm512_mask_storeu_epi8(o + at, tail, v);
          }
        }
      }
    }
  }
#endif

  const BlockRun& run_;
  const int64_t C_, M_, blocks_per_row_, block_rows_;
  const bool rows_, staged_;
  bool vector_ = false;
  int64_t tile_blocks_ = 1, tile_block_rows_ = 1, tiles_per_row_ = 1, tile_rows_per_sample_ = 1, tile_columns_ = 1;
  Strides4 source_strides_{};
  std::vector<int64_t> row_offset_, row_column_, pixel_offset_;
  std::vector<uint8_t> row_shift_;  // per row entry: source column - output column + M - 1
  alignas(64) uint8_t shift_index_[2 * kMaxVectorBlockSize - 1][kVectorBytes];  // vpermb indices per shift
  std::vector<uint64_t> column_lanes_;
  int64_t pixel_run_ = 1;
};

template <typename Word>
void permute_blocks(const BlockRun& run) {
#ifdef FEATPERM_HAVE_AVX512_BLOCK_KERNEL
  const bool vector = cpu::active_isa() == cpu::Isa::kAvx512Gfni;
#else
  const bool vector = false;
#endif
  BlockPermuter<Word> permuter(run, vector);
  const int64_t grain = std::max<int64_t>(1, kTileBytes / permuter.tile_bytes());
  at::parallel_for(0, permuter.tiles(), grain, [&](int64_t begin, int64_t end) {
    std::vector<Word> stage(permuter.stage_elements());
    for (int64_t tile = begin; tile < end; ++tile) permuter.permute_tile(permuter.tile_at(tile), stage.data());
  });
}

void cpu_block_kernel(const at::Tensor&, const BlockRun& run) {
  switch (run.element_bytes) {
    case 1: permute_blocks<uint8_t>(run); return;
    case 2: permute_blocks<uint16_t>(run); return;
    case 4: permute_blocks<uint32_t>(run); return;
    case 8: permute_blocks<uint64_t>(run); return;
    default: TORCH_CHECK(false, "featperm: unsupported element size ", run.element_bytes);
  }
}

}  // namespace
}  // namespace featperm::ops

TORCH_LIBRARY_IMPL(featperm, CPU, m) {
  featperm::ops::register_block_shuffle_impls<featperm::ops::cpu_block_kernel>(m);
}
