// train/shard_stream.cpp — the streaming loader of shards:DIR (shard_stream_open in train/shards.h).
//
// Order of epoch e: the chunks in a Fisher-Yates order from (seed, e), cut into windows of W
// consecutive chunks (W = window_bytes / mean decoded chunk size); window w's samples in a
// Fisher-Yates order from (seed, e, w). Position -> (window, sample) needs only the chunk sizes, so any
// position can be resumed exactly, and augmentation draws from (seed, epoch, position) as in the
// in-memory loader.
//
// Memory: loader threads read, check and decompress the chunks of the current window and of the next
// one (the read-ahead) into buffers that are recycled, never more than 2W chunks resident plus one
// being loaded per thread (each with its compressed bytes). With 4 MB chunks and the default 16 MB
// windows: at most 8 + 2 decoded chunks and 2 compressed ones, about 48 MB whatever the dataset size.
#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <thread>
#include "engine/rng.h"
#include "engine/tensor.h"
#include "train/shards_internal.h"

namespace nsvq {

namespace {

class ShardStream : public PrefetchStream {
 public:
  ShardStream(ShardIndex idx, int64_t batch, uint64_t seed, int rank, int ranks, const StreamOptions& o);
  ~ShardStream() override;
  int64_t size() const override { return idx_.samples; }

 private:
  struct Plan {  // one epoch: chunk order and the first position of each window
    int64_t epoch = -1;
    std::vector<int32_t> order;
    std::vector<int64_t> wstart;  // size windows + 1
  };
  struct Slot {  // one chunk in the cache
    enum State { IDLE, QUEUED, LOADING, READY, FAILED } st = IDLE;
    bool wanted = false;
    std::unique_ptr<ShardSamples> data;
    std::string err;
  };

  void fill(Pos p, float* x, int32_t* y) override;
  const Plan& plan(int64_t epoch);
  std::vector<int32_t> window_chunks(const Plan& P, int64_t w) const;
  void enter_window(int64_t epoch, int64_t w);
  void want(const std::vector<int32_t>& chunks);
  const ShardSamples& get(int32_t chunk);
  void loader();

  ShardIndex idx_;
  std::unique_ptr<ShardReader> reader_;
  uint64_t seed_;
  int64_t W_ = 1;  // chunks per window
  Plan plans_[2];  // epochs e and e + 1 (slot e % 2)
  // the current window (worker thread)
  int64_t cur_epoch_ = -1, cur_begin_ = 0, cur_end_ = 0;
  std::vector<int32_t> cur_chunks_, cur_perm_;
  std::vector<int64_t> cur_first_;  // window-local index of each chunk's first sample (size chunks + 1)
  std::vector<const ShardSamples*> cur_data_;
  // the chunk cache, shared with the loader threads
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Slot> slots_;
  std::deque<int32_t> queue_;
  std::vector<std::unique_ptr<ShardSamples>> free_;  // recycled buffers
  std::vector<std::thread> loaders_;
  bool quit_ = false;
};

ShardStream::ShardStream(ShardIndex idx, int64_t batch, uint64_t seed, int rank, int ranks, const StreamOptions& o)
    : PrefetchStream(batch, rank, ranks), idx_(std::move(idx)), seed_(seed) {
  if (batch > idx_.samples)
    fail("dataset shards:%s has %lld training images, fewer than the batch of %lld", idx_.dir.c_str(),
         (long long)idx_.samples, (long long)batch);
  reader_ = std::make_unique<ShardReader>(idx_);
  const int64_t K = (int64_t)idx_.chunks.size();
  int64_t raw = 0;
  for (const ShardChunk& c : idx_.chunks) raw += c.raw_bytes;
  W_ = std::clamp<int64_t>(o.window_bytes / std::max<int64_t>(1, raw / K), 1, K);
  name_ = idx_.name;
  C_ = idx_.C;
  S_ = idx_.S;
  num_classes_ = idx_.num_classes;
  augment_ = !idx_.fixed;
  slots_.resize((size_t)K);
  const int T = std::clamp(o.threads, 1, 64);
  for (int t = 0; t < T; t++) loaders_.emplace_back([this] { loader(); });
  start();
}

ShardStream::~ShardStream() {
  stop();  // the batch worker first: it waits on the loaders
  {
    std::lock_guard<std::mutex> l(mu_);
    quit_ = true;
  }
  cv_.notify_all();
  for (std::thread& t : loaders_) t.join();
}

const ShardStream::Plan& ShardStream::plan(int64_t epoch) {
  Plan& P = plans_[epoch & 1];
  if (P.epoch == epoch) return P;
  const int64_t K = (int64_t)idx_.chunks.size();
  P.epoch = epoch;
  P.order.resize((size_t)K);
  for (int64_t k = 0; k < K; k++) P.order[(size_t)k] = (int32_t)k;
  Rng r(seed_, 0x20000u + (uint32_t)epoch);
  for (int64_t i = K - 1; i > 0; i--) std::swap(P.order[(size_t)i], P.order[r.below((uint32_t)i + 1)]);
  P.wstart.assign(1, 0);
  for (int64_t k = 0; k < K; k += W_) {
    int64_t n = 0;
    for (int64_t j = k; j < std::min(K, k + W_); j++) n += idx_.chunks[(size_t)P.order[(size_t)j]].samples;
    P.wstart.push_back(P.wstart.back() + n);
  }
  return P;
}

std::vector<int32_t> ShardStream::window_chunks(const Plan& P, int64_t w) const {
  const int64_t K = (int64_t)P.order.size();
  return std::vector<int32_t>(P.order.begin() + w * W_, P.order.begin() + std::min(K, (w + 1) * W_));
}

void ShardStream::enter_window(int64_t epoch, int64_t w) {
  const Plan& P = plan(epoch);
  cur_epoch_ = epoch;
  cur_begin_ = P.wstart[(size_t)w];
  cur_end_ = P.wstart[(size_t)w + 1];
  cur_chunks_ = window_chunks(P, w);
  cur_first_.assign(1, 0);
  for (int32_t c : cur_chunks_) cur_first_.push_back(cur_first_.back() + idx_.chunks[(size_t)c].samples);
  cur_perm_.resize((size_t)cur_first_.back());
  for (size_t i = 0; i < cur_perm_.size(); i++) cur_perm_[i] = (int32_t)i;
  const Philox4 h = philox4x32((uint32_t)w, (uint32_t)epoch, 0x7769u, 0, (uint32_t)seed_, (uint32_t)(seed_ >> 32));
  Rng r((uint64_t)h.v[0] | (uint64_t)h.v[1] << 32, 0x20001u);
  for (int64_t i = (int64_t)cur_perm_.size() - 1; i > 0; i--) std::swap(cur_perm_[(size_t)i], cur_perm_[r.below((uint32_t)i + 1)]);
  // resident: this window, then the next one (read ahead; in the next epoch after the last window)
  std::vector<int32_t> keep = cur_chunks_, next;
  if (w + 2 < (int64_t)P.wstart.size()) next = window_chunks(P, w + 1);
  else next = window_chunks(plan(epoch + 1), 0);  // plans_ keeps epoch and epoch + 1 apart: P stays valid
  keep.insert(keep.end(), next.begin(), next.end());
  cur_data_.assign(cur_chunks_.size(), nullptr);
  want(keep);
}

void ShardStream::fill(Pos p, float* x, int32_t* y) {
  const int64_t per = C_ * S_ * S_, b0 = rank_ * local_batch();
  for (int64_t b = 0; b < local_batch(); b++) {
    const int64_t pos = p.index + b0 + b;
    if (p.epoch != cur_epoch_ || pos < cur_begin_ || pos >= cur_end_) {
      const Plan& P = plan(p.epoch);
      enter_window(p.epoch, std::upper_bound(P.wstart.begin(), P.wstart.end(), pos) - P.wstart.begin() - 1);
    }
    const int64_t j = cur_perm_[(size_t)(pos - cur_begin_)];
    const size_t c = (size_t)(std::upper_bound(cur_first_.begin(), cur_first_.end(), j) - cur_first_.begin() - 1);
    if (!cur_data_[c]) cur_data_[c] = &get(cur_chunks_[c]);
    const ShardSamples& s = *cur_data_[c];
    const size_t i = (size_t)(j - cur_first_[c]);
    pixels_sample(s.raw.data() + s.off[i], C_, s.h[i], s.w[i], S_, x + b * per, augment_, sample_pick(seed_, p.epoch, pos));
    y[b] = s.label[i];
  }
}

// Makes `chunks` (in this order of priority) the resident set: others are dropped, missing ones queued.
void ShardStream::want(const std::vector<int32_t>& chunks) {
  std::lock_guard<std::mutex> l(mu_);
  for (Slot& s : slots_) s.wanted = false;
  for (int32_t c : chunks) slots_[(size_t)c].wanted = true;
  for (Slot& s : slots_) {
    if (s.st == Slot::LOADING) continue;  // the loader drops it when it is no longer wanted
    if (s.data && (!s.wanted || s.st == Slot::FAILED)) free_.push_back(std::move(s.data));
    if (!s.wanted || s.st == Slot::FAILED || s.st == Slot::QUEUED) s.st = Slot::IDLE;  // a failed one is tried again
  }
  queue_.clear();
  for (int32_t c : chunks)
    if (slots_[(size_t)c].st == Slot::IDLE) {
      slots_[(size_t)c].st = Slot::QUEUED;
      queue_.push_back(c);
    }
  cv_.notify_all();
}

const ShardSamples& ShardStream::get(int32_t chunk) {
  std::unique_lock<std::mutex> l(mu_);
  Slot& s = slots_[(size_t)chunk];
  cv_.wait(l, [&] { return s.st == Slot::READY || s.st == Slot::FAILED; });
  if (s.st == Slot::FAILED) fail("%s", s.err.c_str());
  return *s.data;
}

void ShardStream::loader() {
  std::vector<uint8_t> zbuf;
  std::unique_lock<std::mutex> l(mu_);
  for (;;) {
    cv_.wait(l, [this] { return quit_ || !queue_.empty(); });
    if (quit_) return;
    const int32_t c = queue_.front();
    queue_.pop_front();
    Slot& s = slots_[(size_t)c];
    if (s.st != Slot::QUEUED) continue;
    s.st = Slot::LOADING;
    std::unique_ptr<ShardSamples> buf;
    if (!free_.empty()) {
      buf = std::move(free_.back());
      free_.pop_back();
    } else {
      buf = std::make_unique<ShardSamples>();
    }
    l.unlock();
    std::string err;
    try {
      reader_->read(c, zbuf, *buf);
    } catch (const std::exception& e) {
      err = e.what();
    }
    l.lock();
    if (!s.wanted || !err.empty()) free_.push_back(std::move(buf));
    else s.data = std::move(buf);
    s.st = !s.wanted ? Slot::IDLE : err.empty() ? Slot::READY : Slot::FAILED;
    s.err = err;
    cv_.notify_all();
  }
}

}  // namespace

std::unique_ptr<BatchStream> shard_stream_open(const std::string& dir, int64_t size, int channels, int64_t batch,
                                               uint64_t seed, int rank, int ranks, const StreamOptions& opt) {
  ShardIndex x = shards_read_index(dir, "train");
  shards_check_geometry(x, size, channels);
  return std::make_unique<ShardStream>(std::move(x), batch, seed, rank, ranks, opt);
}

}  // namespace nsvq
