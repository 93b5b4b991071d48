// train/shards.h — sharded datasets: the on-disk format, the packer behind `nsvq pack`, whole-split
// loading (dataset_load("shards:DIR", ...)) and the streaming training loader with bounded memory.
//
// A folder DIR holds one or both splits, each packed once and read many times:
//   DIR/<split>.index.json    written last, atomically: {"format": "nsvq-shards", "version": 1, "split",
//                             "name", "samples", "channels", "size", "layout": "fixed" | "short-side",
//                             "num_classes", "skipped", "command", "chunks": [{"file", "offset", "bytes",
//                             "raw_bytes", "samples", "crc32"}, ...]}
//   DIR/<split>-NNNNN.shard   chunks back to back (a new file once one reaches the shard size); written
//                             as <name>.part and renamed when full
//   DIR/<split>.pack.jsonl    the journal of an unfinished pack: a header line, then one line per chunk
//                             written (with the item cursor after it); removed once the index is there
// A chunk is one zstd frame (crc32 of the frame in the index) of
//   "NSC1", u32 n, n records {i32 label, u32 h, u32 w} (little-endian), then the n images, planar
//   uint8 [C, h, w] each: fixed layout h = w = S (fmnist, cifar10), short-side layout min(h, w) = S
//   (folder images resized as dataset_load holds them; training takes a random crop and flip).
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>
#include "train/data.h"

namespace nsvq {

struct ShardChunk {
  std::string file;  // name inside DIR
  int64_t offset = 0, bytes = 0, raw_bytes = 0, samples = 0;
  uint32_t crc = 0;  // crc32 (zlib) of the bytes [offset, offset + bytes)
};

struct ShardIndex {
  std::string dir, split, name;  // name: the source kind ("cifar10", "folder", ...; "mixed" for several)
  int64_t samples = 0, C = 0, S = 0;
  bool fixed = true;    // false: short-side layout (augmented when training)
  int num_classes = 0;  // 0 when unlabelled
  int64_t skipped = 0;  // unreadable files left out when packing
  std::string command;  // the pack options that made it (re-running them is a no-op)
  std::vector<ShardChunk> chunks;
  std::vector<int64_t> first;  // per chunk: index of its first sample (size chunks + 1)
};

// Reads and checks DIR/<split>.index.json; a missing split names the pack command that makes it.
ShardIndex shards_read_index(const std::string& dir, const std::string& split);

// One decompressed chunk: n images with labels and shapes.
struct ShardSamples {
  int64_t n = 0;
  std::vector<uint8_t> raw;  // the decompressed chunk
  std::vector<int64_t> off;  // per image: offset of its pixels in raw
  std::vector<int32_t> label, h, w;
};

// The shard files of one split, open for reading from any number of threads.
class ShardReader {
 public:
  explicit ShardReader(const ShardIndex& idx);  // opens the files; a file shorter than its chunks need fails
  ~ShardReader();
  ShardReader(const ShardReader&) = delete;
  ShardReader& operator=(const ShardReader&) = delete;
  // Reads chunk k into out (zbuf: scratch for the compressed bytes), verifying the checksum and every
  // record; errors name the file and the chunk.
  void read(int64_t k, std::vector<uint8_t>& zbuf, ShardSamples& out) const;
  const ShardIndex& index() const { return idx_; }

 private:
  const ShardIndex& idx_;
  std::vector<std::string> names_;
  std::vector<int> fds_;
  std::vector<int> chunk_fd_;  // per chunk: position in fds_
};

// dataset_load("shards:DIR", split, size, channels): the split whole, in order. A short-side pack must
// be loaded at the size and channels it was packed at; a fixed one comes as it is (as fmnist, cifar10).
Dataset shards_load(const std::string& dir, const std::string& split, int64_t size, int channels);

// The streaming loader of DIR's train split (open_train_stream's shards:DIR). Epoch e visits the chunks
// in a Fisher-Yates order from (seed, e), in windows of consecutive chunks; the samples of window w are
// shuffled from (seed, e, w). Position -> sample is computed without state, so seek() resumes exactly.
// Memory: the chunks of the current and the next window (StreamOptions::window_bytes decoded each, so
// 2 x window_bytes with the read-ahead, plus one compressed chunk per loader thread).
std::unique_ptr<BatchStream> shard_stream_open(const std::string& dir, int64_t size, int channels, int64_t batch,
                                               uint64_t seed, int rank, int ranks, const StreamOptions& opt);

// ---------------------------------------------------------------------------------- packing

struct PackOptions {
  std::vector<std::string> specs;   // --data, concatenated in order (fmnist, cifar10:DIR, folder:DIR)
  std::string split = "train";
  std::string out_dir;
  int64_t size = 32;                // folder sources: short side
  int channels = 3;                 // folder sources: 1 or 3
  int64_t chunk_bytes = 4ll << 20;  // uncompressed bytes per chunk (at least one image)
  int64_t shard_bytes = 1ll << 30;  // a new shard file once one reaches this size
  int level = 3;                    // zstd level
  bool shuffle = false;             // each source's images in a Fisher-Yates order from `seed`
  uint64_t seed = 1;
  int threads = 0;                  // decode and compression threads (0: all cores)
  int64_t max_chunks = -1;          // stop after writing this many chunks (resumable, as if interrupted)
};

struct PackProgress {
  int64_t items_done = 0, items_total = 0;  // source images (files or records) consumed / in all sources
  int64_t samples = 0, chunks = 0, raw_bytes = 0, bytes = 0;
  std::vector<std::string> skipped_now;  // why each file skipped since the last report was unreadable
};

struct PackResult {
  ShardIndex index;           // complete: the index written (or found)
  bool complete = false;      // false: stopped by max_chunks
  bool already = false;       // the split was already packed by the same command: nothing done
  int64_t resumed_chunks = 0; // chunks found in the journal of an interrupted run
  int64_t written_chunks = 0; // chunks written by this call
  int64_t raw_bytes = 0, bytes = 0;  // all chunks of the split so far: uncompressed, compressed
};

// Packs o.specs into o.out_dir for o.split, resuming an interrupted run of the same options; progress
// (when given) is called after each group of images. Fails clearly on bad options, unreadable sources,
// a split packed (or being packed) with other options, or a split of another geometry in the folder.
PackResult shards_pack(const PackOptions& o, const std::function<void(const PackProgress&)>& progress = nullptr);

}  // namespace nsvq
