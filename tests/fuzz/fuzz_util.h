// tests/fuzz/fuzz_util.h — shared by the libFuzzer targets of tests/fuzz/: a private temporary folder
// for targets whose code under test reads files, and the rule every target follows: bad input may
// throw nsvq::Error (a clean one-line failure) and must never crash, leak, overflow or hang.
#pragma once
#include <unistd.h>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <string>

namespace nsvq_fuzz {

// A folder of this process, removed at exit; file(name) writes `data` there and returns the path.
inline const std::string& tmpdir() {
  static std::string dir = [] {
    char t[] = "/tmp/nsvq-fuzz-XXXXXX";
    const char* d = mkdtemp(t);
    if (!d) abort();
    std::string s = d;
    static std::string keep = s;
    atexit([] { std::system(("rm -rf " + keep).c_str()); });
    return s;
  }();
  return dir;
}

inline std::string file(const std::string& name, const uint8_t* data, size_t size) {
  std::string p = tmpdir() + "/" + name;
  FILE* f = fopen(p.c_str(), "wb");
  if (!f) abort();
  if (size && fwrite(data, 1, size, f) != size) abort();
  fclose(f);
  return p;
}

}  // namespace nsvq_fuzz
