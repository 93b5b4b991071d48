// tools/cmd_bench_data.cpp — `nsvq bench data`: throughput of the training batch stream of a --data
// spec (open_train_stream: in memory, or streaming from shards:DIR) as a trainer draws it: images/s of
// wall time, the CPU time the process spent (loader threads and all) and images per core-second, the
// time to open the stream, and the peak resident memory before and after.
#include <sys/resource.h>
#include <chrono>
#include <cstdio>
#include <vector>
#include "engine/tensor.h"
#include "tools/args.h"
#include "tools/bench_util.h"
#include "tools/commands.h"
#include "train/data.h"

namespace nsvq {

namespace {
double cpu_seconds() {
  struct rusage ru;
  getrusage(RUSAGE_SELF, &ru);
  return ru.ru_utime.tv_sec + ru.ru_stime.tv_sec + 1e-6 * (ru.ru_utime.tv_usec + ru.ru_stime.tv_usec);
}
}  // namespace

int bench_data(int argc, char** argv, int first) {
  Args a("bench data", "Times the training batch stream of a dataset (what `nsvq train` draws), in images/s and per core.",
         {{"data", "", "fmnist", "fmnist | cifar10:DIR | folder:DIR | shards:DIR"},
          {"size", "", "32", "folder and short-side shards: sample size"},
          {"channels", "", "3", "folder and short-side shards: 1 or 3"},
          {"batch", "", "64", "global batch"},
          {"threads", "t", "2", "shards: loader threads"},
          {"window-mb", "", "16", "shards: decoded MB of one shuffle window"},
          {"seconds", "", "5", "timed seconds"},
          {"seed", "", "1", "data order seed"},
          {"json", "", "", "one JSON object", true}},
         argc, argv, first);
  const int64_t B = a.i64("batch");
  const double secs = a.f64("seconds");
  if (B < 1 || !(secs > 0)) fail("bench data: --batch and --seconds must be positive");
  StreamOptions so;
  so.threads = (int)a.i64("threads");
  so.window_bytes = (int64_t)(a.f64("window-mb") * 1048576.0);
  const double rss0 = peak_rss_mb();
  using clock = std::chrono::steady_clock;
  auto t0 = clock::now();
  std::unique_ptr<BatchStream> s =
      open_train_stream(a.str("data"), a.i64("size"), (int)a.i64("channels"), B, (uint64_t)a.i64("seed"), 0, 1, so);
  std::vector<float> x((size_t)(B * s->channels() * s->image_size() * s->image_size()));
  std::vector<int32_t> y((size_t)B);
  s->next(x.data(), y.data());  // the first batch: start-up (and the first window) included in open_ms
  const double open_ms = std::chrono::duration<double, std::milli>(clock::now() - t0).count();
  const double c0 = cpu_seconds();
  t0 = clock::now();
  int64_t n = 0;
  double wall = 0;
  while (wall < secs) {
    s->next(x.data(), y.data());
    n += B;
    wall = std::chrono::duration<double>(clock::now() - t0).count();
  }
  const double cpu = cpu_seconds() - c0, rss1 = peak_rss_mb();
  const double ips = n / wall, per_core = cpu > 0 ? n / cpu : 0;
  const BatchStream::Pos p = s->position();
  if (a.flag("json"))
    printf("{\"name\": \"data %s\", \"images\": %lld, \"seconds\": %.3f, \"images_per_s\": %.1f, \"cpu_cores\": %.3f, "
           "\"images_per_core_s\": %.1f, \"open_ms\": %.1f, \"peak_rss_mb_before\": %.1f, \"peak_rss_mb\": %.1f}\n",
           a.str("data").c_str(), (long long)n, wall, ips, cpu / wall, per_core, open_ms, rss0, rss1);
  else
    printf("data %s: %s %lldx%lldx%lld, %lld images/epoch, batch %lld%s\n"
           "  %.0f images/s, %.2f cores busy, %.0f images/s per core; %lld images in %.1f s (at epoch %lld + %lld); "
           "open + first batch %.0f ms; peak RSS %.1f MB -> %.1f MB\n",
           a.str("data").c_str(), s->name().c_str(), (long long)s->channels(), (long long)s->image_size(),
           (long long)s->image_size(), (long long)s->size(), (long long)B, s->augment() ? ", random crop + flip" : "", ips,
           cpu / wall, per_core, (long long)n, wall, (long long)p.epoch, (long long)p.index, open_ms, rss0, rss1);
  return 0;
}

}  // namespace nsvq
