#include "common/clock.h"

namespace kmm {
namespace {
class WallClock final : public Clock {
 public:
  absl::Time Now() override { return absl::Now(); }
  void SleepFor(absl::Duration duration) override { absl::SleepFor(duration); }
};
}  // namespace

Clock& RealClock() {
  static WallClock* clock = new WallClock;
  return *clock;
}

}  // namespace kmm
