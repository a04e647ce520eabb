// `dsinfer info`: the CPU's ISA backends and the thread count in use.
#include <cstdio>
#include <string>

#include "command.h"
#include "core/cpu_features.h"
#include "core/thread_pool.h"

namespace dsinfer::cli {
namespace {

CommandRegistrar info_cmd(
    {"info", "Show the CPU features, ISA backends and threads", [](CLI::App& app) {
       return std::function<int()>([] {
         std::printf("best ISA:   %s\n", std::string(isa_name(best_supported_isa())).c_str());
         std::printf("active ISA: %s\n", std::string(isa_name(active_isa())).c_str());
         std::printf("supported:");
         for (Isa isa : supported_isas()) std::printf(" %s", std::string(isa_name(isa)).c_str());
         std::printf("\nbf16 dot:   %s%s\n", bf16_dot_name(),
                     active_isa() == Isa::avx512bf16
                         ? " (GEMM pair panels on vdpbf16ps, or f32 FMAs on widened bf16; "
                           "DSINFER_BF16_DOT=native|fma)"
                         : " (no native bf16 dot on the active ISA: f32 FMAs)");
         std::printf("threads:    %d\n", num_threads());
         return 0;
       });
     }});

}  // namespace
}  // namespace dsinfer::cli
