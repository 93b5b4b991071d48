// train/image_io.cpp — stb-backed image decode, resize, PNG encode, and grids.
#include "train/image_io.h"
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>
#include <cerrno>
#include <cmath>
#include <cstdio>
#include <cstring>
#include "engine/tensor.h"
#include "train/atomic_file.h"
#include "train/metrics.h"

namespace nsvq {

int64_t& image_max_pixels() {
  static int64_t limit = 64000000;
  return limit;
}

Image image_read(const std::string& path, int channels) {
  if (channels != 1 && channels != 3) fail("image_read: %d channels requested (1 or 3)", channels);
  FILE* f = fopen(path.c_str(), "rb");
  if (!f) fail("%s: cannot open (%s)", path.c_str(), strerror(errno));
  std::vector<uint8_t> bytes;
  uint8_t buf[1 << 16];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, f)) > 0) bytes.insert(bytes.end(), buf, buf + n);
  const bool err = ferror(f);
  fclose(f);
  if (err) fail("%s: read error", path.c_str());
  return image_decode(bytes.data(), bytes.size(), path, channels);
}

// stb_image copies an IDAT chunk into its data buffer before that buffer exists when the first IDAT
// chunk is empty: memcpy(NULL, p, 0), undefined behaviour (found by tests/fuzz/fuzz_image). Empty IDAT
// chunks hold no data, so a PNG that has any is decoded from a copy without them; other files, and
// everything after a chunk that runs past the end (stb rejects it), pass unchanged.
static bool png_without_empty_idat(const uint8_t* b, size_t size, std::vector<uint8_t>* out) {
  static const uint8_t sig[8] = {137, 80, 78, 71, 13, 10, 26, 10};
  if (size < 8 || memcmp(b, sig, 8) != 0) return false;
  bool found = false;
  size_t p = 8;
  if (out) out->assign(b, b + 8);
  while (size - p >= 12) {
    const size_t len = (size_t)b[p] << 24 | (size_t)b[p + 1] << 16 | (size_t)b[p + 2] << 8 | b[p + 3];
    if (len > size - p - 12) break;
    const bool empty_idat = len == 0 && memcmp(b + p + 4, "IDAT", 4) == 0;
    found = found || empty_idat;
    if (out && !empty_idat) out->insert(out->end(), b + p, b + p + 12 + len);
    p += 12 + len;
  }
  if (out) out->insert(out->end(), b + p, b + size);
  return found;
}

Image image_decode(const uint8_t* bytes, size_t size, const std::string& what, int channels) {
  if (channels != 1 && channels != 3) fail("image_read: %d channels requested (1 or 3)", channels);
  if (size > (size_t)INT32_MAX) fail("%s: %zu bytes is too large an image file", what.c_str(), size);
  std::vector<uint8_t> cleaned;
  if (png_without_empty_idat(bytes, size, nullptr)) {
    png_without_empty_idat(bytes, size, &cleaned);
    bytes = cleaned.data();
    size = cleaned.size();
  }
  int w = 0, h = 0, n = 0;
  if (!stbi_info_from_memory(bytes, (int)size, &w, &h, &n))
    fail("%s: not a readable image (%s)", what.c_str(), stbi_failure_reason());
  if ((int64_t)w * h > image_max_pixels())
    fail("%s: %dx%d = %lld pixels, over the limit of %lld (--max-pixels)", what.c_str(), w, h, (long long)w * h,
         (long long)image_max_pixels());
  // load as RGBA so that alpha can be composited over black, whatever the file holds
  unsigned char* data = stbi_load_from_memory(bytes, (int)size, &w, &h, &n, 4);
  if (!data) fail("%s: not a readable image (%s)", what.c_str(), stbi_failure_reason());
  if ((int64_t)w * h > image_max_pixels()) {  // the decoder's own idea of the size (a header it reads differently)
    stbi_image_free(data);
    fail("%s: %dx%d pixels, over the limit of %lld (--max-pixels)", what.c_str(), w, h, (long long)image_max_pixels());
  }
  Image im;
  im.C = channels;
  im.src_channels = n;
  im.H = h;
  im.W = w;
  im.px.resize((size_t)channels * h * w);
  for (int64_t i = 0; i < (int64_t)h * w; i++) {
    const unsigned char* p = data + i * 4;
    float a = p[3] / 255.0f;
    float r = p[0] * a, g = p[1] * a, b = p[2] * a;
    if (channels == 1) {
      im.px[i] = (uint8_t)std::min(255.0f, std::nearbyint(0.299f * r + 0.587f * g + 0.114f * b));
    } else {
      im.px[i] = (uint8_t)std::nearbyint(r);
      im.px[(size_t)h * w + i] = (uint8_t)std::nearbyint(g);
      im.px[(size_t)2 * h * w + i] = (uint8_t)std::nearbyint(b);
    }
  }
  stbi_image_free(data);
  return im;
}

Image image_resize(const Image& im, int64_t h, int64_t w) {
  if (h == im.H && w == im.W) return im;
  Image out;
  out.C = im.C;
  out.H = h;
  out.W = w;
  out.px.resize((size_t)(im.C * h * w));
  for (int64_t c = 0; c < im.C; c++)
    if (!stbir_resize_uint8(im.px.data() + c * im.H * im.W, (int)im.W, (int)im.H, 0, out.px.data() + c * h * w, (int)w,
                            (int)h, 0, 1))
      fail("image_resize: %lldx%lld -> %lldx%lld failed", (long long)im.W, (long long)im.H, (long long)w, (long long)h);
  return out;
}

Image image_resize_center_crop(const Image& im, int64_t side) {
  int64_t h, w;
  if (im.H <= im.W) {
    h = side;
    w = std::max<int64_t>(side, (im.W * side + im.H / 2) / im.H);
  } else {
    w = side;
    h = std::max<int64_t>(side, (im.H * side + im.W / 2) / im.W);
  }
  Image r = image_resize(im, h, w);
  Image out;
  out.C = im.C;
  out.H = out.W = side;
  out.px.resize((size_t)(im.C * side * side));
  int64_t y0 = (h - side) / 2, x0 = (w - side) / 2;
  for (int64_t c = 0; c < im.C; c++)
    for (int64_t y = 0; y < side; y++)
      std::memcpy(out.px.data() + (c * side + y) * side, r.px.data() + (c * h + y + y0) * w + x0, (size_t)side);
  return out;
}

void image_write_png(const std::string& path, const Image& im) {
  if (im.C != 1 && im.C != 3) fail("%s: cannot write %lld-channel PNG", path.c_str(), (long long)im.C);
  std::vector<uint8_t> hwc((size_t)(im.C * im.H * im.W));
  for (int64_t c = 0; c < im.C; c++)
    for (int64_t i = 0; i < im.H * im.W; i++) hwc[i * im.C + c] = im.px[c * im.H * im.W + i];
  std::vector<uint8_t> png;
  auto sink = [](void* ctx, void* data, int size) {
    auto* v = (std::vector<uint8_t>*)ctx;
    v->insert(v->end(), (uint8_t*)data, (uint8_t*)data + size);
  };
  if (!stbi_write_png_to_func(sink, &png, (int)im.W, (int)im.H, (int)im.C, hwc.data(), (int)(im.W * im.C)))
    fail("%s: cannot encode PNG", path.c_str());
  write_file_atomic(path, png.data(), png.size());
}

Image image_from_float(const float* x, int64_t C, int64_t H, int64_t W) {
  Image im;
  im.C = C;
  im.H = H;
  im.W = W;
  im.px.resize((size_t)(C * H * W));
  for (size_t i = 0; i < im.px.size(); i++) im.px[i] = to_uint8(x[i]);
  return im;
}

Image image_grid(const float* x, int64_t n, int64_t C, int64_t H, int64_t W, int64_t cols) {
  const int64_t gap = 2;
  cols = std::max<int64_t>(1, std::min(cols, n));
  int64_t rows = (n + cols - 1) / cols;
  Image g;
  g.C = C;
  g.H = rows * H + (rows + 1) * gap;
  g.W = cols * W + (cols + 1) * gap;
  g.px.assign((size_t)(C * g.H * g.W), 255);
  for (int64_t k = 0; k < n; k++) {
    int64_t r = k / cols, c = k % cols;
    int64_t y0 = gap + r * (H + gap), x0 = gap + c * (W + gap);
    for (int64_t ch = 0; ch < C; ch++)
      for (int64_t y = 0; y < H; y++)
        for (int64_t xx = 0; xx < W; xx++)
          g.px[(ch * g.H + y0 + y) * g.W + x0 + xx] = to_uint8(x[((k * C + ch) * H + y) * W + xx]);
  }
  return g;
}

}  // namespace nsvq
