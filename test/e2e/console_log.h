// Parses the console log of a qemu node run (test/qemu/run-vm, test/qemu/guest-lib.sh):
// the output of each scenario, between "KMM-BEGIN <name>" and "KMM-END <name>".
#ifndef KMM_TEST_E2E_CONSOLE_LOG_H_
#define KMM_TEST_E2E_CONSOLE_LOG_H_

#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

namespace kmm::e2e {

struct Section {
  std::vector<std::string> lines;
  std::vector<int> exit_codes;  // every "KMM-RC <n>", in order

  bool Contains(const std::string& text) const {
    for (const std::string& line : lines) {
      if (line.find(text) != std::string::npos) return true;
    }
    return false;
  }
  // The first line that starts with `prefix`, without it; "<none>" when there is none.
  std::string ValueOf(const std::string& prefix) const {
    for (const std::string& line : lines) {
      if (line.rfind(prefix, 0) == 0) return line.substr(prefix.size());
    }
    return "<none>";
  }
  // Index of the first line containing `text`, or -1.
  int IndexOf(const std::string& text) const {
    for (size_t i = 0; i < lines.size(); ++i) {
      if (lines[i].find(text) != std::string::npos) return static_cast<int>(i);
    }
    return -1;
  }
  std::string Text() const {
    std::string text;
    for (const std::string& line : lines) text += line + "\n";
    return text;
  }
};

inline std::map<std::string, Section> ParseConsoleLog(const std::string& path) {
  std::map<std::string, Section> sections;
  std::ifstream in(path);
  std::string line, current;
  while (std::getline(in, line)) {
    if (line.rfind("KMM-BEGIN ", 0) == 0) {
      current = line.substr(10);
      sections[current];
    } else if (line.rfind("KMM-END ", 0) == 0) {
      current.clear();
    } else if (!current.empty()) {
      if (line.rfind("KMM-RC ", 0) == 0) {
        sections[current].exit_codes.push_back(std::stoi(line.substr(7)));
      }
      sections[current].lines.push_back(line);
    }
  }
  return sections;
}

}  // namespace kmm::e2e

#endif  // KMM_TEST_E2E_CONSOLE_LOG_H_
