# Makefile — builds the apr core, its backend plugins, tools, benchmarks and tests into build/.
#
#   make                      core, plugins, tools and bench into build/
#   make check                builds and runs every test
#   make check-sanitize       the same under AddressSanitizer + UndefinedBehaviorSanitizer (build-san/)
#   make aarch64, make check-aarch64   the 64-bit Arm cross build and its tests under qemu (mk/aarch64.mk)
#   make test                 deps, check, check-sanitize and check-aarch64 (what .ci/run runs)
#   make install PREFIX=/usr/local DESTDIR=
#
# The core and every probe are compiled for baseline x86-64 so nothing runs an instruction the
# CPU lacks before the probe has checked; only a plugin's kernel files get its ISA flags.

PREFIX ?= /usr/local
DESTDIR ?=
B ?= build
CC ?= cc
WERROR ?= -Werror
OPT ?= -O2
SAN ?=

PKGS := hwloc libcjson libpcre2-8 libutf8proc
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
PKG_LIBS := $(shell pkg-config --libs $(PKGS) 2>/dev/null)
CRIT_CFLAGS := $(shell pkg-config --cflags criterion 2>/dev/null)
CRIT_LIBS := $(shell pkg-config --libs criterion 2>/dev/null)

BASE_CFLAGS := -std=c11 -D_GNU_SOURCE -Wall -Wextra $(WERROR) $(OPT) -g -fPIC -pthread \
               -Iinclude -fno-strict-aliasing $(SAN)
LDFLAGS_ALL := -pthread $(SAN)
ARCH_BASE := -march=x86-64 -mtune=generic

# Loops start on 64-byte boundaries, so a hot kernel's speed does not move with the code around it.
ISA_avx2 := -mavx2 -mfma -mf16c -falign-loops=64
ISA_avx512 := -mavx2 -mfma -mf16c -mavx512f -mavx512bw -mavx512vl -mavx512dq -falign-loops=64

# ---------------------------------------------------------------- core library
CORE_SRCS := $(wildcard core/*.c)
CORE_OBJS := $(CORE_SRCS:%.c=$(B)/obj/%.o)
LIBAPR := $(B)/lib/libapr.so
LIBAPR0 := $(B)/lib/libapr.so.0

# ---------------------------------------------------------------- model library (formats, tokenizers, architectures, sampling)
LLM_SRCS := $(wildcard llm/*.c)
LLM_OBJS := $(LLM_SRCS:%.c=$(B)/obj/%.o)
LIBLLM0 := $(B)/lib/libaprllm.so.0
LIBLLM := $(if $(LLM_SRCS),$(B)/lib/libaprllm.so,)
LLM_LINK := $(if $(LLM_SRCS),-laprllm,)

# ---------------------------------------------------------------- plugins
PLUGDIR := $(B)/lib/apr/plugins
# plugins/common: code every plugin compiles in (host buffers, op checks, thread pool); its cpu_*.c
# (instance, supports, entry) only the CPU plugins, with hooks each one's probe.c and supports.c define.
COMMON_SRCS := $(filter-out plugins/common/cpu_%.c,$(wildcard plugins/common/*.c))
CPU_COMMON_SRCS := $(wildcard plugins/common/cpu_*.c)
# plugins/simd: the kernels every CPU plugin shares, compiled per plugin against its own isa/vec.h
# (and isa/gemm_tile.h, isa/qmatmul.h), found through SIMD_INC_<plugin>, with its ISA flags.
SIMD_SRCS := $(wildcard plugins/simd/*.c)
# The block formats' reference quantize/dequantize (core/quant*.c) are compiled into each CPU plugin
# too, so a plugin needs no libapr.
QUANT_SRCS := $(wildcard core/quant*.c)
REF_SRCS := $(wildcard plugins/reference/*.c) $(COMMON_SRCS) $(QUANT_SRCS)
X86_BASE_SRCS := $(wildcard plugins/cpu-x86/*.c) $(COMMON_SRCS) $(CPU_COMMON_SRCS) $(QUANT_SRCS)
X86_ISA_SRCS := $(wildcard plugins/cpu-x86/isa/*.c) $(SIMD_SRCS)
SIMD_INC_x86 := -Iplugins/cpu-x86/isa -Iplugins/simd

REF_OBJS := $(REF_SRCS:%.c=$(B)/obj/reference/%.o)
# The quantized dot products (and their activation rows) are built again for vpdpbusd, their names
# ending in _vnni (EVEX: AVX512-VNNI, on ymm with AVX512-VL in cpu-avx2) or _avxvnni (VEX: AVX-VNNI,
# cpu-avx2 only); qmatmul.c and qpack.c pick a copy at run time from the probe's qpath.
X86_VNNI_SRCS := $(wildcard plugins/cpu-x86/isa/qact.c plugins/cpu-x86/isa/qdot*.c)
AVX2_OBJS := $(X86_BASE_SRCS:%.c=$(B)/obj/cpu-avx2/%.o) $(X86_ISA_SRCS:%.c=$(B)/obj/cpu-avx2/%.o) \
             $(X86_VNNI_SRCS:%.c=$(B)/obj/cpu-avx2-vnni/%.o) $(X86_VNNI_SRCS:%.c=$(B)/obj/cpu-avx2-avxvnni/%.o)
AVX512_OBJS := $(X86_BASE_SRCS:%.c=$(B)/obj/cpu-avx512/%.o) $(X86_ISA_SRCS:%.c=$(B)/obj/cpu-avx512/%.o) \
               $(X86_VNNI_SRCS:%.c=$(B)/obj/cpu-avx512-vnni/%.o)

PLUGINS := $(PLUGDIR)/reference.so $(PLUGDIR)/cpu-avx2.so $(PLUGDIR)/cpu-avx512.so
PLUGIN_LDFLAGS := -shared -Wl,--version-script=plugins/plugin.map -Wl,-z,defs $(LDFLAGS_ALL) -lm
.DEFAULT_GOAL := all
include mk/vulkan.mk

# ---------------------------------------------------------------- tools and bench
TOOLS := $(patsubst tools/%.c,$(B)/bin/%,$(wildcard tools/apr-*.c))
TOOL_COMMON := $(wildcard tools/common/*.c)
BENCH_SRCS := $(wildcard bench/*.c)
BENCH := $(B)/bin/apr-bench
# bench/genmodel: apr-genmodel writes random-weight GGUF models in real shapes to benchmark with
GENMODEL := $(B)/bin/apr-genmodel
RPATH := -Wl,-rpath,'$$ORIGIN/../lib'
RPATH_LIB := -Wl,-rpath,'$$ORIGIN'

# ---------------------------------------------------------------- tests
TEST_SRCS := $(wildcard tests/test_*.c)
TEST_BINS := $(TEST_SRCS:tests/%.c=$(B)/tests/%)
TEST_UTIL := $(wildcard tests/util/*.c)
TESTPLUG_SRCS := $(wildcard tests/plugins/*.c)
TESTPLUGS := $(TESTPLUG_SRCS:tests/plugins/%.c=$(B)/tests/plugins/%.so)

all: $(LIBAPR) $(LIBLLM) $(PLUGINS) $(TOOLS) $(BENCH) $(GENMODEL) $(B)/lib/pkgconfig/apr.pc

# core: baseline ISA
$(B)/obj/core/%.o: core/%.c $(wildcard include/apr/*.h core/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) -fvisibility=hidden $(PKG_CFLAGS) -c $< -o $@

$(LIBAPR0): $(CORE_OBJS)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $^ -Wl,-soname,libapr.so.0 $(LDFLAGS_ALL) $(PKG_LIBS) -ldl -lm

$(LIBAPR): $(LIBAPR0)
	ln -sf libapr.so.0 $@

# the model library exports only what its headers mark LLM_API
$(B)/obj/llm/%.o: llm/%.c $(wildcard include/apr/*.h llm/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) -fvisibility=hidden $(PKG_CFLAGS) -c $< -o $@

$(LIBLLM0): $(LLM_OBJS) $(LIBAPR)
	@mkdir -p $(dir $@)
	$(CC) -shared -o $@ $(LLM_OBJS) -Wl,-soname,libaprllm.so.0 -L$(B)/lib -lapr $(RPATH_LIB) $(LDFLAGS_ALL) $(PKG_LIBS) -lm

$(B)/lib/libaprllm.so: $(LIBLLM0)
	ln -sf libaprllm.so.0 $@

PLUGIN_HDRS := $(wildcard include/apr/*.h plugins/common/*.h plugins/reference/*.h plugins/cpu-x86/*.h plugins/cpu-x86/isa/*.h \
                          plugins/simd/*.h)

$(B)/obj/reference/%.o: %.c $(PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) -fvisibility=hidden -c $< -o $@

# cpu-x86 shares one source tree; each variant is the same code built for its own ISA level. Its
# kernels are isa/ and the shared plugins/simd/ (against isa/vec.h); everything else is baseline.
$(B)/obj/cpu-avx2/plugins/cpu-x86/isa/%.o: plugins/cpu-x86/isa/%.c $(PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ISA_avx2) -DAPR_X86_LEVEL=2 $(SIMD_INC_x86) -fvisibility=hidden -c $< -o $@
$(B)/obj/cpu-avx2/plugins/simd/%.o: plugins/simd/%.c $(PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ISA_avx2) -DAPR_X86_LEVEL=2 $(SIMD_INC_x86) -fvisibility=hidden -c $< -o $@
$(B)/obj/cpu-avx2-vnni/plugins/cpu-x86/isa/%.o: plugins/cpu-x86/isa/%.c $(PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ISA_avx2) -mavx512f -mavx512vl -mavx512vnni -DQDOT_VNNI=1 -DAPR_X86_LEVEL=2 $(SIMD_INC_x86) -fvisibility=hidden -c $< -o $@
$(B)/obj/cpu-avx2-avxvnni/plugins/cpu-x86/isa/%.o: plugins/cpu-x86/isa/%.c $(PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ISA_avx2) -mavxvnni -DQDOT_VNNI=2 -DAPR_X86_LEVEL=2 $(SIMD_INC_x86) -fvisibility=hidden -c $< -o $@
$(B)/obj/cpu-avx2/%.o: %.c $(PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) -DAPR_X86_LEVEL=2 -fvisibility=hidden -c $< -o $@
$(B)/obj/cpu-avx512/plugins/cpu-x86/isa/%.o: plugins/cpu-x86/isa/%.c $(PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ISA_avx512) -DAPR_X86_LEVEL=3 $(SIMD_INC_x86) -fvisibility=hidden -c $< -o $@
$(B)/obj/cpu-avx512/plugins/simd/%.o: plugins/simd/%.c $(PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ISA_avx512) -DAPR_X86_LEVEL=3 $(SIMD_INC_x86) -fvisibility=hidden -c $< -o $@
$(B)/obj/cpu-avx512-vnni/plugins/cpu-x86/isa/%.o: plugins/cpu-x86/isa/%.c $(PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ISA_avx512) -mavx512vnni -DQDOT_VNNI=1 -DAPR_X86_LEVEL=3 $(SIMD_INC_x86) -fvisibility=hidden -c $< -o $@
$(B)/obj/cpu-avx512/%.o: %.c $(PLUGIN_HDRS)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) -DAPR_X86_LEVEL=3 -fvisibility=hidden -c $< -o $@

$(PLUGDIR)/reference.so: $(REF_OBJS) plugins/plugin.map
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(REF_OBJS) $(PLUGIN_LDFLAGS)
$(PLUGDIR)/cpu-avx2.so: $(AVX2_OBJS) plugins/plugin.map
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(AVX2_OBJS) $(PLUGIN_LDFLAGS)
$(PLUGDIR)/cpu-avx512.so: $(AVX512_OBJS) plugins/plugin.map
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(AVX512_OBJS) $(PLUGIN_LDFLAGS)

# tools and bench link the core; tools/common holds argument and output helpers they share.
$(B)/bin/%: tools/%.c $(TOOL_COMMON) $(LIBAPR) $(LIBLLM) $(wildcard tools/common/*.h llm/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) $(PKG_CFLAGS) -Itools -Illm -o $@ $< $(TOOL_COMMON) -L$(B)/lib $(LLM_LINK) -lapr $(RPATH) $(LDFLAGS_ALL) $(PKG_LIBS) -ldl -lm

$(BENCH): $(BENCH_SRCS) $(TOOL_COMMON) $(LIBAPR) $(LIBLLM) $(wildcard bench/*.h tools/common/*.h llm/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) $(PKG_CFLAGS) -Itools -Ibench -Illm -o $@ $(BENCH_SRCS) $(TOOL_COMMON) -L$(B)/lib $(LLM_LINK) -lapr $(RPATH) $(LDFLAGS_ALL) $(PKG_LIBS) -ldl -lm

$(GENMODEL): bench/genmodel/apr-genmodel.c $(TOOL_COMMON) $(LIBAPR) $(LIBLLM) $(wildcard tools/common/*.h llm/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) $(PKG_CFLAGS) -Itools -Illm -o $@ $< $(TOOL_COMMON) -L$(B)/lib $(LLM_LINK) -lapr $(RPATH) $(LDFLAGS_ALL) $(PKG_LIBS) -ldl -lm

$(B)/lib/pkgconfig/apr.pc: Makefile
	@mkdir -p $(dir $@)
	printf 'prefix=%s\nlibdir=$${prefix}/lib\nincludedir=$${prefix}/include\nplugindir=$${libdir}/apr/plugins\n\nName: apr\nDescription: plugin-based tensor-op runtime for LLM work\nVersion: 0.1.0\nRequires.private: hwloc\nCflags: -I$${includedir}\nLibs: -L$${libdir} -lapr\n' '$(PREFIX)' > $@

# ---------------------------------------------------------------- tests
$(B)/tests/plugins/%.so: tests/plugins/%.c $(COMMON_SRCS) $(PLUGIN_HDRS) $(wildcard tests/plugins/*.h) $(B)/tests/plugins/deps/libaprmissing.so
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) -fvisibility=hidden -shared -o $@ $< $(COMMON_SRCS) $(LDFLAGS_ALL) -lm \
	  $(if $(findstring missingdep,$*),-L$(B)/tests/plugins/deps -laprmissing,)

# opaque.so (memory the host cannot address, queued work) runs its nodes with the reference kernels:
# it links the reference plugin's objects except its entry point, ref_plugin.o. This explicit rule
# takes precedence over the pattern rule above.
OPAQUE_OBJS := $(filter-out %/ref_plugin.o,$(REF_OBJS))
$(B)/tests/plugins/opaque.so: tests/plugins/opaque.c $(OPAQUE_OBJS) $(PLUGIN_HDRS) $(wildcard tests/plugins/*.h) plugins/plugin.map
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) -fvisibility=hidden -o $@ $< $(OPAQUE_OBJS) $(PLUGIN_LDFLAGS)

# The library the missingdep plugin needs; it sits where the loader never looks (no rpath), so
# loading that plugin fails with the dynamic linker's message.
$(B)/tests/plugins/deps/libaprmissing.so: tests/plugins/deps/aprmissing.c
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) -shared -o $@ $<

# tests/badplugins: plugins that crash, exit, hang, print or leave messages unterminated
# (tests/test_discovery.c copies them into plugin dirs of its own; never instrumented, so that their
# crashes stay crashes under the sanitizers, as a foreign plugin's would), and apr-probe with the core
# linked in, for the setuid test (a setuid program ignores the $ORIGIN rpath that finds libapr).
BADPLUGS := $(patsubst tests/badplugins/%.c,$(B)/tests/badplugins/%.so,$(wildcard tests/badplugins/*.c))
BADPROBE := $(B)/tests/badplugins/apr-probe-core
$(B)/tests/badplugins/%.so: tests/badplugins/%.c $(COMMON_SRCS) $(PLUGIN_HDRS) $(wildcard tests/plugins/*.h tests/badplugins/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) -fvisibility=hidden -shared -o $@ $< $(COMMON_SRCS) $(LDFLAGS_ALL) -fno-sanitize=all -lm
$(BADPROBE): tools/apr-probe.c tools/common/cli.c $(CORE_OBJS) $(wildcard tools/common/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) $(PKG_CFLAGS) -Itools -Illm -o $@ $< tools/common/cli.c $(CORE_OBJS) $(LDFLAGS_ALL) $(PKG_LIBS) -ldl -lm

$(B)/tests/%: tests/%.c $(TEST_UTIL) $(LIBAPR) $(LIBLLM) $(wildcard tests/util/*.h tests/plugins/*.h llm/*.h)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) $(PKG_CFLAGS) $(CRIT_CFLAGS) -Itests -Icore -Illm -o $@ $< $(TEST_UTIL) -L$(B)/lib $(LLM_LINK) -lapr $(RPATH) $(LDFLAGS_ALL) $(CRIT_LIBS) $(PKG_LIBS) -ldl -lm

tests-build: all $(TEST_BINS) $(TESTPLUGS) $(BADPLUGS) $(BADPROBE)

# Each test program runs with the build tree's plugins; Criterion prints its Synthesis line.
check: tests-build
	@fail=0; for t in $(TEST_BINS); do \
	  echo "== $$t"; APR_TEST_BUILD=$(B) $$t -j2 || fail=1; \
	done; exit $$fail

check-sanitize:
	$(MAKE) B=build-san OPT=-O1 SAN="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined" check

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(PREFIX)/lib/apr/plugins $(DESTDIR)$(PREFIX)/include/apr $(DESTDIR)$(PREFIX)/lib/pkgconfig
	install -m 755 $(TOOLS) $(BENCH) $(GENMODEL) $(DESTDIR)$(PREFIX)/bin/
	install -m 755 $(LIBAPR0) $(DESTDIR)$(PREFIX)/lib/libapr.so.0
	$(if $(LLM_SRCS),install -m 755 $(LIBLLM0) $(DESTDIR)$(PREFIX)/lib/libaprllm.so.0,)
	ln -sf libapr.so.0 $(DESTDIR)$(PREFIX)/lib/libapr.so
	install -m 755 $(PLUGINS) $(DESTDIR)$(PREFIX)/lib/apr/plugins/
	install -m 644 include/apr/*.h $(DESTDIR)$(PREFIX)/include/apr/
	install -m 644 $(B)/lib/pkgconfig/apr.pc $(DESTDIR)$(PREFIX)/lib/pkgconfig/

clean:
	rm -rf build build-san

.PHONY: all check check-sanitize install clean tests-build
.DELETE_ON_ERROR:

# ---------------------------------------------------------------- fuzzing (clang + libFuzzer; see fuzz/README.md)
FUZZ_CC ?= clang
FUZZ_TIME ?= 600
FUZZ_FLAGS := -g -O1 -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -fsanitize=fuzzer,address,undefined \
              -fno-sanitize-recover=undefined -Iinclude -Illm
GGUF_SRCS := $(wildcard llm/gguf*.c)

$(B)/fuzz/gguf_fuzz: fuzz/gguf_fuzz.c $(GGUF_SRCS) core/status.c $(wildcard llm/gguf*.h include/apr/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -Icore -o $@ fuzz/gguf_fuzz.c $(GGUF_SRCS) core/status.c

fuzz-gguf: $(B)/fuzz/gguf_fuzz
	@mkdir -p $(B)/fuzz/work && cp -n fuzz/corpus/gguf/* $(B)/fuzz/work/
	$< -dict=fuzz/gguf.dict -max_len=8192 -max_total_time=$(FUZZ_TIME) -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/work

$(B)/fuzz/safetensors_fuzz: fuzz/safetensors_fuzz.c llm/safetensors.c core/status.c $(wildcard llm/safetensors.h include/apr/*.h)
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_FLAGS) -Icore $(PKG_CFLAGS) -o $@ fuzz/safetensors_fuzz.c llm/safetensors.c core/status.c $(PKG_LIBS)

fuzz-safetensors: $(B)/fuzz/safetensors_fuzz
	@mkdir -p $(B)/fuzz/st-work && cp -n fuzz/corpus/safetensors/* $(B)/fuzz/st-work/
	$< -max_len=4096 -max_total_time=$(FUZZ_TIME) -artifact_prefix=$(B)/fuzz/ $(B)/fuzz/st-work

.PHONY: fuzz-gguf fuzz-safetensors

# ---------------------------------------------------------------- the README's quick-start commands
# Both first install any missing Debian packages (scripts/deps.sh says which), then re-run make so
# that pkg-config sees them. demo's default model is apr's own (models/, trained by `make default-model`);
# MODEL=path runs another GGUF.
DEMO_MODEL := models/apr-kjv-q8_0.gguf
MODEL ?= $(DEMO_MODEL)
DEMO_PROMPT ?= And God said
demo:
	scripts/deps.sh
	$(MAKE) all
	$(B)/bin/apr-probe
	@if [ "$(MODEL)" = "$(DEMO_MODEL)" ]; then \
	  echo "note: $(MODEL) is a 3.3M-parameter Llama that apr trained from scratch on the King James Bible"; \
	  echo "      (make default-model); run another model with: make demo MODEL=path/to/model.gguf"; fi
	@# a model without a vocabulary still runs, printing ids
	@if $(B)/bin/apr-tokenize --model "$(MODEL)" --prompt x --ids >/dev/null 2>&1; then \
	  echo '$(B)/bin/apr-run --model "$(MODEL)" --prompt "$(DEMO_PROMPT)" -n 64'; \
	  $(B)/bin/apr-run --model "$(MODEL)" --prompt "$(DEMO_PROMPT)" -n 64; \
	else echo '$(B)/bin/apr-run --model "$(MODEL)" -n 64'; $(B)/bin/apr-run --model "$(MODEL)" -n 64; fi
	$(B)/bin/apr-bench --quick

# The default model, reproduced from its corpus: a byte-level BPE vocabulary of 4096 tokens learned from
# the King James Bible, a Llama of 4 layers (width 192, 6 heads, feed-forward 512) trained from scratch
# for 700 steps of 4 x 256 tokens (about 0.6 of an epoch) with AdamW, then quantized to Q8_0. The same
# seed, steps, backend and thread count give the same bits (cpu-avx512 and 2 threads made the committed one).
KJV_DIR := $(B)/kjv
KJV_SHAPE := layers=4,embd=192,heads=6,kv_heads=6,ff=512,ctx=256
default-model: all
	scripts/deps.sh
	scripts/kjv-corpus.sh $(KJV_DIR)/kjv.txt
	$(B)/bin/apr-finetune vocab $(KJV_DIR)/kjv.txt $(KJV_DIR)/vocab.gguf --size 4096
	$(B)/bin/apr-finetune --from-scratch $(KJV_SHAPE) --tokenizer $(KJV_DIR)/vocab.gguf --data $(KJV_DIR)/kjv.txt \
	  --lr 3e-3 --warmup 30 --seq-len 256 --batch 4 --steps 700 --val-split 0.01 --eval-every 100 --save-every 50 \
	  --threads 2 --log $(KJV_DIR)/train.jsonl --name "apr-kjv: a small Llama trained by apr on the King James Bible" \
	  --out $(KJV_DIR)/apr-kjv-f32.gguf
	$(B)/bin/apr-quantize $(KJV_DIR)/apr-kjv-f32.gguf $(DEMO_MODEL) --type q8_0
	$(B)/bin/apr-finetune plot $(KJV_DIR)/train.jsonl $(KJV_DIR)/train.svg

test:
	scripts/deps.sh
	$(MAKE) check
	$(MAKE) check-sanitize
	$(MAKE) check-aarch64

.PHONY: demo default-model test
include mk/aarch64.mk
