// train/shards.cpp — the shard format of train/shards.h: index JSON (write and checked read), the
// chunk reader (pread, crc32, zstd, record checks) and whole-split loading for dataset_load.
#include "train/shards.h"
#include <fcntl.h>
#include <unistd.h>
#include <zlib.h>
#include <zstd.h>
#include <sys/stat.h>
#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include "engine/tensor.h"
#include "train/shards_internal.h"

namespace nsvq {

namespace fs = std::filesystem;

std::string shards_index_path(const std::string& dir, const std::string& split) {
  return (fs::path(dir) / (split + ".index.json")).string();
}
std::string shards_journal_path(const std::string& dir, const std::string& split) {
  return (fs::path(dir) / (split + ".pack.jsonl")).string();
}
std::string shard_file_name(const std::string& split, int64_t file) {
  char b[32];
  snprintf(b, sizeof b, "-%05lld.shard", (long long)file);
  return split + b;
}

uint32_t crc32_of(const uint8_t* p, size_t n) {
  uLong c = crc32(0L, Z_NULL, 0);
  while (n > 0) {  // zlib takes uInt lengths
    const uInt k = (uInt)std::min<size_t>(n, 1u << 30);
    c = crc32(c, p, k);
    p += k;
    n -= k;
  }
  return (uint32_t)c;
}

int64_t json_int(const Json& j, const char* key, const std::string& what) {
  const Json* v = j.find(key);
  if (!v || v->kind != Json::NUMBER) fail("%s: missing integer \"%s\"", what.c_str(), key);
  char* end = nullptr;
  long long x = strtoll(v->str.c_str(), &end, 10);
  if (*end || v->str.empty()) fail("%s: \"%s\" is not an integer (%s)", what.c_str(), key, v->str.c_str());
  return x;
}

std::string json_str(const Json& j, const char* key, const std::string& what) {
  const Json* v = j.find(key);
  if (!v || v->kind != Json::STRING) fail("%s: missing string \"%s\"", what.c_str(), key);
  return v->str;
}

std::string shard_chunk_json(const ShardChunk& c) {
  char b[160];
  snprintf(b, sizeof b, "\"offset\": %lld, \"bytes\": %lld, \"raw_bytes\": %lld, \"samples\": %lld, \"crc32\": %u",
           (long long)c.offset, (long long)c.bytes, (long long)c.raw_bytes, (long long)c.samples, c.crc);
  return "{\"file\": " + json_escape(c.file) + ", " + b + "}";
}

ShardChunk shard_chunk_parse(const Json& j, const std::string& what) {
  if (j.kind != Json::OBJECT) fail("%s: a chunk entry is not an object", what.c_str());
  ShardChunk c;
  c.file = json_str(j, "file", what);
  c.offset = json_int(j, "offset", what);
  c.bytes = json_int(j, "bytes", what);
  c.raw_bytes = json_int(j, "raw_bytes", what);
  c.samples = json_int(j, "samples", what);
  const int64_t crc = json_int(j, "crc32", what);
  if (c.file.empty() || c.file.find('/') != std::string::npos || c.offset < 0 || c.bytes < 1 || c.samples < 1 ||
      c.raw_bytes < CHUNK_HEADER + c.samples * CHUNK_RECORD || crc < 0 || crc > 0xffffffffll)
    fail("%s: invalid chunk entry (file %s, offset %lld, %lld bytes, %lld samples)", what.c_str(), c.file.c_str(),
         (long long)c.offset, (long long)c.bytes, (long long)c.samples);
  c.crc = (uint32_t)crc;
  return c;
}

std::string shards_index_json(const ShardIndex& x) {
  std::string s = "{\"format\": \"" + std::string(SHARDS_FORMAT) + "\", \"version\": " + std::to_string(SHARDS_VERSION) +
                  ", \"split\": " + json_escape(x.split) + ", \"name\": " + json_escape(x.name) +
                  ", \"samples\": " + std::to_string(x.samples) + ", \"channels\": " + std::to_string(x.C) +
                  ", \"size\": " + std::to_string(x.S) + ", \"layout\": \"" + (x.fixed ? "fixed" : "short-side") +
                  "\", \"num_classes\": " + std::to_string(x.num_classes) + ", \"skipped\": " + std::to_string(x.skipped) +
                  ", \"command\": " + json_escape(x.command) + ",\n\"chunks\": [";
  for (size_t k = 0; k < x.chunks.size(); k++) s += (k ? ",\n" : "\n") + shard_chunk_json(x.chunks[k]);
  return s + "\n]}\n";
}

ShardIndex shards_index_parse(const Json& j, const std::string& what) {
  if (j.kind != Json::OBJECT) fail("%s: not a shard index", what.c_str());
  if (json_str(j, "format", what) != SHARDS_FORMAT) fail("%s: not an nsvq shard index", what.c_str());
  if (json_int(j, "version", what) != SHARDS_VERSION)
    fail("%s: shard format version %lld (this nsvq reads %d)", what.c_str(), (long long)json_int(j, "version", what),
         SHARDS_VERSION);
  ShardIndex x;
  x.split = json_str(j, "split", what);
  x.name = json_str(j, "name", what);
  x.samples = json_int(j, "samples", what);
  x.C = json_int(j, "channels", what);
  x.S = json_int(j, "size", what);
  const std::string layout = json_str(j, "layout", what);
  if (layout != "fixed" && layout != "short-side") fail("%s: unknown layout \"%s\"", what.c_str(), layout.c_str());
  x.fixed = layout == "fixed";
  x.num_classes = (int)json_int(j, "num_classes", what);
  x.skipped = json_int(j, "skipped", what);
  x.command = json_str(j, "command", what);
  const Json* ch = j.find("chunks");
  if (!ch || ch->kind != Json::ARRAY) fail("%s: missing \"chunks\"", what.c_str());
  x.first.push_back(0);
  for (const Json& c : ch->arr) {
    x.chunks.push_back(shard_chunk_parse(c, what));
    x.first.push_back(x.first.back() + x.chunks.back().samples);
  }
  if ((x.C != 1 && x.C != 3) || x.S < 1 || x.num_classes < 0 || x.chunks.empty() || x.first.back() != x.samples)
    fail("%s: inconsistent index (%lld samples, %zu chunks holding %lld, %lld channels, size %lld)", what.c_str(),
         (long long)x.samples, x.chunks.size(), (long long)x.first.back(), (long long)x.C, (long long)x.S);
  return x;
}

ShardIndex shards_read_index(const std::string& dir, const std::string& split) {
  if (!fs::is_directory(dir)) fail("%s: not a folder (shards:DIR names a folder made by nsvq pack)", dir.c_str());
  const std::string path = shards_index_path(dir, split);
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    if (fs::exists(shards_journal_path(dir, split)))
      fail("%s: the %s split is not finished (an interrupted nsvq pack): re-run that pack command to complete it",
           dir.c_str(), split.c_str());
    fail("%s has no %s split; pack it with `nsvq pack --data ... --split %s -o %s`", dir.c_str(), split.c_str(),
         split.c_str(), dir.c_str());
  }
  const std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ShardIndex x = shards_index_parse(json_parse(text, path + ": invalid shard index"), path);
  if (x.split != split) fail("%s: holds split '%s', not '%s'", path.c_str(), x.split.c_str(), split.c_str());
  x.dir = dir;
  return x;
}

// ------------------------------------------------------------------------------------- reader

ShardReader::ShardReader(const ShardIndex& idx) : idx_(idx) {
  std::vector<int64_t> need;
  for (const ShardChunk& c : idx.chunks) {
    auto it = std::find(names_.begin(), names_.end(), c.file);
    if (it == names_.end()) {
      names_.push_back(c.file);
      need.push_back(0);
      it = names_.end() - 1;
    }
    const size_t f = (size_t)(it - names_.begin());
    chunk_fd_.push_back((int)f);
    need[f] = std::max(need[f], c.offset + c.bytes);
  }
  for (size_t f = 0; f < names_.size(); f++) {
    const std::string path = (fs::path(idx.dir) / names_[f]).string();
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
      const int e = errno;
      for (int o : fds_) ::close(o);
      fail("%s: cannot open (%s)", path.c_str(), strerror(e));
    }
    fds_.push_back(fd);
    struct stat st;
    if (::fstat(fd, &st) != 0 || st.st_size < need[f]) {
      const long long have = (long long)st.st_size;
      for (int o : fds_) ::close(o);
      fail("%s: %lld bytes, its chunks need %lld (truncated shard file)", path.c_str(), have, (long long)need[f]);
    }
  }
}

ShardReader::~ShardReader() {
  for (int fd : fds_) ::close(fd);
}

void ShardReader::read(int64_t k, std::vector<uint8_t>& zbuf, ShardSamples& out) const {
  const ShardChunk& c = idx_.chunks[(size_t)k];
  const std::string where = (fs::path(idx_.dir) / c.file).string() + ": chunk " + std::to_string(k) + " (offset " +
                            std::to_string(c.offset) + ", " + std::to_string(c.bytes) + " bytes)";
  zbuf.resize((size_t)c.bytes);
  size_t got = 0;
  while (got < zbuf.size()) {
    ssize_t r = ::pread(fds_[(size_t)chunk_fd_[(size_t)k]], zbuf.data() + got, zbuf.size() - got, (off_t)(c.offset + got));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) fail("%s: read error (%s)", where.c_str(), strerror(errno));
    if (r == 0) fail("%s: file ends after %zu of its bytes (truncated)", where.c_str(), got);
    got += (size_t)r;
  }
  if (crc32_of(zbuf.data(), zbuf.size()) != c.crc) fail("%s: checksum mismatch (corrupt shard)", where.c_str());
  out.raw.resize((size_t)c.raw_bytes);
  const size_t n = ZSTD_decompress(out.raw.data(), out.raw.size(), zbuf.data(), zbuf.size());
  if (ZSTD_isError(n) || n != out.raw.size())
    fail("%s: does not decompress to its %lld bytes (%s)", where.c_str(), (long long)c.raw_bytes,
         ZSTD_isError(n) ? ZSTD_getErrorName(n) : "wrong size");
  const uint8_t* p = out.raw.data();
  if (memcmp(p, "NSC1", 4) != 0 || le32_get(p + 4) != (uint32_t)c.samples)
    fail("%s: bad chunk header (expected %lld images)", where.c_str(), (long long)c.samples);
  out.n = c.samples;
  out.off.resize((size_t)out.n);
  out.label.resize((size_t)out.n);
  out.h.resize((size_t)out.n);
  out.w.resize((size_t)out.n);
  int64_t at = CHUNK_HEADER + out.n * CHUNK_RECORD;
  for (int64_t i = 0; i < out.n; i++) {
    const uint8_t* r = p + CHUNK_HEADER + i * CHUNK_RECORD;
    const int32_t label = (int32_t)le32_get(r);
    const int64_t h = le32_get(r + 4), w = le32_get(r + 8), S = idx_.S;
    const bool shape_ok = idx_.fixed ? (h == S && w == S) : (std::min(h, w) == S && std::max(h, w) <= 64 * S);
    if (!shape_ok || label < -1 || (idx_.num_classes > 0 && label >= idx_.num_classes) ||
        at + idx_.C * h * w > c.raw_bytes)
      fail("%s: image %lld has an invalid record (label %d, %lldx%lld)", where.c_str(), (long long)i, label,
           (long long)h, (long long)w);
    out.label[(size_t)i] = label;
    out.h[(size_t)i] = (int32_t)h;
    out.w[(size_t)i] = (int32_t)w;
    out.off[(size_t)i] = at;
    at += idx_.C * h * w;
  }
  if (at != c.raw_bytes) fail("%s: %lld bytes left over after its images", where.c_str(), (long long)(c.raw_bytes - at));
}

// ------------------------------------------------------------------------------- whole split

void shards_check_geometry(const ShardIndex& x, int64_t size, int channels) {
  if (x.fixed) return;
  if (x.S != size || x.C != channels)
    fail("%s: the %s split was packed at %lld channels, short side %lld; asked for %d channels at %lld (pack again "
         "with --size %lld --channels %d)",
         x.dir.c_str(), x.split.c_str(), (long long)x.C, (long long)x.S, channels, (long long)size, (long long)size,
         channels);
}

Dataset shards_load(const std::string& dir, const std::string& split, int64_t size, int channels) {
  const ShardIndex x = shards_read_index(dir, split);
  shards_check_geometry(x, size, channels);
  const ShardReader reader(x);
  Dataset d;
  d.name = x.name;
  d.C = x.C;
  d.S = x.S;
  d.num_classes = x.num_classes;
  const size_t N = (size_t)x.samples, K = x.chunks.size();
  std::vector<int64_t> px_at(K + 1, 0);  // where each chunk's pixels go in d.px
  for (size_t k = 0; k < K; k++)
    px_at[k + 1] = px_at[k] + x.chunks[k].raw_bytes - CHUNK_HEADER - x.chunks[k].samples * CHUNK_RECORD;
  d.px.resize((size_t)px_at[K]);
  d.h.resize(N);
  d.w.resize(N);
  d.off.resize(N);
  d.labels.resize(N);
  std::string err;
#pragma omp parallel
  {
    std::vector<uint8_t> zbuf;
    ShardSamples s;
#pragma omp for schedule(dynamic)
    for (int64_t k = 0; k < (int64_t)K; k++) {
      try {
        reader.read(k, zbuf, s);
      } catch (const Error& e) {
#pragma omp critical
        if (err.empty()) err = e.what();
        continue;
      }
      const int64_t first = x.first[(size_t)k], pix0 = CHUNK_HEADER + s.n * CHUNK_RECORD;
      std::copy(s.raw.begin() + pix0, s.raw.end(), d.px.begin() + px_at[(size_t)k]);
      for (int64_t i = 0; i < s.n; i++) {
        d.h[(size_t)(first + i)] = s.h[(size_t)i];
        d.w[(size_t)(first + i)] = s.w[(size_t)i];
        d.off[(size_t)(first + i)] = px_at[(size_t)k] + s.off[(size_t)i] - pix0;
        d.labels[(size_t)(first + i)] = s.label[(size_t)i];
      }
    }
  }
  if (!err.empty()) fail("%s", err.c_str());
  return d;
}

}  // namespace nsvq
