# bpf_object(NAME SOURCE)
#   Compiles SOURCE with clang -target bpf into NAME.bpf.o, generates NAME.skel.h with
#   `bpftool gen skeleton`, and exposes it as the INTERFACE target NAME_skel.
#   clang writes a depfile so editing a shared header rebuilds the object.
find_program(BPF_CLANG NAMES clang REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /usr/local/sbin REQUIRED)
find_program(LLVM_STRIP NAMES llvm-strip)

# -D__TARGET_ARCH_<arch> (bpf_tracing.h's register layout for PT_REGS/BPF_PROG): from the
# processor CMake builds for, in the kernel's own arch names.
string(TOLOWER "${CMAKE_SYSTEM_PROCESSOR}" _nfsf_proc)
if(_nfsf_proc MATCHES "^(x86_64|amd64|i.86)$")
  set(NFSF_BPF_ARCH x86)
elseif(_nfsf_proc MATCHES "^(aarch64|arm64)$")
  set(NFSF_BPF_ARCH arm64)
elseif(_nfsf_proc MATCHES "^arm")
  set(NFSF_BPF_ARCH arm)
elseif(_nfsf_proc MATCHES "^(ppc64|ppc64le|powerpc64)")
  set(NFSF_BPF_ARCH powerpc)
elseif(_nfsf_proc MATCHES "^s390")
  set(NFSF_BPF_ARCH s390)
elseif(_nfsf_proc MATCHES "^riscv")
  set(NFSF_BPF_ARCH riscv)
elseif(_nfsf_proc MATCHES "^loongarch")
  set(NFSF_BPF_ARCH loongarch)
else()
  message(FATAL_ERROR "BPF objects: no __TARGET_ARCH_ for processor '${CMAKE_SYSTEM_PROCESSOR}' (cmake/BpfObject.cmake)")
endif()

set(NFSF_VMLINUX_H ${CMAKE_BINARY_DIR}/bpf/vmlinux.h)
file(MAKE_DIRECTORY ${CMAKE_BINARY_DIR}/bpf)
add_custom_command(
  OUTPUT ${NFSF_VMLINUX_H}
  COMMAND ${CMAKE_COMMAND} -E make_directory ${CMAKE_BINARY_DIR}/bpf
  COMMAND ${BPFTOOL} btf dump file /sys/kernel/btf/vmlinux format c > ${NFSF_VMLINUX_H}
  COMMENT "Generating vmlinux.h from the running kernel's BTF")
add_custom_target(vmlinux_h DEPENDS ${NFSF_VMLINUX_H})

function(bpf_object NAME SOURCE)
  set(obj ${CMAKE_BINARY_DIR}/bpf/${NAME}.bpf.o)
  set(skel ${CMAKE_BINARY_DIR}/bpf/${NAME}.skel.h)
  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${NFSF_BPF_ARCH} -Wall -Werror
            -I${CMAKE_BINARY_DIR}/bpf -I${CMAKE_SOURCE_DIR}/bpf/include -I${CMAKE_SOURCE_DIR}/bpf
            -MD -MF ${obj}.d -c ${CMAKE_CURRENT_SOURCE_DIR}/${SOURCE} -o ${obj}
    DEPFILE ${obj}.d
    DEPENDS ${CMAKE_CURRENT_SOURCE_DIR}/${SOURCE} ${NFSF_VMLINUX_H}
    COMMENT "BPF ${SOURCE}")
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${NAME} > ${skel}
    DEPENDS ${obj}
    COMMENT "Skeleton ${NAME}.skel.h")
  add_custom_target(${NAME}_skelgen DEPENDS ${skel})
  # One target generates vmlinux.h: with several BPF objects in a parallel build, each
  # target would otherwise run the command itself and clang could read a half-written file.
  add_dependencies(${NAME}_skelgen vmlinux_h)
  add_library(${NAME}_skel INTERFACE)
  add_dependencies(${NAME}_skel ${NAME}_skelgen)
  target_include_directories(${NAME}_skel INTERFACE ${CMAKE_BINARY_DIR}/bpf ${CMAKE_SOURCE_DIR}/bpf/include)
  set_property(GLOBAL APPEND PROPERTY NFSF_BPF_OBJECTS ${obj})
endfunction()
