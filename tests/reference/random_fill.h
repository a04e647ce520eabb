// Seeded random inputs for the reference-operator tests, so every failure is reproducible: the
// project-wide helpers of tests/test_util.h under the name these tests use.
#pragma once

#include "test_util.h"

namespace dsinfer::ref::testing {
using dsinfer::testing::random_floats;
}  // namespace dsinfer::ref::testing
