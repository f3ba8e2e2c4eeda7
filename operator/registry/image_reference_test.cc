#include "operator/registry/image_reference.h"

#include <gmock/gmock.h>
#include <gtest/gtest.h>

namespace kmm::registry {
namespace {

using ::testing::HasSubstr;

struct Case {
  std::string image, domain, api_host, repository, tag, digest;
};

TEST(ImageReferenceTest, SplitsNamesAsTheRuntimesDo) {
  const std::string digest = "sha256:" + std::string(64, 'a');
  for (const Case& c : std::vector<Case>{
           {"busybox", "docker.io", "registry-1.docker.io", "library/busybox", "latest", ""},
           {"busybox:1.36", "docker.io", "registry-1.docker.io", "library/busybox", "1.36", ""},
           {"docker.io/acme/driver:v1", "docker.io", "registry-1.docker.io", "acme/driver", "v1",
            ""},
           {"index.docker.io/acme/driver:v1", "docker.io", "registry-1.docker.io", "acme/driver",
            "v1", ""},
           {"registry.example:5000/team/kmm/driver:6.1.0-57-amd64", "registry.example:5000",
            "registry.example:5000", "team/kmm/driver", "6.1.0-57-amd64", ""},
           {"localhost/driver", "localhost", "localhost", "driver", "latest", ""},
           {"127.0.0.1:5000/kmm-ci-modules:6.1.0-57-amd64", "127.0.0.1:5000", "127.0.0.1:5000",
            "kmm-ci-modules", "6.1.0-57-amd64", ""},
           {"quay.io/acme/driver@" + digest, "quay.io", "quay.io", "acme/driver", "", digest},
           {"quay.io/acme/driver:v2@" + digest, "quay.io", "quay.io", "acme/driver", "v2", digest},
       }) {
    absl::StatusOr<ImageReference> ref = ParseImageReference(c.image);
    ASSERT_TRUE(ref.ok()) << c.image << ": " << ref.status();
    EXPECT_EQ(ref->domain, c.domain) << c.image;
    EXPECT_EQ(ref->api_host, c.api_host) << c.image;
    EXPECT_EQ(ref->repository, c.repository) << c.image;
    EXPECT_EQ(ref->tag, c.tag) << c.image;
    EXPECT_EQ(ref->digest, c.digest) << c.image;
    EXPECT_EQ(ref->Reference(), c.digest.empty() ? c.tag : c.digest) << c.image;
  }
  EXPECT_EQ(ParseImageReference("busybox")->ToString(), "docker.io/library/busybox:latest");
}

TEST(ImageReferenceTest, BadNamesSayWhatIsWrong) {
  struct Bad {
    std::string image, why;
  };
  for (const Bad& bad : std::vector<Bad>{
           {"", "empty"},
           {"registry.example/", "repository name is empty"},
           {"registry.example/Team/driver:1", "\"Team\" is not a valid repository path component"},
           {"driver:bad/tag", "registry host"},
           {"driver:" + std::string(129, 'a'), "at most 128"},
           {"driver@sha256:short", "digest"},
           {"regi$try.example:5000/a:1", "registry host"},
       }) {
    absl::StatusOr<ImageReference> ref = ParseImageReference(bad.image);
    ASSERT_FALSE(ref.ok()) << bad.image;
    EXPECT_EQ(ref.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(ref.status().message()), HasSubstr(bad.why)) << bad.image;
    EXPECT_THAT(std::string(ref.status().message()), HasSubstr("image \"" + bad.image + "\""));
  }
}

}  // namespace
}  // namespace kmm::registry
