// tests/test_data.cpp — datasets (Fashion-MNIST, CIFAR-10 binary, image folders with corrupt files)
// and the batch loader's determinism, epoch coverage and resume.
#include <doctest/doctest.h>
#include <stb_image_write.h>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <unistd.h>
#include <set>
#include "engine/tensor.h"
#include "train/data.h"
#include "train/image_io.h"
#include "tests/test_util.h"

using namespace nsvq;
using nsvq_test::error_of;
using nsvq_test::TempDir;
namespace fs = std::filesystem;

TEST_CASE("Fashion-MNIST is padded to 32x32 with the background value") {
  if (!fs::exists("/usr/share/datasets/fashion-mnist/t10k-images-idx3-ubyte.gz")) {
    MESSAGE("dataset-fashion-mnist not installed: skipped");
    return;
  }
  Dataset d = dataset_load("fmnist", "test");
  CHECK(d.size() == 10000);
  CHECK(d.C == 1);
  CHECK(d.S == 32);
  std::vector<float> x(32 * 32);
  dataset_sample(d, 0, x.data(), false, 0);
  CHECK(x[0] == -1.0f);              // padding
  CHECK(x[31 * 32 + 31] == -1.0f);
  float mx = -1;
  for (float v : x) mx = std::max(mx, v);
  CHECK(mx > 0.0f);  // an actual garment
}

TEST_CASE("CIFAR-10 binary records, truncated files and the .xz hint") {
  TempDir t;
  std::vector<uint8_t> rec(2 * 3073);
  for (int r = 0; r < 2; r++) {
    rec[r * 3073] = (uint8_t)(3 + r);
    for (int i = 0; i < 3072; i++) rec[r * 3073 + 1 + i] = (uint8_t)((i + r) % 256);
  }
  std::ofstream((t.p / "test_batch.bin").string(), std::ios::binary).write((const char*)rec.data(), rec.size());
  Dataset d = dataset_load("cifar10:" + t.p.string(), "test");
  REQUIRE(d.size() == 2);
  CHECK(d.labels[1] == 4);
  std::vector<float> x(3072);
  dataset_sample(d, 1, x.data(), false, 0);
  CHECK(x[0] == doctest::Approx(1 * 2.0f / 255.0f - 1.0f));  // first red pixel of record 1 = 1
  CHECK(x[1024] == doctest::Approx(((1024 + 1) % 256) * 2.0f / 255.0f - 1.0f));  // green plane
  std::ofstream((t.p / "test_batch.bin").string(), std::ios::binary).write((const char*)rec.data(), 3000);
  CHECK(error_of([&] { dataset_load("cifar10:" + t.p.string(), "test"); }).find("not a whole number") != std::string::npos);
  std::ofstream((t.p / "data_batch_1.bin.xz").string()) << "x";
  CHECK(error_of([&] { dataset_load("cifar10:" + t.p.string(), "train"); }).find("xz -dk") != std::string::npos);
  CHECK(error_of([&] { dataset_load("cifar10", "train"); }).find("cifar10:DIR") != std::string::npos);
  CHECK(error_of([&] { dataset_load("mnist9", "train"); }).find("unknown dataset") != std::string::npos);
}

TEST_CASE("image folders: recursive, classes from subfolders, gray/RGBA inputs, corrupt files skipped") {
  TempDir t;
  fs::create_directories(t.p / "cat");
  fs::create_directories(t.p / "dog" / "deep");
  std::vector<uint8_t> rgba(20 * 30 * 4, 200), gray(24 * 24, 50);
  for (size_t i = 3; i < rgba.size(); i += 4) rgba[i] = 255;
  CHECK(stbi_write_png((t.p / "cat" / "a.png").string().c_str(), 30, 20, 4, rgba.data(), 30 * 4));
  CHECK(stbi_write_png((t.p / "dog" / "deep" / "b.PNG").string().c_str(), 24, 24, 1, gray.data(), 24));
  std::ofstream((t.p / "dog" / "broken.jpg").string()) << "this is not a jpeg";
  Dataset d = dataset_load("folder:" + t.p.string(), "train", 16, 3);
  REQUIRE(d.size() == 2);
  CHECK(d.skipped.size() == 1);
  CHECK(d.num_classes == 2);
  CHECK(d.labels[0] == 0);
  CHECK(d.labels[1] == 1);
  CHECK(d.h[0] == 16);
  CHECK(d.w[0] == 24);  // short side 16, aspect kept
  std::vector<float> x(3 * 16 * 16);
  dataset_sample(d, 1, x.data(), false, 0);
  CHECK(x[0] == doctest::Approx(50 * 2.0f / 255.0f - 1.0f));  // gray replicated into RGB
  CHECK(error_of([&] { dataset_load("folder:" + (t.p / "none").string(), "train"); }).find("not a folder") != std::string::npos);
}

TEST_CASE("image decode: empty IDAT chunks (fuzz_image's find) decode as if absent; a PNG of only empty ones is refused") {
  std::vector<uint8_t> px(7 * 5 * 3), png;
  for (size_t i = 0; i < px.size(); i++) px[i] = (uint8_t)(i * 37 + 11);
  auto sink = [](void* ctx, void* data, int n) {
    auto* v = (std::vector<uint8_t>*)ctx;
    v->insert(v->end(), (uint8_t*)data, (uint8_t*)data + n);
  };
  REQUIRE(stbi_write_png_to_func(sink, &png, 7, 5, 3, px.data(), 7 * 3));
  size_t p = 8;  // the first IDAT chunk: [length][type][data][crc]
  auto len_at = [&](size_t q) { return (size_t)png[q] << 24 | (size_t)png[q + 1] << 16 | (size_t)png[q + 2] << 8 | png[q + 3]; };
  while (memcmp(&png[p + 4], "IDAT", 4) != 0) p += 12 + len_at(p);
  const uint8_t empty[12] = {0, 0, 0, 0, 'I', 'D', 'A', 'T', 0x35, 0xAF, 0x06, 0x1E};
  std::vector<uint8_t> odd(png.begin(), png.begin() + p);
  odd.insert(odd.end(), empty, empty + 12);
  odd.insert(odd.end(), empty, empty + 12);
  odd.insert(odd.end(), png.begin() + p, png.end());
  const Image a = image_decode(png.data(), png.size(), "a.png", 3), b = image_decode(odd.data(), odd.size(), "b.png", 3);
  REQUIRE(a.px.size() == px.size());
  for (int c = 0; c < 3; c++)
    for (int i = 0; i < 35; i++) CHECK(a.px[c * 35 + i] == px[i * 3 + c]);
  CHECK(b.px == a.px);
  std::vector<uint8_t> none(png.begin(), png.begin() + p);  // the data chunk replaced by an empty one
  none.insert(none.end(), empty, empty + 12);
  none.insert(none.end(), png.begin() + p + 12 + len_at(p), png.end());
  CHECK(error_of([&] { image_decode(none.data(), none.size(), "none.png", 3); }).find("none.png: not a readable image") !=
        std::string::npos);
}

TEST_CASE("batch loader: deterministic, every sample once per epoch, resumable at any position") {
  Dataset d;
  d.name = "synthetic";
  d.C = 1;
  d.S = 8;
  d.num_classes = 10;
  std::vector<uint8_t> img(64);
  for (int i = 0; i < 50; i++) {
    std::fill(img.begin(), img.end(), (uint8_t)i);
    d.off.push_back((int64_t)d.px.size());
    d.h.push_back(8);
    d.w.push_back(8);
    d.px.insert(d.px.end(), img.begin(), img.end());
    d.labels.push_back(i);
  }
  auto run = [&](uint64_t seed, int batches, BatchLoader::Pos start) {
    BatchLoader L(d, 7, seed, true, false);
    if (start.epoch || start.index) L.seek(start);
    std::vector<int32_t> seen;
    std::vector<float> x(7 * 64);
    std::vector<int32_t> y(7);
    for (int b = 0; b < batches; b++) {
      L.next(x.data(), y.data());
      for (int k = 0; k < 7; k++) CHECK(x[k * 64] == doctest::Approx(y[k] * 2.0f / 255.0f - 1.0f));
      seen.insert(seen.end(), y.begin(), y.end());
    }
    return seen;
  };
  std::vector<int32_t> a = run(1, 14, {}), b = run(1, 14, {}), c = run(2, 14, {});
  CHECK(a == b);
  CHECK(a != c);
  std::set<int32_t> epoch0(a.begin(), a.begin() + 49);  // 7 batches of 7 = 49 of 50 (last partial dropped)
  CHECK(epoch0.size() == 49);
  CHECK(std::vector<int32_t>(a.begin(), a.begin() + 49) != std::vector<int32_t>(a.begin() + 49, a.end()));  // reshuffled
  std::vector<int32_t> r = run(1, 4, {1, 21});  // resume at epoch 1, batch 3
  CHECK(r == std::vector<int32_t>(a.begin() + 49 + 21, a.begin() + 49 + 21 + 28));
}
