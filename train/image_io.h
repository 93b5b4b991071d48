// train/image_io.h — image files through stb (Debian libstb): decode PNG/JPEG/BMP/... into uint8
// planar [C, H, W], resize, write PNG, and tile many images into one grid PNG. Errors name the file.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace nsvq {

struct Image {
  int64_t C = 0, H = 0, W = 0;
  std::vector<uint8_t> px;  // planar [C, H, W]
  int src_channels = 0;     // image_read: channels in the file (1 gray, 2 gray+alpha, 3 RGB, 4 RGBA)
};

// Decodes a file into `channels` channels (1: gray, 3: RGB; gray and RGBA inputs are converted,
// alpha composited over black). Throws Error naming the path when the file is unreadable or corrupt,
// or when its header states more pixels than image_max_pixels() (checked before decoding: a small
// file cannot make nsvq allocate gigabytes).
Image image_read(const std::string& path, int channels);
// The same from a file's bytes (`what` names it in errors).
Image image_decode(const uint8_t* bytes, size_t size, const std::string& what, int channels);
// The pixel limit of image_read (default 64 megapixels; the command line's --max-pixels).
int64_t& image_max_pixels();
// Bilinear resize (stb_image_resize) to h x w.
Image image_resize(const Image& im, int64_t h, int64_t w);
// Resize so the short side is `side`, then cut the centred side x side square.
Image image_resize_center_crop(const Image& im, int64_t side);
// Writes 1- or 3-channel planar uint8 as PNG, atomically (train/atomic_file.h).
void image_write_png(const std::string& path, const Image& im);
// float [C, H, W] in [-1, 1] -> uint8 planar (method.md §7.4 rounding)
Image image_from_float(const float* x, int64_t C, int64_t H, int64_t W);
// Tiles n images [C, H, W] (float, [-1, 1], contiguous) into rows x cols with a 2-pixel gap.
Image image_grid(const float* x, int64_t n, int64_t C, int64_t H, int64_t W, int64_t cols);

}  // namespace nsvq
