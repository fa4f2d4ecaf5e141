// Poly1305 (RFC 8439 section 2.5) on the host, radix 2^44: the 130-bit accumulator and r are three
// limbs of 44, 44 and 42 bits, products are unsigned __int128. Constant time: no branch or memory
// index depends on the key, the message bytes or the tag.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include <array>

#include "ops/cpu/cpu_features.h"
#include "ops/cpu/poly1305_ifma.h"

namespace featperm::cpu {

class Poly1305 {
 public:
  // A number mod 2^130-5 in limbs of 44, 44 and 42 bits (bits 0, 44 and 88), partially reduced:
  // each limb may exceed its width by a few bits.
  using Limbs = std::array<uint64_t, 3>;

  static constexpr int kBlockBytes = 16;
  static constexpr int kKeyBytes = 32;
  static constexpr int kTagBytes = 16;

  explicit Poly1305(const uint8_t* key) {
    const uint64_t t0 = load_le64(key), t1 = load_le64(key + 8);
    // r, clamped (r &= 0x0ffffffc0ffffffc0ffffffc0fffffff), split into 44/44/42-bit limbs.
    r_[0] = t0 & 0xffc0fffffffULL;
    r_[1] = ((t0 >> 44) | (t1 << 20)) & 0xfffffc0ffffULL;
    r_[2] = (t1 >> 24) & 0x00ffffffc0fULL;
    Limbs power = r_;
    for (int i = 0; i < 8; ++i) {
      if (i > 0) power = multiply(power, r_);
      if (i < 4) r_powers_[i] = Factor(power);
      for (int k = 0; k < 3; ++k) ifma_powers_[3 * i + k] = power[k];
    }
    use_ifma_ = cpu::use_vector(cpu::Kernel::kPoly1305);
    pad_[0] = load_le64(key + 16);
    pad_[1] = load_le64(key + 24);
  }

  void update(const uint8_t* m, size_t bytes) {
    if (buffered_ > 0) {
      const size_t take = bytes < kBlockBytes - buffered_ ? bytes : kBlockBytes - buffered_;
      std::memcpy(buffer_ + buffered_, m, take);
      buffered_ += take;
      m += take;
      bytes -= take;
      if (buffered_ < kBlockBytes) return;
      blocks(buffer_, kBlockBytes, kHiBit);
      buffered_ = 0;
    }
    const size_t full = bytes & ~size_t{kBlockBytes - 1};
    blocks(m, full, kHiBit);
    m += full;
    bytes -= full;
    if (bytes > 0) {
      std::memcpy(buffer_, m, bytes);
      buffered_ = bytes;
    }
  }

  // Zero bytes up to the next multiple of 16 of everything fed so far (the AEAD's pad16).
  void pad_to_block() {
    if (buffered_ == 0) return;
    std::memset(buffer_ + buffered_, 0, kBlockBytes - buffered_);
    blocks(buffer_, kBlockBytes, kHiBit);
    buffered_ = 0;
  }

  // The AEAD's last block: le64(aad bytes) | le64(ciphertext bytes) (RFC 8439 section 2.8).
  void update_lengths(uint64_t aad_bytes, uint64_t ciphertext_bytes) {
    uint8_t lengths[16];
    store_le64(lengths, aad_bytes);
    store_le64(lengths + 8, ciphertext_bytes);
    update(lengths, sizeof(lengths));
  }

  // a * b mod 2^130-5, partially reduced. Limb products stay below 2^97 and a dozen of them
  // sum without overflow in unsigned __int128.
  static Limbs multiply(const Limbs& a, const Limbs& b) {
    u128 d[3] = {0, 0, 0};
    multiply_add(a, Factor(b), d);
    return carry(d);
  }

  // r^k (k >= 1) by square-and-multiply; k is a public length, not secret.
  Limbs r_power(uint64_t k) const {
    Limbs result = r_, base = r_;
    for (--k; k > 0; k >>= 1) {
      if (k & 1) result = multiply(result, base);
      base = multiply(base, base);
    }
    return result;
  }

  // The contribution of whole 16-byte blocks processed from a zero accumulator: what update()
  // would add if the accumulator were 0 (sum of block_i * r^(n-i+1)). Independent of the
  // running state, so chunks of a message can be absorbed on different threads.
  Limbs absorb_from_zero(const uint8_t* m, size_t bytes) const {
    Limbs h = {0, 0, 0};
    absorb(h, m, bytes, kHiBit);
    return h;
  }

  bool block_aligned() const { return buffered_ == 0; }

  // After chunks absorbed elsewhere: h = h * r^blocks + chunk, exactly what update() over the
  // chunk's `blocks` whole blocks would have produced. Requires block_aligned().
  void append_chunk(const Limbs& chunk, const Limbs& r_to_blocks) {
    Limbs h = multiply(h_, r_to_blocks);
    for (int i = 0; i < 3; ++i) h[i] += chunk[i];
    h_ = h;
  }

  void finish(uint8_t* tag) {
    if (buffered_ > 0) {  // the last, short block: its 0x01 byte right after the data, no 2^128
      buffer_[buffered_] = 1;
      std::memset(buffer_ + buffered_ + 1, 0, kBlockBytes - buffered_ - 1);
      blocks(buffer_, kBlockBytes, 0);
      buffered_ = 0;
    }
    uint64_t h0 = h_[0], h1 = h_[1], h2 = h_[2];
    // Fully carry h.
    uint64_t c = h1 >> 44; h1 &= kMask44; h2 += c;
    c = h2 >> 42; h2 &= kMask42; h0 += c * 5;
    c = h0 >> 44; h0 &= kMask44; h1 += c;
    c = h1 >> 44; h1 &= kMask44; h2 += c;
    c = h2 >> 42; h2 &= kMask42; h0 += c * 5;
    c = h0 >> 44; h0 &= kMask44; h1 += c;
    // g = h + 5 - 2^130; take g when it is non-negative (h >= p), selected by a mask.
    uint64_t g0 = h0 + 5; c = g0 >> 44; g0 &= kMask44;
    uint64_t g1 = h1 + c; c = g1 >> 44; g1 &= kMask44;
    uint64_t g2 = h2 + c - (uint64_t{1} << 42);
    const uint64_t take_g = (g2 >> 63) - 1;  // all ones when g2 did not borrow
    h0 = (h0 & ~take_g) | (g0 & take_g);
    h1 = (h1 & ~take_g) | (g1 & take_g);
    h2 = (h2 & ~take_g) | (g2 & take_g);
    // tag = (h + s) mod 2^128.
    h0 += pad_[0] & kMask44; c = h0 >> 44; h0 &= kMask44;
    h1 += (((pad_[0] >> 44) | (pad_[1] << 20)) & kMask44) + c; c = h1 >> 44; h1 &= kMask44;
    h2 += ((pad_[1] >> 24) & kMask42) + c; h2 &= kMask42;
    store_le64(tag, h0 | (h1 << 44));
    store_le64(tag + 8, (h1 >> 20) | (h2 << 24));
  }

 private:
  static constexpr uint64_t kMask44 = (uint64_t{1} << 44) - 1;
  static constexpr uint64_t kMask42 = (uint64_t{1} << 42) - 1;
  static constexpr uint64_t kHiBit = uint64_t{1} << 40;  // 2^128 in the top limb (2^88 units)

  static uint64_t load_le64(const uint8_t* p) {
    uint64_t v = 0;
    for (int i = 7; i >= 0; --i) v = (v << 8) | p[i];
    return v;
  }
  static void store_le64(uint8_t* p, uint64_t v) {
    for (int i = 0; i < 8; ++i) p[i] = static_cast<uint8_t>(v >> (8 * i));
  }

  // h = (h + block + hibit) * r mod 2^130-5 (partially reduced) for each 16-byte block.
  void blocks(const uint8_t* m, size_t bytes, uint64_t hibit) { absorb(h_, m, bytes, hibit); }

  // Four blocks at a time: h' = (h + m1) r^4 + m2 r^3 + m3 r^2 + m4 r, one reduction for all
  // four. The products are independent, so they overlap instead of waiting on each other.
  void absorb(Limbs& h, const uint8_t* m, size_t bytes, uint64_t hibit) const {
    if (use_ifma_ && hibit == kHiBit && bytes >= kIfmaMinBytes) {  // eight blocks per step
      const size_t groups = bytes / (8 * kBlockBytes);
      poly1305_absorb_ifma(h.data(), m, groups, ifma_powers_);
      m += groups * 8 * kBlockBytes;
      bytes -= groups * 8 * kBlockBytes;
    }
    for (; bytes >= 4 * kBlockBytes; bytes -= 4 * kBlockBytes, m += 4 * kBlockBytes) {
      u128 d[3] = {0, 0, 0};
      for (int k = 0; k < 4; ++k) {
        Limbs a = block_limbs(m + k * kBlockBytes, hibit);
        if (k == 0) {
          for (int i = 0; i < 3; ++i) a[i] += h[i];
        }
        multiply_add(a, r_powers_[3 - k], d);
      }
      h = carry(d);
    }
    for (; bytes >= kBlockBytes; bytes -= kBlockBytes, m += kBlockBytes) {
      const Limbs a = block_limbs(m, hibit);
      for (int i = 0; i < 3; ++i) h[i] += a[i];
      u128 d[3] = {0, 0, 0};
      multiply_add(h, r_powers_[0], d);
      h = carry(d);
    }
  }

  using u128 = unsigned __int128;

  // A multiplier with its two high limbs pre-multiplied by 20: 2^132 = 4 * 2^130 = 4 * 5 (mod p),
  // so limb products at or above 2^132 fold back times 20.
  struct Factor {
    Factor() = default;
    explicit Factor(const Limbs& b) : l(b), l1_20(b[1] * 20), l2_20(b[2] * 20) {}
    Limbs l;
    uint64_t l1_20, l2_20;
  };

  static void multiply_add(const Limbs& a, const Factor& b, u128 (&d)[3]) {
    d[0] += u128{a[0]} * b.l[0] + u128{a[1]} * b.l2_20 + u128{a[2]} * b.l1_20;
    d[1] += u128{a[0]} * b.l[1] + u128{a[1]} * b.l[0] + u128{a[2]} * b.l2_20;
    d[2] += u128{a[0]} * b.l[2] + u128{a[1]} * b.l[1] + u128{a[2]} * b.l[0];
  }

  static Limbs carry(const u128 (&d)[3]) {
    Limbs h;
    u128 d1 = d[1], d2 = d[2];
    uint64_t c = static_cast<uint64_t>(d[0] >> 44); h[0] = static_cast<uint64_t>(d[0]) & kMask44;
    d1 += c; c = static_cast<uint64_t>(d1 >> 44); h[1] = static_cast<uint64_t>(d1) & kMask44;
    d2 += c; c = static_cast<uint64_t>(d2 >> 42); h[2] = static_cast<uint64_t>(d2) & kMask42;
    h[0] += c * 5; c = h[0] >> 44; h[0] &= kMask44;
    h[1] += c;
    return h;
  }

  static Limbs block_limbs(const uint8_t* m, uint64_t hibit) {
    const uint64_t t0 = load_le64(m), t1 = load_le64(m + 8);
    return {t0 & kMask44, ((t0 >> 44) | (t1 << 20)) & kMask44, ((t1 >> 24) & kMask42) | hibit};
  }

  static constexpr size_t kIfmaMinBytes = 256;

  Limbs r_;
  Factor r_powers_[4];  // r, r^2, r^3, r^4
  uint64_t ifma_powers_[24];  // r^1 .. r^8, three limbs each, for the AVX-512 IFMA kernel
  bool use_ifma_ = false;
  uint64_t pad_[2];
  Limbs h_ = {0, 0, 0};
  uint8_t buffer_[kBlockBytes];
  size_t buffered_ = 0;
};

}  // namespace featperm::cpu
