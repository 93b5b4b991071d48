// train/data.h — datasets, the batch streams of training, and the in-memory batch loader.
//   --data fmnist          Fashion-MNIST from the Debian package (28x28 padded by 2 to 32x32 with the
//                          background value), 10 classes
//   --data cifar10:DIR     CIFAR-10 binary layout (data_batch_1..5.bin, test_batch.bin), 3x32x32
//   --data folder:DIR      every PNG/JPEG/BMP/TGA/GIF under DIR (recursive), resized so the short
//                          side is `size`; evaluation takes the centre crop, training a random crop
//                          and a random horizontal flip. Unreadable files are reported and skipped.
//   --data shards:DIR      a split packed by `nsvq pack` (train/shards.h): loaded whole for
//                          evaluation, streamed with bounded memory for training
// Pixels stay uint8 in memory; batches are float [B, C, S, S] in [-1, 1].
#pragma once
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace nsvq {

struct Image;

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

// spec: "fmnist" | "fmnist:DIR" | "cifar10:DIR" | "folder:DIR" | "shards:DIR"; split: "train" | "test".
// size: sample size for folder datasets (fmnist and cifar10 are 32). channels: folder only (1 or 3).
// shards: the packed split whole; packed from folders, size and channels must be those it was packed at.
Dataset dataset_load(const std::string& spec, const std::string& split, int64_t size = 32, int channels = 3);
// The image files (png, jpg, jpeg, bmp, tga, gif) under dir, recursively, sorted by path.
std::vector<std::string> list_image_files(const std::string& dir);
// Keeps the first n images (n <= 0 or n >= size: all).
void dataset_truncate(Dataset& d, int64_t n);
// Appends one planar uint8 image [d.C, h, w] with its label.
void dataset_add(Dataset& d, const uint8_t* px, int64_t h, int64_t w, int32_t label);

// Writes sample i into x [C, S, S] in [-1, 1]: centre crop, or (augment) the crop and flip chosen by
// `pick` (any 64-bit value; the same value gives the same crop).
void dataset_sample(const Dataset& d, int64_t i, float* x, bool augment, uint64_t pick);
// The same from one stored image src [C, h, w] (h, w >= S).
void pixels_sample(const uint8_t* src, int64_t C, int64_t h, int64_t w, int64_t S, float* x, bool augment, uint64_t pick);
// The augmentation draw of the sample at `pos` of epoch `epoch` (every loader: batches depend only on
// (seed, position)).
uint64_t sample_pick(uint64_t seed, int64_t epoch, int64_t pos);

// The pieces of a --data spec: "cifar10:DIR" -> {"cifar10", "DIR"}; "fmnist" -> {"fmnist", ""}.
struct DataSpec {
  std::string kind, arg;
};
DataSpec data_spec_parse(const std::string& spec);

// An image folder's split as dataset_load reads it: DIR/split when that folder exists, else DIR; its
// image files sorted by path; labels from the first-level subfolders when every image sits in one.
struct FolderList {
  std::string dir;
  std::vector<std::string> paths;
  std::vector<int32_t> labels;  // per path (-1 when unlabelled)
  int num_classes = 0;
};
FolderList folder_list(const std::string& root, const std::string& split);
// Decodes one file resized so its short side is `size` (planar uint8 [channels, h, w]); throws Error
// naming the file when it is unreadable.
Image folder_image(const std::string& path, int64_t size, int channels);

// ------------------------------------------------------------------------------- batch streams

// A stream of training batches; with data-parallel ranks, rank r of R gets samples [r*B/R, (r+1)*B/R)
// of every global batch of B (positions and randomness stay global, so 1 and R ranks see the same
// samples at every step). An epoch's last partial batch is dropped.
class BatchStream {
 public:
  struct Pos {
    int64_t epoch = 0, index = 0;  // index: first sample of the next global batch within the epoch order
  };
  virtual ~BatchStream() = default;
  BatchStream(const BatchStream&) = delete;
  BatchStream& operator=(const BatchStream&) = delete;
  virtual void next(float* x, int32_t* labels) = 0;  // this rank's slice: x [B/R, C, S, S] in [-1, 1], labels [B/R]
  virtual Pos position() const = 0;                  // global position of the next batch
  virtual void seek(Pos p) = 0;                      // fails clearly on a position outside the epoch
  virtual int64_t size() const = 0;                  // samples per epoch (whole dataset)
  int64_t batch() const { return B_; }               // global B
  int64_t local_batch() const { return B_ / ranks_; }
  int rank() const { return rank_; }
  int ranks() const { return ranks_; }
  int64_t batches_per_epoch() const { return size() / B_; }
  // what the samples are: a name ("fmnist", "cifar10", "folder", ...), channels, square size, classes
  // (0: unlabelled), and whether training crops and flips (folder images stored at short side S)
  const std::string& name() const { return name_; }
  int64_t channels() const { return C_; }
  int64_t image_size() const { return S_; }
  int num_classes() const { return num_classes_; }
  bool augment() const { return augment_; }

 protected:
  // Fails clearly when batch < 1 or batch % ranks != 0 or rank is outside [0, ranks).
  BatchStream(int64_t batch, int rank, int ranks);
  Pos after(Pos p) const;  // the position after the batch at p
  void check_pos(Pos p) const;

  int64_t B_;
  int rank_, ranks_;
  std::string name_;
  int64_t C_ = 0, S_ = 0;
  int num_classes_ = 0;
  bool augment_ = false;
};

// What the streams share: a worker thread builds the batch at the next position while the caller
// trains; next() hands it over and asks for the one after. A derived class calls start() at the end of
// its constructor and stop() first in its destructor (fill uses its members).
class PrefetchStream : public BatchStream {
 public:
  ~PrefetchStream() override;
  void next(float* x, int32_t* labels) override;
  Pos position() const override { return pos_; }
  void seek(Pos p) override;

 protected:
  PrefetchStream(int64_t batch, int rank, int ranks) : BatchStream(batch, rank, ranks) {}
  // Builds this rank's slice of the global batch at p (worker thread only).
  virtual void fill(Pos p, float* x, int32_t* y) = 0;
  void start();
  void stop();

 private:
  void worker();
  void request(Pos p);

  Pos pos_;
  std::vector<float> xbuf_;
  std::vector<int32_t> ybuf_;
  std::thread th_;
  std::mutex mu_;
  std::condition_variable cv_;
  bool want_ = false, ready_ = false, stop_ = false;
  Pos want_pos_;
  std::string error_;
};

// Deterministic, epoch-aware batches of an in-memory dataset. The order of epoch e is a Fisher-Yates
// shuffle from (seed, e); augmentation draws from (seed, epoch, position), so batches depend only on
// (seed, position) — never on timing — and a run can resume at any position.
class BatchLoader : public PrefetchStream {
 public:
  BatchLoader(const Dataset& d, int64_t batch, uint64_t seed, bool shuffle, bool augment, int rank = 0, int ranks = 1);
  // The same, owning the dataset.
  BatchLoader(Dataset&& d, int64_t batch, uint64_t seed, bool shuffle, bool augment, int rank = 0, int ranks = 1);
  ~BatchLoader() override;
  int64_t size() const override { return d_.size(); }

 private:
  void init(bool augment);
  void fill(Pos p, float* x, int32_t* y) override;
  void order_for(int64_t epoch, std::vector<int32_t>& ord) const;

  std::unique_ptr<const Dataset> own_;  // the dataset when owned (before d_: initialised first)
  const Dataset& d_;
  uint64_t seed_;
  bool shuffle_;
  std::vector<int32_t> ord_;  // sample order of epoch ord_epoch_ (worker thread)
  int64_t ord_epoch_ = -1;
};

// Tunables of the streaming loader (shards:DIR); the in-memory loader ignores them.
struct StreamOptions {
  int threads = 2;                    // read + checksum + decompress threads
  int64_t window_bytes = 16ll << 20;  // decoded bytes one in-window shuffle mixes (two windows resident)
};

// Opens the training stream for spec (fmnist, cifar10:DIR, folder:DIR -> in-memory BatchLoader;
// shards:DIR -> streaming, train/shards.h). augment: folder sources (and shards packed from folders)
// random crop + flip. Fails clearly when batch % ranks != 0 or the dataset has fewer than batch samples.
std::unique_ptr<BatchStream> open_train_stream(const std::string& spec, int64_t size, int channels, int64_t batch,
                                               uint64_t seed, int rank = 0, int ranks = 1,
                                               const StreamOptions& opt = StreamOptions());

}  // namespace nsvq
