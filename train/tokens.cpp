// train/tokens.cpp — .nsvqt token files: header, CRC-32 checksums, zstd payload, atomic writes.
#include "train/tokens.h"
#include <zlib.h>
#include <zstd.h>
#include <cstdio>
#include <cstring>
#include <fstream>
#include <iterator>
#include "engine/tensor.h"
#include "train/atomic_file.h"

namespace nsvq {

namespace {
const char MAGIC[8] = {'N', 'S', 'V', 'Q', 'T', 'O', 'K', '\0'};
const size_t HEADER = 56;

void put32(uint8_t* p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}
void put64(uint8_t* p, uint64_t v) {
  for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}
uint32_t get32(const uint8_t* p) { return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24; }
uint64_t get64(const uint8_t* p) { return (uint64_t)get32(p) | (uint64_t)get32(p + 4) << 32; }
uint32_t crc(const uint8_t* p, size_t n) { return (uint32_t)crc32(crc32(0L, Z_NULL, 0), p, (uInt)n); }
}  // namespace

void tokens_write(const std::string& path, const TokenFile& t, int level) {
  if (t.n < 0 || t.h < 1 || t.w < 1 || t.K < 1 || (int64_t)t.idx.size() != t.n * t.h * t.w)
    fail("%s: inconsistent token data (%lld images of %lldx%lld, %zu indices)", path.c_str(), (long long)t.n, (long long)t.h,
         (long long)t.w, t.idx.size());
  int ib = t.K <= 65536 ? 2 : 4;
  std::vector<uint8_t> raw(t.idx.size() * ib);
  for (size_t i = 0; i < t.idx.size(); i++) {
    int32_t v = t.idx[i];
    if (v < 0 || v >= t.K) fail("%s: index %d out of range for %lld codes", path.c_str(), v, (long long)t.K);
    if (ib == 2) {
      raw[2 * i] = (uint8_t)v;
      raw[2 * i + 1] = (uint8_t)(v >> 8);
    } else {
      put32(raw.data() + 4 * i, (uint32_t)v);
    }
  }
  std::vector<uint8_t> out(HEADER + ZSTD_compressBound(raw.size()));
  size_t z = ZSTD_compress(out.data() + HEADER, out.size() - HEADER, raw.data(), raw.size(), level);
  if (ZSTD_isError(z)) fail("%s: zstd compression failed (%s)", path.c_str(), ZSTD_getErrorName(z));
  out.resize(HEADER + z);
  uint8_t* h = out.data();
  std::memcpy(h, MAGIC, 8);
  put32(h + 8, 1);
  put32(h + 12, (uint32_t)t.n);
  put32(h + 16, (uint32_t)t.h);
  put32(h + 20, (uint32_t)t.w);
  put32(h + 24, (uint32_t)t.K);
  put32(h + 28, (uint32_t)ib);
  put64(h + 32, raw.size());
  put64(h + 40, z);
  put32(h + 48, crc(raw.data(), raw.size()));
  put32(h + 52, crc(h, 52));
  write_file_atomic(path, out.data(), out.size());
}

TokenFile tokens_read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail("%s: cannot open", path.c_str());
  std::vector<uint8_t> f((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return tokens_parse(f, path);
}

TokenFile tokens_parse(const std::vector<uint8_t>& f, const std::string& path) {
  if (f.size() < HEADER || std::memcmp(f.data(), MAGIC, 8) != 0) fail("%s: not an nsvq token file", path.c_str());
  const uint8_t* h = f.data();
  if (get32(h + 52) != crc(h, 52)) fail("%s: corrupt token file header (checksum mismatch)", path.c_str());
  if (get32(h + 8) != 1) fail("%s: token file version %u is not supported (this nsvq reads version 1)", path.c_str(), get32(h + 8));
  TokenFile t;
  t.n = get32(h + 12);
  t.h = get32(h + 16);
  t.w = get32(h + 20);
  t.K = get32(h + 24);
  uint32_t ib = get32(h + 28);
  uint64_t raw_n = get64(h + 32), z = get64(h + 40);
  // sizes a file may state: n < 2^31 images of at most 65536 x 65536 tokens (no product overflows)
  if (t.n >= (1ll << 31) || t.h > 65536 || t.w > 65536 || (uint64_t)t.n * (uint64_t)(t.h * t.w) >= (1ull << 40))
    fail("%s: token file header states %lld images of %lldx%lld tokens: too many", path.c_str(), (long long)t.n,
         (long long)t.h, (long long)t.w);
  if ((ib != 2 && ib != 4) || (ib == 2) != (t.K <= 65536) || raw_n != (uint64_t)(t.n * t.h * t.w) * ib || t.K < 1)
    fail("%s: inconsistent token file header", path.c_str());
  if (z > f.size() - HEADER || f.size() != HEADER + z)
    fail("%s: truncated or oversized token file (%zu bytes, header says %llu)", path.c_str(), f.size(),
         (unsigned long long)(HEADER + z));
  // the payload must say it decompresses to raw_n bytes before that much is allocated
  unsigned long long declared = ZSTD_getFrameContentSize(f.data() + HEADER, z);
  if (declared != raw_n) fail("%s: corrupt token payload (its zstd frame does not hold %llu bytes)", path.c_str(), (unsigned long long)raw_n);
  std::vector<uint8_t> raw(raw_n);
  size_t got = ZSTD_decompress(raw.data(), raw.size(), f.data() + HEADER, z);
  if (ZSTD_isError(got) || got != raw_n) fail("%s: corrupt token payload (zstd: %s)", path.c_str(), ZSTD_isError(got) ? ZSTD_getErrorName(got) : "wrong size");
  if (crc(raw.data(), raw.size()) != get32(h + 48)) fail("%s: corrupt token payload (checksum mismatch)", path.c_str());
  t.idx.resize((size_t)(t.n * t.h * t.w));
  for (size_t i = 0; i < t.idx.size(); i++) {
    int32_t v = ib == 2 ? (int32_t)(raw[2 * i] | raw[2 * i + 1] << 8) : (int32_t)get32(raw.data() + 4 * i);
    if (v < 0 || v >= t.K) fail("%s: token %zu = %d out of range for %lld codes", path.c_str(), i, v, (long long)t.K);
    t.idx[i] = v;
  }
  return t;
}

}  // namespace nsvq
