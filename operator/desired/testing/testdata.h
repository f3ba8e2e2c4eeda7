// The desired-state builders' golden files (operator/desired/testdata/), read by their tests.
#ifndef KMM_OPERATOR_DESIRED_TESTING_TESTDATA_H_
#define KMM_OPERATOR_DESIRED_TESTING_TESTDATA_H_

#include <gtest/gtest.h>

#include <fstream>
#include <sstream>
#include <string>

#include "nlohmann/json.hpp"
#include "operator/kube/yaml.h"

namespace kmm::desired::testing {

inline std::string ReadTestdata(const std::string& name) {
  std::ifstream in(std::string(KMM_DESIRED_TESTDATA) + "/" + name);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A YAML golden file as JSON; a parse error fails the test.
inline nlohmann::json TestdataYaml(const std::string& name) {
  absl::StatusOr<nlohmann::json> parsed = kube::ParseYaml(ReadTestdata(name), name);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  return parsed.ok() ? *parsed : nlohmann::json();
}

}  // namespace kmm::desired::testing

#endif  // KMM_OPERATOR_DESIRED_TESTING_TESTDATA_H_
