// Block-wise shuffle on the CPU: parallel over tiles (blocks of one block row, or whole block
// rows of one sample when a row fits), outputs written in memory order.
//
// Two loop shapes, chosen by the source's memory order:
//  - rows (W innermost, contiguous NCHW): output row (ch', r') interleaves M source rows, one
//    per column in block c': out[b*M + c'] = src_row(c')[b*M + c], c the column that source
//    element has in its block. With AVX-512 VBMI (M*bytes dividing 64, M <= 16) this is two
//    byte permutes (vpermb) per 64 bytes and no per-element work:
//      1. stage: one block row at a time (C*M source rows), every 64-byte chunk of a row is
//         copied to a per-task stage with its bytes grouped by column in block ("pieces": the
//         chunk's elements of column c, in block order) -- one fixed permute per chunk;
//      2. assemble: a 64-byte chunk of output row (ch', r') is its M pieces (one per c', each
//         the piece of the source row and column the key names, at the same chunk position),
//         loaded side by side with masked broadcasts and interleaved by the inverse permute.
//    Rows narrower than 64 bytes are packed R = 64 / row bytes to a chunk when R divides M.
//    Without VBMI (or with other M or strides): strided loops over the same rows;
//  - pixels (channels innermost, channels_last): the C*M*M outputs of a block are read through
//    a table of source offsets, in output order.
// Per-key tables are built once per call from the source's (or the stage's) strides, so that the
// same loops serve every memory format. In place, a tile (or block row) is always staged before
// it is written.
#include <ATen/Parallel.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <memory>
#include <type_traits>
#include <utility>
#include <vector>

#include "ops/block_shuffle.h"
#include "ops/common/block_permutation.h"
#include "ops/cpu/avx512_bytes.h"
#include "ops/cpu/cpu_features.h"


namespace featperm::ops {
namespace {

// Bytes of one tile: the tile, its output and (in place) its stage stay in a core's L2.
constexpr int64_t kTileBytes = 256 * 1024;
// Chunked row loops out of place: output channels prefetched ahead of the one being written.
constexpr int64_t kPrefetchChannels = 8;
// Chunked row loops: when a channel's M rows of a block row are shorter than this, a whole tile
// is staged at a time. Measured on the benchmark's shapes (float32, one thread), against staging
// every block row on its own: 15-30% faster for M rows of 64-512 bytes (the stage pass then reads
// each channel's rows of the tile as one run, like a memcpy), the same for 1 KiB.
constexpr int64_t kShortChannelRunBytes = 1024;
constexpr int64_t kVectorBytes = 64;
// Chunked row loops: M <= 16 (at most 16 pieces per row chunk; larger blocks take the portable loops).
constexpr int64_t kMaxVectorBlockSize = 16;

// Memory view of one tile (or of its stage): the origin of the tile's first block and strides.
template <typename Word>
struct TileView {
  Word* origin;
  int64_t c, h, w;  // element strides
};

// f(r, c, ch) for every key index k = (r*M + c)*C + ch (block_permutation.h), in key order:
// the key's coordinates without a division per entry.
template <typename T, typename F>
std::vector<T> per_key_index(int64_t C, int64_t M, F f) {
  std::vector<T> table(C * M * M);
  auto it = table.begin();
  for (int64_t r = 0; r < M; ++r) {
    for (int64_t c = 0; c < M; ++c) {
      for (int64_t ch = 0; ch < C; ++ch) *it++ = static_cast<T>(f(r, c, ch));
    }
  }
  return table;
}

// A per-output table in `entry` order: table[entry[k]] = source_value[s] for every output key
// index k and the source key index s it takes: s = v[k] to encrypt, and k = v[s] to decrypt
// (both directions are gathers).
template <typename T>
std::vector<T> table_by_source(const BlockRun& run, const std::vector<uint32_t>& entry,
                               const std::vector<T>& source_value) {
  const int64_t* key = run.key->const_data_ptr<int64_t>();
  const auto positions = static_cast<uint32_t>(entry.size());
  std::vector<T> table(positions);
  for (uint32_t k = 0; k < positions; ++k) {
    const uint32_t vk = clamp_key_entry(key[k], positions);
    if (run.inverse) {
      table[entry[vk]] = source_value[k];
    } else {
      table[entry[k]] = source_value[vk];
    }
  }
  return table;
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
        rows_(!run.channels_inner) {
    // Tile: as many blocks of a block row as fit kTileBytes (a multiple of one vector of words
    // when the row is split), and then as many whole block rows: full-width tiles of several
    // block rows write each output channel's rows (NCHW) in longer runs.
    const int64_t block_bytes = C_ * M_ * M_ * kWordBytes;
    tile_blocks_ = std::clamp<int64_t>(kTileBytes / block_bytes, 1, blocks_per_row_);
    const int64_t lanes = kVectorBytes / kWordBytes;
    if (tile_blocks_ < blocks_per_row_ && lanes % M_ == 0 && tile_blocks_ * M_ > lanes) {
      tile_blocks_ = tile_blocks_ * M_ / lanes * lanes / M_;
    }
    tile_block_rows_ = tile_blocks_ == blocks_per_row_
                           ? std::clamp<int64_t>(kTileBytes / (block_bytes * blocks_per_row_), 1, block_rows_)
                           : 1;
    tiles_per_row_ = (blocks_per_row_ + tile_blocks_ - 1) / tile_blocks_;
    tile_rows_per_sample_ = (block_rows_ + tile_block_rows_ - 1) / tile_block_rows_;
    tile_columns_ = tile_blocks_ * M_;
    // Output tables are in output-row order (ch', r', c') for rows, key order for pixels.
    const std::vector<uint32_t> entry = per_key_index<uint32_t>(C_, M_, [&](int64_t r, int64_t c, int64_t ch) {
      return rows_ ? (ch * M_ + r) * M_ + c : (r * M_ + c) * C_ + ch;
    });
    const Strides4& d = run.dst_strides;
#ifdef FEATPERM_HAVE_AVX512_VBMI
    chunked_ = vector && rows_ && run.src_strides.w == 1 && d.w == 1 && lanes % M_ == 0 &&
               M_ <= kMaxVectorBlockSize;
    if (chunked_) {
      plan_chunks(entry);
      if (chunked_) return;
    }
#else
    (void)vector;
#endif
    // Portable loops. Staged (in place) tiles are read from a dense stage: (ch, image row,
    // column) for rows, (image row, column, ch) for pixels.
    staged_ = run.src == run.dst;
    const int64_t stage_rows = tile_block_rows_ * M_;
    source_strides_ = staged_ ? (rows_ ? Strides4{0, stage_rows * tile_columns_, tile_columns_, 1}
                                       : Strides4{0, 1, tile_columns_ * C_, C_})
                              : run.src_strides;
    stage_bytes_ = staged_ ? C_ * stage_rows * tile_columns_ * kWordBytes : 0;
    const Strides4& s = source_strides_;
    // Per output entry: the offset of its source element from the origin of the block.
    source_offset_ = table_by_source(run, entry, per_key_index<int64_t>(C_, M_, [&](int64_t r, int64_t c, int64_t ch) {
      return ch * s.c + r * s.h + c * s.w;
    }));
    if (!rows_) {
      // Output runs: the M*C values of a block's image row when pixels are adjacent, else the C
      // values of one pixel. (Scalar loads: AVX-512 gathers were no faster on the processor
      // measured; see benchmarks/results/README.md.)
      pixel_run_ = (d.c == 1 && d.w == C_) ? M_ * C_ : C_;
    }
  }

  int64_t tiles() const { return run_.n * tile_rows_per_sample_ * tiles_per_row_; }
  int64_t tile_bytes() const { return C_ * M_ * tile_block_rows_ * tile_columns_ * kWordBytes; }
  // Bytes of the per-task stage (64-byte aligned by the caller); 0 when tiles are not staged.
  int64_t stage_bytes() const { return stage_bytes_; }

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

  void permute_tile(const Tile& t, uint8_t* stage) const {
#ifdef FEATPERM_HAVE_AVX512_VBMI
    if (chunked_) {
      // Block rows staged and assembled stage_block_rows_ at a time: the stage holds every
      // source of their outputs, stays in L1/L2 while they are assembled and, in place, is
      // taken before they are written.
      for (int64_t g = 0; g < t.block_rows; g += stage_block_rows_) {
        const int64_t n = std::min(stage_block_rows_, t.block_rows - g);
        const TileView<const Word> in{t.in.origin + g * M_ * t.in.h, t.in.c, t.in.h, t.in.w};
        const TileView<Word> out{t.out.origin + g * M_ * t.out.h, t.out.c, t.out.h, t.out.w};
        stage_pieces(in, t.columns, n, stage);
        switch (piece_bytes_) {
          case 1: assemble_rows<1>(stage, out, t.columns, n); break;
          case 2: assemble_rows<2>(stage, out, t.columns, n); break;
          case 4: assemble_rows<4>(stage, out, t.columns, n); break;
          case 8: assemble_rows<8>(stage, out, t.columns, n); break;
          case 16: assemble_rows<16>(stage, out, t.columns, n); break;
          case 32: assemble_rows<32>(stage, out, t.columns, n); break;
          default: assemble_rows<64>(stage, out, t.columns, n); break;
        }
      }
      return;
    }
#endif
    TileView<const Word> in = t.in;
    if (staged_) {
      Word* words = reinterpret_cast<Word*>(stage);
      stage_tile(t, words);
      in = {words, source_strides_.c, source_strides_.h, source_strides_.w};
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
  static constexpr int64_t kWordBytes = sizeof(Word);

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
    if (stride == 1 && count * kWordBytes >= 512) {
      std::memcpy(out, in, count * sizeof(Word));  // a call pays off for long runs only
    } else {
      for (int64_t j = 0; j < count; ++j) out[j] = in[j * stride];
    }
  }

  // Output rows, channel by channel (each output channel's rows in memory order).
  void permute_rows(const TileView<const Word>& in, const TileView<Word>& out, int64_t columns,
                    int64_t block_rows) const {
    for (int64_t ch = 0; ch < C_; ++ch) {
      for (int64_t g = 0; g < block_rows; ++g) {
        for (int64_t r = 0; r < M_; ++r) {
          const int64_t entry = (ch * M_ + r) * M_;
          Word* out_row = out.origin + ch * out.c + (g * M_ + r) * out.h;
          for (int64_t c = 0; c < M_; ++c) {
            const Word* src = in.origin + g * M_ * in.h + source_offset_[entry + c];
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
        const int64_t* offset = source_offset_.data() + q * pixel_run_;
        if (pixels_per_run > 1 || out.c == 1) {  // the run is contiguous
          for (int64_t j = 0; j < pixel_run_; ++j) out_run[j] = in_block[offset[j]];
        } else {
          for (int64_t j = 0; j < pixel_run_; ++j) out_run[j * out.c] = in_block[offset[j]];
        }
      }
    }
  }

#ifdef FEATPERM_HAVE_AVX512_VBMI
  // The stage of the chunked row loops: per channel, the M image rows of one block row (or of
  // every block row of the tile), each padded to whole 64-byte chunks (or R = 64 / row bytes
  // rows to a chunk), every chunk's bytes in piece order (row in chunk i, column in block c,
  // block b, byte t) instead of (i, b, c, t).
  void plan_chunks(const std::vector<uint32_t>& entry) {
    const int64_t row_bytes = tile_columns_ * kWordBytes;
    const int64_t packable = kVectorBytes / std::max<int64_t>(row_bytes, 1);
    rows_per_chunk_ = (tile_blocks_ == blocks_per_row_ && row_bytes < kVectorBytes && kVectorBytes % row_bytes == 0 &&
                       M_ % packable == 0 && run_.dst_strides.h == run_.w)
                          ? packable
                          : 1;
    stage_row_bytes_ = rows_per_chunk_ > 1 ? row_bytes : (row_bytes + kVectorBytes - 1) / kVectorBytes * kVectorBytes;
    // One block row at a time keeps the stage small (L1 for up to about 32 KiB), but when a
    // channel's M rows are short, its passes would hop between channels in steps too small for
    // the hardware prefetchers (and out of place, write-allocate misses follow): the whole tile
    // is staged then (in L2), and each channel's rows of the tile are written in one run.
    stage_block_rows_ = M_ * row_bytes < kShortChannelRunBytes ? tile_block_rows_ : 1;
    stage_channel_bytes_ = stage_block_rows_ * M_ * stage_row_bytes_;
    stage_bytes_ = C_ * stage_channel_bytes_;
    if (stage_bytes_ > int64_t{UINT32_MAX}) {  // 32-bit piece offsets; such tiles take the portable loops
      chunked_ = false;
      return;
    }
    const int64_t chunk_row_bytes = kVectorBytes / rows_per_chunk_;
    piece_bytes_ = chunk_row_bytes / M_;
    for (int64_t q = 0; q < kVectorBytes; ++q) {
      const int64_t i = q / chunk_row_bytes, element = q % chunk_row_bytes / kWordBytes, t = q % kWordBytes;
      const int64_t piece_position = i * chunk_row_bytes + element % M_ * piece_bytes_ + element / M_ * kWordBytes + t;
      stage_index_[piece_position] = static_cast<uint8_t>(q);  // stage byte <- source byte
      assemble_index_[q] = static_cast<uint8_t>(piece_position);  // output byte <- piece byte
    }
    // Per output entry (ch', r', c'): the stage offset of its source row's piece of its source
    // column, from the stage of the block row.
    piece_offset_ = table_by_source(run_, entry, per_key_index<uint32_t>(C_, M_, [&](int64_t r, int64_t c, int64_t ch) {
      return ch * stage_channel_bytes_ + r * stage_row_bytes_ + c * piece_bytes_;
    }));
  }

  // Step 1: the source rows of `block_rows` block rows into the stage, each chunk permuted into
  // piece order.
  // (Both steps copy members and strides to locals first: their byte stores may alias anything,
  // and the compiler would reload every member after each store.)
  FEATPERM_TARGET_VBMI void stage_pieces(const TileView<const Word>& block_row, int64_t columns, int64_t block_rows,
                                         uint8_t* stage) const {
    const __m512i index = _mm512_load_si512(stage_index_);
    const int64_t row_bytes = columns * kWordBytes, R = rows_per_chunk_, C = C_, rows = block_rows * M_;
    const int64_t in_c = block_row.c, in_h = block_row.h;
    const int64_t stage_row = stage_row_bytes_, stage_channel_bytes = stage_channel_bytes_;
    const Word* const origin = block_row.origin;
    if (R > 1 && in_h == columns) {
      // A channel's packed rows are whole chunks, adjacent in the source and in the stage.
      for (int64_t ch = 0; ch < C; ++ch) {
        const auto* in = reinterpret_cast<const uint8_t*>(origin + ch * in_c);
        uint8_t* staged = stage + ch * stage_channel_bytes;
        for (int64_t at = 0; at < rows * row_bytes; at += kVectorBytes) {
          _mm512_store_si512(staged + at, cpu::permute_bytes(index, _mm512_loadu_si512(in + at)));
        }
      }
      return;
    }
    const bool adjacent_rows = in_h == columns;  // the R rows of a chunk are one 64-byte run
    for (int64_t ch = 0; ch < C; ++ch) {
      const Word* in_channel = origin + ch * in_c;
      uint8_t* stage_channel = stage + ch * stage_channel_bytes;
      for (int64_t r = 0; r < rows; r += R) {
        const auto* in = reinterpret_cast<const uint8_t*>(in_channel + r * in_h);
        uint8_t* staged = stage_channel + r * stage_row;
        if (R > 1) {
          __m512i v = _mm512_setzero_si512();
          if (adjacent_rows) {
            v = _mm512_loadu_si512(in);
          } else {
            // Row i into lanes [i*row, (i+1)*row): the load's other lanes are masked off, never read.
            for (int64_t i = 0; i < R; ++i) {
              const auto* row = reinterpret_cast<const uint8_t*>(in_channel + (r + i) * in_h);
              v = _mm512_mask_loadu_epi8(v, byte_range(i * row_bytes, (i + 1) * row_bytes), row - i * row_bytes);
            }
          }
          _mm512_store_si512(staged, cpu::permute_bytes(index, v));
          continue;
        }
        for (int64_t at = 0; at < row_bytes; at += kVectorBytes) {
          const __m512i v = at + kVectorBytes <= row_bytes
                                ? _mm512_loadu_si512(in + at)
                                : _mm512_maskz_loadu_epi8(byte_range(0, row_bytes - at), in + at);
          _mm512_store_si512(staged + at, cpu::permute_bytes(index, v));
        }
      }
    }
  }

  // Piece j of a chunk (bytes [j*kPieceBytes, (j+1)*kPieceBytes)) from `piece`, other lanes kept.
  template <int kPieceBytes, int j>
  FEATPERM_TARGET_VBMI static __m512i load_piece(__m512i v, const uint8_t* piece) {
    if constexpr (kPieceBytes == 64) {
      return _mm512_loadu_si512(piece);
    } else if constexpr (kPieceBytes == 32) {
      const __m256i value = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(piece));
      return _mm512_mask_broadcast_i64x4(v, __mmask8(0xF << (4 * j)), value);
    } else if constexpr (kPieceBytes == 16) {
      const __m128i value = _mm_loadu_si128(reinterpret_cast<const __m128i*>(piece));
      return _mm512_mask_broadcast_i32x4(v, __mmask16(0xF << (4 * j)), value);
    } else {
      using Lane = std::conditional_t<kPieceBytes == 8, int64_t, std::conditional_t<kPieceBytes == 4, int32_t,
                   std::conditional_t<kPieceBytes == 2, int16_t, int8_t>>>;
      Lane value;
      std::memcpy(&value, piece, sizeof(Lane));
      if constexpr (kPieceBytes == 8) return _mm512_mask_set1_epi64(v, __mmask8(uint64_t{1} << j), value);
      if constexpr (kPieceBytes == 4) return _mm512_mask_set1_epi32(v, __mmask16(uint64_t{1} << j), value);
      if constexpr (kPieceBytes == 2) return _mm512_mask_set1_epi16(v, __mmask32(uint64_t{1} << j), value);
      if constexpr (kPieceBytes == 1) return _mm512_mask_set1_epi8(v, __mmask64(uint64_t{1} << j), value);
    }
  }
  template <int kPieceBytes, int... j>
  FEATPERM_TARGET_VBMI static __m512i load_pieces(const uint8_t* base, const uint32_t* offset,
                                                    std::integer_sequence<int, j...>) {
    __m512i v = _mm512_setzero_si512();
    ((v = load_piece<kPieceBytes, j>(v, base + offset[j])), ...);
    return v;
  }

  // Step 2: each 64-byte chunk of the output of `block_rows` block rows (R rows of one channel,
  // or a chunk of one row) from its 64 / kPieceBytes pieces in the stage, interleaved by one
  // permute; channel by channel, each channel's rows in memory order.
  template <int kPieceBytes>
  FEATPERM_TARGET_VBMI void assemble_rows(const uint8_t* stage, const TileView<Word>& block_row, int64_t columns,
                                          int64_t block_rows) const {
    constexpr auto pieces = std::make_integer_sequence<int, kVectorBytes / kPieceBytes>();  // R * M of them
    const __m512i index = _mm512_load_si512(assemble_index_);
    const int64_t R = rows_per_chunk_, C = C_, M = M_, stage_row = stage_row_bytes_;
    const int64_t out_c = block_row.c, out_h = block_row.h;
    const int64_t out_bytes = R > 1 ? kVectorBytes : columns * kWordBytes;  // per output chunk row
    const uint32_t* const offsets = piece_offset_.data();
    Word* const origin = block_row.origin;
    const bool prefetch_output = run_.src != run_.dst;
    for (int64_t ch = 0; ch < C; ++ch) {
      if (prefetch_output && ch + kPrefetchChannels < C) {
        // Out of place the output's lines are not cached: ask for them for writing a few channels
        // ahead (the writes hop between channels, which hardware prefetchers do not follow).
        for (int64_t r = 0; r < block_rows * M; ++r) {
          const auto* ahead = reinterpret_cast<const uint8_t*>(origin + (ch + kPrefetchChannels) * out_c + r * out_h);
          for (int64_t at = 0; at < columns * kWordBytes; at += kVectorBytes) __builtin_prefetch(ahead + at, 1);
        }
      }
      for (int64_t g = 0; g < block_rows; ++g) {
        const uint8_t* stage_block_row = stage + g * M * stage_row;
        for (int64_t r0 = 0; r0 < M; r0 += R) {
          const uint32_t* offset = offsets + (ch * M + r0) * M;
          auto* out = reinterpret_cast<uint8_t*>(origin + ch * out_c + (g * M + r0) * out_h);
          int64_t at = 0;
          for (; at + kVectorBytes <= out_bytes; at += kVectorBytes) {
            const __m512i v = load_pieces<kPieceBytes>(stage_block_row + at, offset, pieces);
            _mm512_storeu_si512(out + at, cpu::permute_bytes(index, v));
          }
          if (at < out_bytes) {  // the pieces of a row's last, partial chunk lie in its padding
            const __m512i v = load_pieces<kPieceBytes>(stage_block_row + at, offset, pieces);
            _mm512_mask_storeu_epi8(out + at, byte_range(0, out_bytes - at), cpu::permute_bytes(index, v));
          }
        }
      }
    }
  }
#endif

  const BlockRun& run_;
  const int64_t C_, M_, blocks_per_row_, block_rows_;
  const bool rows_;
  bool staged_ = false, chunked_ = false;
  int64_t tile_blocks_ = 1, tile_block_rows_ = 1, tiles_per_row_ = 1, tile_rows_per_sample_ = 1, tile_columns_ = 1;
  int64_t stage_bytes_ = 0;
  // Portable loops.
  Strides4 source_strides_{};
  std::vector<int64_t> source_offset_;  // per output entry
  int64_t pixel_run_ = 1;
  // Chunked row loops.
  int64_t stage_block_rows_ = 1;
  int64_t rows_per_chunk_ = 1, stage_row_bytes_ = 0, stage_channel_bytes_ = 0, piece_bytes_ = kVectorBytes;
  std::vector<uint32_t> piece_offset_;
  alignas(64) uint8_t stage_index_[kVectorBytes] = {};
  alignas(64) uint8_t assemble_index_[kVectorBytes] = {};
};

template <typename Word>
void permute_blocks(const BlockRun& run) {
#ifdef FEATPERM_HAVE_AVX512_VBMI
  const bool vector = cpu::use_vector(cpu::Kernel::kBlockShuffle);
#else
  const bool vector = false;
#endif
  BlockPermuter<Word> permuter(run, vector);
  const int64_t grain = std::max<int64_t>(1, kTileBytes / permuter.tile_bytes());
  at::parallel_for(0, permuter.tiles(), grain, [&](int64_t begin, int64_t end) {
    // Not zeroed: each tile's stage pass writes every stage byte that its loops read (the chunked
    // pass writes whole 64-byte chunks, row padding included).
    const std::unique_ptr<uint8_t[]> buffer(new uint8_t[permuter.stage_bytes() + kVectorBytes]);
    auto* stage = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(buffer.get()) + kVectorBytes - 1) &
                                             ~uintptr_t{kVectorBytes - 1});
    for (int64_t tile = begin; tile < end; ++tile) permuter.permute_tile(permuter.tile_at(tile), stage);
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
