// models/safetensors.cpp — safetensors reading (strict JSON header parser, full validation, zstd),
// atomic writing (optionally zstd-compressed) and loading / saving Store tensors by name.
#include "models/safetensors.h"
#include "models/json.h"
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>
#include <algorithm>
#include <cerrno>
#include <climits>
#include <cstring>
#include <functional>
#include <unordered_map>
#include <unordered_set>

namespace nsvq {

namespace {

bool ends_with(const std::string& s, const char* suf) {
  size_t n = std::strlen(suf);
  return s.size() >= n && s.compare(s.size() - n, n, suf) == 0;
}

// A non-negative integer that fits int64 (shapes, offsets).
uint64_t json_uint(const Json& v, const std::string& what, const std::string& field) {
  bool ok = v.kind == Json::NUMBER && !v.str.empty() && v.str.size() <= 18;
  for (char c : v.str) ok = ok && c >= '0' && c <= '9';
  if (!ok) fail("safetensors %s: %s must be a non-negative integer below 1e18", what.c_str(), field.c_str());
  return std::stoull(v.str);
}

const char* st_dtype_of(DType dt) {
  switch (dt) {
    case DType::f32: return "F32";
    case DType::i32: return "I32";
    default: return nullptr;
  }
}

std::string shape_str(const std::vector<int64_t>& s) {
  std::string r = "[";
  for (size_t i = 0; i < s.size(); i++) r += (i ? ", " : "") + std::to_string(s[i]);
  return r + "]";
}

// ------------------------------------------------------------------ file IO

// A read-only file descriptor that closes itself; reads fail with one line naming the file.
struct InFile {
  int fd = -1;
  std::string path;
  uint64_t size = 0;
  explicit InFile(const std::string& p) : path(p) {
    fd = ::open(p.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) fail("safetensors %s: cannot open: %s", p.c_str(), std::strerror(errno));
    struct stat stt;
    if (fstat(fd, &stt) != 0 || !S_ISREG(stt.st_mode)) {
      ::close(fd);
      fail("safetensors %s: not a regular file", p.c_str());
    }
    size = (uint64_t)stt.st_size;
  }
  ~InFile() { ::close(fd); }
  InFile(const InFile&) = delete;
  InFile& operator=(const InFile&) = delete;
  // n bytes at offset off (all of them, or a failure)
  void pread_all(void* dst, size_t n, uint64_t off) const {
    uint8_t* d = (uint8_t*)dst;
    while (n > 0) {
      ssize_t r = ::pread(fd, d, n, (off_t)off);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) fail("safetensors %s: read failed at byte %llu: %s", path.c_str(), (unsigned long long)off,
                       r == 0 ? "unexpected end of file" : std::strerror(errno));
      d += r;
      n -= (size_t)r;
      off += (uint64_t)r;
    }
  }
  // up to n bytes from the current position; 0 at the end of the file
  size_t read_some(void* dst, size_t n) const {
    for (;;) {
      ssize_t r = ::read(fd, dst, n);
      if (r < 0 && errno == EINTR) continue;
      if (r < 0) fail("safetensors %s: read failed: %s", path.c_str(), std::strerror(errno));
      return (size_t)r;
    }
  }
};

std::vector<uint8_t> read_file_bytes(const std::string& path) {
  InFile f(path);
  std::vector<uint8_t> b((size_t)f.size);
  f.pread_all(b.data(), b.size(), 0);
  return b;
}

std::vector<uint8_t> zstd_decompress(const std::vector<uint8_t>& in, const std::string& path) {
  if (in.size() < 4 || !(in[0] == 0x28 && in[1] == 0xB5 && in[2] == 0x2F && in[3] == 0xFD))
    fail("safetensors %s: not a zstd file (bad magic number)", path.c_str());
  std::vector<uint8_t> out;
  unsigned long long known = ZSTD_getFrameContentSize(in.data(), in.size());
  if (known != ZSTD_CONTENTSIZE_UNKNOWN && known != ZSTD_CONTENTSIZE_ERROR)  // a hint only: never beyond what
    out.reserve((size_t)std::min<unsigned long long>(known, 16ull * in.size() + (1u << 20)));  // the input backs
  ZSTD_DCtx* d = ZSTD_createDCtx();
  if (!d) fail("safetensors %s: out of memory creating a zstd context", path.c_str());
  ZSTD_inBuffer ib{in.data(), in.size(), 0};
  std::vector<uint8_t> chunk(ZSTD_DStreamOutSize());
  size_t ret = 1;
  while (ib.pos < ib.size) {
    ZSTD_outBuffer ob{chunk.data(), chunk.size(), 0};
    ret = ZSTD_decompressStream(d, &ob, &ib);
    if (ZSTD_isError(ret)) {
      ZSTD_freeDCtx(d);
      fail("safetensors %s: zstd: %s", path.c_str(), ZSTD_getErrorName(ret));
    }
    out.insert(out.end(), chunk.data(), chunk.data() + ob.pos);
    if (ob.pos == 0 && ib.pos == ib.size) break;
  }
  // drain what is left in the decoder
  while (ret != 0) {
    ZSTD_outBuffer ob{chunk.data(), chunk.size(), 0};
    ret = ZSTD_decompressStream(d, &ob, &ib);
    if (ZSTD_isError(ret)) {
      ZSTD_freeDCtx(d);
      fail("safetensors %s: zstd: %s", path.c_str(), ZSTD_getErrorName(ret));
    }
    out.insert(out.end(), chunk.data(), chunk.data() + ob.pos);
    if (ob.pos == 0) break;
  }
  ZSTD_freeDCtx(d);
  if (ret != 0) fail("safetensors %s: truncated zstd stream", path.c_str());
  return out;
}

// Writes to a temporary file in the destination's folder, raw or through zstd; commit() fsyncs,
// renames over the destination and fsyncs the folder. Destroying an uncommitted sink (an error, a full
// disk) removes the temporary file; one left by a killed process has the same name and is overwritten
// by the next write, so crashes do not pile files up.
class AtomicSink {
 public:
  AtomicSink(const std::string& path, bool zstd, int level) : path_(path) {
    tmp_ = path + ".tmp";
    fd_ = ::open(tmp_.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd_ < 0) fail("safetensors %s: cannot create %s: %s", path.c_str(), tmp_.c_str(), std::strerror(errno));
    if (zstd) {
      z_ = ZSTD_createCCtx();
      if (!z_) fail("safetensors %s: out of memory creating a zstd context", path.c_str());
      ZSTD_CCtx_setParameter(z_, ZSTD_c_compressionLevel, level);
      ZSTD_CCtx_setParameter(z_, ZSTD_c_checksumFlag, 1);
      zbuf_.resize(ZSTD_CStreamOutSize());
    }
  }
  ~AtomicSink() {
    if (z_) ZSTD_freeCCtx(z_);
    if (fd_ >= 0) ::close(fd_);
    if (!committed_) ::unlink(tmp_.c_str());
  }
  void set_pledged(uint64_t n) {
    if (z_) ZSTD_CCtx_setPledgedSrcSize(z_, n);
  }
  void write(const void* p, size_t n) {
    if (!z_) return raw(p, n);
    ZSTD_inBuffer ib{p, n, 0};
    while (ib.pos < ib.size) {
      ZSTD_outBuffer ob{zbuf_.data(), zbuf_.size(), 0};
      size_t r = ZSTD_compressStream2(z_, &ob, &ib, ZSTD_e_continue);
      if (ZSTD_isError(r)) fail("safetensors %s: zstd: %s", path_.c_str(), ZSTD_getErrorName(r));
      raw(zbuf_.data(), ob.pos);
    }
  }
  void commit() {
    if (z_) {
      ZSTD_inBuffer ib{nullptr, 0, 0};
      size_t r;
      do {
        ZSTD_outBuffer ob{zbuf_.data(), zbuf_.size(), 0};
        r = ZSTD_compressStream2(z_, &ob, &ib, ZSTD_e_end);
        if (ZSTD_isError(r)) fail("safetensors %s: zstd: %s", path_.c_str(), ZSTD_getErrorName(r));
        raw(zbuf_.data(), ob.pos);
      } while (r != 0);
    }
    if (::fsync(fd_) != 0) fail("safetensors %s: fsync failed: %s", path_.c_str(), std::strerror(errno));
    if (::close(fd_) != 0) {
      fd_ = -1;
      fail("safetensors %s: close failed: %s", path_.c_str(), std::strerror(errno));
    }
    fd_ = -1;
    if (::rename(tmp_.c_str(), path_.c_str()) != 0)
      fail("safetensors %s: rename from %s failed: %s", path_.c_str(), tmp_.c_str(), std::strerror(errno));
    committed_ = true;
    size_t slash = path_.find_last_of('/');
    std::string dir = slash == std::string::npos ? "." : slash == 0 ? "/" : path_.substr(0, slash);
    int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);  // best effort: some file systems refuse directory fsync
      ::close(dfd);
    }
  }

 private:
  void raw(const void* p, size_t n) {
    const uint8_t* b = (const uint8_t*)p;
    while (n > 0) {
      ssize_t r = ::write(fd_, b, n);
      if (r < 0 && errno == EINTR) continue;
      if (r <= 0) fail("safetensors %s: write failed: %s", path_.c_str(), std::strerror(errno));
      b += r;
      n -= (size_t)r;
    }
  }
  std::string path_, tmp_;
  int fd_ = -1;
  ZSTD_CCtx* z_ = nullptr;
  std::vector<uint8_t> zbuf_;
  bool committed_ = false;
};

}  // namespace

// ------------------------------------------------------------------ reading

int64_t SafetensorsEntry::numel() const {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  return n;
}

size_t safetensors_dtype_size(const std::string& dt) {
  static const std::unordered_map<std::string, size_t> sizes = {
      {"F64", 8}, {"F32", 4}, {"F16", 2}, {"BF16", 2}, {"I64", 8}, {"I32", 4}, {"I16", 2}, {"I8", 1},
      {"U64", 8}, {"U32", 4}, {"U16", 2}, {"U8", 1}, {"BOOL", 1}, {"F8_E4M3", 1}, {"F8_E5M2", 1}};
  auto it = sizes.find(dt);
  return it == sizes.end() ? 0 : it->second;
}

const SafetensorsEntry* SafetensorsFile::find(const std::string& name) const {
  for (const SafetensorsEntry& e : entries)
    if (e.name == name) return &e;
  return nullptr;
}

namespace {

constexpr uint64_t UNKNOWN_SIZE = UINT64_MAX;

// The header length N from the first 8 bytes, checked against the file size (UNKNOWN_SIZE: not yet known).
uint64_t header_length(const uint8_t* b, uint64_t size, const std::string& what) {
  const char* w = what.c_str();
  uint64_t n = 0;
  for (int k = 7; k >= 0; k--) n = (n << 8) | b[k];
  if (size != UNKNOWN_SIZE && n > size - 8)
    fail("safetensors %s: header length %llu exceeds the %llu bytes after the length field (truncated or not a "
         "safetensors file)", w, (unsigned long long)n, (unsigned long long)(size - 8));
  if (n > 100000000ull) fail("safetensors %s: header length %llu is over the 100 MB limit", w, (unsigned long long)n);
  return n;
}

// Entries and metadata of the header b[0 .. 8 + N); the data offsets are checked against the data
// size (size - 8 - N) when the file size is known (check_layout covers them too).
SafetensorsFile parse_header(const uint8_t* b, uint64_t n, uint64_t size, const std::string& what) {
  const char* w = what.c_str();
  if (n < 2 || b[8] != '{') fail("safetensors %s: header does not start with '{' (not a safetensors file?)", w);
  Json root = json_parse((const char*)b + 8, (size_t)n, "safetensors " + what + ": invalid header JSON");
  if (root.kind != Json::OBJECT) fail("safetensors %s: header is not a JSON object", w);
  SafetensorsFile f;
  f.path = what;
  f.data_start = 8 + (size_t)n;
  const uint64_t data_size = size == UNKNOWN_SIZE ? UNKNOWN_SIZE : size - f.data_start;
  for (auto& kv : root.obj) {
    const std::string& name = kv.first;
    const Json& v = kv.second;
    if (name == "__metadata__") {
      if (v.kind != Json::OBJECT) fail("safetensors %s: __metadata__ must be an object of strings", w);
      for (auto& m : v.obj) {
        if (m.second.kind != Json::STRING)
          fail("safetensors %s: __metadata__ value of \"%s\" is not a string", w, m.first.c_str());
        f.metadata[m.first] = m.second.str;
      }
      continue;
    }
    if (v.kind != Json::OBJECT) fail("safetensors %s: tensor \"%s\" is not a JSON object", w, name.c_str());
    const Json *dt = nullptr, *shape = nullptr, *offs = nullptr;
    for (auto& m : v.obj) {
      if (m.first == "dtype") dt = &m.second;
      else if (m.first == "shape") shape = &m.second;
      else if (m.first == "data_offsets") offs = &m.second;
      else fail("safetensors %s: tensor \"%s\" has an unknown field \"%s\"", w, name.c_str(), m.first.c_str());
    }
    if (!dt || !shape || !offs)
      fail("safetensors %s: tensor \"%s\" needs dtype, shape and data_offsets", w, name.c_str());
    SafetensorsEntry e;
    e.name = name;
    if (dt->kind != Json::STRING) fail("safetensors %s: tensor \"%s\": dtype is not a string", w, name.c_str());
    e.dtype = dt->str;
    size_t es = safetensors_dtype_size(e.dtype);
    if (!es) fail("safetensors %s: tensor \"%s\": unknown dtype \"%s\"", w, name.c_str(), e.dtype.c_str());
    if (shape->kind != Json::ARRAY) fail("safetensors %s: tensor \"%s\": shape is not an array", w, name.c_str());
    uint64_t numel = 1;
    bool overflow = false;
    for (const Json& d : shape->arr) {
      uint64_t x = json_uint(d, what, "tensor \"" + name + "\" shape entry");
      e.shape.push_back((int64_t)x);
      if (x && numel > (UINT64_MAX / 16) / x) overflow = true;
      numel *= x;
    }
    if (overflow) fail("safetensors %s: tensor \"%s\": shape %s is too large", w, name.c_str(), shape_str(e.shape).c_str());
    if (offs->kind != Json::ARRAY || offs->arr.size() != 2)
      fail("safetensors %s: tensor \"%s\": data_offsets must be [begin, end]", w, name.c_str());
    e.begin = json_uint(offs->arr[0], what, "tensor \"" + name + "\" data_offsets");
    e.end = json_uint(offs->arr[1], what, "tensor \"" + name + "\" data_offsets");
    if (e.end < e.begin)
      fail("safetensors %s: tensor \"%s\": data_offsets [%llu, %llu] end before begin", w, name.c_str(),
           (unsigned long long)e.begin, (unsigned long long)e.end);
    if (data_size != UNKNOWN_SIZE && e.end > data_size)
      fail("safetensors %s: tensor \"%s\": data_offsets [%llu, %llu] run past the %llu data bytes (truncated file?)", w,
           name.c_str(), (unsigned long long)e.begin, (unsigned long long)e.end, (unsigned long long)data_size);
    if (numel * es != e.end - e.begin)
      fail("safetensors %s: tensor \"%s\": %s %s needs %llu bytes but data_offsets span %llu", w, name.c_str(),
           e.dtype.c_str(), shape_str(e.shape).c_str(), (unsigned long long)(numel * es),
           (unsigned long long)(e.end - e.begin));
    f.entries.push_back(std::move(e));
  }
  return f;
}

// The data must be exactly the tensors, packed: sorted by offset, each starts where the last ended,
// the last ends at the end of the data.
void check_layout(const SafetensorsFile& f, uint64_t data_size) {
  const char* w = f.path.c_str();
  std::vector<const SafetensorsEntry*> by_off;
  for (const SafetensorsEntry& e : f.entries) by_off.push_back(&e);
  std::stable_sort(by_off.begin(), by_off.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) {
    return a->begin != b->begin ? a->begin < b->begin : a->end < b->end;
  });
  uint64_t pos = 0;
  for (const SafetensorsEntry* e : by_off) {
    if (e->begin < pos)
      fail("safetensors %s: tensor \"%s\": data_offsets [%llu, %llu] overlap another tensor", w, e->name.c_str(),
           (unsigned long long)e->begin, (unsigned long long)e->end);
    if (e->begin > pos)
      fail("safetensors %s: tensor \"%s\": gap in the data before offset %llu", w, e->name.c_str(),
           (unsigned long long)e->begin);
    pos = e->end;
  }
  if (pos != data_size)
    fail("safetensors %s: the tensors cover %llu data bytes but the file holds %llu", w, (unsigned long long)pos,
         (unsigned long long)data_size);
}

}  // namespace

SafetensorsFile safetensors_parse(std::vector<uint8_t> bytes, const std::string& what) {
  const uint64_t size = bytes.size();
  if (size < 8)
    fail("safetensors %s: file of %llu bytes is too short for the 8-byte header length", what.c_str(), (unsigned long long)size);
  SafetensorsFile f = parse_header(bytes.data(), header_length(bytes.data(), size, what), size, what);
  check_layout(f, size - f.data_start);
  f.bytes = std::move(bytes);
  return f;
}

SafetensorsFile safetensors_read(const std::string& path) {
  std::vector<uint8_t> b = read_file_bytes(path);
  if (ends_with(path, ".zst")) b = zstd_decompress(b, path);
  return safetensors_parse(std::move(b), path);
}

// ------------------------------------------------------------------ lazy reading

namespace {

// The decompressed bytes of a .zst file, a chunk at a time, from its start.
class ZstdReader {
 public:
  explicit ZstdReader(const std::string& path) : f_(path), in_(ZSTD_DStreamInSize()), out_(ZSTD_DStreamOutSize()) {
    d_ = ZSTD_createDCtx();
    if (!d_) fail("safetensors %s: out of memory creating a zstd context", path.c_str());
    ib_ = {in_.data(), 0, 0};
  }
  ~ZstdReader() { ZSTD_freeDCtx(d_); }
  // The next chunk (*len bytes at the returned pointer); *len = 0 at the end. Fails on a corrupt or
  // truncated stream.
  const uint8_t* next(size_t* len) {
    for (;;) {
      if (ib_.pos == ib_.size && !eof_) {
        ib_.size = f_.read_some(in_.data(), in_.size());
        ib_.pos = 0;
        eof_ = ib_.size == 0;
        if (first_ && !eof_) {
          first_ = false;
          if (ib_.size < 4 || !(in_[0] == 0x28 && in_[1] == 0xB5 && in_[2] == 0x2F && in_[3] == 0xFD))
            fail("safetensors %s: not a zstd file (bad magic number)", f_.path.c_str());
        }
      }
      if (eof_ && ib_.pos == ib_.size && ret_ == 0) {
        *len = 0;
        return nullptr;
      }
      ZSTD_outBuffer ob{out_.data(), out_.size(), 0};
      ret_ = ZSTD_decompressStream(d_, &ob, &ib_);
      if (ZSTD_isError(ret_)) fail("safetensors %s: zstd: %s", f_.path.c_str(), ZSTD_getErrorName(ret_));
      if (ob.pos > 0) {
        *len = ob.pos;
        return out_.data();
      }
      if (eof_ && ib_.pos == ib_.size) fail("safetensors %s: truncated zstd stream", f_.path.c_str());
    }
  }

 private:
  InFile f_;
  std::vector<uint8_t> in_, out_;
  ZSTD_DCtx* d_ = nullptr;
  ZSTD_inBuffer ib_;
  size_t ret_ = 1;  // 0 once a frame is complete
  bool eof_ = false, first_ = true;
};

}  // namespace

SafetensorsFile safetensors_open(const std::string& path) {
  if (ends_with(path, ".zst")) {  // decompress up to the end of the header
    ZstdReader z(path);
    std::vector<uint8_t> head;
    uint64_t need = 8;
    while (head.size() < need) {
      size_t len = 0;
      const uint8_t* p = z.next(&len);
      if (!len)
        fail("safetensors %s: file of %zu bytes is too short for its header (truncated or not a safetensors file)",
             path.c_str(), head.size());
      head.insert(head.end(), p, p + len);
      if (need == 8 && head.size() >= 8) need = 8 + header_length(head.data(), UNKNOWN_SIZE, path);
    }
    SafetensorsFile f = parse_header(head.data(), need - 8, UNKNOWN_SIZE, path);  // layout: checked on visit
    f.lazy = true;
    return f;
  }
  InFile in(path);
  if (in.size < 8)
    fail("safetensors %s: file of %llu bytes is too short for the 8-byte header length", path.c_str(),
         (unsigned long long)in.size);
  uint8_t len[8];
  in.pread_all(len, 8, 0);
  const uint64_t n = header_length(len, in.size, path);
  std::vector<uint8_t> head((size_t)(8 + n));
  in.pread_all(head.data(), head.size(), 0);
  SafetensorsFile f = parse_header(head.data(), n, in.size, path);
  check_layout(f, in.size - f.data_start);
  f.lazy = true;
  return f;
}

const uint8_t* SafetensorsFile::data(const SafetensorsEntry& e) const {
  if (lazy) fail("safetensors %s: tensor \"%s\" was not read (the file was opened lazily)", path.c_str(), e.name.c_str());
  return bytes.data() + data_start + e.begin;
}

static const uint8_t kEmpty = 0;  // what an empty tensor's bytes point at: never a null pointer

void SafetensorsFile::visit(const std::vector<const SafetensorsEntry*>& wanted,
                            const std::function<void(const SafetensorsEntry&, const uint8_t*)>& fn) const {
  std::vector<const SafetensorsEntry*> order(wanted);
  std::sort(order.begin(), order.end(), [](const SafetensorsEntry* a, const SafetensorsEntry* b) { return a->begin < b->begin; });
  if (!lazy) {
    for (const SafetensorsEntry* e : order) fn(*e, data(*e));
    return;
  }
  std::vector<uint8_t> buf;
  if (!ends_with(path, ".zst")) {
    InFile in(path);  // a file cut short since it was opened fails in pread_all
    for (const SafetensorsEntry* e : order) {
      buf.resize((size_t)(e->end - e->begin));
      in.pread_all(buf.data(), buf.size(), data_start + e->begin);
      fn(*e, buf.empty() ? &kEmpty : buf.data());
    }
    return;
  }
  // one pass over the stream: copy the wanted byte ranges out as they go by, then check the layout
  // against the stream's length (a truncated or padded file fails here)
  ZstdReader z(path);
  uint64_t pos = 0;  // stream offset of the chunk
  size_t w = 0, filled = 0;
  auto ready = [&](uint64_t upto) {  // wanted tensors that end by `upto` are complete
    while (w < order.size() && data_start + order[w]->end <= upto) {
      fn(*order[w], buf.empty() ? &kEmpty : buf.data());
      w++;
      filled = 0;
      buf.clear();
    }
  };
  ready(data_start);  // empty tensors at the start of the data
  for (;;) {
    size_t len = 0;
    const uint8_t* p = z.next(&len);
    if (!len) break;
    while (w < order.size()) {
      const uint64_t b = data_start + order[w]->begin + filled, e = data_start + order[w]->end;
      if (b >= pos + len || b < pos) break;
      const size_t n = (size_t)(std::min<uint64_t>(e, pos + len) - b);
      buf.resize(filled + n);  // grows with the bytes that arrived: a header cannot make it allocate more
      if (n) std::memcpy(buf.data() + filled, p + (b - pos), n);
      filled += n;
      ready(b + n);
      if (b + n == pos + len) break;
    }
    pos += len;
  }
  ready(pos);  // empty tensors at the end of the data
  if (pos < data_start) fail("safetensors %s: truncated (the stream ends inside the header)", path.c_str());
  check_layout(*this, pos - data_start);
  if (w < order.size()) fail("safetensors %s: truncated before tensor \"%s\"", path.c_str(), order[w]->name.c_str());
}

// ------------------------------------------------------------------ writing

namespace {
// Header of `tensors` (their data pointers unused) with nsvq's padding; total data bytes in *data_bytes.
std::string header_json(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                        const std::map<std::string, std::string>& metadata, uint64_t* data_bytes) {
  std::string h = "{";
  if (!metadata.empty()) {
    h += "\"__metadata__\":{";
    bool first = true;
    for (auto& kv : metadata) {
      h += (first ? "" : ",") + json_escape(kv.first) + ":" + json_escape(kv.second);
      first = false;
    }
    h += "}";
  }
  uint64_t off = 0;
  std::unordered_set<std::string> names;
  for (const SafetensorsTensor& t : tensors) {
    const char* dt = st_dtype_of(t.dtype);
    if (!dt) fail("safetensors %s: tensor \"%s\": cannot write dtype %s", path.c_str(), t.name.c_str(), dtype_name(t.dtype));
    if (t.name == "__metadata__" || !names.insert(t.name).second)
      fail("safetensors %s: tensor name \"%s\" is reserved or repeated", path.c_str(), t.name.c_str());
    uint64_t nb = dtype_size(t.dtype);
    for (int64_t d : t.shape) {
      if (d < 0) fail("safetensors %s: tensor \"%s\" has a negative extent", path.c_str(), t.name.c_str());
      nb *= (uint64_t)d;
    }
    if (h.size() > 1) h += ",";
    h += json_escape(t.name) + ":{\"dtype\":\"" + dt + "\",\"shape\":" + shape_str(t.shape) +
         ",\"data_offsets\":[" + std::to_string(off) + "," + std::to_string(off + nb) + "]}";
    off += nb;
  }
  h += "}";
  while (h.size() % 8) h += ' ';
  *data_bytes = off;
  return h;
}

// Writes the file; fetch(i) returns the bytes of tensor i (valid until the next call).
void write_file(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                const std::map<std::string, std::string>& metadata, int zstd_level,
                const std::function<const void*(size_t)>& fetch) {
  uint64_t data_bytes = 0;
  std::string h = header_json(path, tensors, metadata, &data_bytes);
  uint8_t len[8];
  for (int k = 0; k < 8; k++) len[k] = (uint8_t)((uint64_t)h.size() >> (8 * k));
  AtomicSink sink(path, ends_with(path, ".zst"), zstd_level);
  sink.set_pledged(8 + h.size() + data_bytes);
  sink.write(len, 8);
  sink.write(h.data(), h.size());
  for (size_t i = 0; i < tensors.size(); i++) {
    int64_t n = 1;
    for (int64_t d : tensors[i].shape) n *= d;
    if (n) sink.write(fetch(i), (size_t)n * dtype_size(tensors[i].dtype));
  }
  sink.commit();
}
}  // namespace

void safetensors_write(const std::string& path, const std::vector<SafetensorsTensor>& tensors,
                       const std::map<std::string, std::string>& metadata, int zstd_level) {
  write_file(path, tensors, metadata, zstd_level, [&](size_t i) { return tensors[i].data; });
}

// ------------------------------------------------------------------ Store tensors

void save_tensors(const Store& st, const std::string& path, const std::vector<Tensor*>& tensors,
                  const std::map<std::string, std::string>& metadata, int zstd_level) {
  std::vector<SafetensorsTensor> ts;
  for (const Tensor* t : tensors) {
    if (!t->is_contiguous()) fail("safetensors %s: tensor %s is not contiguous", path.c_str(), t->desc().c_str());
    SafetensorsTensor s;
    s.name = t->name;
    s.dtype = t->dtype;
    s.shape.assign(t->ne, t->ne + t->ndim);
    ts.push_back(std::move(s));
  }
  std::vector<uint8_t> buf;  // one tensor at a time: host memory stays at the largest tensor
  write_file(path, ts, metadata, zstd_level, [&](size_t i) -> const void* {
    buf.resize(tensors[i]->nbytes());
    st.download(tensors[i], buf.data(), buf.size());
    return buf.data();
  });
}

void save_store(const Store& st, const std::string& path, const std::map<std::string, std::string>& metadata,
                int zstd_level) {
  save_tensors(st, path, st.tensors(), metadata, zstd_level);
}

static std::string join_list(const std::vector<std::string>& v, size_t max_items = 64) {
  std::string r;
  for (size_t i = 0; i < v.size() && i < max_items; i++) r += (i ? ", " : "") + v[i];
  if (v.size() > max_items) r += ", ... (" + std::to_string(v.size() - max_items) + " more)";
  return r;
}

std::string LoadReport::summary() const {
  std::string r = std::to_string(loaded.size()) + " loaded";
  if (!missing.empty()) r += "; missing " + std::to_string(missing.size()) + ": " + join_list(missing);
  if (!unexpected.empty()) r += "; unexpected " + std::to_string(unexpected.size()) + ": " + join_list(unexpected);
  if (!mismatched.empty()) r += "; mismatched " + std::to_string(mismatched.size()) + ": " + join_list(mismatched);
  return r;
}

LoadReport load_tensors(Store& st, const std::string& path, const std::vector<Tensor*>& targets, bool strict) {
  return load_tensors(st, safetensors_open(path), targets, strict);
}

LoadReport load_tensors(Store& st, const SafetensorsFile& f, const std::vector<Tensor*>& targets, bool strict,
                        const std::string& file_prefix) {
  const std::string& path = f.path;
  LoadReport rep;
  rep.metadata = f.metadata;
  std::unordered_set<std::string> target_names;
  std::vector<std::pair<Tensor*, const SafetensorsEntry*>> todo;
  std::vector<std::string> unsupported;
  std::unordered_map<std::string, const SafetensorsEntry*> by_name;
  for (const SafetensorsEntry& e : f.entries) by_name[e.name] = &e;
  for (Tensor* t : targets) {
    const std::string name = file_prefix + t->name;
    target_names.insert(name);
    auto it = by_name.find(name);
    const SafetensorsEntry* e = it == by_name.end() ? nullptr : it->second;
    if (!e) {
      rep.missing.push_back(name);
      continue;
    }
    bool shape_ok = e->shape.size() == (size_t)t->ndim;
    for (int d = 0; shape_ok && d < t->ndim; d++) shape_ok = e->shape[(size_t)d] == t->ne[d];
    bool dtype_ok = (e->dtype == "F32" && t->dtype == DType::f32) || (e->dtype == "I32" && t->dtype == DType::i32) ||
                    (e->dtype == "I64" && t->dtype == DType::i32);
    bool known_kind = e->dtype == "F32" || e->dtype == "I32" || e->dtype == "I64";
    if (!known_kind) {
      unsupported.push_back(name + " (" + e->dtype + ")");
      continue;
    }
    if (!shape_ok || !dtype_ok) {
      rep.mismatched.push_back(name + ": file " + e->dtype + shape_str(e->shape) + " vs store " +
                               dtype_name(t->dtype) + t->shape().str());
      continue;
    }
    todo.emplace_back(t, e);
  }
  if (!unsupported.empty())
    fail("safetensors %s: unsupported dtype (nsvq loads F32, I32, and I64 into i32): %s", path.c_str(),
         join_list(unsupported).c_str());
  for (const SafetensorsEntry& e : f.entries)
    if (!target_names.count(e.name)) rep.unexpected.push_back(e.name);
  bool bad = !rep.mismatched.empty() || (strict && (!rep.missing.empty() || !rep.unexpected.empty()));
  if (bad) fail("safetensors %s: cannot load%s: %s", path.c_str(), strict ? " (strict)" : "", rep.summary().c_str());
  std::unordered_map<const SafetensorsEntry*, Tensor*> dst;
  std::vector<const SafetensorsEntry*> wanted;
  for (auto& te : todo) {
    dst[te.second] = te.first;
    wanted.push_back(te.second);
  }
  f.visit(wanted, [&](const SafetensorsEntry& e, const uint8_t* p) {
    Tensor* t = dst.at(&e);
    if (e.dtype == "I64") {  // into i32, range-checked
      std::vector<int32_t> v((size_t)t->numel());
      for (size_t i = 0; i < v.size(); i++) {
        int64_t x;
        std::memcpy(&x, p + 8 * i, 8);
        if (x < INT32_MIN || x > INT32_MAX)
          fail("safetensors %s: tensor \"%s\": I64 value %lld does not fit i32", path.c_str(), e.name.c_str(), (long long)x);
        v[i] = (int32_t)x;
      }
      st.upload(t, v.data(), v.size() * 4);
    } else if (t->nbytes()) {
      st.upload(t, p, t->nbytes());
    }
    rep.loaded.push_back(e.name);
  });
  return rep;
}

LoadReport load_store(Store& st, const std::string& path, bool strict) { return load_tensors(st, path, st.tensors(), strict); }

}  // namespace nsvq
