#include "tokenizer/json_fields.h"

namespace dsinfer::tokenizer {

void json_error(const std::string& where, const std::string& problem) {
  throw std::invalid_argument(where + ": " + problem);
}

}  // namespace dsinfer::tokenizer
