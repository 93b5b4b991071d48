// tools/bench_util.h — what every `nsvq bench` command shares: the median of repeated timings and
// the process's peak resident memory.
#pragma once
#include <functional>

namespace nsvq {

// Median of `reps` wall-clock timings (ms) of f after `warm` untimed calls.
double median_ms(int warm, int reps, const std::function<void()>& f);
// Peak resident set size of this process so far, in MB.
double peak_rss_mb();

}  // namespace nsvq
