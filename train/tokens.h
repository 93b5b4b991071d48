// train/tokens.h — the token file (.nsvqt) written by `nsvq tokenize` and read by `nsvq decode`.
//
// Layout, little-endian, version 1:
//   offset  size  field
//        0     8  magic "NSVQTOK\0"
//        8     4  version (1)
//       12     4  number of images n
//       16     4  grid height h (tokens)
//       20     4  grid width w
//       24     4  codebook size K
//       28     4  bytes per index (2 when K <= 65536, else 4)
//       32     8  payload bytes before compression (= n * h * w * bytes per index)
//       40     8  payload bytes after compression
//       48     4  CRC-32 (zlib) of the uncompressed payload
//       52     4  CRC-32 of bytes 0..51
//       56     .  payload: zstd frame of the indices, image-major, row-major within an image
// Readers reject a wrong magic/version, inconsistent sizes, indices >= K and checksum mismatches.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nsvq {

struct TokenFile {
  int64_t n = 0, h = 0, w = 0, K = 0;
  std::vector<int32_t> idx;  // n * h * w
};

// Atomic write (temporary file, fsync, rename). zstd level 19 is small and still fast at these sizes.
void tokens_write(const std::string& path, const TokenFile& t, int zstd_level = 19);
TokenFile tokens_read(const std::string& path);
// The same from the file's bytes (`what` names it in errors). Nothing is allocated beyond what the
// header's checked sizes and the payload's own zstd frame header state.
TokenFile tokens_parse(const std::vector<uint8_t>& bytes, const std::string& what);

}  // namespace nsvq
