// How close one model's logits are to another's (numerical fidelity of a quantized model against
// the original, position by position).
#pragma once

#include <cstdint>
#include <vector>

namespace dsinfer::bench {

struct Fidelity {
  int64_t positions = 0;
  double median_rel = 0;    // median over positions of max|got - base| / max|base|
  double argmax_agree = 0;  // fraction of positions whose argmax is the base's
  double mean_kl = 0;       // mean over positions of KL(softmax(base) || softmax(got)), nats
};

// got and base are [positions, vocab] row-major; throws std::invalid_argument when the sizes
// differ or are not whole rows.
Fidelity compare_logits(const std::vector<float>& got, const std::vector<float>& base,
                        int64_t vocab);

}  // namespace dsinfer::bench
