// train/shard_pack.cpp — shards_pack (train/shards.h): turns datasets into chunked, compressed,
// checksummed shard files. Folder images are decoded a group at a time on all cores (never the whole
// dataset in memory), cut into chunks in source order (so chunk boundaries depend only on the data),
// compressed in parallel and appended; after each chunk the shard file is flushed and a line is
// appended to the journal, so an interrupted pack resumes after its last complete chunk.
#include <fcntl.h>
#include <unistd.h>
#include <zstd.h>
#include <sys/stat.h>
#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <numeric>
#include <omp.h>
#include "engine/backend.h"
#include "engine/rng.h"
#include "engine/tensor.h"
#include "train/atomic_file.h"
#include "train/image_io.h"
#include "train/shards_internal.h"

namespace nsvq {

namespace fs = std::filesystem;

namespace {

constexpr const char* JOURNAL_FORMAT = "nsvq-shards-journal";

// One --data source: its images ("items") in the order they are packed.
struct Source {
  std::string spec, kind, arg;
  int64_t C = 0, S = 0;
  bool fixed = true;
  int num_classes = 0;
  int64_t count = 0;
  FolderList folder;           // folder sources
  std::vector<int32_t> order;  // --shuffle: item order (else empty: as the source lists them)
};

// One decoded image on its way into a chunk.
struct Item {
  int64_t item = 0;  // global item number (cursor)
  int32_t label = -1;
  int64_t h = 0, w = 0;
  std::vector<uint8_t> px;
  std::string err;  // non-empty: unreadable, skipped
};

// A chunk cut from the item stream, before and after compression.
struct Cut {
  std::vector<Item> items;
  int64_t cursor = 0;  // the item after its last image: where a resumed pack continues
  std::vector<std::string> skipped;  // skipped since the previous chunk
  std::vector<uint8_t> z;
  ShardChunk c;
};

void write_all(int fd, const void* data, size_t n, int64_t at, const std::string& path) {
  const char* p = (const char*)data;
  while (n > 0) {
    ssize_t w = at < 0 ? ::write(fd, p, n) : ::pwrite(fd, p, n, (off_t)at);
    if (w < 0 && errno == EINTR) continue;
    if (w < 0) fail("%s: write failed (%s)", path.c_str(), strerror(errno));
    p += w;
    n -= (size_t)w;
    if (at >= 0) at += w;
  }
}

void sync_fd(int fd, const std::string& path) {
  if (::fdatasync(fd) != 0) fail("%s: cannot flush to disk (%s)", path.c_str(), strerror(errno));
}

void sync_dir(const std::string& dir) {
  int dfd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (dfd >= 0) {  // best effort, as write_file_atomic
    ::fsync(dfd);
    ::close(dfd);
  }
}

std::string read_text(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

class Packer {
 public:
  Packer(const PackOptions& o, const std::function<void(const PackProgress&)>& progress) : o_(o), progress_(progress) {}
  ~Packer() { close_all(); }
  PackResult run();

 private:
  void resolve_sources();
  std::string command() const;
  void check_other_split() const;
  bool resume_from_journal();
  void start_fresh();
  void open_shard();
  void close_all();
  const Dataset& fixed_data(const Source& s);
  void decode(int64_t g0, int64_t g1, std::vector<Item>& out);
  void cut(std::vector<Item>& items, std::vector<Cut>& ready);
  void close_chunk(int64_t cursor, std::vector<Cut>& ready);
  bool write_chunks(std::vector<Cut>& ready);
  void finish_file();
  void finish();
  void report(std::vector<std::string>&& skipped_now);
  std::string path(const std::string& name) const { return (fs::path(o_.out_dir) / name).string(); }
  std::string part_name(int64_t f) const { return shard_file_name(o_.split, f) + ".part"; }

  PackOptions o_;
  std::function<void(const PackProgress&)> progress_;
  std::vector<Source> src_;
  std::vector<int64_t> src_first_;  // item number of each source's first item (size sources + 1)
  int64_t C_ = 0, S_ = 0;
  bool fixed_ = true;
  int num_classes_ = 0;
  std::string name_;
  // the fixed-size source in memory (one at a time; repeated specs load once)
  std::string cached_spec_;
  Dataset cached_;
  // output state
  PackResult res_;
  std::vector<ShardChunk> chunks_;
  std::vector<std::string> skipped_;  // every skipped file so far
  int64_t cursor_ = 0;                // next item to pack
  int64_t file_ = 0, file_off_ = 0;   // current shard file and its size
  int fd_ = -1, jfd_ = -1;
  int64_t this_call_ = 0;
  // chunk being filled
  std::vector<Item> pending_;
  int64_t pending_raw_ = CHUNK_HEADER;
  std::vector<std::pair<int64_t, std::string>> pending_skips_;
};

void Packer::resolve_sources() {
  if (o_.specs.empty()) fail("pack: no dataset given (--data fmnist | cifar10:DIR | folder:DIR)");
  for (const std::string& spec : o_.specs) {
    Source s;
    const DataSpec ds = data_spec_parse(spec);
    s.kind = ds.kind;
    s.arg = ds.arg;
    if (s.kind == "shards") fail("pack: %s is already packed (give the dataset it was packed from)", spec.c_str());
    if (s.kind != "fmnist" && s.kind != "cifar10" && s.kind != "folder")
      fail("pack: unknown dataset '%s' (expected fmnist, cifar10:DIR or folder:DIR)", spec.c_str());
    if (s.kind != "fmnist" && s.arg.empty()) fail("pack: --data %s needs a folder: %s:DIR", s.kind.c_str(), s.kind.c_str());
    if (!s.arg.empty()) {
      if (!fs::is_directory(s.arg)) fail("pack: %s: not a folder", s.arg.c_str());
      s.arg = fs::absolute(s.arg).lexically_normal().string();
      while (s.arg.size() > 1 && s.arg.back() == '/') s.arg.pop_back();
    }
    s.spec = s.kind + (s.arg.empty() ? "" : ":" + s.arg);
    if (s.kind == "folder") {
      s.folder = folder_list(s.arg, o_.split);
      s.C = o_.channels;
      s.S = o_.size;
      s.fixed = false;
      s.num_classes = s.folder.num_classes;
      s.count = (int64_t)s.folder.paths.size();
    } else {
      const Dataset& d = fixed_data(s);
      s.C = d.C;
      s.S = d.S;
      s.num_classes = d.num_classes;
      s.count = d.size();
    }
    if (s.count < 1) fail("pack: %s has no %s images", spec.c_str(), o_.split.c_str());
    if (o_.shuffle) {
      s.order.resize((size_t)s.count);
      std::iota(s.order.begin(), s.order.end(), 0);
      Rng r(o_.seed, 0x50000u + (uint32_t)src_.size());
      for (int64_t i = s.count - 1; i > 0; i--) std::swap(s.order[(size_t)i], s.order[r.below((uint32_t)i + 1)]);
    }
    if (!src_.empty() && (s.C != C_ || s.S != S_ || s.fixed != fixed_))
      fail("pack: %s gives %lldx%lld %s images, %s gives %lldx%lld %s: one pack holds one kind", spec.c_str(),
           (long long)s.C, (long long)s.S, s.fixed ? "fixed" : "short-side", src_[0].spec.c_str(), (long long)C_,
           (long long)S_, fixed_ ? "fixed" : "short-side");
    C_ = s.C;
    S_ = s.S;
    fixed_ = s.fixed;
    num_classes_ = std::max(num_classes_, s.num_classes);
    name_ = name_.empty() || name_ == s.kind ? s.kind : "mixed";
    src_.push_back(std::move(s));
  }
  src_first_.assign(1, 0);
  for (const Source& s : src_) src_first_.push_back(src_first_.back() + s.count);
}

const Dataset& Packer::fixed_data(const Source& s) {
  if (cached_spec_ != s.spec) {
    cached_ = Dataset();
    cached_spec_.clear();
    cached_ = dataset_load(s.spec, o_.split);
    cached_spec_ = s.spec;
  }
  return cached_;
}

std::string Packer::command() const {
  std::string c;
  for (const Source& s : src_) c += "--data " + s.spec + " ";
  char b[200];
  snprintf(b, sizeof b, "--split %s --size %lld --channels %d --chunk-mb %g --shard-mb %g --level %d", o_.split.c_str(),
           (long long)o_.size, o_.channels, o_.chunk_bytes / 1048576.0, o_.shard_bytes / 1048576.0, o_.level);
  c += b;
  if (o_.shuffle) c += " --shuffle --seed " + std::to_string(o_.seed);
  return c;
}

// the other split of the folder, packed or being packed, must have the same geometry
void Packer::check_other_split() const {
  const std::string other = o_.split == "train" ? "test" : "train";
  int64_t C = 0, S = 0;
  bool fixed = true;
  std::string what;
  if (fs::exists(shards_index_path(o_.out_dir, other))) {
    what = shards_index_path(o_.out_dir, other);
    const ShardIndex x = shards_index_parse(json_parse(read_text(what), what), what);
    C = x.C, S = x.S, fixed = x.fixed;
  } else if (fs::exists(shards_journal_path(o_.out_dir, other))) {
    what = shards_journal_path(o_.out_dir, other);
    const std::string text = read_text(what);
    try {
      const Json h = json_parse(text.substr(0, text.find('\n')), what);
      C = json_int(h, "channels", what), S = json_int(h, "size", what), fixed = json_str(h, "layout", what) == "fixed";
    } catch (const Error&) {
      return;  // a torn header: that pack starts over anyway
    }
  } else {
    return;
  }
  if (C != C_ || S != S_ || fixed != fixed_)
    fail("pack: %s holds a %s split of %lldx%lld %s images; this %s split would be %lldx%lld %s: use another folder",
         o_.out_dir.c_str(), other.c_str(), (long long)C, (long long)S, fixed ? "fixed" : "short-side", o_.split.c_str(),
         (long long)C_, (long long)S_, fixed_ ? "fixed" : "short-side");
}

// every shard file of this split in the folder (finished or .part) with its number
std::vector<std::pair<int64_t, std::string>> split_files(const std::string& dir, const std::string& split) {
  std::vector<std::pair<int64_t, std::string>> out;
  const std::string pre = split + "-";
  for (const auto& e : fs::directory_iterator(dir)) {
    const std::string n = e.path().filename().string();
    size_t end = n.find(".shard");
    if (n.compare(0, pre.size(), pre) != 0 || end == std::string::npos || end <= pre.size()) continue;
    const std::string rest = n.substr(end), num = n.substr(pre.size(), end - pre.size());
    if ((rest != ".shard" && rest != ".shard.part") || num.find_first_not_of("0123456789") != std::string::npos) continue;
    out.emplace_back(std::stoll(num), n);
  }
  return out;
}

bool Packer::resume_from_journal() {
  const std::string jpath = shards_journal_path(o_.out_dir, o_.split);
  if (!fs::exists(jpath)) return false;
  const std::string text = read_text(jpath);
  size_t nl = text.find('\n'), good = 0;
  Json h;
  try {
    if (nl == std::string::npos) return false;  // torn header: nothing was packed yet
    h = json_parse(text.substr(0, nl), jpath);
    if (json_str(h, "format", jpath) != JOURNAL_FORMAT) fail("%s: not an nsvq pack journal", jpath.c_str());
  } catch (const Error&) {
    return false;
  }
  const std::string cmd = json_str(h, "command", jpath);
  if (cmd != command())
    fail("pack: %s holds an unfinished %s split packed with other options (%s); re-run that command to finish it, or "
         "delete %s/%s.* to start over",
         o_.out_dir.c_str(), o_.split.c_str(), cmd.c_str(), o_.out_dir.c_str(), o_.split.c_str());
  good = nl + 1;
  for (size_t at = good; (nl = text.find('\n', at)) != std::string::npos; at = nl + 1) {
    Json line;
    try {
      line = json_parse(text.substr(at, nl - at), jpath);
    } catch (const Error&) {
      break;  // a torn last line: that chunk is packed again
    }
    chunks_.push_back(shard_chunk_parse(line, jpath));
    cursor_ = json_int(line, "cursor", jpath);
    const Json* sk = line.find("skipped");
    if (sk && sk->kind == Json::ARRAY)
      for (const Json& m : sk->arr) skipped_.push_back(m.str);
    good = nl + 1;
  }
  if (good < text.size() && ::truncate(jpath.c_str(), (off_t)good) != 0)
    fail("%s: cannot cut its torn last line (%s)", jpath.c_str(), strerror(errno));
  if (cursor_ < 0 || cursor_ > src_first_.back()) fail("%s: cursor %lld out of range", jpath.c_str(), (long long)cursor_);
  res_.resumed_chunks = (int64_t)chunks_.size();
  // where the next chunk goes: after the last one, or at the start of the next file
  if (!chunks_.empty()) {
    const ShardChunk& last = chunks_.back();
    const std::string pre = o_.split + "-";
    file_ = std::stoll(last.file.substr(pre.size()));
    file_off_ = last.offset + last.bytes;
    if (file_off_ >= o_.shard_bytes) file_++, file_off_ = 0;
  }
  for (const auto& [f, n] : split_files(o_.out_dir, o_.split)) {
    const bool part = n.size() > 5 && n.compare(n.size() - 5, 5, ".part") == 0;
    if (f > file_ || (f == file_ && file_off_ == 0)) fs::remove(path(n));                      // never journaled
    else if (part && f < file_) fs::rename(path(n), path(shard_file_name(o_.split, f)));        // finished, not renamed
    else if (!part && f == file_) fs::rename(path(n), path(part_name(f)));                      // renamed before a crash
  }
  std::map<std::string, int64_t> ends;  // each file's end after its last journaled chunk
  for (const ShardChunk& c : chunks_) ends[c.file] = std::max(ends[c.file], c.offset + c.bytes);
  for (const auto& [name, end] : ends) {
    const bool current = name == shard_file_name(o_.split, file_);
    const std::string p = path(current ? part_name(file_) : name);
    std::error_code ec;
    const uintmax_t have = fs::file_size(p, ec);
    if (ec || (int64_t)have < end)
      fail("pack: %s is missing or shorter than the journal says; delete %s/%s.* and pack again", p.c_str(),
           o_.out_dir.c_str(), o_.split.c_str());
    if (!current && (int64_t)have > end && ::truncate(p.c_str(), (off_t)end) != 0)  // a chunk begun before the crash
      fail("%s: cannot truncate (%s)", p.c_str(), strerror(errno));
  }
  return true;
}

void Packer::start_fresh() {
  for (const auto& fn : split_files(o_.out_dir, o_.split)) fs::remove(path(fn.second));
  const std::string jpath = shards_journal_path(o_.out_dir, o_.split);
  std::string h = "{\"format\": \"" + std::string(JOURNAL_FORMAT) + "\", \"version\": " + std::to_string(SHARDS_VERSION) +
                  ", \"command\": " + json_escape(command()) + ", \"channels\": " + std::to_string(C_) +
                  ", \"size\": " + std::to_string(S_) + ", \"layout\": \"" + (fixed_ ? "fixed" : "short-side") + "\"}\n";
  write_file_atomic(jpath, h.data(), h.size());
}

// the current shard file, cut to file_off_ (a chunk written after the last journal line is dropped)
void Packer::open_shard() {
  const std::string p = path(part_name(file_));
  fd_ = ::open(p.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
  if (fd_ < 0) fail("%s: cannot create (%s)", p.c_str(), strerror(errno));
  if (::ftruncate(fd_, (off_t)file_off_) != 0) fail("%s: cannot truncate (%s)", p.c_str(), strerror(errno));
}

void Packer::close_all() {
  if (fd_ >= 0) ::close(fd_);
  if (jfd_ >= 0) ::close(jfd_);
  fd_ = jfd_ = -1;
}

// Decodes items [g0, g1) of one source on all threads.
void Packer::decode(int64_t g0, int64_t g1, std::vector<Item>& out) {
  const size_t s = (size_t)(std::upper_bound(src_first_.begin(), src_first_.end(), g0) - src_first_.begin() - 1);
  const Source& src = src_[s];
  const Dataset* d = src.fixed ? &fixed_data(src) : nullptr;
  out.assign((size_t)(g1 - g0), Item());
  const int threads = o_.threads > 0 ? o_.threads : cpu_threads();
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (int64_t g = g0; g < g1; g++) {
    Item& it = out[(size_t)(g - g0)];
    it.item = g;
    int64_t i = g - src_first_[s];
    if (!src.order.empty()) i = src.order[(size_t)i];
    if (d) {
      it.h = d->h[(size_t)i];
      it.w = d->w[(size_t)i];
      it.label = d->labels[(size_t)i];
      const uint8_t* p = d->px.data() + d->off[(size_t)i];
      it.px.assign(p, p + d->C * it.h * it.w);
      continue;
    }
    try {
      Image im = folder_image(src.folder.paths[(size_t)i], src.S, (int)src.C);
      it.h = im.H;
      it.w = im.W;
      it.px = std::move(im.px);
      it.label = src.folder.labels[(size_t)i];
    } catch (const std::exception& e) {
      it.err = e.what();
    }
  }
}

void Packer::close_chunk(int64_t cursor, std::vector<Cut>& ready) {
  Cut c;
  c.items = std::move(pending_);
  c.cursor = cursor;
  auto mid = std::stable_partition(pending_skips_.begin(), pending_skips_.end(),
                                   [&](const std::pair<int64_t, std::string>& s) { return s.first < cursor; });
  for (auto it = pending_skips_.begin(); it != mid; ++it) c.skipped.push_back(it->second);
  pending_skips_.erase(pending_skips_.begin(), mid);
  ready.push_back(std::move(c));
  pending_.clear();
  pending_raw_ = CHUNK_HEADER;
}

// Appends decoded items to the chunk being filled, cutting a chunk whenever the next image would not fit.
void Packer::cut(std::vector<Item>& items, std::vector<Cut>& ready) {
  for (Item& it : items) {
    if (!it.err.empty()) {
      pending_skips_.emplace_back(it.item, it.err);
      continue;
    }
    const int64_t b = CHUNK_RECORD + (int64_t)it.px.size();
    if (!pending_.empty() && pending_raw_ + b > o_.chunk_bytes) close_chunk(pending_.back().item + 1, ready);
    pending_raw_ += b;
    pending_.push_back(std::move(it));
  }
}

// Compresses the cut chunks in parallel and appends them in order; false once max_chunks are written.
bool Packer::write_chunks(std::vector<Cut>& ready) {
  const int threads = o_.threads > 0 ? o_.threads : cpu_threads();
  std::string err;
#pragma omp parallel for schedule(dynamic) num_threads(threads)
  for (int64_t k = 0; k < (int64_t)ready.size(); k++) {
    Cut& c = ready[(size_t)k];
    int64_t raw_n = CHUNK_HEADER;
    for (const Item& it : c.items) raw_n += CHUNK_RECORD + (int64_t)it.px.size();
    std::vector<uint8_t> raw((size_t)raw_n);
    memcpy(raw.data(), "NSC1", 4);
    le32_put(raw.data() + 4, (uint32_t)c.items.size());
    size_t at = (size_t)(CHUNK_HEADER + (int64_t)c.items.size() * CHUNK_RECORD);
    for (size_t i = 0; i < c.items.size(); i++) {
      Item& it = c.items[i];
      uint8_t* r = raw.data() + CHUNK_HEADER + i * CHUNK_RECORD;
      le32_put(r, (uint32_t)it.label);
      le32_put(r + 4, (uint32_t)it.h);
      le32_put(r + 8, (uint32_t)it.w);
      memcpy(raw.data() + at, it.px.data(), it.px.size());
      at += it.px.size();
      std::vector<uint8_t>().swap(it.px);
    }
    c.z.resize(ZSTD_compressBound(raw.size()));
    const size_t z = ZSTD_compress(c.z.data(), c.z.size(), raw.data(), raw.size(), o_.level);
    if (ZSTD_isError(z)) {
#pragma omp critical
      err = ZSTD_getErrorName(z);
      continue;
    }
    c.z.resize(z);
    c.c.raw_bytes = raw_n;
    c.c.samples = (int64_t)c.items.size();
    c.c.bytes = (int64_t)z;
    c.c.crc = crc32_of(c.z.data(), z);
  }
  if (!err.empty()) fail("pack: zstd compression failed (%s)", err.c_str());
  for (Cut& c : ready) {
    if (o_.max_chunks >= 0 && this_call_ >= o_.max_chunks) return false;
    if (file_off_ >= o_.shard_bytes) {
      finish_file();
      file_++;
      file_off_ = 0;
      open_shard();
    }
    c.c.file = shard_file_name(o_.split, file_);
    c.c.offset = file_off_;
    const std::string p = path(part_name(file_));
    write_all(fd_, c.z.data(), c.z.size(), file_off_, p);
    sync_fd(fd_, p);  // the data is on disk before the journal line that vouches for it
    file_off_ += c.c.bytes;
    std::string line = shard_chunk_json(c.c);
    line.pop_back();
    line += ", \"cursor\": " + std::to_string(c.cursor) + ", \"skipped\": [";
    for (size_t i = 0; i < c.skipped.size(); i++) line += (i ? ", " : "") + json_escape(c.skipped[i]);
    line += "]}\n";
    const std::string jpath = shards_journal_path(o_.out_dir, o_.split);
    write_all(jfd_, line.data(), line.size(), -1, jpath);
    sync_fd(jfd_, jpath);
    chunks_.push_back(c.c);
    skipped_.insert(skipped_.end(), c.skipped.begin(), c.skipped.end());
    cursor_ = c.cursor;
    this_call_++;
    std::vector<uint8_t>().swap(c.z);
  }
  ready.clear();
  return true;
}

// closes the current shard file and gives it its final name
void Packer::finish_file() {
  ::close(fd_);
  fd_ = -1;
  const std::string from = path(part_name(file_)), to = path(shard_file_name(o_.split, file_));
  if (file_off_ == 0) {  // opened on resuming at a file boundary and never written
    fs::remove(from);
    return;
  }
  if (std::rename(from.c_str(), to.c_str()) != 0) fail("%s: cannot rename to %s (%s)", from.c_str(), to.c_str(), strerror(errno));
  sync_dir(o_.out_dir);
}

void Packer::finish() {
  finish_file();
  close_all();
  ShardIndex& x = res_.index;
  x.dir = o_.out_dir;
  x.split = o_.split;
  x.name = name_;
  x.C = C_;
  x.S = S_;
  x.fixed = fixed_;
  x.num_classes = num_classes_;
  x.skipped = (int64_t)skipped_.size();
  x.command = command();
  x.chunks = chunks_;
  x.first.assign(1, 0);
  for (const ShardChunk& c : chunks_) x.first.push_back(x.first.back() + c.samples);
  x.samples = x.first.back();
  const std::string text = shards_index_json(x);
  write_file_atomic(shards_index_path(o_.out_dir, o_.split), text.data(), text.size());
  fs::remove(shards_journal_path(o_.out_dir, o_.split));
  sync_dir(o_.out_dir);
  res_.complete = true;
}

void Packer::report(std::vector<std::string>&& skipped_now) {
  if (!progress_) return;
  PackProgress p;
  p.items_done = cursor_;
  p.items_total = src_first_.back();
  p.chunks = (int64_t)chunks_.size();
  for (const ShardChunk& c : chunks_) p.samples += c.samples, p.raw_bytes += c.raw_bytes, p.bytes += c.bytes;
  p.skipped_now = std::move(skipped_now);
  progress_(p);
}

PackResult Packer::run() {
  if (o_.split != "train" && o_.split != "test") fail("pack: --split must be train or test, got '%s'", o_.split.c_str());
  if (o_.out_dir.empty()) fail("pack: -o DIR is required");
  if (o_.size < 8 || o_.size > 4096) fail("pack: --size %lld out of range (8..4096)", (long long)o_.size);
  if (o_.channels != 1 && o_.channels != 3) fail("pack: --channels must be 1 or 3, got %d", o_.channels);
  if (o_.chunk_bytes < 256 || o_.chunk_bytes > (1ll << 31))
    fail("pack: --chunk-mb %g out of range (256 bytes .. 2048 MB)", o_.chunk_bytes / 1048576.0);
  if (o_.shard_bytes < o_.chunk_bytes) fail("pack: --shard-mb must be at least --chunk-mb");
  if (o_.level < 1 || o_.level > 19) fail("pack: --level must be 1..19, got %d", o_.level);
  if (fs::exists(o_.out_dir) && !fs::is_directory(o_.out_dir)) fail("pack: %s exists and is not a folder", o_.out_dir.c_str());
  resolve_sources();
  fs::create_directories(o_.out_dir);
  const std::string ipath = shards_index_path(o_.out_dir, o_.split);
  if (fs::exists(ipath)) {
    ShardIndex x = shards_index_parse(json_parse(read_text(ipath), ipath), ipath);
    if (x.command != command())
      fail("pack: %s already holds a %s split (%s); delete %s/%s.* to pack it again", o_.out_dir.c_str(),
           o_.split.c_str(), x.command.c_str(), o_.out_dir.c_str(), o_.split.c_str());
    fs::remove(shards_journal_path(o_.out_dir, o_.split));  // left by a crash after the index was written
    x.dir = o_.out_dir;
    res_.index = x;
    res_.complete = res_.already = true;
    for (const ShardChunk& c : x.chunks) res_.raw_bytes += c.raw_bytes, res_.bytes += c.bytes;
    return res_;
  }
  check_other_split();
  if (!resume_from_journal()) start_fresh();
  const std::string jpath = shards_journal_path(o_.out_dir, o_.split);
  jfd_ = ::open(jpath.c_str(), O_WRONLY | O_APPEND | O_CLOEXEC);
  if (jfd_ < 0) fail("%s: cannot open (%s)", jpath.c_str(), strerror(errno));
  open_shard();
  const int threads = o_.threads > 0 ? o_.threads : cpu_threads();
  // a group: about one chunk per thread, within one source
  const int64_t per_chunk = std::max<int64_t>(1, o_.chunk_bytes / (CHUNK_RECORD + C_ * S_ * S_));
  const int64_t group = std::max<int64_t>(16, per_chunk * threads);
  std::vector<Item> items;
  std::vector<Cut> ready;
  for (int64_t g = cursor_; g < src_first_.back();) {
    const int64_t s_end = *std::upper_bound(src_first_.begin(), src_first_.end(), g);
    const int64_t g1 = std::min(g + group, s_end);
    decode(g, g1, items);
    std::vector<std::string> now;
    for (const Item& it : items)
      if (!it.err.empty()) now.push_back(it.err);
    cut(items, ready);
    if (g1 == src_first_.back() && !pending_.empty()) close_chunk(g1, ready);
    if (!write_chunks(ready)) {
      close_all();
      report(std::move(now));
      res_.written_chunks = this_call_;
      for (const ShardChunk& c : chunks_) res_.raw_bytes += c.raw_bytes, res_.bytes += c.bytes;
      return res_;
    }
    report(std::move(now));
    g = g1;
  }
  if (chunks_.empty()) {
    close_all();
    for (const auto& fn : split_files(o_.out_dir, o_.split)) fs::remove(path(fn.second));
    fs::remove(shards_journal_path(o_.out_dir, o_.split));
    fail("pack: none of the %lld images could be read", (long long)src_first_.back());
  }
  finish();
  res_.written_chunks = this_call_;
  for (const ShardChunk& c : chunks_) res_.raw_bytes += c.raw_bytes, res_.bytes += c.bytes;
  return res_;
}

}  // namespace

PackResult shards_pack(const PackOptions& o, const std::function<void(const PackProgress&)>& progress) {
  return Packer(o, progress).run();
}

}  // namespace nsvq
