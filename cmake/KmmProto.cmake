# kmm_proto_library(NAME PROTO path/to/api.proto): generates the C++ messages and gRPC
# stubs for one kubelet API at build time and wraps them in one static library.
# Generated headers are included as "<dir of the proto>/api.pb.h", e.g.
# "deviceplugin/v1beta1/api.grpc.pb.h".
function(kmm_proto_library name)
  cmake_parse_arguments(ARG "" "PROTO" "" ${ARGN})
  set(proto_root ${CMAKE_SOURCE_DIR}/proto)
  set(gen_root ${CMAKE_BINARY_DIR}/proto_gen)
  file(RELATIVE_PATH rel ${proto_root} ${CMAKE_CURRENT_SOURCE_DIR}/${ARG_PROTO})
  string(REGEX REPLACE "\\.proto$" "" stem ${rel})
  set(outputs ${gen_root}/${stem}.pb.cc ${gen_root}/${stem}.pb.h
              ${gen_root}/${stem}.grpc.pb.cc ${gen_root}/${stem}.grpc.pb.h)
  add_custom_command(
    OUTPUT ${outputs}
    COMMAND ${CMAKE_COMMAND} -E make_directory ${gen_root}
    COMMAND ${KMM_PROTOC} --proto_path=${proto_root} --cpp_out=${gen_root}
            --grpc_out=${gen_root} --plugin=protoc-gen-grpc=${KMM_GRPC_CPP_PLUGIN}
            ${proto_root}/${rel}
    DEPENDS ${proto_root}/${rel} ${KMM_PROTOC} ${KMM_GRPC_CPP_PLUGIN}
    COMMENT "protoc ${rel}"
    VERBATIM)
  add_library(${name} STATIC ${outputs})
  target_include_directories(${name} SYSTEM PUBLIC ${gen_root})
  # Binaries marked KMM_STATIC_ABSL (kmm_fast_start) get gRPC from static archives too, so
  # that one copy of abseil serves both.
  set(static $<BOOL:$<TARGET_PROPERTY:KMM_STATIC_ABSL>>)
  target_link_libraries(${name} PUBLIC "$<${static}:kmm_grpc_static>"
                                       "$<$<NOT:${static}>:protobuf::libprotobuf;gRPC::grpc++>")
  target_include_directories(${name} SYSTEM PUBLIC
    $<TARGET_PROPERTY:gRPC::grpc++,INTERFACE_INCLUDE_DIRECTORIES>)
endfunction()
