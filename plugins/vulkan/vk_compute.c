/* vk_compute.c — supports() and compute(): a subgraph is recorded into one command buffer (each
 * node a dispatch, a barrier after it), submitted once and waited for. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../common/msg.h"
#include "../common/opcheck.h"
#include "vk_internal.h"

apr_status vkcompute_supports(void *backend, const apr_node_desc *node, char *why, size_t why_size) {
    (void)backend;
    if (opcheck_node(node, why, why_size) != APR_OK) return APR_ERR_UNSUPPORTED;
    return vkkernel_plan(node, why, why_size).kernel >= 0 ? APR_OK : APR_ERR_UNSUPPORTED;
}

static apr_status vkcompute_pipeline(vk_backend *be, int k, char *err, size_t err_size) {
    if (be->pipes[k]) return APR_OK;
    VkShaderModuleCreateInfo mi = {.sType = VK_STRUCTURE_TYPE_SHADER_MODULE_CREATE_INFO, .codeSize = vk_kernels[k].spirv_size,
                                   .pCode = vk_kernels[k].spirv};
    VkShaderModule mod;
    VkResult r = be->d.vkCreateShaderModule(be->dev, &mi, NULL, &mod);
    if (r != VK_SUCCESS)
        return msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: shader %s: vkCreateShaderModule failed: %s", vk_kernels[k].name,
                       vkapi_result_name(r));
    VkComputePipelineCreateInfo pi = {
        .sType = VK_STRUCTURE_TYPE_COMPUTE_PIPELINE_CREATE_INFO,
        .stage = {.sType = VK_STRUCTURE_TYPE_PIPELINE_SHADER_STAGE_CREATE_INFO, .stage = VK_SHADER_STAGE_COMPUTE_BIT,
                  .module = mod, .pName = "main"},
        .layout = be->pipe_layout};
    r = be->d.vkCreateComputePipelines(be->dev, be->pipe_cache, 1, &pi, NULL, &be->pipes[k]);
    be->d.vkDestroyShaderModule(be->dev, mod, NULL);
    be->pipes_made++;
    if (r != VK_SUCCESS)
        return msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: shader %s: vkCreateComputePipelines failed: %s",
                       vk_kernels[k].name, vkapi_result_name(r));
    return APR_OK;
}

/* A host-visible buffer of at least size bytes in *b (grown, contents dropped). */
static apr_status vkcompute_host_buffer(vk_backend *be, vk_buf *b, uint64_t size, char *err, size_t err_size) {
    if (b->buf && b->size >= size) return APR_OK;
    vkbuf_drop(be, b);
    apr_status st = vkbuf_make(be, size < 4096 ? 4096 : size * 2, true, b, err, err_size);
    if (st == APR_OK && !b->map) st = msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: no host-visible memory for parameters");
    return st;
}

static apr_status vkcompute_desc_pool(vk_backend *be, VkDescriptorPool *pool, uint32_t *have, uint32_t sets, char *err,
                                      size_t err_size) {
    if (*pool && *have >= sets) {
        be->d.vkResetDescriptorPool(be->dev, *pool, 0);
        return APR_OK;
    }
    if (*pool) be->d.vkDestroyDescriptorPool(be->dev, *pool, NULL);
    *pool = VK_NULL_HANDLE;
    uint32_t cap = sets < 64 ? 64 : sets * 2;
    VkDescriptorPoolSize ps = {.type = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER, .descriptorCount = cap * VK_BINDINGS};
    VkDescriptorPoolCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_POOL_CREATE_INFO, .maxSets = cap, .poolSizeCount = 1,
                                     .pPoolSizes = &ps};
    VkResult r = be->d.vkCreateDescriptorPool(be->dev, &ci, NULL, pool);
    if (r != VK_SUCCESS)
        return msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: vkCreateDescriptorPool failed: %s", vkapi_result_name(r));
    *have = cap;
    return APR_OK;
}

/* Tensor t of a node as its kernel addresses it: whole elements at byte offsets below 2^32 that lie
 * in the part of the buffer one binding covers. */
static apr_status vkcompute_tensor(const vk_backend *be, const apr_tensor_desc *t, const char *what, char *err, size_t err_size) {
    if (!t->buffer || !t->buffer->handle)
        return msg_set(err, err_size, APR_ERR_INVALID, "%s is not in a buffer of this backend", what);
    int64_t span = (int64_t)opcheck_dtype_size(t->dtype);
    for (int d = 0; d < APR_MAX_DIMS; d++) span += (t->ne[d] - 1) * t->nb[d];
    size_t es = opcheck_dtype_size(t->dtype), align = opcheck_dtype_block(t->dtype) > 1 ? 2 : es; /* blocks: read as 16-bit words */
    if (align > 1 && t->offset % align)
        return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "%s at byte offset %llu is not aligned to its elements", what,
                       (unsigned long long)t->offset);
    uint64_t end = t->offset + (uint64_t)span, limit = be->info->max_storage_range;
    if (end > limit || end > UINT32_MAX)
        return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "%s ends at byte %llu, past what one binding covers (%llu)", what,
                       (unsigned long long)end, (unsigned long long)limit);
    return APR_OK;
}

static void vkcompute_words(uint32_t *w, const apr_node_desc *n, const vk_launch *l, uint32_t index) {
    memset(w, 0, VK_PARAM_WORDS * sizeof *w);
    uint32_t dtypes = 0;
    for (uint32_t k = 0; k < VK_P_TENSORS; k++) {
        const apr_tensor_desc *t = k == 0 ? &n->dst : opcheck_src_present(n, k - 1) ? opcheck_src(n, k - 1) : NULL;
        if (!t) continue;
        uint32_t *p = &w[VK_P_TENSOR + 9 * k];
        p[0] = (uint32_t)t->offset;
        for (int d = 0; d < APR_MAX_DIMS; d++) {
            p[1 + d] = (uint32_t)t->ne[d];
            p[5 + d] = (uint32_t)t->nb[d];
        }
        int code = vkkernel_dtype(t->dtype);
        dtypes |= (uint32_t)(code < 0 ? 0 : code) << (4 * k);
    }
    memcpy(&w[VK_P_IPARAMS], n->iparams, sizeof n->iparams);
    memcpy(&w[VK_P_FPARAMS], n->fparams, sizeof n->fparams);
    w[VK_P_MODE] = l->mode;
    w[VK_P_DTYPE] = dtypes;
    w[VK_P_COUNT] = l->count;
    w[VK_P_IDS] = l->ids_tensor;
    w[VK_P_NODE] = index + 1;
}

static void vkcompute_barrier(vk_backend *be, VkCommandBuffer cmd) {
    VkMemoryBarrier mb = {.sType = VK_STRUCTURE_TYPE_MEMORY_BARRIER, .srcAccessMask = VK_ACCESS_SHADER_WRITE_BIT,
                          .dstAccessMask = VK_ACCESS_SHADER_READ_BIT | VK_ACCESS_SHADER_WRITE_BIT};
    be->d.vkCmdPipelineBarrier(cmd, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, VK_PIPELINE_STAGE_COMPUTE_SHADER_BIT, 0, 1, &mb,
                               0, NULL, 0, NULL);
}

static void vkcompute_dispatch(vk_backend *be, VkCommandBuffer cmd, int kernel, VkDescriptorSet set, uint32_t base,
                               uint32_t groups) {
    be->d.vkCmdBindPipeline(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, be->pipes[kernel]);
    be->d.vkCmdBindDescriptorSets(cmd, VK_PIPELINE_BIND_POINT_COMPUTE, be->pipe_layout, 0, 1, &set, 0, NULL);
    be->d.vkCmdPushConstants(cmd, be->pipe_layout, VK_SHADER_STAGE_COMPUTE_BIT, 0, 4, &base);
    uint32_t gx = groups < 65535 ? groups : 65535, gy = (groups + 65534) / 65535;
    be->d.vkCmdDispatch(cmd, gx ? gx : 1, gy ? gy : 1, 1);
}

static const apr_node_desc *vkcompute_node(const apr_subgraph *g, uint32_t i) {
    return (const apr_node_desc *)((const char *)g->nodes + (size_t)i * g->node_stride);
}

/* What one recording of a subgraph owns: its command buffer, the nodes' param blocks, the status
 * word its id checks write, and the descriptor sets. compute() uses the backend's (recorded anew
 * each call); a plan has its own, recorded once and submitted per run. */
typedef struct vk_rec {
    const apr_subgraph *graph;
    VkCommandBuffer cmd;
    vk_buf params, status;
    VkDescriptorPool pool;
    uint32_t pool_cap;
} vk_rec;

/* Checks every node and picks its kernel (pipelines made as needed); base[i] is node i's param
 * block in words, *words their total. */
static apr_status vkcompute_prepare(vk_backend *be, const apr_subgraph *graph, vk_launch *launch, uint32_t *base,
                                    uint64_t *words, char *err, size_t err_size) {
    apr_status st = APR_OK;
    char why[384] = "";
    *words = 0;
    for (uint32_t i = 0; i < graph->n_nodes && st == APR_OK; i++) {
        const apr_node_desc *n = vkcompute_node(graph, i);
        st = opcheck_node(n, why, sizeof why);
        if (st == APR_OK) st = opcheck_bounds(n, why, sizeof why);
        if (st == APR_OK) {
            launch[i] = vkkernel_plan(n, why, sizeof why);
            if (launch[i].kernel < 0) st = APR_ERR_UNSUPPORTED;
        }
        if (st == APR_OK) st = vkcompute_tensor(be, &n->dst, "dst", why, sizeof why);
        for (uint32_t k = 0; k < n->n_src && st == APR_OK; k++) {
            char what[16];
            snprintf(what, sizeof what, "src%u", (unsigned)k);
            if (opcheck_src_present(n, k)) st = vkcompute_tensor(be, opcheck_src(n, k), what, why, sizeof why);
        }
        if (st == APR_OK) st = vkcompute_pipeline(be, launch[i].kernel, why, sizeof why);
        if (st == APR_OK && launch[i].check_ids) st = vkcompute_pipeline(be, vk_kernel_ids_check, why, sizeof why);
        if (st != APR_OK) {
            const char *name = n->struct_size >= APR_NODE_DESC_SIZE_V3 && n->name ? n->name : "unnamed";
            return msg_set(err, err_size, st, "node %u (%s): %s", (unsigned)i, name, why);
        }
        base[i] = (uint32_t)*words;
        *words += VK_PARAM_WORDS + (launch[i].n_extra + 15) / 16 * 16;
    }
    return APR_OK;
}

/* Records the subgraph into r->cmd (begun and ended here) with its param blocks written. */
static apr_status vkcompute_record(vk_backend *be, vk_rec *r, const vk_launch *launch, const uint32_t *base, uint64_t words,
                                   bool one_time, char *err, size_t err_size) {
    const apr_subgraph *graph = r->graph;
    apr_status st = vkcompute_host_buffer(be, &r->params, words * 4, err, err_size);
    if (st == APR_OK) st = vkcompute_host_buffer(be, &r->status, 16, err, err_size);
    if (st == APR_OK) st = vkcompute_desc_pool(be, &r->pool, &r->pool_cap, graph->n_nodes, err, err_size);
    if (st != APR_OK) return st;
    VkResult res = be->d.vkResetCommandBuffer(r->cmd, 0);
    VkCommandBufferBeginInfo bi = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_BEGIN_INFO,
                                   .flags = one_time ? VK_COMMAND_BUFFER_USAGE_ONE_TIME_SUBMIT_BIT : 0};
    if (res == VK_SUCCESS) res = be->d.vkBeginCommandBuffer(r->cmd, &bi);
    if (res != VK_SUCCESS)
        return msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: cannot begin a command buffer: %s", vkapi_result_name(res));
    for (uint32_t i = 0; i < graph->n_nodes; i++) {
        const apr_node_desc *n = vkcompute_node(graph, i);
        uint32_t *w = (uint32_t *)r->params.map + base[i];
        vkcompute_words(w, n, &launch[i], i);
        vkkernel_extra(n, &launch[i], w + VK_PARAM_WORDS);
        VkDescriptorSetAllocateInfo ai = {.sType = VK_STRUCTURE_TYPE_DESCRIPTOR_SET_ALLOCATE_INFO, .descriptorPool = r->pool,
                                          .descriptorSetCount = 1, .pSetLayouts = &be->set_layout};
        VkDescriptorSet set;
        res = be->d.vkAllocateDescriptorSets(be->dev, &ai, &set);
        if (res != VK_SUCCESS) {
            be->d.vkEndCommandBuffer(r->cmd);
            return msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: vkAllocateDescriptorSets failed: %s", vkapi_result_name(res));
        }
        VkDescriptorBufferInfo bi_[VK_BINDINGS];
        for (uint32_t k = 0; k < VK_P_TENSORS; k++) {
            const apr_tensor_desc *t = k == 0 ? &n->dst : opcheck_src_present(n, k - 1) ? opcheck_src(n, k - 1) : NULL;
            const vk_buf *b = t ? t->buffer->handle : &be->dummy;
            VkDeviceSize range = b->size ? b->size : 16;
            if (range > be->info->max_storage_range) range = be->info->max_storage_range;
            bi_[k] = (VkDescriptorBufferInfo){.buffer = b->buf, .offset = 0, .range = range};
        }
        bi_[6] = (VkDescriptorBufferInfo){.buffer = r->params.buf, .offset = 0, .range = VK_WHOLE_SIZE};
        bi_[7] = (VkDescriptorBufferInfo){.buffer = r->status.buf, .offset = 0, .range = VK_WHOLE_SIZE};
        VkWriteDescriptorSet wr[VK_BINDINGS];
        for (uint32_t k = 0; k < VK_BINDINGS; k++)
            wr[k] = (VkWriteDescriptorSet){.sType = VK_STRUCTURE_TYPE_WRITE_DESCRIPTOR_SET, .dstSet = set, .dstBinding = k,
                                           .descriptorCount = 1, .descriptorType = VK_DESCRIPTOR_TYPE_STORAGE_BUFFER,
                                           .pBufferInfo = &bi_[k]};
        be->d.vkUpdateDescriptorSets(be->dev, VK_BINDINGS, wr, 0, NULL);
        if (launch[i].check_ids) {
            vkcompute_dispatch(be, r->cmd, vk_kernel_ids_check, set, base[i], 1);
            vkcompute_barrier(be, r->cmd);
        }
        vkcompute_dispatch(be, r->cmd, launch[i].kernel, set, base[i], launch[i].groups);
        vkcompute_barrier(be, r->cmd);
    }
    res = be->d.vkEndCommandBuffer(r->cmd);
    if (res != VK_SUCCESS)
        return msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: vkEndCommandBuffer failed: %s", vkapi_result_name(res));
    if (!r->params.coherent) {
        VkMappedMemoryRange mr = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, .memory = r->params.mem, .size = VK_WHOLE_SIZE};
        be->d.vkFlushMappedMemoryRanges(be->dev, 1, &mr);
    }
    return APR_OK;
}

/* Runs a recorded subgraph and waits for it; an id check that failed is APR_ERR_INVALID naming its node. */
static apr_status vkcompute_submit(vk_backend *be, vk_rec *r, char *err, size_t err_size) {
    memset(r->status.map, 0, 16);
    VkMappedMemoryRange mr = {.sType = VK_STRUCTURE_TYPE_MAPPED_MEMORY_RANGE, .memory = r->status.mem, .size = VK_WHOLE_SIZE};
    if (!r->status.coherent) be->d.vkFlushMappedMemoryRanges(be->dev, 1, &mr);
    apr_status st = vkbackend_run(be, r->cmd, err, err_size);
    if (st != APR_OK) return st;
    if (!r->status.coherent) be->d.vkInvalidateMappedMemoryRanges(be->dev, 1, &mr);
    uint32_t bad = ((volatile uint32_t *)r->status.map)[0];
    if (!bad || bad > r->graph->n_nodes) return APR_OK;
    const apr_node_desc *n = vkcompute_node(r->graph, bad - 1);
    return msg_set(err, err_size, APR_ERR_INVALID, "node %u (%s): %s: an id is outside [0, %lld)", bad - 1,
                   n->name ? n->name : "unnamed", opcheck_op_name(n->op), (long long)n->src[0].ne[1]);
}

static apr_status vkcompute_check_graph(const vk_backend *be, const apr_subgraph *graph, char *err, size_t err_size) {
    if (!be || !graph || graph->struct_size < sizeof(apr_subgraph))
        return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: subgraph is NULL or its struct_size is too small");
    if (graph->n_nodes && (!graph->nodes || graph->node_stride < APR_NODE_DESC_SIZE_V3 ||
                           graph->node_stride % _Alignof(apr_node_desc) != 0))
        return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: a subgraph of %u nodes without a usable node array",
                       (unsigned)graph->n_nodes);
    return APR_OK;
}

/* Prepares and records graph into r. */
static apr_status vkcompute_build(vk_backend *be, vk_rec *r, bool one_time, char *err, size_t err_size) {
    const apr_subgraph *graph = r->graph;
    vk_launch *launch = malloc(graph->n_nodes * sizeof *launch);
    uint32_t *base = malloc(graph->n_nodes * sizeof *base);
    uint64_t words = 0;
    apr_status st = launch && base ? APR_OK : msg_set(err, err_size, APR_ERR_NOMEM, "vulkan: out of memory");
    if (st == APR_OK) st = vkcompute_prepare(be, graph, launch, base, &words, err, err_size);
    if (st == APR_OK) st = vkcompute_record(be, r, launch, base, words, one_time, err, err_size);
    free(launch);
    free(base);
    return st;
}

apr_status vkcompute_run(void *backend, const apr_subgraph *graph, char *err, size_t err_size) {
    vk_backend *be = backend;
    apr_status st = vkcompute_check_graph(be, graph, err, err_size);
    if (st != APR_OK || !graph->n_nodes) return st;
    vk_rec r = {.graph = graph, .cmd = be->cmd, .params = be->params, .status = be->status, .pool = be->desc_pool,
                .pool_cap = be->desc_cap};
    st = vkcompute_build(be, &r, true, err, err_size);
    if (st == APR_OK) st = vkcompute_submit(be, &r, err, err_size);
    /* the backend keeps what the recording grew */
    be->params = r.params;
    be->status = r.status;
    be->desc_pool = r.pool;
    be->desc_cap = r.pool_cap;
    return st;
}

/* ---------------------------------------------------------------- plans: recorded once, submitted per run */

static void vkcompute_rec_free(vk_backend *be, vk_rec *r) {
    if (r->cmd) be->d.vkFreeCommandBuffers(be->dev, be->cmd_pool, 1, &r->cmd);
    if (r->pool) be->d.vkDestroyDescriptorPool(be->dev, r->pool, NULL);
    vkbuf_drop(be, &r->params);
    vkbuf_drop(be, &r->status);
    free(r);
}

apr_status vkcompute_plan_create(void *backend, const apr_subgraph *graph, void **plan, char *err, size_t err_size) {
    vk_backend *be = backend;
    if (!plan) return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: plan_create without an output pointer");
    *plan = NULL;
    apr_status st = vkcompute_check_graph(be, graph, err, err_size);
    if (st != APR_OK) return st;
    vk_rec *r = calloc(1, sizeof *r);
    if (!r) return msg_set(err, err_size, APR_ERR_NOMEM, "vulkan: out of memory");
    r->graph = graph;
    VkCommandBufferAllocateInfo ci = {.sType = VK_STRUCTURE_TYPE_COMMAND_BUFFER_ALLOCATE_INFO, .commandPool = be->cmd_pool,
                                      .level = VK_COMMAND_BUFFER_LEVEL_PRIMARY, .commandBufferCount = 1};
    VkResult res = be->d.vkAllocateCommandBuffers(be->dev, &ci, &r->cmd);
    if (res != VK_SUCCESS) {
        r->cmd = VK_NULL_HANDLE;
        st = msg_set(err, err_size, APR_ERR_DEVICE, "vulkan: vkAllocateCommandBuffers failed: %s", vkapi_result_name(res));
    }
    if (st == APR_OK && graph->n_nodes) st = vkcompute_build(be, r, false, err, err_size);
    if (st != APR_OK) {
        vkcompute_rec_free(be, r);
        return st;
    }
    *plan = r;
    return APR_OK;
}

apr_status vkcompute_plan_compute(void *backend, void *plan, char *err, size_t err_size) {
    vk_backend *be = backend;
    vk_rec *r = plan;
    if (!be || !r) return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: plan_compute without a backend or plan");
    return r->graph->n_nodes ? vkcompute_submit(be, r, err, err_size) : APR_OK;
}

void vkcompute_plan_free(void *backend, void *plan) {
    if (backend && plan) vkcompute_rec_free(backend, plan);
}
