// tests/test_shards.cpp — sharded datasets (train/shards.h): packing folders and fixed-size sets loads
// back bitwise, the streaming loader's epochs (every sample once, deterministic, exact seek, rank
// slices, the in-memory loader's crops and flips), clear errors for corrupt or truncated files and
// mismatched packs, and an interrupted pack resuming to the same bytes. Small synthetic data only.
#include <doctest/doctest.h>
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <set>
#include "engine/rng.h"
#include "train/data.h"
#include "train/image_io.h"
#include "train/shards.h"
#include "tests/test_util.h"

using namespace nsvq;
using nsvq_test::error_of;
using nsvq_test::TempDir;
namespace fs = std::filesystem;

namespace {

bool has(const std::string& s, const std::string& part) { return s.find(part) != std::string::npos; }

std::vector<uint8_t> file_bytes(const fs::path& p) {
  std::ifstream f(p, std::ios::binary);
  return std::vector<uint8_t>((std::istreambuf_iterator<char>(f)), std::istreambuf_iterator<char>());
}

// CIFAR-10 binary files whose images carry their number: red pixels 0 and 1 = id % 256, id / 256
void write_cifar(const fs::path& dir, int per_file) {
  fs::create_directories(dir);
  int id = 0;
  for (int f = 0; f <= 5; f++) {
    std::vector<uint8_t> rec((size_t)per_file * 3073);
    for (int r = 0; r < per_file; r++, id++) {
      uint8_t* p = rec.data() + r * 3073;
      p[0] = (uint8_t)(id % 10);
      Rng g((uint64_t)id, 9);
      for (int i = 0; i < 3072; i++) p[1 + i] = (uint8_t)(i < 2 ? (i ? id / 256 : id % 256) : (g.next_u32() & 0x3f) + i % 64);
    }
    const std::string name = f < 5 ? "data_batch_" + std::to_string(f + 1) + ".bin" : "test_batch.bin";
    std::ofstream((dir / name).string(), std::ios::binary).write((const char*)rec.data(), (std::streamsize)rec.size());
  }
}

int sample_id(const float* x) {
  return (int)std::lround((x[0] + 1) * 127.5f) + 256 * (int)std::lround((x[1] + 1) * 127.5f);
}

// three classes of PNGs of assorted shapes, one broken file
void write_folder(const fs::path& dir, int n) {
  const char* cls[3] = {"ant", "bee", "cat"};
  for (int i = 0; i < n; i++) {
    Image im;
    im.C = 3;
    im.H = 10 + (i * 7) % 15;
    im.W = 10 + (i * 5) % 17;
    im.px.resize((size_t)(3 * im.H * im.W));
    Rng g((uint64_t)i, 4);
    for (uint8_t& v : im.px) v = (uint8_t)g.next_u32();
    fs::create_directories(dir / cls[i % 3]);
    image_write_png((dir / cls[i % 3] / ("img" + std::to_string(i) + ".png")).string(), im);
  }
  std::ofstream((dir / "bee" / "broken.jpg").string()) << "not a jpeg";
}

PackOptions pack_opts(const std::string& spec, const fs::path& out, int64_t chunk_bytes) {
  PackOptions o;
  o.specs = {spec};
  o.out_dir = out.string();
  o.size = 8;
  o.channels = 3;
  o.chunk_bytes = chunk_bytes;
  o.threads = 2;
  return o;
}

void check_same(const Dataset& a, const Dataset& b) {
  CHECK(a.C == b.C);
  CHECK(a.S == b.S);
  CHECK(a.num_classes == b.num_classes);
  CHECK(a.h == b.h);
  CHECK(a.w == b.w);
  CHECK(a.off == b.off);
  CHECK(a.labels == b.labels);
  CHECK(a.px == b.px);
}

struct Drawn {
  std::vector<int32_t> y;
  std::vector<float> x;
};

// n batches of stream s
Drawn draw(BatchStream& s, int n) {
  Drawn d;
  const int64_t per = s.local_batch() * s.channels() * s.image_size() * s.image_size();
  std::vector<float> x((size_t)per);
  std::vector<int32_t> y((size_t)s.local_batch());
  for (int b = 0; b < n; b++) {
    s.next(x.data(), y.data());
    d.x.insert(d.x.end(), x.begin(), x.end());
    d.y.insert(d.y.end(), y.begin(), y.end());
  }
  return d;
}

std::vector<int> ids_of(const Drawn& d, int64_t per) {
  std::vector<int> ids;
  for (size_t i = 0; i < d.y.size(); i++) ids.push_back(sample_id(d.x.data() + i * per));
  return ids;
}

}  // namespace

TEST_CASE("shards: a packed folder loads back bitwise as dataset_load holds it; mismatches are clear errors") {
  TempDir t;
  write_folder(t.p / "imgs", 29);
  const std::string spec = "folder:" + (t.p / "imgs").string();
  const Dataset ref = dataset_load(spec, "train", 8, 3);
  PackOptions o = pack_opts(spec, t.p / "sh", 1500);
  PackResult r = shards_pack(o);
  REQUIRE(r.complete);
  CHECK(r.index.skipped == 1);
  CHECK(!r.index.fixed);
  CHECK(r.index.chunks.size() > 5);
  const std::string sh = "shards:" + (t.p / "sh").string();
  const Dataset d = dataset_load(sh, "train", 8, 3);
  CHECK(d.name == "folder");
  check_same(d, ref);
  CHECK(has(error_of([&] { dataset_load(sh, "train", 16, 3); }), "packed at 3 channels, short side 8"));
  CHECK(has(error_of([&] { dataset_load(sh, "test", 8, 3); }), "has no test split; pack it with `nsvq pack"));
  CHECK(shards_pack(o).already);  // the same command again: nothing to do
  o.chunk_bytes = 3000;
  CHECK(has(error_of([&] { shards_pack(o); }), "already holds a train split"));
  write_cifar(t.p / "cifar", 4);
  PackOptions c = pack_opts("cifar10:" + (t.p / "cifar").string(), t.p / "sh", 1 << 20);
  c.split = "test";
  CHECK(has(error_of([&] { shards_pack(c); }), "holds a train split of 3x8 short-side images"));
  c.specs = {"cifar10"};
  CHECK(has(error_of([&] { shards_pack(c); }), "needs a folder"));
  c.specs = {"imagenet:/x"};
  CHECK(has(error_of([&] { shards_pack(c); }), "unknown dataset"));
  c.specs = {"folder:" + (t.p / "none").string()};
  CHECK(has(error_of([&] { shards_pack(c); }), "not a folder"));
  c.specs = {spec};
  c.size = 2;
  CHECK(has(error_of([&] { shards_pack(c); }), "--size 2 out of range"));
}

TEST_CASE("shards: sources concatenate in order; train and test live in one folder") {
  TempDir t;
  write_cifar(t.p / "cifar", 12);
  const std::string spec = "cifar10:" + (t.p / "cifar").string();
  PackOptions o = pack_opts(spec, t.p / "sh", 16 << 10);
  o.specs = {spec, spec};
  REQUIRE(shards_pack(o).complete);
  o.split = "test";
  REQUIRE(shards_pack(o).complete);
  const std::string sh = "shards:" + (t.p / "sh").string();
  Dataset two = dataset_load(spec, "train"), one = dataset_load(spec, "train");
  for (int64_t i = 0; i < one.size(); i++) dataset_add(two, one.px.data() + one.off[i], 32, 32, one.labels[i]);
  const Dataset d = dataset_load(sh, "train", 99, 1);  // fixed-size packs ignore size and channels, as cifar10 does
  CHECK(d.size() == 120);
  CHECK(d.name == "cifar10");
  check_same(d, two);
  Dataset test2 = dataset_load(spec, "test");
  for (int64_t i = 0; i < 12; i++) dataset_add(test2, test2.px.data() + test2.off[i], 32, 32, test2.labels[i]);
  check_same(dataset_load(sh, "test"), test2);
}

TEST_CASE("shards: the stream visits every sample once an epoch, is deterministic, seeks exactly, splits over ranks") {
  TempDir t;
  write_cifar(t.p / "cifar", 12);
  const std::string spec = "cifar10:" + (t.p / "cifar").string();
  PackOptions o = pack_opts(spec, t.p / "sh", 16 << 10);  // 5 images a chunk
  o.specs = {spec, spec};
  REQUIRE(shards_pack(o).complete);
  const std::string sh = "shards:" + (t.p / "sh").string();
  StreamOptions so;
  so.window_bytes = 3 * (16 << 10);  // 3 chunks a window: 8 windows an epoch
  const int64_t per = 3 * 32 * 32;
  auto S = open_train_stream(sh, 32, 3, 8, 1, 0, 1, so);
  CHECK(S->size() == 120);
  CHECK(S->batches_per_epoch() == 15);
  CHECK(!S->augment());
  const Drawn a = draw(*S, 30);
  const std::vector<int> ids = ids_of(a, per);
  for (size_t i = 0; i < a.y.size(); i++) CHECK(a.y[i] == ids[i] % 10);
  for (int e = 0; e < 2; e++) {  // each epoch: ids 0..59 twice (the source was packed twice)
    std::map<int, int> seen;
    for (int i = 0; i < 120; i++) seen[ids[(size_t)(e * 120 + i)]]++;
    CHECK(seen.size() == 60);
    for (auto& [id, n] : seen) CHECK(n == 2);
  }
  CHECK(std::vector<int>(ids.begin(), ids.begin() + 120) != std::vector<int>(ids.begin() + 120, ids.end()));
  so.threads = 1;
  auto S2 = open_train_stream(sh, 32, 3, 8, 1, 0, 1, so);
  CHECK(draw(*S2, 30).x == a.x);
  auto S3 = open_train_stream(sh, 32, 3, 8, 2, 0, 1, so);
  CHECK(ids_of(draw(*S3, 15), per) != std::vector<int>(ids.begin(), ids.begin() + 120));
  auto S4 = open_train_stream(sh, 32, 3, 8, 1, 0, 1, so);
  draw(*S4, 3);
  S4->seek({1, 40});  // resume at epoch 1, batch 5
  CHECK(S4->position().index == 40);
  const Drawn r = draw(*S4, 6);
  CHECK(r.x == std::vector<float>(a.x.begin() + (120 + 40) * per, a.x.begin() + (120 + 88) * per));
  CHECK(S4->position().epoch == 1);
  CHECK(S4->position().index == 88);
  CHECK(has(error_of([&] { S4->seek({0, 117}); }), "cannot resume at epoch 0 index 117"));
  for (int R : {2, 4}) {
    std::vector<Drawn> parts;
    for (int k = 0; k < R; k++) {
      auto s = open_train_stream(sh, 32, 3, 8, 1, k, R, so);
      CHECK(s->local_batch() == 8 / R);
      parts.push_back(draw(*s, 30));
    }
    std::vector<float> joined;
    std::vector<int32_t> jy;
    for (int b = 0; b < 30; b++)
      for (int k = 0; k < R; k++) {
        const int64_t n = 8 / R;
        joined.insert(joined.end(), parts[k].x.begin() + b * n * per, parts[k].x.begin() + (b + 1) * n * per);
        jy.insert(jy.end(), parts[k].y.begin() + b * n, parts[k].y.begin() + (b + 1) * n);
      }
    CHECK(joined == a.x);
    CHECK(jy == a.y);
  }
  auto S7 = open_train_stream(sh, 32, 3, 7, 1, 0, 1, so);  // 17 batches of 7: the last partial one dropped
  const std::vector<int> ids7 = ids_of(draw(*S7, 17), per);
  std::map<int, int> seen7;
  for (int id : ids7) seen7[id]++;
  CHECK(ids7.size() == 119);
  CHECK(seen7.size() == 60);
  CHECK(S7->position().epoch == 1);
  CHECK(S7->position().index == 0);
  CHECK(has(error_of([&] { open_train_stream(sh, 32, 3, 6, 1, 0, 4, so); }), "cannot be split evenly over 4 ranks"));
  CHECK(has(error_of([&] { open_train_stream(sh, 32, 3, 128, 1, 0, 1, so); }), "fewer than the batch of 128"));
  CHECK(has(error_of([&] { open_train_stream(spec, 32, 3, 200, 1, 0, 1, so); }), "fewer than the batch of 200"));
}

TEST_CASE("shards: streamed folder samples are the in-memory loader's crops and flips; ranks of BatchLoader") {
  TempDir t;
  write_folder(t.p / "imgs", 20);
  const std::string spec = "folder:" + (t.p / "imgs").string();
  REQUIRE(shards_pack(pack_opts(spec, t.p / "sh", 1000)).complete);
  const Dataset d = dataset_load(spec, "train", 8, 3);
  StreamOptions so;
  so.window_bytes = 2000;
  auto s = open_train_stream("shards:" + (t.p / "sh").string(), 8, 3, 4, 5, 0, 1, so);
  CHECK(s->augment());
  CHECK(s->num_classes() == 3);
  const int64_t per = 3 * 8 * 8;
  const Drawn a = draw(*s, 2 * 5);  // 20 images, 5 batches an epoch
  std::vector<float> ref((size_t)per);
  for (int e = 0; e < 2; e++) {
    std::set<int64_t> found;
    for (int64_t pos = 0; pos < 20; pos++) {
      const float* x = a.x.data() + (e * 20 + pos) * per;
      for (int64_t i = 0; i < d.size(); i++) {
        dataset_sample(d, i, ref.data(), true, sample_pick(5, e, pos));
        if (std::equal(ref.begin(), ref.end(), x) && a.y[(size_t)(e * 20 + pos)] == d.labels[(size_t)i]) {
          found.insert(i);
          break;
        }
      }
    }
    CHECK(found.size() == 20);
  }
  // the in-memory loader: rank slices of the same global batches
  auto m1 = open_train_stream(spec, 8, 3, 4, 5, 0, 1);
  auto m2a = open_train_stream(spec, 8, 3, 4, 5, 0, 2), m2b = open_train_stream(spec, 8, 3, 4, 5, 1, 2);
  const Drawn full = draw(*m1, 6), p0 = draw(*m2a, 6), p1 = draw(*m2b, 6);
  for (int b = 0; b < 6; b++) {
    CHECK(std::equal(p0.x.begin() + b * 2 * per, p0.x.begin() + (b + 1) * 2 * per, full.x.begin() + b * 4 * per));
    CHECK(std::equal(p1.x.begin() + b * 2 * per, p1.x.begin() + (b + 1) * 2 * per, full.x.begin() + (b * 4 + 2) * per));
  }
  CHECK(m1->augment());
  CHECK(m1->name() == "folder");
}

TEST_CASE("shards: corrupt and truncated files name the file and chunk") {
  TempDir t;
  write_cifar(t.p / "cifar", 6);
  REQUIRE(shards_pack(pack_opts("cifar10:" + (t.p / "cifar").string(), t.p / "sh", 16 << 10)).complete);
  const std::string sh = "shards:" + (t.p / "sh").string();
  const ShardIndex x = shards_read_index((t.p / "sh").string(), "train");
  REQUIRE(x.chunks.size() == 6);
  const fs::path f = t.p / "sh" / "train-00000.shard";
  const std::vector<uint8_t> good = file_bytes(f);
  std::vector<uint8_t> bad = good;
  bad[(size_t)(x.chunks[2].offset + x.chunks[2].bytes / 2)] ^= 0x10;
  std::ofstream(f, std::ios::binary).write((const char*)bad.data(), (std::streamsize)bad.size());
  const std::string e1 = error_of([&] { dataset_load(sh, "train"); });
  CHECK(has(e1, "train-00000.shard: chunk 2 (offset"));
  CHECK(has(e1, "checksum mismatch"));
  const std::string e2 = error_of([&] {
    auto s = open_train_stream(sh, 32, 3, 5, 1);
    draw(*s, 6);
  });
  CHECK(has(e2, "data loader: "));
  CHECK(has(e2, "chunk 2"));
  std::ofstream(f, std::ios::binary).write((const char*)good.data(), (std::streamsize)good.size() - 100);
  CHECK(has(error_of([&] { dataset_load(sh, "train"); }), "truncated shard file"));
  std::ofstream(f, std::ios::binary).write((const char*)good.data(), (std::streamsize)good.size());
  CHECK(dataset_load(sh, "train").size() == 30);
  const fs::path ip = t.p / "sh" / "train.index.json";
  const std::vector<uint8_t> idx = file_bytes(ip);
  std::ofstream(ip, std::ios::binary).write((const char*)idx.data(), (std::streamsize)idx.size() / 2);
  const std::string e3 = error_of([&] { dataset_load(sh, "train"); });
  CHECK(has(e3, "train.index.json: invalid shard index"));
  CHECK(has(error_of([&] { dataset_load("shards:" + (t.p / "none").string(), "train"); }), "not a folder"));
}

TEST_CASE("shards: an interrupted pack resumes to the bytes of an uninterrupted one") {
  TempDir t;
  write_folder(t.p / "imgs", 26);
  const std::string spec = "folder:" + (t.p / "imgs").string();
  PackOptions o = pack_opts(spec, t.p / "a", 1200);
  o.shard_bytes = 2500;  // a few chunks a file: renames across files
  o.shuffle = true;
  o.max_chunks = 3;
  PackResult r1 = shards_pack(o);
  CHECK(!r1.complete);
  CHECK(r1.written_chunks == 3);
  CHECK(fs::exists(t.p / "a" / "train.pack.jsonl"));
  CHECK(has(error_of([&] { dataset_load("shards:" + (t.p / "a").string(), "train", 8, 3); }), "not finished"));
  PackOptions other = o;
  other.level = 5;
  CHECK(has(error_of([&] { shards_pack(other); }), "unfinished train split packed with other options"));
  // a crash in the middle of the next chunk: bytes past the journal in the shard file, a torn journal line
  for (const auto& e : fs::directory_iterator(t.p / "a"))
    if (e.path().extension() == ".part") std::ofstream(e.path(), std::ios::binary | std::ios::app) << "partial chunk";
  std::ofstream(t.p / "a" / "train.pack.jsonl", std::ios::app) << "{\"file\": \"train-000";
  o.max_chunks = 2;
  PackResult r2 = shards_pack(o);
  CHECK(r2.resumed_chunks == 3);
  o.max_chunks = -1;
  PackResult r3 = shards_pack(o);
  REQUIRE(r3.complete);
  CHECK(r3.resumed_chunks == 5);
  CHECK(!fs::exists(t.p / "a" / "train.pack.jsonl"));
  PackOptions u = pack_opts(spec, t.p / "b", 1200);
  u.shard_bytes = 2500;
  u.shuffle = true;
  u.threads = 1;
  REQUIRE(shards_pack(u).complete);
  std::vector<std::string> na, nb;
  for (const auto& e : fs::directory_iterator(t.p / "a")) na.push_back(e.path().filename().string());
  for (const auto& e : fs::directory_iterator(t.p / "b")) nb.push_back(e.path().filename().string());
  std::sort(na.begin(), na.end());
  std::sort(nb.begin(), nb.end());
  CHECK(na == nb);
  CHECK(na.size() > 3);
  for (const std::string& n : na) CHECK_MESSAGE(file_bytes(t.p / "a" / n) == file_bytes(t.p / "b" / n), n);
  // shuffled: the same images in another order
  const Dataset ref = dataset_load(spec, "train", 8, 3), d = dataset_load("shards:" + (t.p / "a").string(), "train", 8, 3);
  CHECK(d.size() == ref.size());
  CHECK(d.labels != ref.labels);
  std::vector<int32_t> l1 = d.labels, l2 = ref.labels;
  std::sort(l1.begin(), l1.end());
  std::sort(l2.begin(), l2.end());
  CHECK(l1 == l2);
}
