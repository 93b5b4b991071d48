// train/fmnist.h — Fashion-MNIST / MNIST IDX files (gzip-compressed, read with zlib).
// Images come back as uint8 [n, rows, cols] row-major, labels as uint8 [n].
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nsvq {

struct IdxImages {
  int64_t n = 0, rows = 0, cols = 0;
  std::vector<uint8_t> pixels;
};

// Where the Debian package dataset-fashion-mnist installs the files.
extern const char* FMNIST_DEFAULT_DIR;

// Both read plain or .gz IDX files; errors name the file and the problem.
IdxImages idx_read_images(const std::string& path);
std::vector<uint8_t> idx_read_labels(const std::string& path);

struct FmnistSplit {
  IdxImages images;
  std::vector<uint8_t> labels;
};
// split: "train" or "t10k"; checks that images and labels agree.
FmnistSplit fmnist_load(const std::string& dir, const std::string& split);

}  // namespace nsvq
