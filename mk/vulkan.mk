# mk/vulkan.mk — the vulkan plugin: GLSL compute shaders compiled to SPIR-V by glslc at build time
# and embedded in vulkan.so, which loads libvulkan.so.1 at run time (so it builds against the Vulkan
# headers alone and loads on machines without a loader, where probe says so). Built when
# pkg-config knows vulkan and glslc is installed (scripts/deps.sh installs both).
VK_HAVE := $(shell pkg-config --exists vulkan 2>/dev/null && command -v glslc >/dev/null 2>&1 && echo yes)
ifeq ($(VK_HAVE),yes)
VK_SHADERS := $(wildcard plugins/vulkan/shaders/*.comp)
VK_SPV := $(VK_SHADERS:plugins/vulkan/shaders/%.comp=$(B)/gen/vulkan/%.spv.h)
VK_SRCS := $(wildcard plugins/vulkan/*.c) $(COMMON_SRCS)
VK_OBJS := $(VK_SRCS:%.c=$(B)/obj/vulkan/%.o)
VK_HDRS := $(wildcard include/apr/*.h plugins/common/*.h plugins/vulkan/*.h)
VK_CFLAGS := $(shell pkg-config --cflags vulkan)

# a static pattern rule, so the headers are targets of their own and never removed as intermediates
$(VK_SPV): $(B)/gen/vulkan/%.spv.h: plugins/vulkan/shaders/%.comp $(wildcard plugins/vulkan/shaders/*.glsl)
	@mkdir -p $(dir $@)
	glslc --target-env=vulkan1.2 -O -Iplugins/vulkan/shaders -mfmt=c -o $@ $<

$(B)/obj/vulkan/%.o: %.c $(VK_HDRS) $(VK_SPV)
	@mkdir -p $(dir $@)
	$(CC) $(BASE_CFLAGS) $(ARCH_BASE) $(VK_CFLAGS) -I$(B)/gen/vulkan -fvisibility=hidden -c $< -o $@

$(PLUGDIR)/vulkan.so: $(VK_OBJS) plugins/plugin.map
	@mkdir -p $(dir $@)
	$(CC) -o $@ $(VK_OBJS) $(PLUGIN_LDFLAGS) -ldl -pthread

PLUGINS += $(PLUGDIR)/vulkan.so
endif
