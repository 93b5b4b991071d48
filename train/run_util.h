// train/run_util.h — what the long-running commands (tokenizer and latent-diffusion trainers)
// share: Ctrl-C / SIGTERM caught as a stop request while a run is in its loop, and durations
// printed as 42s / 3m07s / 1h05m.
#pragma once
#include <string>

namespace nsvq {

// Installs SIGINT and SIGTERM handlers that only record the signal; restore() (or the destructor)
// puts the previous handlers back, so a second Ctrl-C after it stops the process as usual.
class StopSignals {
 public:
  StopSignals();
  ~StopSignals() { restore(); }
  StopSignals(const StopSignals&) = delete;
  StopSignals& operator=(const StopSignals&) = delete;
  int caught() const;  // the signal number, 0 while none came
  void restore();

 private:
  void (*old_int_)(int) = nullptr;
  void (*old_term_)(int) = nullptr;
  bool active_ = false;
};

std::string fmt_duration(double seconds);  // "?" when negative or not finite

}  // namespace nsvq
