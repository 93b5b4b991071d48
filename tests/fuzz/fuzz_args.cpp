// tests/fuzz/fuzz_args.cpp — libFuzzer target: the command-line option parser (tools/args.h) with the
// option table of `nsvq train` (every TrainConfig knob, values set through the field table as the
// command does) and of `nsvq ldm-train`; the input is split at NUL bytes into arguments. --help (which
// prints and exits) is left out.
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>
#include "engine/tensor.h"
#include "tools/args.h"
#include "train/ldm.h"
#include "train/train_config.h"

template <class C>
static void parse(const std::vector<nsvq::ConfigField<C>>& fields, std::vector<std::string> args) {
  std::vector<nsvq::Opt> opts;
  const C def;
  for (const auto& f : fields) opts.push_back({f.name, "", f.get(def), f.help});
  opts.push_back({"quiet", "q", "", "", true});
  opts.push_back({"threads", "t", "0", ""});
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(&a[0]);
  argv.push_back(nullptr);
  try {
    nsvq::Args a("fuzz", "", opts, (int)args.size(), argv.data(), 0);
    C c = def;
    for (const auto& f : fields)
      if (a.given(f.name)) f.set(c, a.str(f.name));
    a.i64("threads");
    (void)a.positional();
  } catch (const nsvq::Error&) {
  }
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  std::vector<std::string> args;
  std::string cur;
  for (size_t i = 0; i < size; i++) {
    if (data[i] == 0) {
      args.push_back(cur);
      cur.clear();
    } else {
      cur += (char)data[i];
    }
  }
  args.push_back(cur);
  for (const std::string& a : args)
    if (a == "--help" || a == "-h") return 0;
  parse(nsvq::train_fields(), args);
  parse(nsvq::ldm_fields(), args);
  return 0;
}
