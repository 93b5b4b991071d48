// train/run_util.cpp — stop signals and duration formatting for the trainers (train/run_util.h).
#include "train/run_util.h"
#include <atomic>
#include <cmath>
#include <csignal>
#include <cstdio>

namespace nsvq {

namespace {
std::atomic<int> g_signal{0};
void on_signal(int s) { g_signal = s; }
}  // namespace

StopSignals::StopSignals() {
  g_signal = 0;
  old_int_ = std::signal(SIGINT, on_signal);
  old_term_ = std::signal(SIGTERM, on_signal);
  active_ = true;
}

int StopSignals::caught() const { return g_signal; }

void StopSignals::restore() {
  if (!active_) return;
  std::signal(SIGINT, old_int_);
  std::signal(SIGTERM, old_term_);
  active_ = false;
}

std::string fmt_duration(double s) {
  char b[32];
  if (s < 0 || !std::isfinite(s)) return "?";
  if (s < 60) snprintf(b, sizeof b, "%.0fs", s);
  else if (s < 3600) snprintf(b, sizeof b, "%dm%02ds", (int)s / 60, (int)s % 60);
  else snprintf(b, sizeof b, "%dh%02dm", (int)s / 3600, ((int)s % 3600) / 60);
  return b;
}

}  // namespace nsvq
