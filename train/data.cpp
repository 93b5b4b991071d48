// train/data.cpp — Fashion-MNIST, CIFAR-10 binary and image-folder datasets, sample extraction, the
// batch-stream base with its prefetching thread, and the deterministic in-memory batch loader.
#include "train/data.h"
#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <numeric>
#include "engine/rng.h"
#include "engine/tensor.h"
#include "train/fmnist.h"
#include "train/image_io.h"
#include "train/shards.h"

namespace nsvq {

namespace fs = std::filesystem;

void dataset_add(Dataset& d, const uint8_t* px, int64_t h, int64_t w, int32_t label) {
  d.off.push_back((int64_t)d.px.size());
  d.h.push_back(h);
  d.w.push_back(w);
  d.px.insert(d.px.end(), px, px + d.C * h * w);
  d.labels.push_back(label);
}

namespace {

Dataset load_fmnist(const std::string& dir, const std::string& split) {
  FmnistSplit s = fmnist_load(dir, split == "train" ? "train" : "t10k");
  Dataset d;
  d.name = "fmnist";
  d.C = 1;
  d.S = 32;
  d.num_classes = 10;
  int64_t R = s.images.rows, Cc = s.images.cols;
  if (R > 32 || Cc > 32) fail("%s: images of %lldx%lld do not fit 32x32", dir.c_str(), (long long)R, (long long)Cc);
  std::vector<uint8_t> img(32 * 32);
  int64_t py = (32 - R) / 2, px = (32 - Cc) / 2;
  for (int64_t i = 0; i < s.images.n; i++) {
    std::fill(img.begin(), img.end(), 0);  // background value of Fashion-MNIST
    const uint8_t* src = s.images.pixels.data() + i * R * Cc;
    for (int64_t y = 0; y < R; y++) std::copy(src + y * Cc, src + (y + 1) * Cc, img.data() + (y + py) * 32 + px);
    dataset_add(d, img.data(), 32, 32, s.labels[i]);
  }
  return d;
}

Dataset load_cifar10(const std::string& dir, const std::string& split) {
  std::vector<std::string> files;
  if (split == "train")
    for (int i = 1; i <= 5; i++) files.push_back(dir + "/data_batch_" + std::to_string(i) + ".bin");
  else
    files.push_back(dir + "/test_batch.bin");
  Dataset d;
  d.name = "cifar10";
  d.C = 3;
  d.S = 32;
  d.num_classes = 10;
  const int64_t REC = 1 + 3 * 32 * 32;
  std::vector<uint8_t> buf;
  for (const std::string& f : files) {
    std::ifstream in(f, std::ios::binary);
    if (!in) {
      if (fs::exists(f + ".xz")) fail("%s: missing; found %s.xz — decompress it first (xz -dk %s.xz)", f.c_str(), f.c_str(), f.c_str());
      fail("%s: cannot open", f.c_str());
    }
    buf.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
    if (buf.empty() || buf.size() % REC)
      fail("%s: %zu bytes is not a whole number of CIFAR-10 records (%lld bytes each)", f.c_str(), buf.size(), (long long)REC);
    for (size_t r = 0; r < buf.size() / REC; r++) {
      const uint8_t* rec = buf.data() + r * REC;
      if (rec[0] > 9) fail("%s: record %zu has label %d (expected 0..9)", f.c_str(), r, rec[0]);
      dataset_add(d, rec + 1, 32, 32, rec[0]);
    }
  }
  return d;
}

bool is_image_name(const fs::path& p) {
  std::string e = p.extension().string();
  std::transform(e.begin(), e.end(), e.begin(), ::tolower);
  return e == ".png" || e == ".jpg" || e == ".jpeg" || e == ".bmp" || e == ".tga" || e == ".gif";
}

Dataset load_folder(const std::string& root, const std::string& split, int64_t size, int channels) {
  FolderList L = folder_list(root, split);
  Dataset d;
  d.name = "folder";
  d.C = channels;
  d.S = size;
  d.num_classes = L.num_classes;
  for (size_t i = 0; i < L.paths.size(); i++) {
    try {
      Image r = folder_image(L.paths[i], size, channels);
      dataset_add(d, r.px.data(), r.H, r.W, L.labels[i]);
    } catch (const Error& e) {
      fprintf(stderr, "warning: skipping %s\n", e.what());
      d.skipped.push_back(L.paths[i]);
    }
  }
  if (d.size() == 0) fail("%s: none of the %zu image files could be read", L.dir.c_str(), L.paths.size());
  if (!d.skipped.empty()) fprintf(stderr, "warning: %zu unreadable image files skipped in %s\n", d.skipped.size(), L.dir.c_str());
  return d;
}
}  // namespace

FolderList folder_list(const std::string& root, const std::string& split) {
  fs::path dir = root;
  if (!fs::is_directory(dir)) fail("%s: not a folder", root.c_str());
  if (fs::is_directory(dir / split)) dir /= split;
  FolderList L;
  L.dir = dir.string();
  L.paths = list_image_files(L.dir);
  if (L.paths.empty()) fail("%s: no image files (png, jpg, jpeg, bmp, tga, gif) found", L.dir.c_str());
  // classes: the first-level subfolders, when every image sits in one
  std::map<std::string, int32_t> classes;
  bool labelled = true;
  for (const std::string& p : L.paths) {
    fs::path rel = fs::relative(p, dir);
    if (rel.has_parent_path()) classes.emplace(rel.begin()->string(), 0);
    else labelled = false;
  }
  int32_t k = 0;
  for (auto& c : classes) c.second = k++;
  L.num_classes = labelled ? (int)classes.size() : 0;
  for (const std::string& p : L.paths) L.labels.push_back(labelled ? classes[fs::relative(p, dir).begin()->string()] : -1);
  return L;
}

Image folder_image(const std::string& path, int64_t size, int channels) {
  Image im = image_read(path, channels);
  int64_t h = im.H, w = im.W;
  if (h <= w) w = std::max<int64_t>(size, (w * size + h / 2) / h), h = size;
  else h = std::max<int64_t>(size, (h * size + w / 2) / w), w = size;
  return image_resize(im, h, w);
}

std::vector<std::string> list_image_files(const std::string& dir) {
  std::vector<fs::path> paths;
  for (const auto& e : fs::recursive_directory_iterator(dir, fs::directory_options::skip_permission_denied))
    if (e.is_regular_file() && is_image_name(e.path())) paths.push_back(e.path());
  std::sort(paths.begin(), paths.end());
  std::vector<std::string> out;
  for (const fs::path& p : paths) out.push_back(p.string());
  return out;
}

void dataset_truncate(Dataset& d, int64_t n) {
  if (n <= 0 || n >= d.size()) return;
  d.h.resize((size_t)n);
  d.w.resize((size_t)n);
  d.labels.resize((size_t)n);
  const size_t end = (size_t)(d.off[(size_t)n - 1] + d.C * d.h[(size_t)n - 1] * d.w[(size_t)n - 1]);
  d.off.resize((size_t)n);
  d.px.resize(end);
  d.px.shrink_to_fit();
}

DataSpec data_spec_parse(const std::string& spec) {
  DataSpec d{spec, ""};
  size_t colon = spec.find(':');
  if (colon != std::string::npos) d = {spec.substr(0, colon), spec.substr(colon + 1)};
  return d;
}

Dataset dataset_load(const std::string& spec, const std::string& split, int64_t size, int channels) {
  if (split != "train" && split != "test") fail("dataset: split must be train or test, got '%s'", split.c_str());
  const auto [kind, arg] = data_spec_parse(spec);
  if (kind == "fmnist") return load_fmnist(arg.empty() ? FMNIST_DEFAULT_DIR : arg, split);
  if (kind == "cifar10") {
    if (arg.empty()) fail("--data cifar10 needs a folder: cifar10:DIR");
    return load_cifar10(arg, split);
  }
  if (kind == "folder") {
    if (arg.empty()) fail("--data folder needs a folder: folder:DIR");
    if (size < 8) fail("dataset: image size %lld too small", (long long)size);
    return load_folder(arg, split, size, channels);
  }
  if (kind == "shards") {
    if (arg.empty()) fail("--data shards needs a folder: shards:DIR (made by nsvq pack)");
    return shards_load(arg, split, size, channels);
  }
  fail("unknown dataset '%s' (expected fmnist, cifar10:DIR, folder:DIR or shards:DIR)", spec.c_str());
}

void pixels_sample(const uint8_t* src, int64_t C, int64_t h, int64_t w, int64_t S, float* x, bool augment, uint64_t pick) {
  int64_t y0 = (h - S) / 2, x0 = (w - S) / 2;
  bool flip = false;
  if (augment) {
    y0 = (int64_t)(pick % (uint64_t)(h - S + 1));
    x0 = (int64_t)((pick >> 21) % (uint64_t)(w - S + 1));
    flip = (pick >> 42) & 1;
  }
  for (int64_t c = 0; c < C; c++)
    for (int64_t y = 0; y < S; y++) {
      const uint8_t* row = src + (c * h + y + y0) * w + x0;
      float* dst = x + (c * S + y) * S;
      for (int64_t xx = 0; xx < S; xx++) dst[xx] = row[flip ? S - 1 - xx : xx] * (2.0f / 255.0f) - 1.0f;
    }
}

void dataset_sample(const Dataset& d, int64_t i, float* x, bool augment, uint64_t pick) {
  pixels_sample(d.px.data() + d.off[i], d.C, d.h[i], d.w[i], d.S, x, augment, pick);
}

uint64_t sample_pick(uint64_t seed, int64_t epoch, int64_t pos) {
  Philox4 h = philox4x32((uint32_t)pos, (uint32_t)epoch, 0x6461u, 0, (uint32_t)seed, (uint32_t)(seed >> 32));
  return (uint64_t)h.v[0] | (uint64_t)h.v[1] << 32;
}

// ------------------------------------------------------------------------------- batch streams

BatchStream::BatchStream(int64_t batch, int rank, int ranks) : B_(batch), rank_(rank), ranks_(ranks) {
  if (ranks < 1 || rank < 0 || rank >= ranks) fail("data loader: rank %d of %d ranks", rank, ranks);
  if (batch < 1 || batch % ranks)
    fail("batch size %lld cannot be split evenly over %d ranks (it must be a positive multiple of the rank count)",
         (long long)batch, ranks);
}

BatchStream::Pos BatchStream::after(Pos p) const {
  p.index += B_;
  if (p.index + B_ > size()) p = {p.epoch + 1, 0};
  return p;
}

void BatchStream::check_pos(Pos p) const {
  if (p.epoch < 0 || p.index < 0 || p.index + B_ > size())
    fail("data loader: cannot resume at epoch %lld index %lld with batch %lld of %lld images", (long long)p.epoch,
         (long long)p.index, (long long)B_, (long long)size());
}

PrefetchStream::~PrefetchStream() { stop(); }

void PrefetchStream::start() {
  xbuf_.resize((size_t)(local_batch() * C_ * S_ * S_));
  ybuf_.resize((size_t)local_batch());
  th_ = std::thread([this] { worker(); });
  request(pos_);
}

void PrefetchStream::stop() {
  if (!th_.joinable()) return;
  {
    std::lock_guard<std::mutex> l(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  th_.join();
}

void PrefetchStream::worker() {
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [this] { return stop_ || want_; });
    if (stop_) return;
    Pos p = want_pos_;
    want_ = false;
    l.unlock();
    std::string err;
    try {
      fill(p, xbuf_.data(), ybuf_.data());
    } catch (const std::exception& e) {
      err = e.what();
    }
    l.lock();
    error_ = err;
    ready_ = true;
    cv_.notify_all();
  }
}

void PrefetchStream::request(Pos p) {
  std::lock_guard<std::mutex> l(mu_);
  want_pos_ = p;
  want_ = true;
  ready_ = false;
  cv_.notify_all();
}

void PrefetchStream::next(float* x, int32_t* labels) {
  {
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return ready_; });
    if (!error_.empty()) fail("data loader: %s", error_.c_str());
    std::copy(xbuf_.begin(), xbuf_.end(), x);
    std::copy(ybuf_.begin(), ybuf_.end(), labels);
  }
  pos_ = after(pos_);
  request(pos_);
}

void PrefetchStream::seek(Pos p) {
  check_pos(p);
  {  // wait for the batch in flight, then ask for the new one
    std::unique_lock<std::mutex> l(mu_);
    cv_.wait(l, [this] { return ready_; });
  }
  pos_ = p;
  request(pos_);
}

// ------------------------------------------------------------------------------------ loader

BatchLoader::BatchLoader(const Dataset& d, int64_t batch, uint64_t seed, bool shuffle, bool augment, int rank, int ranks)
    : PrefetchStream(batch, rank, ranks), d_(d), seed_(seed), shuffle_(shuffle) {
  init(augment);
}

BatchLoader::BatchLoader(Dataset&& d, int64_t batch, uint64_t seed, bool shuffle, bool augment, int rank, int ranks)
    : PrefetchStream(batch, rank, ranks), own_(std::make_unique<Dataset>(std::move(d))), d_(*own_), seed_(seed),
      shuffle_(shuffle) {
  init(augment);
}

void BatchLoader::init(bool augment) {
  if (B_ > d_.size()) fail("batch size %lld does not fit a dataset of %lld images", (long long)B_, (long long)d_.size());
  name_ = d_.name;
  C_ = d_.C;
  S_ = d_.S;
  num_classes_ = d_.num_classes;
  augment_ = augment;
  start();
}

BatchLoader::~BatchLoader() { stop(); }

void BatchLoader::order_for(int64_t epoch, std::vector<int32_t>& ord) const {
  ord.resize((size_t)d_.size());
  std::iota(ord.begin(), ord.end(), 0);
  if (!shuffle_) return;
  Rng r(seed_, 0x10000u + (uint32_t)epoch);
  for (int64_t i = (int64_t)ord.size() - 1; i > 0; i--) std::swap(ord[i], ord[r.below((uint32_t)i + 1)]);
}

void BatchLoader::fill(Pos p, float* x, int32_t* y) {
  if (ord_epoch_ != p.epoch) {  // only the worker thread gets here
    order_for(p.epoch, ord_);
    ord_epoch_ = p.epoch;
  }
  const int64_t per = d_.C * d_.S * d_.S, b0 = rank_ * local_batch();
  for (int64_t b = 0; b < local_batch(); b++) {
    int64_t pos = p.index + b0 + b, i = ord_[pos];
    dataset_sample(d_, i, x + b * per, augment_, sample_pick(seed_, p.epoch, pos));
    y[b] = d_.labels[i];
  }
}

std::unique_ptr<BatchStream> open_train_stream(const std::string& spec, int64_t size, int channels, int64_t batch,
                                               uint64_t seed, int rank, int ranks, const StreamOptions& opt) {
  const DataSpec ds = data_spec_parse(spec);
  if (ds.kind == "shards") {
    if (ds.arg.empty()) fail("--data shards needs a folder: shards:DIR (made by nsvq pack)");
    return shard_stream_open(ds.arg, size, channels, batch, seed, rank, ranks, opt);
  }
  Dataset d = dataset_load(spec, "train", size, channels);
  if (d.size() < batch)
    fail("dataset %s has %lld training images, fewer than the batch of %lld", spec.c_str(), (long long)d.size(),
         (long long)batch);
  // folder datasets: random crop and flip (their images are stored at short side = size); the
  // fixed-size sets train on the images as they are
  const bool augment = ds.kind == "folder";
  return std::make_unique<BatchLoader>(std::move(d), batch, seed, true, augment, rank, ranks);
}

}  // namespace nsvq
