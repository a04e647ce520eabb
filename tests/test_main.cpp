// Shared GoogleTest main for every test binary. Under mpirun (tests/dist) it joins the MPI job
// first; elsewhere dist::world() is a one-process communicator and MPI is never touched.
#include <gtest/gtest.h>

#include "dist/communicator.h"

int main(int argc, char** argv) {
  dsinfer::dist::init_world(&argc, &argv);
  ::testing::InitGoogleTest(&argc, argv);
  const int rc = RUN_ALL_TESTS();
  dsinfer::dist::finalize_world();
  return rc;
}
