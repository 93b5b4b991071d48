// tests/test_tokens.cpp — .nsvqt token files: round trips at 16- and 32-bit indices, and every kind of
// damage (magic, header, truncation, payload) reported with its own error.
#include <doctest/doctest.h>
#include <unistd.h>
#include <cstdio>
#include <fstream>
#include <iterator>
#include "engine/rng.h"
#include "engine/tensor.h"
#include "train/tokens.h"

using namespace nsvq;

namespace {
std::string err(const std::string& path) {
  try {
    tokens_read(path);
  } catch (const Error& e) {
    return e.what();
  }
  return "no error";
}
std::vector<char> slurp(const std::string& p) {
  std::ifstream in(p, std::ios::binary);
  return std::vector<char>((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}
void spit(const std::string& p, const std::vector<char>& b) { std::ofstream(p, std::ios::binary).write(b.data(), b.size()); }
}  // namespace

TEST_CASE("token files round-trip and reject damage") {
  std::string path = "/tmp/nsvq_tokens_" + std::to_string(::getpid()) + ".nsvqt";
  for (int64_t K : {1024LL, 65536LL, 262144LL}) {
    TokenFile t;
    t.n = 3;
    t.h = 8;
    t.w = 8;
    t.K = K;
    Rng r((uint64_t)K, 1);
    for (int i = 0; i < 3 * 64; i++) t.idx.push_back((int32_t)r.below((uint32_t)K));
    tokens_write(path, t);
    TokenFile u = tokens_read(path);
    CHECK(u.n == 3);
    CHECK(u.h == 8);
    CHECK(u.K == K);
    CHECK(u.idx == t.idx);
  }
  std::vector<char> good = slurp(path);
  std::vector<char> b = good;
  b[0] = 'X';
  spit(path, b);
  CHECK(err(path).find("not an nsvq token file") != std::string::npos);
  b = good;
  b[20] ^= 1;  // grid width
  spit(path, b);
  CHECK(err(path).find("header") != std::string::npos);
  b = good;
  b.resize(b.size() - 3);
  spit(path, b);
  CHECK(err(path).find("truncated") != std::string::npos);
  b = good;
  b[b.size() - 5] ^= 0x55;
  spit(path, b);
  CHECK(err(path).find("corrupt token payload") != std::string::npos);
  TokenFile bad;
  bad.n = 1;
  bad.h = bad.w = 1;
  bad.K = 4;
  bad.idx = {4};
  CHECK_THROWS_WITH_AS(tokens_write(path, bad), doctest::Contains("out of range"), Error);
  std::remove(path.c_str());
  CHECK(err(path).find("cannot open") != std::string::npos);
}
