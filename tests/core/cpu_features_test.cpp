// CPU feature detection, the active ISA, and DSINFER_DISPATCH.
//
// DSINFER_ISA is read once, the first time the active ISA is needed, so it cannot be changed
// within this process; ActiveIsaStartsAsDsinferIsaSays checks the starting value against the
// rule for whatever environment the binary runs in, and the name parsing it relies on
// (isa_from_name) is tested directly.
#include "core/cpu_features.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/dispatch.h"

namespace dsinfer {

// Test-only per-ISA functions (unique names, so they cannot clash with the library's own).
DSINFER_DECLARE_PER_ISA(int, coretest_dispatch_id, (int));
namespace isa_scalar {
int coretest_dispatch_id(int x) {
  return 1000 + x;
}
}  // namespace isa_scalar
namespace isa_avx2 {
int coretest_dispatch_id(int x) {
  return 2000 + x;
}
}  // namespace isa_avx2
namespace isa_avx512 {
int coretest_dispatch_id(int x) {
  return 3000 + x;
}
}  // namespace isa_avx512
namespace isa_avx512bf16 {
int coretest_dispatch_id(int x) {
  return 4000 + x;
}
}  // namespace isa_avx512bf16

namespace {

const Isa kAllIsas[] = {Isa::scalar, Isa::avx2, Isa::avx512, Isa::avx512bf16};

// Restores the active ISA at scope exit.
class IsaRestorer {
 public:
  IsaRestorer() : saved_(active_isa()) {}
  ~IsaRestorer() { set_active_isa(saved_); }

 private:
  Isa saved_;
};

TEST(CpuFeatures, IsaNamesRoundTrip) {
  const char* names[] = {"scalar", "avx2", "avx512", "avx512bf16"};
  for (int i = 0; i < kNumIsas; ++i) {
    EXPECT_EQ(isa_name(kAllIsas[i]), names[i]);
    Isa parsed = Isa::scalar;
    ASSERT_TRUE(isa_from_name(names[i], &parsed)) << names[i];
    EXPECT_EQ(parsed, kAllIsas[i]);
    ASSERT_TRUE(isa_from_name(isa_name(kAllIsas[i]), &parsed));
    EXPECT_EQ(parsed, kAllIsas[i]);
  }
}

TEST(CpuFeatures, IsaFromNameRejectsOtherSpellingsAndLeavesOutputAlone) {
  // DSINFER_ISA goes through isa_from_name: names are exact and lower case.
  for (const char* bad : {"", "AVX2", "Scalar", "avx", "avx2 ", " avx2", "avx512bf", "avx512_bf16",
                          "avx512bf16x", "sse4", "native"}) {
    Isa out = Isa::avx512;
    EXPECT_FALSE(isa_from_name(bad, &out)) << "'" << bad << "'";
    EXPECT_EQ(out, Isa::avx512) << "'" << bad << "'";
  }
}

TEST(CpuFeatures, OutOfRangeIsaValuesAreUnknownAndUnsupported) {
  EXPECT_EQ(isa_name(Isa(-1)), "unknown");
  EXPECT_EQ(isa_name(Isa(kNumIsas)), "unknown");
  EXPECT_FALSE(isa_supported(Isa(-1)));
  EXPECT_FALSE(isa_supported(Isa(kNumIsas)));
  EXPECT_FALSE(isa_supported(Isa(100)));
}

TEST(CpuFeatures, SupportedIsasArePrefixFromScalarToBest) {
  const std::vector<Isa> isas = supported_isas();
  ASSERT_FALSE(isas.empty());
  EXPECT_EQ(isas.front(), Isa::scalar);
  EXPECT_EQ(isas.back(), best_supported_isa());
  for (size_t i = 0; i < isas.size(); ++i) EXPECT_EQ(int(isas[i]), int(i));
  for (Isa isa : kAllIsas)
    EXPECT_EQ(isa_supported(isa), int(isa) <= int(best_supported_isa())) << isa_name(isa);
  EXPECT_TRUE(isa_supported(Isa::scalar));
  EXPECT_EQ(best_supported_isa(), best_supported_isa());  // stable
}

TEST(CpuFeatures, BestIsaAgreesWithTheCompilersCpuChecks) {
  // GCC's own detection (which also checks the OS saves the AVX / AVX-512 register state).
  __builtin_cpu_init();
  const bool avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                    __builtin_cpu_supports("bmi") && __builtin_cpu_supports("bmi2");
  const bool avx512 = avx2 && __builtin_cpu_supports("avx512f") &&
                      __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq") &&
                      __builtin_cpu_supports("avx512vl");
  const bool avx512bf16 =
      avx512 && __builtin_cpu_supports("avx512bf16") && __builtin_cpu_supports("avx512vnni");
  const Isa best = best_supported_isa();
  // Each level the detector reports implies what GCC sees.
  EXPECT_TRUE(int(best) < int(Isa::avx2) || avx2);
  EXPECT_TRUE(int(best) < int(Isa::avx512) || avx512);
  EXPECT_TRUE(best != Isa::avx512bf16 || avx512bf16);
  // And the detector does not miss what GCC sees (f16c, which GCC cannot query, comes with every
  // AVX2 CPU).
  if (avx512bf16) {
    EXPECT_EQ(best, Isa::avx512bf16);
  } else if (avx512) {
    EXPECT_EQ(best, Isa::avx512);
  } else if (avx2) {
    EXPECT_EQ(best, Isa::avx2);
  }
}

TEST(CpuFeatures, ActiveIsaStartsAsDsinferIsaSays) {
  // Read before any test here changes it (each test restores what it changes).
  const Isa active = active_isa();
  const char* env = std::getenv("DSINFER_ISA");
  Isa wanted;
  if (env && *env && isa_from_name(env, &wanted) && isa_supported(wanted)) {
    EXPECT_EQ(active, wanted);
  } else {
    EXPECT_EQ(active, best_supported_isa()) << "DSINFER_ISA=" << (env ? env : "(unset)");
  }
  EXPECT_TRUE(isa_supported(active));
}

TEST(CpuFeatures, SetActiveIsaAcceptsSupportedAndRejectsTheRest) {
  IsaRestorer restore;
  for (Isa isa : kAllIsas) {
    SCOPED_TRACE(std::string(isa_name(isa)));
    if (isa_supported(isa)) {
      EXPECT_NO_THROW(set_active_isa(isa));
      EXPECT_EQ(active_isa(), isa);
    } else {
      set_active_isa(Isa::scalar);
      try {
        set_active_isa(isa);
        ADD_FAILURE() << "accepted an unsupported ISA";
      } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find(isa_name(isa)), std::string::npos) << e.what();
      }
      EXPECT_EQ(active_isa(), Isa::scalar) << "a rejected ISA must not become active";
    }
  }
  set_active_isa(best_supported_isa());
  for (Isa bad : {Isa(-1), Isa(kNumIsas), Isa(42)}) {
    EXPECT_THROW(set_active_isa(bad), std::invalid_argument) << int(bad);
    EXPECT_EQ(active_isa(), best_supported_isa());
  }
}

// ---- dispatch --------------------------------------------------------------------------------

int pick_id(Isa isa) {
  return isa_pick<int>(isa, 1, 2, 3, 4);
}

TEST(Dispatch, IsaPickChoosesTheMatchingArgument) {
  EXPECT_EQ(pick_id(Isa::scalar), 1);
  EXPECT_EQ(pick_id(Isa::avx2), 2);
  EXPECT_EQ(pick_id(Isa::avx512), 3);
  EXPECT_EQ(pick_id(Isa::avx512bf16), 4);
  EXPECT_EQ(pick_id(Isa(17)), 1);  // anything unknown falls back to scalar
}

TEST(Dispatch, PicksTheFunctionOfTheActiveIsa) {
  IsaRestorer restore;
  const int base[] = {1000, 2000, 3000, 4000};
  for (Isa isa : supported_isas()) {
    SCOPED_TRACE(std::string(isa_name(isa)));
    set_active_isa(isa);
    EXPECT_EQ(DSINFER_DISPATCH(coretest_dispatch_id)(7), base[int(isa)] + 7);
  }
  // The pointers themselves, for every ISA (calling one the CPU lacks is safe here: these test
  // functions are plain C++, but the selection logic is the same for all four).
  using Fn = int (*)(int);
  const Fn expect[] = {&isa_scalar::coretest_dispatch_id, &isa_avx2::coretest_dispatch_id,
                       &isa_avx512::coretest_dispatch_id, &isa_avx512bf16::coretest_dispatch_id};
  for (Isa isa : kAllIsas) {
    Fn got = isa_pick(isa, &isa_scalar::coretest_dispatch_id, &isa_avx2::coretest_dispatch_id,
                      &isa_avx512::coretest_dispatch_id, &isa_avx512bf16::coretest_dispatch_id);
    EXPECT_EQ(got, expect[int(isa)]) << isa_name(isa);
    EXPECT_EQ(got(1), base[int(isa)] + 1);
  }
}

TEST(Dispatch, FollowsLaterChangesOfTheActiveIsa) {
  IsaRestorer restore;
  set_active_isa(best_supported_isa());
  const int best = DSINFER_DISPATCH(coretest_dispatch_id)(0);
  set_active_isa(Isa::scalar);
  EXPECT_EQ(DSINFER_DISPATCH(coretest_dispatch_id)(0), 1000);
  set_active_isa(best_supported_isa());
  EXPECT_EQ(DSINFER_DISPATCH(coretest_dispatch_id)(0), best);
  EXPECT_EQ(best, 1000 * (int(best_supported_isa()) + 1));
}

}  // namespace
}  // namespace dsinfer
