// train/fmnist.cpp — IDX reader (magic 0x00000803 images, 0x00000801 labels, big-endian sizes).
#include "train/fmnist.h"
#include <zlib.h>
#include <cerrno>
#include <cstring>
#include "engine/tensor.h"

namespace nsvq {

const char* FMNIST_DEFAULT_DIR = "/usr/share/datasets/fashion-mnist";

// Reads the whole (possibly gzip-compressed) file.
static std::vector<uint8_t> read_gz(const std::string& path) {
  gzFile f = gzopen(path.c_str(), "rb");
  if (!f) fail("%s: cannot open (%s)", path.c_str(), errno ? strerror(errno) : "zlib error");
  std::vector<uint8_t> out;
  uint8_t buf[1 << 16];
  for (;;) {
    int n = gzread(f, buf, sizeof buf);
    if (n < 0) {
      int e;
      std::string msg = gzerror(f, &e);
      gzclose(f);
      fail("%s: corrupt gzip data (%s)", path.c_str(), msg.c_str());
    }
    if (n == 0) break;
    out.insert(out.end(), buf, buf + n);
  }
  gzclose(f);
  return out;
}

static uint32_t be32(const uint8_t* p) { return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | p[3]; }

IdxImages idx_read_images(const std::string& path) {
  std::vector<uint8_t> d = read_gz(path);
  if (d.size() < 16 || be32(d.data()) != 0x803) fail("%s: not an IDX image file (bad magic or too short)", path.c_str());
  IdxImages im;
  im.n = be32(d.data() + 4);
  im.rows = be32(d.data() + 8);
  im.cols = be32(d.data() + 12);
  size_t need = (size_t)im.n * im.rows * im.cols;
  if (d.size() - 16 != need)
    fail("%s: truncated or oversized IDX image file (%zu pixel bytes, header says %zu)", path.c_str(), d.size() - 16, need);
  im.pixels.assign(d.begin() + 16, d.end());
  return im;
}

std::vector<uint8_t> idx_read_labels(const std::string& path) {
  std::vector<uint8_t> d = read_gz(path);
  if (d.size() < 8 || be32(d.data()) != 0x801) fail("%s: not an IDX label file (bad magic or too short)", path.c_str());
  size_t n = be32(d.data() + 4);
  if (d.size() - 8 != n) fail("%s: truncated or oversized IDX label file (%zu labels, header says %zu)", path.c_str(), d.size() - 8, n);
  return std::vector<uint8_t>(d.begin() + 8, d.end());
}

FmnistSplit fmnist_load(const std::string& dir, const std::string& split) {
  FmnistSplit s;
  s.images = idx_read_images(dir + "/" + split + "-images-idx3-ubyte.gz");
  s.labels = idx_read_labels(dir + "/" + split + "-labels-idx1-ubyte.gz");
  if ((int64_t)s.labels.size() != s.images.n)
    fail("%s: %lld images but %zu labels", dir.c_str(), (long long)s.images.n, s.labels.size());
  for (uint8_t l : s.labels)
    if (l > 9) fail("%s/%s labels: label %d out of range 0..9", dir.c_str(), split.c_str(), l);
  return s;
}

}  // namespace nsvq
