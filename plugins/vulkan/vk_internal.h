/* vk_internal.h — what the vulkan plugin's files share: the process-wide instance, a backend
 * instance (one logical device), its buffers and its kernels. */
#ifndef APR_VK_INTERNAL_H
#define APR_VK_INTERNAL_H

#include <stdbool.h>
#include <stdint.h>

#include "apr/apr_abi.h"
#include "vk_api.h"

/* ---------------------------------------------------------------- devices (vk_device.c) */

#define VK_MAX_DEVICES 16

/* One physical device as probe sees it. usable false: reason says why (no compute queue, no
 * 16-bit storage, Vulkan < 1.2). */
typedef struct vk_device_info {
    VkPhysicalDevice phys;
    bool usable;
    int score;
    uint32_t queue_family;    /* a family with VK_QUEUE_COMPUTE_BIT */
    uint32_t subgroup_size;
    uint32_t max_storage_range;
    uint32_t vendor_id, device_id, driver_version;
    uint8_t cache_uuid[VK_UUID_SIZE]; /* pipelineCacheUUID */
    VkPhysicalDeviceType type;
    char name[VK_MAX_PHYSICAL_DEVICE_NAME_SIZE];
    char reason[256];
    char features[256];
} vk_device_info;

/* The loader, the instance and the devices, opened once per process on first use. NULL with why
 * set when Vulkan is not usable here. */
typedef struct vk_world {
    vk_api api;
    VkInstance instance;
    int n_devices;
    vk_device_info devices[VK_MAX_DEVICES];
} vk_world;
const vk_world *vkdevice_world(char *why, size_t why_size);

/* ---------------------------------------------------------------- buffers (vk_backend.c) */

/* apr_buffer.handle of every buffer this plugin hands out. map: the host address of memory that
 * is host visible (lavapipe, integrated GPUs, staging), else NULL. */
typedef struct vk_buf {
    VkBuffer buf;
    VkDeviceMemory mem;
    uint64_t size;
    void *map;
    bool coherent;
} vk_buf;

/* ---------------------------------------------------------------- kernels (vk_kernels.c) */

/* The param block a node hands its kernel (binding 6), PARAM_WORDS uint32 per node: for tensor k
 * (0 dst, 1..5 src0..src4) at VK_P_TENSOR + 9k: byte offset, ne[0..3], nb[0..3] (bytes); then
 * iparams, then fparams as float bits. shaders/common.glsl reads the same layout. */
#define VK_P_TENSOR 0
#define VK_P_TENSORS 6
#define VK_P_IPARAMS (VK_P_TENSOR + 9 * VK_P_TENSORS)
#define VK_P_FPARAMS (VK_P_IPARAMS + APR_MAX_PARAMS)
#define VK_P_MODE 70      /* the kernel's variant */
#define VK_P_DTYPE 71     /* tensor k's dtype code (vk_kernels.c) in bits 4k..4k+3 */
#define VK_P_COUNT 72     /* elements, rows or outputs the launch covers */
#define VK_P_IDS 73       /* ids_check: which tensor holds the ids */
#define VK_P_NODE 74      /* the node's index + 1, for the status buffer */
#define VK_PARAM_WORDS 80 /* then VK_P_EXTRA words of the kernel's own (rope's frequencies) */
#define VK_BINDINGS 8     /* dst, src0..src4, params, status */

typedef struct vk_kernel_info {
    const char *name;
    const uint32_t *spirv;
    size_t spirv_size; /* bytes */
} vk_kernel_info;

/* The kernels, by index; VK_KERNEL_COUNT of them. */
extern const vk_kernel_info vk_kernels[];
extern const int vk_kernel_count;

/* How a node runs: its kernel (-1 when not supported, with why), the mode and count of its param
 * block, its workgroups, whether ids_check runs first (on tensor ids_tensor), and the words the
 * kernel adds after the block. */
typedef struct vk_launch {
    int kernel;
    uint32_t mode, count, groups;
    bool check_ids;
    uint32_t ids_tensor;
    uint32_t n_extra;
} vk_launch;
vk_launch vkkernel_plan(const apr_node_desc *n, char *why, size_t why_size);
/* Fills the kernel's extra words (n_extra of them) for node n. */
void vkkernel_extra(const apr_node_desc *n, const vk_launch *l, uint32_t *extra);
/* The dtype code the shaders use (shaders/common.glsl), or -1 for a dtype they do not read. */
int vkkernel_dtype(uint32_t dtype);
extern const int vk_kernel_ids_check;

/* ---------------------------------------------------------------- the pipeline cache (vk_cache.c) */

/* The cache file of device d for this plugin build; false where there is none (setuid, no home). */
bool vkcache_path(const vk_device_info *d, char *out, size_t size);
/* Its contents (malloc'd, *size bytes), or NULL when it is absent or unreadable. */
void *vkcache_load(const char *path, size_t *size);
/* Writes it atomically (a temporary file renamed into place); failures are silent. */
void vkcache_save(const char *path, const void *data, size_t size);

/* ---------------------------------------------------------------- the backend instance */

typedef struct vk_backend {
    const vk_world *world;
    const vk_device_info *info;
    VkDevice dev;
    vk_device_api d;
    VkQueue queue;
    VkPhysicalDeviceMemoryProperties memprops;
    VkCommandPool cmd_pool;
    VkCommandBuffer cmd;
    VkFence fence;
    VkDescriptorSetLayout set_layout;
    VkPipelineLayout pipe_layout;
    VkDescriptorPool desc_pool;
    uint32_t desc_cap;        /* sets desc_pool holds */
    VkPipelineCache pipe_cache;
    int pipes_made;           /* pipelines created by this backend */
    size_t cache_read;        /* bytes of pipeline cache read from disk at create */
    VkPipeline *pipes;        /* [vk_kernel_count], made on first use */
    vk_buf params;            /* host-visible param blocks of the nodes of one compute */
    vk_buf status;            /* host-visible: the first node whose ids were out of range, + 1 */
    vk_buf staging;           /* host-visible bounce buffer for device-local memory */
    vk_buf dummy;             /* bound where a node has no tensor */
} vk_backend;

/* Buffers of the backend (vk_backend.c). host: host-visible memory (else device-local, which may
 * still be host visible, as on lavapipe). */
apr_status vkbuf_make(vk_backend *be, uint64_t size, bool host, vk_buf *out, char *err, size_t err_size);
void vkbuf_drop(vk_backend *be, vk_buf *b);
/* Ends the backend's command buffer (vkbackend_begin), submits it and waits for it. */
apr_status vkbackend_submit(vk_backend *be, char *err, size_t err_size);
/* Submits a recorded command buffer and waits for it. */
apr_status vkbackend_run(vk_backend *be, VkCommandBuffer cmd, char *err, size_t err_size);
apr_status vkbackend_begin(vk_backend *be, char *err, size_t err_size);

/* The plugin slots (vk_device.c, vk_backend.c, vk_compute.c). */
apr_status vkdevice_probe(const apr_host_info *host, apr_probe_result *out, char *err, size_t err_size);
apr_status vkdevice_probe_device(const apr_host_info *host, uint32_t device, apr_probe_result *out, char *err,
                                 size_t err_size);
apr_status vkbackend_create(const apr_backend_config *cfg, void **backend, char *err, size_t err_size);
void vkbackend_destroy(void *backend);
apr_status vkbackend_alloc(void *backend, uint64_t size, apr_buffer *out, char *err, size_t err_size);
void vkbackend_free(void *backend, apr_buffer *buf);
apr_status vkbackend_write(void *backend, apr_buffer *buf, uint64_t offset, const void *src, uint64_t size, char *err,
                           size_t err_size);
apr_status vkbackend_read(void *backend, const apr_buffer *buf, uint64_t offset, void *dst, uint64_t size, char *err,
                          size_t err_size);
apr_status vkcompute_supports(void *backend, const apr_node_desc *node, char *why, size_t why_size);
apr_status vkcompute_run(void *backend, const apr_subgraph *graph, char *err, size_t err_size);
apr_status vkcompute_plan_create(void *backend, const apr_subgraph *graph, void **plan, char *err, size_t err_size);
apr_status vkcompute_plan_compute(void *backend, void *plan, char *err, size_t err_size);
void vkcompute_plan_free(void *backend, void *plan);

#endif
