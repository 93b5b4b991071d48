// engine/rng.h — Philox4x32-10 counter-based random numbers. The same (key, counter) gives the same
// four 32-bit words on CPU and CUDA, so random streams are identical across backends and a run can
// resume at any counter. Host-side Rng wraps it for initialisation and data shuffling.
#pragma once
#include <cstdint>
#include <cmath>

#if defined(__CUDACC__)
#define NSVQ_HD __host__ __device__ __forceinline__
#else
#define NSVQ_HD inline
#endif

namespace nsvq {

struct Philox4 {
  uint32_t v[4];
};

// One Philox4x32-10 block: counter c[0..3], key k[0..1].
NSVQ_HD Philox4 philox4x32(uint32_t c0, uint32_t c1, uint32_t c2, uint32_t c3, uint32_t k0, uint32_t k1) {
  const uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u, W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
  for (int r = 0; r < 10; r++) {
    uint64_t p0 = (uint64_t)M0 * c0, p1 = (uint64_t)M1 * c2;
    uint32_t hi0 = (uint32_t)(p0 >> 32), lo0 = (uint32_t)p0;
    uint32_t hi1 = (uint32_t)(p1 >> 32), lo1 = (uint32_t)p1;
    uint32_t n0 = hi1 ^ c1 ^ k0, n2 = hi0 ^ c3 ^ k1;
    c0 = n0; c1 = lo1; c2 = n2; c3 = lo0;
    k0 += W0; k1 += W1;
  }
  Philox4 r;
  r.v[0] = c0; r.v[1] = c1; r.v[2] = c2; r.v[3] = c3;
  return r;
}

// Uniform in (0, 1]: 24 random bits, never 0 (safe for log in Box-Muller).
NSVQ_HD float philox_uniform(uint32_t x) { return ((x >> 8) + 1u) * (1.0f / 16777216.0f); }

// Block `blk` of the stream (seed, stream, step): four uniforms in (0, 1] (kind 0) or four standard
// normals (kind 1; Box-Muller on word pairs (0,1) and (2,3)). Element i of the stream is
// out[i % 4] of block i / 4. The integer stream is identical on CPU and CUDA; normals go through
// each platform's logf/sinf/cosf and may differ in the last bits.
NSVQ_HD void philox_block(uint64_t seed, uint32_t stream, uint64_t step, uint64_t blk, int kind, float out[4]) {
  Philox4 r = philox4x32((uint32_t)blk, (uint32_t)(blk >> 32) ^ (stream << 16), (uint32_t)step,
                         (uint32_t)(step >> 32), (uint32_t)seed, (uint32_t)(seed >> 32));
  if (kind == 0) {
    for (int w = 0; w < 4; w++) out[w] = philox_uniform(r.v[w]);
    return;
  }
  for (int p = 0; p < 4; p += 2) {
    float rad = sqrtf(-2.0f * logf(philox_uniform(r.v[p])));
    float ang = 6.283185307179586f * philox_uniform(r.v[p + 1]);
    out[p] = rad * cosf(ang);
    out[p + 1] = rad * sinf(ang);
  }
}

NSVQ_HD float philox_element(uint64_t seed, uint32_t stream, uint64_t step, uint64_t i, int kind) {
  float o[4];
  philox_block(seed, stream, step, i >> 2, kind, o);
  return o[i & 3];
}

// Host generator: a (seed, stream) pair and a running counter. Cheap to copy; state is 3 integers.
class Rng {
 public:
  Rng(uint64_t seed = 0, uint32_t stream = 0) : seed_(seed), stream_(stream) {}
  uint32_t next_u32() {
    if (idx_ == 4) {
      blk_ = philox4x32((uint32_t)ctr_, (uint32_t)(ctr_ >> 32), stream_, 0x6e737671u, (uint32_t)seed_,
                        (uint32_t)(seed_ >> 32));
      ctr_++;
      idx_ = 0;
    }
    return blk_.v[idx_++];
  }
  float uniform() { return philox_uniform(next_u32()); }  // (0, 1]
  float normal() {
    float u1 = uniform(), u2 = uniform();
    return sqrtf(-2.0f * logf(u1)) * cosf(6.283185307179586f * u2);
  }
  // Uniform integer in [0, n) without modulo bias.
  uint32_t below(uint32_t n) {
    uint64_t m = (uint64_t)next_u32() * n;
    uint32_t l = (uint32_t)m;
    if (l < n) {
      uint32_t t = (0u - n) % n;
      while (l < t) {
        m = (uint64_t)next_u32() * n;
        l = (uint32_t)m;
      }
    }
    return (uint32_t)(m >> 32);
  }
  // State for checkpoints: counter and position inside the current block.
  uint64_t counter() const { return ctr_ * 4 - (4 - idx_); }
  void set_counter(uint64_t words) {
    ctr_ = words / 4;
    idx_ = 4;
    for (uint64_t k = 0; k < words % 4; k++) next_u32();
  }
  uint64_t seed() const { return seed_; }

 private:
  uint64_t seed_;
  uint32_t stream_;
  uint64_t ctr_ = 0;
  int idx_ = 4;
  Philox4 blk_{};
};

}  // namespace nsvq
