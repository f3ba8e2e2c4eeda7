#include "operator/kube/watch_decoder.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kmm::kube {
namespace {

const std::string kStream =
    R"({"type":"ADDED","object":{"kind":"Node","metadata":{"name":"a","resourceVersion":"1"}}})"
    "\n"
    R"({"type":"MODIFIED","object":{"metadata":{"name":"b \"}{ tricky","resourceVersion":"2"},"data":["}", "\\"]}})"
    "\n"
    R"({"type":"BOOKMARK","object":{"metadata":{"resourceVersion":"3"}}})"
    R"({"type":"DELETED","object":{"metadata":{"name":"a","resourceVersion":"4"}}})"
    "\n"
    R"({"type":"ERROR","object":{"kind":"Status","code":410,"reason":"Expired"}})"
    "\n";

std::vector<std::string> Decode(const std::vector<size_t>& chunk_sizes) {
  WatchStreamDecoder decoder;
  std::vector<std::string> seen;
  auto collect = [&](WatchEvent&& event) {
    const std::string detail =
        event.object.contains("metadata")
            ? event.object["metadata"].value("resourceVersion", "")
            : std::to_string(event.object.value("code", 0));
    seen.push_back(std::string(WatchEventTypeName(event.type)) + " " + detail);
    return true;
  };
  size_t offset = 0;
  size_t i = 0;
  while (offset < kStream.size()) {
    size_t size = chunk_sizes[i++ % chunk_sizes.size()];
    bool stopped = false;
    absl::Status status = decoder.Feed(std::string_view(kStream).substr(offset, size), collect,
                                       &stopped);
    EXPECT_TRUE(status.ok()) << status;
    offset += size;
  }
  EXPECT_EQ(decoder.pending_bytes(), 0u);
  return seen;
}

const std::vector<std::string> kExpected = {"ADDED 1", "MODIFIED 2", "BOOKMARK 3", "DELETED 4",
                                            "ERROR 410"};

TEST(WatchStreamDecoderTest, DecodesAWholeStreamInOneChunk) {
  EXPECT_EQ(Decode({kStream.size()}), kExpected);
}

TEST(WatchStreamDecoderTest, DecodesEveryChunkingTheSame) {
  // One byte at a time, odd sizes that split escapes, braces inside strings and events.
  for (size_t size : {1, 2, 3, 7, 13, 64, 100}) {
    EXPECT_EQ(Decode({size}), kExpected) << "chunk size " << size;
  }
  EXPECT_EQ(Decode({5, 1, 90, 2, 33}), kExpected);
}

TEST(WatchStreamDecoderTest, StopsWhenTheCallbackSaysSo) {
  WatchStreamDecoder decoder;
  int calls = 0;
  bool stopped = false;
  ASSERT_TRUE(decoder
                  .Feed(kStream, [&](WatchEvent&&) { return ++calls < 2; }, &stopped)
                  .ok());
  EXPECT_TRUE(stopped);
  EXPECT_EQ(calls, 2);
}

TEST(WatchStreamDecoderTest, RejectsMalformedEvents) {
  WatchStreamDecoder decoder;
  bool stopped = false;
  auto ignore = [](WatchEvent&&) { return true; };
  EXPECT_EQ(decoder.Feed(R"({"type":"ADDED"})", ignore, &stopped).code(),
            absl::StatusCode::kDataLoss);
  WatchStreamDecoder other;
  EXPECT_EQ(other.Feed(R"({"type":"RENAMED","object":{}})", ignore, &stopped).code(),
            absl::StatusCode::kDataLoss);
  WatchStreamDecoder garbage;
  EXPECT_EQ(garbage.Feed("<html>", ignore, &stopped).code(), absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace kmm::kube
