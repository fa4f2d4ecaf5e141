// Bit-permutation logic shared by the CPU and CUDA kernels (no torch headers: nvcc includes it).
//
// A key is a permutation f of the bit positions 0..n-1 of an n-bit word (bit 0 = least
// significant): encryption moves input bit i to output bit f(i); decryption applies f^-1. Both
// directions run the same kernels, which only ever see `dest`, the output position of each input
// bit: dest = f to encrypt, dest = f^-1 to decrypt (build_destinations<Inverse>).
//
// The kernels split a word into chunks of `ChunkBits` bits (8 on the CPU, 4 on the GPU) and look up
// each chunk's contribution in a table: out = OR over chunks c of table[c][chunk c of the input].
#pragma once

#include <cstdint>
#include <type_traits>

#include "ops/common/host_device.h"

namespace featperm {

// The unsigned integer type of a word of `Bytes` bytes: kernels move bits, never float values.
template <int Bytes> struct WordOf;
template <> struct WordOf<1> { using type = uint8_t; };
template <> struct WordOf<2> { using type = uint16_t; };
template <> struct WordOf<4> { using type = uint32_t; };
template <> struct WordOf<8> { using type = uint64_t; };

// Output bit position of input bit i (encrypt: f(i)), or records that input bit f(i) lands on
// output bit i (decrypt). `key` holds f (f[i] = f(i)) for n = `bits` positions. Positions are
// reduced mod n so that even an invalid key (never passed by the Python layer, but possible
// through the raw op on a device tensor we cannot validate without a host sync) cannot make a
// kernel index out of bounds. One call per i, so GPU threads can share the work.
template <bool Inverse>
FEATPERM_HOST_DEVICE void build_destination(const int64_t* key, int bits, int i, uint8_t* dest) {
  const int fi = static_cast<int>(key[i] & (bits - 1));
  if (Inverse) {
    dest[fi] = static_cast<uint8_t>(i);  // decrypt: output bit i = input bit f(i)
  } else {
    dest[i] = static_cast<uint8_t>(fi);  // encrypt: output bit f(i) = input bit i
  }
}

template <bool Inverse>
FEATPERM_HOST_DEVICE void build_destinations(const int64_t* key, int bits, uint8_t* dest) {
  for (int i = 0; i < bits; ++i) build_destination<Inverse>(key, bits, i, dest);
}

// Contribution of chunk `chunk` (bits chunk*ChunkBits ...) holding `value` to the output word.
template <typename Entry, int ChunkBits>
FEATPERM_HOST_DEVICE Entry chunk_table_entry(const uint8_t* dest, int chunk, unsigned value) {
  Entry entry = 0;
  FEATPERM_UNROLL
  for (int b = 0; b < ChunkBits; ++b) {
    const Entry bit = static_cast<Entry>((value >> b) & 1u);
    entry |= bit << dest[chunk * ChunkBits + b];
  }
  return entry;
}

// Calls f(std::integral_constant<int, Bytes>{}, std::bool_constant<Inverse>{}) for run-time word
// size and direction, so that each backend instantiates one kernel template for all of them.
// Returns false for an unsupported word size.
template <typename F>
inline bool dispatch_word_bytes_and_direction(int bytes, bool inverse, F&& f) {
  auto with_direction = [&](auto bytes_c) {
    if (inverse) {
      f(bytes_c, std::true_type{});
    } else {
      f(bytes_c, std::false_type{});
    }
  };
  switch (bytes) {
    case 1: with_direction(std::integral_constant<int, 1>{}); return true;
    case 2: with_direction(std::integral_constant<int, 2>{}); return true;
    case 4: with_direction(std::integral_constant<int, 4>{}); return true;
    case 8: with_direction(std::integral_constant<int, 8>{}); return true;
    default: return false;
  }
}

}  // namespace featperm
