/* vk_backend.c — one backend instance: a logical device with one compute queue, its buffers, and
 * host <-> device copies (through a mapping where the memory allows, else a staging buffer). */
#include <stdlib.h>
#include <string.h>

#include "../common/msg.h"
#include "vk_internal.h"

#define VK_STAGING_BYTES (16u << 20)
#define VK_TIMEOUT_NS (30ull * 60 * 1000000000ull) /* a lost device must not hang the host for ever; a CPU driver may take minutes */

#define VK_TRY(be, call, what)                                                                      \
    do {                                                                                            \
        VkResult vk_try_r_ = (call);                                                                \
        if (vk_try_r_ != VK_SUCCESS)                                                                \
            return msg_set(err, err_size, vk_try_r_ == VK_ERROR_OUT_OF_DEVICE_MEMORY ||             \
                                                  vk_try_r_ == VK_ERROR_OUT_OF_HOST_MEMORY          \
                                              ? APR_ERR_NOMEM                                       \
                                              : APR_ERR_DEVICE,                                    \
                           "vulkan: %s failed: %s", what, vkapi_result_name(vk_try_r_));            \
    } while (0)

/* A memory type among bits with all of want, preferring one with all of nice and none of avoid;
 * -1 when none has want. */
static int vkbackend_memtype(const vk_backend *be, uint32_t bits, VkMemoryPropertyFlags want, VkMemoryPropertyFlags nice,
                             VkMemoryPropertyFlags avoid) {
    int best = -1, best_rank = -1;
    for (uint32_t i = 0; i < be->memprops.memoryTypeCount; i++) {
        VkMemoryPropertyFlags f = be->memprops.memoryTypes[i].propertyFlags;
        if (!(bits & (1u << i)) || (f & want) != want) continue;
        int rank = ((f & nice) == nice) * 2 + !(f & avoid);
        if (rank > best_rank) best = (int)i, best_rank = rank;
    }
    return best;
}

/* Whether device memory is host memory too (lavapipe, integrated GPUs): then the host reads and
 * writes it through a mapping; a discrete GPU's host-visible VRAM (BAR) stalls host reads, so
 * there every copy goes through the host-cached staging buffer. */
static bool vkbackend_unified(const vk_backend *be) {
    return be->info->type == VK_PHYSICAL_DEVICE_TYPE_CPU || be->info->type == VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU;
}

apr_status vkbuf_make(vk_backend *be, uint64_t size, bool host, vk_buf *out, char *err, size_t err_size) {
    memset(out, 0, sizeof *out);
    out->size = size;
    if (size == 0) size = 16;
    VkBufferCreateInfo bi = {.sType = VK_STRUCTURE_TYPE_BUFFER_CREATE_INFO, .size = size,
                             .usage = VK_BUFFER_USAGE_STORAGE_BUFFER_BIT | VK_BUFFER_USAGE_TRANSFER_SRC_BIT |
                                      VK_BUFFER_USAGE_TRANSFER_DST_BIT,
                             .sharingMode = VK_SHARING_MODE_EXCLUSIVE};
    VK_TRY(be, be->d.vkCreateBuffer(be->dev, &bi, NULL, &out->buf), "vkCreateBuffer");
    VkMemoryRequirements req;
    be->d.vkGetBufferMemoryRequirements(be->dev, out->buf, &req);
    const bool unified = vkbackend_unified(be);
    int type = host ? vkbackend_memtype(be, req.memoryTypeBits, VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT,
                                        VK_MEMORY_PROPERTY_HOST_COHERENT_BIT | VK_MEMORY_PROPERTY_HOST_CACHED_BIT, 0)
                    : vkbackend_memtype(be, req.memoryTypeBits, VK_MEMORY_PROPERTY_DEVICE_LOCAL_BIT, 0,
                                        unified ? 0 : VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT);
    if (type < 0) type = vkbackend_memtype(be, req.memoryTypeBits, 0, 0, 0);
    if (type < 0) {
        vkbuf_drop(be, out);
        return msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: no memory type for a buffer of %llu bytes",
                       (unsigned long long)size);
    }
    VkMemoryAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_MEMORY_ALLOCATE_INFO, .allocationSize = req.size,
                               .memoryTypeIndex = (uint32_t)type};
    VkResult r = be->d.vkAllocateMemory(be->dev, &ai, NULL, &out->mem);
    if (r == VK_SUCCESS) r = be->d.vkBindBufferMemory(be->dev, out->buf, out->mem, 0);
    VkMemoryPropertyFlags f = be->memprops.memoryTypes[type].propertyFlags;
    if (r == VK_SUCCESS && (f & VK_MEMORY_PROPERTY_HOST_VISIBLE_BIT) && (host || unified)) {
        r = be->d.vkMapMemory(be->dev, out->mem, 0, VK_WHOLE_SIZE, 0, &out->map);
        out->coherent = (f & VK_MEMORY_PROPERTY_HOST_COHERENT_BIT) != 0;
    }
    if (r != VK_SUCCESS) {
        vkbuf_drop(be, out);
        return msg_set(err, err_size, r == VK_ERROR_OUT_OF_DEVICE_MEMORY || r == VK_ERROR_OUT_OF_HOST_MEMORY ? APR_ERR_NOMEM
                                                                                                          : APR_ERR_DEVICE,
                       "vulkan: cannot allocate %llu bytes: %s", (unsigned long long)size, vkapi_result_name(r));
    }
    return APR_OK;
}

void vkbuf_drop(vk_backend *be, vk_buf *b) {
    if (b->map) be->d.vkUnmapMemory(be->dev, b->mem);
    if (b->buf) be->d.vkDestroyBuffer(be->dev, b->buf, NULL);
    if (b->mem) be->d.vkFreeMemory(be->dev, b->mem, NULL);
    memset(b, 0, sizeof *b);
}

apr_status vkbackend_begin(vk_backend *be, char *err, size_t err_size) {
    VK_TRY(be, be->d.vkResetCommandBuffer(be->cmd, 0), "vkResetCommandBuffer");
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT};
    VK_TRY(be, be->d.vkBeginCommandBuffer(be->cmd, &bi), "vkBeginCommandBuffer");
    return APR_OK;
}

apr_status vkbackend_run(vk_backend *be, VkCommandBuffer cmd, char *err, size_t err_size) {
    VK_TRY(be, be->d.vkResetFences(be->dev, 1, &be->fence), "vkResetFences");
    VkSubmitInfo si = {.sType = VK_STRUCTURE_TYPE_SUBMIT_INFO, .commandBufferCount = 1, .pCommandBuffers = &cmd};
    VK_TRY(be, be->d.vkQueueSubmit(be->queue, 1, &si, be->fence), "vkQueueSubmit");
    VK_TRY(be, be->d.vkWaitForFences(be->dev, 1, &be->fence, VK_TRUE, VK_TIMEOUT_NS), "waiting for the queue");
    return APR_OK;
}

apr_status vkbackend_submit(vk_backend *be, char *err, size_t err_size) {
    VK_TRY(be, be->d.vkEndCommandBuffer(be->cmd), "vkEndCommandBuffer");
    return vkbackend_run(be, be->cmd, err, err_size);
}

/* Copies size bytes between a staging buffer and b (to_device: staging -> b). */
static apr_status vkbackend_stage(vk_backend *be, const vk_buf *b, uint64_t offset, uint64_t size, bool to_device, char *err,
                                  size_t err_size) {
    apr_status st = vkbackend_begin(be, err, err_size);
    if (st != APR_OK) return st;
    VkBufferCopy c = {.srcOffset = to_device ? 0 : offset, .dstOffset = to_device ? offset : 0, .size = size};
    be->d.vkCmdCopyBuffer(be->cmd, to_device ? be->staging.buf : b->buf, to_device ? b->buf : be->staging.buf, 1, &c);
    return vkbackend_submit(be, err, err_size);
}

static apr_status vkbackend_check_range(const apr_buffer *buf, uint64_t offset, uint64_t size, const char *what, char *err,
                                        size_t err_size) {
    if (!buf || !buf->handle) return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: %s of a buffer that is not ours", what);
    const vk_buf *b = buf->handle;
    if (offset > b->size || size > b->size - offset)
        return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: %s of [%llu, +%llu) outside a %llu-byte buffer", what,
                       (unsigned long long)offset, (unsigned long long)size, (unsigned long long)b->size);
    return APR_OK;
}

apr_status vkbackend_write(void *backend, apr_buffer *buf, uint64_t offset, const void *src, uint64_t size, char *err,
                           size_t err_size) {
    vk_backend *be = backend;
    apr_status st = vkbackend_check_range(buf, offset, size, "write", err, err_size);
    if (st != APR_OK || size == 0) return st;
    vk_buf *b = buf->handle;
    if (b->map) {
        memcpy((char *)b->map + offset, src, size);
        if (!b->coherent) {
            VkMappedMemoryRange r = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, .memory = b->mem, .size = VK_WHOLE_SIZE};
            VK_TRY(be, be->d.vkFlushMappedMemoryRanges(be->dev, 1, &r), "vkFlushMappedMemoryRanges");
        }
        return APR_OK;
    }
    for (uint64_t done = 0; done < size && st == APR_OK; done += VK_STAGING_BYTES) {
        uint64_t n = size - done < VK_STAGING_BYTES ? size - done : VK_STAGING_BYTES;
        memcpy(be->staging.map, (const char *)src + done, n);
        st = vkbackend_stage(be, b, offset + done, n, true, err, err_size);
    }
    return st;
}

apr_status vkbackend_read(void *backend, const apr_buffer *buf, uint64_t offset, void *dst, uint64_t size, char *err,
                          size_t err_size) {
    vk_backend *be = backend;
    apr_status st = vkbackend_check_range(buf, offset, size, "read", err, err_size);
    if (st != APR_OK || size == 0) return st;
    const vk_buf *b = buf->handle;
    if (b->map) {
        if (!b->coherent) {
            VkMappedMemoryRange r = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, .memory = b->mem, .size = VK_WHOLE_SIZE};
            VK_TRY(be, be->d.vkInvalidateMappedMemoryRanges(be->dev, 1, &r), "vkInvalidateMappedMemoryRanges");
        }
        memcpy(dst, (const char *)b->map + offset, size);
        return APR_OK;
    }
    for (uint64_t done = 0; done < size && st == APR_OK; done += VK_STAGING_BYTES) {
        uint64_t n = size - done < VK_STAGING_BYTES ? size - done : VK_STAGING_BYTES;
        st = vkbackend_stage(be, b, offset + done, n, false, err, err_size);
        if (st == APR_OK) memcpy((char *)dst + done, be->staging.map, n);
    }
    return st;
}

apr_status vkbackend_alloc(void *backend, uint64_t size, apr_buffer *out, char *err, size_t err_size) {
    vk_backend *be = backend;
    if (!be || !out) return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: buffer_alloc without a backend or output");
    vk_buf *b = calloc(1, sizeof *b);
    if (!b) return msg_set(err, err_size, APR_ERR_NOMEM, "vulkan: out of memory");
    apr_status st = vkbuf_make(be, size, false, b, err, err_size);
    if (st == APR_OK && b->map) memset(b->map, 0, size);
    if (st == APR_OK && !b->map && size) { /* new memory is zero */
        st = vkbackend_begin(be, err, err_size);
        if (st == APR_OK) {
            be->d.vkCmdFillBuffer(be->cmd, b->buf, 0, VK_WHOLE_SIZE, 0);
            st = vkbackend_submit(be, err, err_size);
        }
    }
    if (st != APR_OK) {
        vkbuf_drop(be, b);
        free(b);
        return st;
    }
    out->flags = 0; /* the host reaches it only through buffer_write / buffer_read */
    out->size = size;
    out->host_ptr = NULL;
    out->handle = b;
    return APR_OK;
}

void vkbackend_free(void *backend, apr_buffer *buf) {
    vk_backend *be = backend;
    if (!be || !buf || !buf->handle) return;
    vkbuf_drop(be, buf->handle);
    free(buf->handle);
    buf->handle = NULL;
}

static apr_status vkbackend_setup(vk_backend *be, int device, char *err, size_t err_size) {
    const vk_device_info *d = be->info;
    const vk_api *a = &be->world->api;
    float prio = 1.0f;
    VkDeviceQueueCreateInfo qi = {.sType = VK_STRUCTURE_TYPE_DEVICE_QUEUE_CREATE_INFO, .queueFamilyIndex = d->queue_family,
                                  .queueCount = 1, .pQueuePriorities = &prio};
    VkPhysicalDevice16BitStorageFeatures s16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES,
                                                .storageBuffer16BitAccess = VK_TRUE};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s16};
    VkDeviceCreateInfo di = {.sType = VK_STRUCTURE_TYPE_DEVICE_CREATE_INFO, .pNext = &f, .queueCreateInfoCount = 1,
                             .pQueueCreateInfos = &qi};
    VkResult r = a->vkCreateDevice(d->phys, &di, NULL, &be->dev);
    if (r != VK_SUCCESS)
        return msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: vkCreateDevice on device %d (%s) failed: %s", device, d->name,
                       vkapi_result_name(r));
    char why[160];
    if (!vkapi_device(a, be->dev, &be->d, why, sizeof why)) return msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: %s", why);
    be->d.vkGetDeviceQueue(be->dev, d->queue_family, 0, &be->queue);
    a->vkGetPhysicalDeviceMemoryProperties(d->phys, &be->memprops);

    VkCommandPoolCreateInfo pi = {.sType = VK_STRUCTURE_TYPE_COMMAND_POOL_CREATE_INFO,
                                  .flags = VK_COMMAND_POOL_CREATE_RESET_COMMAND_BUFFER_BIT, .queueFamilyIndex = d->queue_family};
    VK_TRY(be, be->d.vkCreateCommandPool(be->dev, &pi, NULL, &be->cmd_pool), "vkCreateCommandPool");
    VkCommandBufferAllocateInfo ci = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = be->cmd_pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VK_TRY(be, be->d.vkAllocateCommandBuffers(be->dev, &ci, &be->cmd), "vkAllocateCommandBuffers");
    VkFenceCreateInfo fi = {.sType = VK_STRUCTURE_TYPE_FENCE_CREATE_INFO};
    VK_TRY(be, be->d.vkCreateFence(be->dev, &fi, NULL, &be->fence), "vkCreateFence");

    VkDescriptorSetLayoutBinding b[VK_BINDINGS];
    for (uint32_t i = 0; i < VK_BINDINGS; i++)
        b[i] = (VkDescriptorSetLayoutBinding){.binding = i, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                              .descriptorCount = 1, .stageFlags = VK_SHADER_STAGE_COMPUTE_BIT};
    VkDescriptorSetLayoutCreateInfo li = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_LAYOUT_CREATE_INFO,
                                          .bindingCount = VK_BINDINGS, .pBindings = b};
    VK_TRY(be, be->d.vkCreateDescriptorSetLayout(be->dev, &li, NULL, &be->set_layout), "vkCreateDescriptorSetLayout");
    VkPushConstantRange pc = {.stageFlags = VK_SHADER_STAGE_COMPUTE_BIT, .offset = 0, .size = 4};
    VkPipelineLayoutCreateInfo pli = {.sType = VK_STRUCTURE_TYPE_PIPELINE_LAYOUT_CREATE_INFO, .setLayoutCount = 1,
                                      .pSetLayouts = &be->set_layout, .pushConstantRangeCount = 1, .pPushConstantRanges = &pc};
    VK_TRY(be, be->d.vkCreatePipelineLayout(be->dev, &pli, NULL, &be->pipe_layout), "vkCreatePipelineLayout");
    /* the driver checks the data's own header (vendor, device, pipelineCacheUUID) and starts empty
     * on a mismatch; a file it refuses outright is ignored too */
    char path[4300];
    size_t cached = 0;
    void *data = vkcache_path(d, path, sizeof path) ? vkcache_load(path, &cached) : NULL;
    VkPipelineCacheCreateInfo pci = {.sType = VK_STRUCTURE_TYPE_PIPELINE_CACHE_CREATE_INFO, .initialDataSize = cached,
                                     .pInitialData = data};
    r = be->d.vkCreatePipelineCache(be->dev, &pci, NULL, &be->pipe_cache);
    if (r != VK_SUCCESS && data) {
        pci.initialDataSize = 0;
        pci.pInitialData = NULL;
        r = be->d.vkCreatePipelineCache(be->dev, &pci, NULL, &be->pipe_cache);
    }
    free(data);
    VK_TRY(be, r, "vkCreatePipelineCache");
    be->cache_read = pci.initialDataSize;
    be->pipes = calloc((size_t)vk_kernel_count, sizeof *be->pipes);
    if (!be->pipes) return msg_set(err, err_size, APR_ERR_NOMEM, "vulkan: out of memory");
    apr_status st = vkbuf_make(be, VK_STAGING_BYTES, true, &be->staging, err, err_size);
    if (st == APR_OK) st = vkbuf_make(be, 256, false, &be->dummy, err, err_size);
    if (st == APR_OK && !be->staging.map) st = msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: staging memory is not mappable");
    return st;
}

apr_status vkbackend_create(const apr_backend_config *cfg, void **backend, char *err, size_t err_size) {
    if (!backend) return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: create without an output pointer");
    *backend = NULL;
    char why[256] = "";
    const vk_world *w = vkdevice_world(why, sizeof why);
    if (!w) return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "vulkan: %s", why);
    int device = cfg && cfg->struct_size >= offsetof(apr_backend_config, device) + sizeof cfg->device ? cfg->device : 0;
    if (device < 0 || device >= w->n_devices)
        return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: device %d, but %d found", device, w->n_devices);
    if (!w->devices[device].usable)
        return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "vulkan: device %d is not usable: %s", device, w->devices[device].reason);
    vk_backend *be = calloc(1, sizeof *be);
    if (!be) return msg_set(err, err_size, APR_ERR_NOMEM, "vulkan: out of memory");
    be->world = w;
    be->info = &w->devices[device];
    apr_status st = vkbackend_setup(be, device, err, err_size);
    if (st != APR_OK) {
        vkbackend_destroy(be);
        return st;
    }
    *backend = be;
    return APR_OK;
}

void vkbackend_destroy(void *backend) {
    vk_backend *be = backend;
    if (!be) return;
    if (be->dev) {
        /* every submit was waited for: nothing is in flight */
        vkbuf_drop(be, &be->staging);
        vkbuf_drop(be, &be->dummy);
        vkbuf_drop(be, &be->params);
        vkbuf_drop(be, &be->status);
        /* the cache grew: pipelines were compiled that the file did not hold */
        char path[4300];
        size_t size = 0;
        if (be->pipes_made && be->pipe_cache && vkcache_path(be->info, path, sizeof path) &&
            be->d.vkGetPipelineCacheData(be->dev, be->pipe_cache, &size, NULL) == VK_SUCCESS && size && size != be->cache_read) {
            void *data = malloc(size);
            if (data && be->d.vkGetPipelineCacheData(be->dev, be->pipe_cache, &size, data) == VK_SUCCESS)
                vkcache_save(path, data, size);
            free(data);
        }
        for (int i = 0; be->pipes && i < vk_kernel_count; i++)
            if (be->pipes[i]) be->d.vkDestroyPipeline(be->dev, be->pipes[i], NULL);
        if (be->pipe_cache) be->d.vkDestroyPipelineCache(be->dev, be->pipe_cache, NULL);
        if (be->desc_pool) be->d.vkDestroyDescriptorPool(be->dev, be->desc_pool, NULL);
        if (be->pipe_layout) be->d.vkDestroyPipelineLayout(be->dev, be->pipe_layout, NULL);
        if (be->set_layout) be->d.vkDestroyDescriptorSetLayout(be->dev, be->set_layout, NULL);
        if (be->fence) be->d.vkDestroyFence(be->dev, be->fence, NULL);
        if (be->cmd_pool) be->d.vkDestroyCommandPool(be->dev, be->cmd_pool, NULL);
        if (be->d.vkDestroyDevice) be->d.vkDestroyDevice(be->dev, NULL);
    }
    free(be->pipes);
    free(be);
}
