// In-process peak probe: what this machine does right now, for the current thread count and ISA.
// Every benchmark reports its figures also as a percentage of this probe, measured in the same run,
// because the machine is shared and its clock varies.
#pragma once

namespace dsinfer {

struct PeakProbe {
  int threads = 1;
  const char* isa = "";
  // bf16 products: the faster of the native dot product (vdpbf16ps, where the ISA has it) and
  // f32 FMAs on widened operands (exact, so always available). Some CPUs with AVX512-BF16 run
  // vdpbf16ps at half the FMA rate (seen on a Xeon with AMX): the peak is what bf16 math can reach.
  double bf16_gflops = 0;
  double bf16_dot_gflops = 0;  // vdpbf16ps alone; 0 where the ISA has no native bf16 dot
  double f32_gflops = 0;       // f32 FMAs
  double read_gbs = 0;         // streaming reads from DRAM (a buffer far larger than the caches)
  // int8 dot products (u8 x s8 into int32: vpdpbusd on AVX512-VNNI, 16-bit multiply-adds
  // elsewhere), two ops per multiply-add: the W8A8 / W4A8 kernels' peak.
  double int8_gops = 0;
};

// Runs the probe on the current thread pool with the active ISA (about half a second); each
// figure is the best of `repeats` runs.
PeakProbe measure_peak(int repeats = 5);

}  // namespace dsinfer
