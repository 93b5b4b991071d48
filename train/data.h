// train/data.h — datasets and the batch loader.
//   --data fmnist          Fashion-MNIST from the Debian package (28x28 padded by 2 to 32x32 with the
//                          background value), 10 classes
//   --data cifar10:DIR     CIFAR-10 binary layout (data_batch_1..5.bin, test_batch.bin), 3x32x32
//   --data folder:DIR      every PNG/JPEG/BMP/TGA/GIF under DIR (recursive), resized so the short
//                          side is `size`; evaluation takes the centre crop, training a random crop
//                          and a random horizontal flip. Unreadable files are reported and skipped.
// Pixels stay uint8 in memory; batches are float [B, C, S, S] in [-1, 1].
#pragma once
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace nsvq {

struct Dataset {
  std::string name;
  int64_t C = 0, S = 0;           // channels and square output size of a sample
  int num_classes = 0;            // 0 when unlabelled
  std::vector<int64_t> h, w, off; // per image: stored height, width, offset into px
  std::vector<uint8_t> px;        // planar [C, h, w] per image
  std::vector<int32_t> labels;    // per image (-1 when unlabelled)
  std::vector<std::string> skipped;  // unreadable files (folder datasets)
  int64_t size() const { return (int64_t)h.size(); }
};

// spec: "fmnist" | "fmnist:DIR" | "cifar10:DIR" | "folder:DIR"; split: "train" | "test".
// size: sample size for folder datasets (fmnist and cifar10 are 32). channels: folder only (1 or 3).
Dataset dataset_load(const std::string& spec, const std::string& split, int64_t size = 32, int channels = 3);
// The image files (png, jpg, jpeg, bmp, tga, gif) under dir, recursively, sorted by path.
std::vector<std::string> list_image_files(const std::string& dir);
// Keeps the first n images (n <= 0 or n >= size: all).
void dataset_truncate(Dataset& d, int64_t n);

// Writes sample i into x [C, S, S] in [-1, 1]: centre crop, or (augment) the crop and flip chosen by
// `pick` (any 64-bit value; the same value gives the same crop).
void dataset_sample(const Dataset& d, int64_t i, float* x, bool augment, uint64_t pick);

// Deterministic, epoch-aware batches with a prefetching thread. The order of epoch e is a
// Fisher-Yates shuffle from (seed, e); augmentation draws from (seed, epoch, position), so batches
// depend only on (seed, position) — never on timing — and a run can resume at any position.
class BatchLoader {
 public:
  BatchLoader(const Dataset& d, int64_t batch, uint64_t seed, bool shuffle, bool augment);
  ~BatchLoader();
  BatchLoader(const BatchLoader&) = delete;
  BatchLoader& operator=(const BatchLoader&) = delete;
  // Copies the next batch (x [B, C, S, S], labels [B]); an epoch's last partial batch is dropped.
  void next(float* x, int32_t* labels);
  struct Pos {
    int64_t epoch = 0, index = 0;  // index: first sample of the next batch within the epoch order
  };
  Pos position() const { return pos_; }
  void seek(Pos p);
  int64_t batch() const { return B_; }
  int64_t batches_per_epoch() const { return d_.size() / B_; }

 private:
  void fill(Pos p, float* x, int32_t* y);  // builds the batch at p (any thread)
  void order_for(int64_t epoch, std::vector<int32_t>& ord) const;
  void worker();
  void start_prefetch(Pos p);

  const Dataset& d_;
  int64_t B_;
  uint64_t seed_;
  bool shuffle_, augment_;
  Pos pos_;
  std::vector<int32_t> ord_;  // sample order of epoch ord_epoch_ (worker thread)
  int64_t ord_epoch_ = -1;
  std::vector<float> xbuf_;
  std::vector<int32_t> ybuf_;
  // prefetch state
  std::thread th_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool want_ = false, ready_ = false, stop_ = false;
  Pos want_pos_;
  std::string error_;
};

}  // namespace nsvq
