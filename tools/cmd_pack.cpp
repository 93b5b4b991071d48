// tools/cmd_pack.cpp — `nsvq pack`: packs datasets into shard files (train/shards.h) for
// --data shards:DIR, with a progress bar on a terminal (plain lines every few seconds otherwise), the
// skipped files as warnings, and one summary line. Re-running an interrupted pack continues it.
#include <unistd.h>
#include <chrono>
#include <cmath>
#include <cstdio>
#include "engine/tensor.h"
#include "tools/args.h"
#include "tools/commands.h"
#include "train/data.h"
#include "train/shards.h"

namespace nsvq {

namespace {

// The progress line: a bar on a terminal, otherwise a plain line every 5 s.
class PackMeter {
 public:
  explicit PackMeter(bool quiet) : quiet_(quiet), tty_(!quiet && isatty(fileno(stderr))) {}
  void update(const PackProgress& p) {
    if (quiet_) return;
    for (const std::string& s : p.skipped_now) {
      if (shown_) fprintf(stderr, "\r%-100s\r", "");
      fprintf(stderr, "warning: skipping %s\n", s.c_str());
      shown_ = false;
    }
    const double t = std::chrono::duration<double>(clock::now() - t0_).count();
    if (!tty_ && t - last_ < 5 && p.items_done < p.items_total) return;
    last_ = t;
    const double f = p.items_total ? (double)p.items_done / (double)p.items_total : 1;
    char bar[31];
    for (int i = 0; i < 30; i++) bar[i] = i < (int)std::lround(f * 30) ? '=' : ' ';
    bar[30] = 0;
    fprintf(stderr, "%s[%s] %3.0f%% %lld/%lld images, %lld chunks, %.1f MB -> %.1f MB, %.0f s%s", tty_ ? "\r" : "", bar,
            100 * f, (long long)p.items_done, (long long)p.items_total, (long long)p.chunks, p.raw_bytes / 1e6,
            p.bytes / 1e6, t, tty_ ? "  " : "\n");
    fflush(stderr);
    shown_ = tty_;
  }
  void done() {
    if (shown_) fprintf(stderr, "\n");
  }
  double seconds() const { return std::chrono::duration<double>(clock::now() - t0_).count(); }

 private:
  using clock = std::chrono::steady_clock;
  bool quiet_, tty_, shown_ = false;
  double last_ = -1e9;
  clock::time_point t0_ = clock::now();
};

}  // namespace

int cmd_pack(int argc, char** argv, int first) {
  Args a("pack",
         "Packs datasets into zstd-compressed, checksummed shard files for --data shards:DIR (docs/training.md).\n"
         "Several --data are concatenated in order. Pixels are stored as training holds them: fmnist and cifar10\n"
         "as they are, folder images at short side --size (training crops and flips them). Pack train and test\n"
         "into the same DIR one after the other. Re-running an interrupted pack continues after its last chunk.",
         {{"data", "", "", "dataset to pack (repeatable): fmnist | cifar10:DIR | folder:DIR"},
          {"split", "", "train", "train | test"},
          {"size", "", "32", "folder sources: short side in pixels"},
          {"channels", "", "3", "folder sources: 1 or 3"},
          {"chunk-mb", "", "4", "uncompressed MB per chunk (the unit of reading and shuffling)"},
          {"shard-mb", "", "1024", "start a new shard file once one reaches this size"},
          {"level", "", "3", "zstd compression level (1..19)"},
          {"shuffle", "", "", "store each source's images in a random order (class-sorted folders)", true},
          {"seed", "", "1", "seed of --shuffle"},
          {"threads", "t", "0", "decode and compression threads (0: all cores)"},
          {"max-chunks", "", "-1", "stop after writing N chunks (re-run to continue; -1: no limit)"},
          {"quiet", "q", "", "no progress output", true},
          {"output", "o", "", "folder of the shards"}},
         argc, argv, first);
  if (!a.positional().empty()) fail("nsvq pack: unexpected argument '%s'", a.positional()[0].c_str());
  PackOptions o;
  o.specs = a.all("data");
  if (o.specs.empty()) fail("nsvq pack: --data is required (fmnist | cifar10:DIR | folder:DIR)");
  if (a.str("output").empty()) fail("nsvq pack: -o DIR is required");
  o.split = a.str("split");
  o.out_dir = a.str("output");
  o.size = a.i64("size");
  o.channels = (int)a.i64("channels");
  bool folder = false;
  for (const std::string& s : o.specs) folder |= data_spec_parse(s).kind == "folder";
  if (!folder && (a.given("size") || a.given("channels")))
    fail("nsvq pack: --size and --channels apply to folder sources (fmnist and cifar10 are packed as they are)");
  const double chunk_mb = a.f64("chunk-mb"), shard_mb = a.f64("shard-mb");
  if (!(chunk_mb > 0) || !(shard_mb > 0)) fail("nsvq pack: --chunk-mb and --shard-mb must be positive");
  o.chunk_bytes = std::llround(chunk_mb * 1048576.0);
  o.shard_bytes = std::llround(shard_mb * 1048576.0);
  o.level = (int)a.i64("level");
  o.shuffle = a.flag("shuffle");
  o.seed = (uint64_t)a.i64("seed");
  o.threads = (int)a.i64("threads");
  if (o.threads < 0) fail("nsvq pack: --threads must be >= 0");
  o.max_chunks = a.i64("max-chunks");
  PackMeter meter(a.flag("quiet"));
  PackResult r = shards_pack(o, [&](const PackProgress& p) { meter.update(p); });
  meter.done();
  const ShardIndex& x = r.index;
  if (r.already) {
    printf("pack: %s already holds this %s split (%lld images); nothing to do\n", o.out_dir.c_str(), o.split.c_str(),
           (long long)x.samples);
  } else if (!r.complete) {
    printf("pack: stopped after %lld chunks (--max-chunks); run the same command again to continue\n",
           (long long)r.written_chunks);
  } else {
    printf("pack: %lld %s images (%s, %lldx%lld %s) in %zu chunks, %.1f MB -> %.1f MB, %lld skipped%s -> %s (%.1f s)\n",
           (long long)x.samples, o.split.c_str(), x.name.c_str(), (long long)x.C, (long long)x.S,
           x.fixed ? "fixed" : "short side", x.chunks.size(), r.raw_bytes / 1e6, r.bytes / 1e6, (long long)x.skipped,
           r.resumed_chunks ? (", resumed after " + std::to_string(r.resumed_chunks) + " chunks").c_str() : "",
           o.out_dir.c_str(), meter.seconds());
  }
  return 0;
}

}  // namespace nsvq
