// tests/test_util.h — small helpers shared by the test files: the message of the nsvq::Error a
// callable throws.
#pragma once
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

}  // namespace nsvq_test
