# The controller runtime: work queue, controllers, Prometheus metrics, and the probe server
# (/healthz, /readyz, /metrics). Included from CMakeLists.txt, beside the API client.
kmm_library(kmm_kube_runtime
  SOURCES work_queue.cc controller.cc metrics.cc probe_server.cc
  DEPS kmm_common PkgConfig::CPPHTTPLIB Threads::Threads)

kmm_test(kube_runtime_test LABEL unit
  SOURCES work_queue_test.cc controller_test.cc metrics_test.cc probe_server_test.cc
  DEPS kmm_kube_runtime)
