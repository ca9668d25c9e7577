# mk/aarch64.mk — cross-builds apr for 64-bit Arm into build-aarch64/ and tests it under qemu-user.
#
#   make aarch64              (or make ARCH=aarch64) libapr, libaprllm, reference.so, cpu-neon.so,
#                             the tools and the test programs, with Debian's gcc-aarch64-linux-gnu
#   make check-aarch64        the conformance (forward and gradient), tokenizer, model (llama, arch), loader,
#                             executor, weight packing, gguf, chat, import, quant and sampler tests under
#                             qemu-aarch64, once per CPU model in AA_QEMU_CPUS (AA_QEMU_CPUS="max cortex-a72" for two)
#   make clean-aarch64
#
# The arm64 builds of hwloc, cJSON, PCRE2 and utf8proc come from Debian's arm64 packages, unpacked
# (never installed) into $(AA_SYSROOT) by scripts/deps.sh; libc comes with the cross compiler in
# $(AA_LIBC). binfmt_misc is not assumed: every program runs as `qemu-aarch64 -L $(AA_LIBC) ...`.
# The test programs link a small Criterion-compatible runner (tests/shim/) instead of libcriterion,
# whose arm64 package cannot sit beside the amd64 one and whose runner does not start under qemu.
# The bench is x86-only (it compares AVX kernels) and is not built here.
#
# CPU models: "max" has dotprod and i8mm (cpu-neon's smmla kernels run), "neoverse-n1" dotprod
# only (sdot kernels), "cortex-a72" neither (the plain smull kernels).

AA_B := build-aarch64
AA_CC ?= aarch64-linux-gnu-gcc
AA_LIBC ?= /usr/aarch64-linux-gnu
AA_SYSROOT := $(AA_B)/sysroot
AA_SYSLIB := $(AA_SYSROOT)/usr/lib/aarch64-linux-gnu
AA_STAMP := $(AA_SYSROOT)/.complete
QEMU_AARCH64 ?= qemu-aarch64
AA_QEMU_CPUS ?= max neoverse-n1 cortex-a72
# emulation runs the tests several times slower than native: the tests' .timeout values scale by this
AA_TIMEOUT_SCALE ?= 4

AA_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra $(WERROR) -O2 -g -fPIC -pthread -Iinclude -fno-strict-aliasing \
             -march=armv8-a
# Debian 12's aarch64-linux-gnu-gcc 12.2 dies with an internal compiler error (vect_transform_reduction)
# on a loop in tests/test_quant.c at -O2; test programs do not need the vectoriser.
AA_TEST_CFLAGS := -fno-tree-vectorize
AA_PKG_CFLAGS := -I$(AA_SYSROOT)/usr/include -I$(AA_SYSROOT)/usr/include/aarch64-linux-gnu -I$(AA_SYSROOT)/usr/include/cjson
AA_PKG_LIBS := -L$(AA_SYSLIB) -Wl,-rpath-link,$(AA_SYSLIB) -lhwloc -lcjson -lpcre2-8 -lutf8proc
AA_LDFLAGS := -pthread

AA_CORE_OBJS := $(CORE_SRCS:%.c=$(AA_B)/obj/%.o)
AA_LLM_OBJS := $(LLM_SRCS:%.c=$(AA_B)/obj/%.o)
AA_LIBAPR0 := $(AA_B)/lib/libapr.so.0
AA_LIBAPR := $(AA_B)/lib/libapr.so
AA_LIBLLM0 := $(AA_B)/lib/libaprllm.so.0
AA_LIBLLM := $(if $(LLM_SRCS),$(AA_B)/lib/libaprllm.so,)

AA_PLUGDIR := $(AA_B)/lib/apr/plugins
NEON_SRCS := $(wildcard plugins/cpu-neon/*.c plugins/cpu-neon/isa/*.c) $(SIMD_SRCS) $(COMMON_SRCS) $(CPU_COMMON_SRCS) $(QUANT_SRCS)
# the shared kernels of plugins/simd/ find cpu-neon's isa/vec.h, isa/gemm_tile.h and isa/qmatmul.h here
SIMD_INC_neon := -Iplugins/cpu-neon/isa -Iplugins/simd
AA_REF_OBJS := $(REF_SRCS:%.c=$(AA_B)/obj/reference/%.o)
AA_NEON_OBJS := $(NEON_SRCS:%.c=$(AA_B)/obj/cpu-neon/%.o)
AA_PLUGINS := $(AA_PLUGDIR)/reference.so $(AA_PLUGDIR)/cpu-neon.so
AA_PLUGIN_HDRS := $(wildcard include/apr/*.h plugins/common/*.h plugins/reference/*.h plugins/cpu-neon/*.h plugins/cpu-neon/isa/*.h \
                             plugins/simd/*.h)
AA_PLUGIN_LDFLAGS := -shared -Wl,--version-script=plugins/plugin.map -Wl,-z,defs $(AA_LDFLAGS) -lm

AA_TOOLS := $(patsubst tools/%.c,$(AA_B)/bin/%,$(wildcard tools/apr-*.c))
AA_SHIM := tests/shim/criterion_shim.c
AA_TEST_BINS := $(TEST_SRCS:tests/%.c=$(AA_B)/tests/%)
AA_TESTPLUGS := $(TESTPLUG_SRCS:tests/plugins/%.c=$(AA_B)/tests/plugins/%.so)

# What check-aarch64 runs. Excluded by name (the runner lists them as excluded, never as passed):
# test_import's one test that executes apr-import
# (an aarch64 program cannot exec another without binfmt_misc; test_run and test_quantize, which
# exec apr-run / apr-quantize / apr-perplexity throughout, are left out for the same reason).
AA_CHECK_TESTS := test_conformance test_gradcheck test_tokenizer test_tok_norm test_tok_unicode test_llama test_arch test_loader test_executor test_wpack test_fused test_gguf \
                  test_chat test_import test_quant test_sampler test_tpool
AA_EXCLUDE := --exclude 'import/apr_import_tool_exit_codes_and_summary'

ifeq ($(ARCH),aarch64)
.DEFAULT_GOAL := aarch64
endif

aarch64: aarch64-lib $(AA_TEST_BINS) $(AA_TESTPLUGS)

aarch64-lib: $(AA_LIBAPR) $(AA_LIBLLM) $(AA_PLUGINS) $(AA_TOOLS)

# The arm64 libraries (and the cross compiler and qemu, when missing); again when deps.sh changes,
# which unpacks only when its package list differs from the one the stamp holds.
$(AA_STAMP): scripts/deps.sh
	scripts/deps.sh aarch64 $(AA_SYSROOT) && touch $@

$(AA_B)/obj/core/%.o: core/%.c $(wildcard include/apr/*.h core/*.h) | $(AA_STAMP)
	@mkdir -p $(dir $@)
	$(AA_CC) $(AA_CFLAGS) -fvisibility=hidden $(AA_PKG_CFLAGS) -c $< -o $@

$(AA_B)/obj/llm/%.o: llm/%.c $(wildcard include/apr/*.h llm/*.h) | $(AA_STAMP)
	@mkdir -p $(dir $@)
	$(AA_CC) $(AA_CFLAGS) -fvisibility=hidden $(AA_PKG_CFLAGS) -c $< -o $@

$(AA_LIBAPR0): $(AA_CORE_OBJS)
	@mkdir -p $(dir $@)
	$(AA_CC) -shared -o $@ $^ -Wl,-soname,libapr.so.0 $(AA_LDFLAGS) $(AA_PKG_LIBS) -ldl -lm

$(AA_LIBAPR): $(AA_LIBAPR0)
	ln -sf libapr.so.0 $@

$(AA_LIBLLM0): $(AA_LLM_OBJS) $(AA_LIBAPR)
	@mkdir -p $(dir $@)
	$(AA_CC) -shared -o $@ $(AA_LLM_OBJS) -Wl,-soname,libaprllm.so.0 -L$(AA_B)/lib -lapr $(RPATH_LIB) $(AA_LDFLAGS) $(AA_PKG_LIBS) -lm

$(AA_B)/lib/libaprllm.so: $(AA_LIBLLM0)
	ln -sf libaprllm.so.0 $@

$(AA_B)/obj/reference/%.o: %.c $(AA_PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(AA_CC) $(AA_CFLAGS) -fvisibility=hidden -c $< -o $@

# cpu-neon: everything is baseline armv8-a (Advanced SIMD is part of it); the sdot / smmla
# kernels in isa/qdot.c carry target attributes and run only when HWCAP says so. Its kernels are
# isa/ and the shared plugins/simd/, compiled against isa/vec.h.
$(AA_B)/obj/cpu-neon/%.o: %.c $(AA_PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(AA_CC) $(AA_CFLAGS) $(SIMD_INC_neon) -fvisibility=hidden -c $< -o $@

$(AA_PLUGDIR)/reference.so: $(AA_REF_OBJS) plugins/plugin.map
	@mkdir -p $(dir $@)
	$(AA_CC) -o $@ $(AA_REF_OBJS) $(AA_PLUGIN_LDFLAGS)

$(AA_PLUGDIR)/cpu-neon.so: $(AA_NEON_OBJS) plugins/plugin.map
	@mkdir -p $(dir $@)
	$(AA_CC) -o $@ $(AA_NEON_OBJS) $(AA_PLUGIN_LDFLAGS)

$(AA_B)/bin/%: tools/%.c $(TOOL_COMMON) $(AA_LIBAPR) $(AA_LIBLLM) $(wildcard tools/common/*.h llm/*.h) | $(AA_STAMP)
	@mkdir -p $(dir $@)
	$(AA_CC) $(AA_CFLAGS) $(AA_PKG_CFLAGS) -Itools -Illm -o $@ $< $(TOOL_COMMON) -L$(AA_B)/lib $(if $(LLM_SRCS),-laprllm,) -lapr $(RPATH) $(AA_LDFLAGS) $(AA_PKG_LIBS) -ldl -lm

$(AA_B)/tests/plugins/%.so: tests/plugins/%.c $(COMMON_SRCS) $(AA_PLUGIN_HDRS) $(wildcard tests/plugins/*.h) $(AA_B)/tests/plugins/deps/libaprmissing.so
	@mkdir -p $(dir $@)
	$(AA_CC) $(AA_CFLAGS) -fvisibility=hidden -shared -o $@ $< $(COMMON_SRCS) $(AA_LDFLAGS) -lm \
	  $(if $(findstring missingdep,$*),-L$(AA_B)/tests/plugins/deps -laprmissing,)

# opaque.so runs its nodes with the reference kernels, as in the native build.
AA_OPAQUE_OBJS := $(filter-out %/ref_plugin.o,$(AA_REF_OBJS))
$(AA_B)/tests/plugins/opaque.so: tests/plugins/opaque.c $(AA_OPAQUE_OBJS) $(AA_PLUGIN_HDRS) $(wildcard tests/plugins/*.h) plugins/plugin.map
	@mkdir -p $(dir $@)
	$(AA_CC) $(AA_CFLAGS) -fvisibility=hidden -o $@ $< $(AA_OPAQUE_OBJS) $(AA_PLUGIN_LDFLAGS)

$(AA_B)/tests/plugins/deps/libaprmissing.so: tests/plugins/deps/aprmissing.c
	@mkdir -p $(dir $@)
	$(AA_CC) $(AA_CFLAGS) -shared -o $@ $<

# The same test sources as build/tests, against the shim's criterion.h (-Itests/shim first).
$(AA_B)/tests/%: tests/%.c $(TEST_UTIL) $(AA_SHIM) $(AA_LIBAPR) $(AA_LIBLLM) $(wildcard tests/util/*.h tests/plugins/*.h tests/shim/criterion/*.h llm/*.h) | $(AA_STAMP)
	@mkdir -p $(dir $@)
	$(AA_CC) $(AA_CFLAGS) $(AA_TEST_CFLAGS) -Itests/shim $(AA_PKG_CFLAGS) -Itests -Icore -Illm -o $@ $< $(TEST_UTIL) $(AA_SHIM) -L$(AA_B)/lib $(if $(LLM_SRCS),-laprllm,) -lapr $(RPATH) $(AA_LDFLAGS) $(AA_PKG_LIBS) -ldl -lm

# Every test program under every CPU model; the shim prints "N passed, N failed, N skipped" per
# program, and the last line gives the wall time of the whole run.
AA_QEMU = $(QEMU_AARCH64) -L $(AA_LIBC) -E LD_LIBRARY_PATH=$(abspath $(AA_SYSLIB))
AA_LOG := $(AA_B)/check-aarch64.log
AA_CHECK_BINS := $(AA_CHECK_TESTS:%=$(AA_B)/tests/%)
check-aarch64: aarch64-lib $(AA_CHECK_BINS) $(AA_TESTPLUGS)
	@fail=0; start=$$(date +%s); : > $(AA_LOG); for cpu in $(AA_QEMU_CPUS); do \
	  echo "== qemu-aarch64 -cpu $$cpu: $$($(AA_QEMU) -cpu $$cpu $(AA_B)/bin/apr-probe 2>&1 | grep -A2 '^ *cpu-neon' | tr -s ' \n' ' ')"; \
	  for t in $(AA_CHECK_TESTS); do \
	    echo "== $(AA_B)/tests/$$t (qemu-aarch64 -cpu $$cpu)"; \
	    APR_TEST_BUILD=$(AA_B) CR_SHIM_TIMEOUT_SCALE=$(AA_TIMEOUT_SCALE) \
	      $(AA_QEMU) -cpu $$cpu $(AA_B)/tests/$$t $(AA_EXCLUDE) > $(AA_LOG).one 2>&1 || fail=1; \
	    cat $(AA_LOG).one; cat $(AA_LOG).one >> $(AA_LOG); \
	  done; \
	done; rm -f $(AA_LOG).one; \
	awk '/^[0-9]+ passed, [0-9]+ failed/ { p += $$1; f += $$3; s += $$5 } \
	     END { printf "check-aarch64 (all programs, CPU models $(AA_QEMU_CPUS)): %d passed, %d failed, %d skipped\n", p, f, s }' $(AA_LOG); \
	echo "check-aarch64: $$(( $$(date +%s) - start )) s wall"; exit $$fail

clean-aarch64:
	rm -rf $(AA_B)

.PHONY: aarch64 aarch64-lib check-aarch64 clean-aarch64
