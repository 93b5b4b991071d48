// tests/test_util.h — small helpers shared by the test files: the message of the nsvq::Error a
// callable throws, and a temporary folder removed with its contents at the end of its scope.
#pragma once
#include <unistd.h>
#include <cstdlib>
#include <filesystem>
#include <functional>
#include <string>
#include "engine/tensor.h"

namespace nsvq_test {

// The message of the nsvq::Error that f throws, or "(no error)".
inline std::string error_of(const std::function<void()>& f) {
  try {
    f();
  } catch (const nsvq::Error& e) {
    return e.what();
  }
  return "(no error)";
}

struct TempDir {
  std::filesystem::path p;
  TempDir() {
    p = std::filesystem::temp_directory_path() / ("nsvq_test_" + std::to_string(::getpid()) + "_" + std::to_string(rand()));
    std::filesystem::create_directories(p);
  }
  ~TempDir() { std::filesystem::remove_all(p); }
};

}  // namespace nsvq_test
