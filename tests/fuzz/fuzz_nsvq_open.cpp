// tests/fuzz/fuzz_nsvq_open.cpp — libFuzzer target: the C API's nsvq_open (include/nsvq.h) on any file,
// then nsvq_get_info and, when it opened, nsvq_tokenize of one grey image (which loads the encoder half:
// the config must not make nsvq allocate more than the file backs) and nsvq_close. Errors are codes and
// messages; nothing may crash or leak.
#include <cstdint>
#include <cstring>
#include <vector>
#include "include/nsvq.h"
#include "tests/fuzz/fuzz_util.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const bool zst = size > 0 && (data[0] == 0x28);  // a zstd frame starts with 0x28 b5 2f fd
  const std::string path = nsvq_fuzz::file(zst ? "m.safetensors.zst" : "m.safetensors", data, size);
  char err[256];
  nsvq_model* m = nsvq_open(path.c_str(), 1, err, sizeof err);
  nsvq_model_info info;
  nsvq_get_info(m, &info);
  if (m && info.image_size > 0 && info.image_size <= 256 && info.channels > 0 && info.channels <= 3) {
    std::vector<uint8_t> px((size_t)info.image_size * info.image_size * info.channels, 128);
    std::vector<int32_t> tok((size_t)info.grid_h * info.grid_w + 1);
    nsvq_tokenize(m, px.data(), 1, info.image_size, info.image_size, info.channels, tok.data());
    nsvq_error(m);
  }
  nsvq_close(m);
  return 0;
}
