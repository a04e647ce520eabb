// In-process peak probe: what this machine does right now, for the current thread count and ISA.
// Every benchmark reports its figures also as a percentage of this probe, measured in the same run,
// because the machine is shared and its clock varies.
#pragma once

namespace dsinfer {

struct PeakProbe {
  int threads = 1;
  const char* isa = "";
  double bf16_gflops = 0;  // bf16 dot products (vdpbf16ps where the ISA has it, else f32 FMAs on
                           // widened bf16: on those ISAs a bf16 product costs an f32 FMA)
  double f32_gflops = 0;   // f32 FMAs
  double read_gbs = 0;     // streaming reads from DRAM (a buffer far larger than the caches)
};

// Runs the probe on the current thread pool with the active ISA (about half a second); each
// figure is the best of `repeats` runs.
PeakProbe measure_peak(int repeats = 5);

}  // namespace dsinfer
