// tests/main.cpp — the doctest runner of the unit suite. Launched as several ranks (mpirun -np R
// nsvq_tests -tc='dist*'), it connects them first: the collective cases then run across processes.
#define DOCTEST_CONFIG_IMPLEMENT
#include <doctest/doctest.h>
#include "engine/dist.h"

int main(int argc, char** argv) {
  nsvq::dist_init();
  int rc = doctest::Context(argc, argv).run();
  nsvq::dist_finalize();
  return rc;
}
