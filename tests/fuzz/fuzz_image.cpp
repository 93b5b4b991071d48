// tests/fuzz/fuzz_image.cpp — libFuzzer target: our image path around stb_image (train/image_io.h):
// decode with the pixel limit (1 Mpx here), gray and RGB, then resize and centre-crop to 32x32 as
// `tokenize --resize` does. The decoder itself is compiled here from Debian's stb_image.h (so that the
// fuzzer sees its branches and ASan its memory); it takes the place of libstb's copy in this program.
#define STB_IMAGE_IMPLEMENTATION
#include <stb_image.h>
#include <cstdint>
#include "engine/tensor.h"
#include "train/image_io.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  nsvq::image_max_pixels() = 1 << 20;
  for (int c : {1, 3}) {
    try {
      nsvq::Image im = nsvq::image_decode(data, size, "fuzz", c);
      if (im.H > 0 && im.W > 0) nsvq::image_resize_center_crop(im, 32);
    } catch (const nsvq::Error&) {
    }
  }
  return 0;
}
