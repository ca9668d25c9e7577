/* vk_device.c — finds the Vulkan devices once per process and describes each for probe: usable or
 * not (and why), its score, name, driver, subgroup size and the extensions the plugin uses. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "../common/msg.h"
#include "vk_internal.h"

static vk_world world;
static char world_why[256];
static bool world_ok;
static pthread_once_t world_once = PTHREAD_ONCE_INIT;

static const char *vkdevice_type_name(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return "discrete GPU";
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return "integrated GPU";
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return "virtual GPU";
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return "CPU driver";
    default: return "device of unknown type";
    }
}

/* Discrete above integrated above virtual; a CPU driver (lavapipe) usable but below every CPU plugin. */
static int vkdevice_score(VkPhysicalDeviceType t) {
    switch (t) {
    case VK_PHYSICAL_DEVICE_TYPE_DISCRETE_GPU: return 100;
    case VK_PHYSICAL_DEVICE_TYPE_INTEGRATED_GPU: return 60;
    case VK_PHYSICAL_DEVICE_TYPE_VIRTUAL_GPU: return 40;
    case VK_PHYSICAL_DEVICE_TYPE_CPU: return 2;
    default: return 10;
    }
}

static void vkdevice_describe(vk_device_info *d) {
    const vk_api *a = &world.api;
    VkPhysicalDeviceSubgroupProperties sub = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_SUBGROUP_PROPERTIES};
    VkPhysicalDeviceDriverProperties drv = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_DRIVER_PROPERTIES, .pNext = &sub};
    VkPhysicalDeviceProperties2 props = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_PROPERTIES_2, .pNext = &drv};
    a->vkGetPhysicalDeviceProperties2(d->phys, &props);
    const VkPhysicalDeviceProperties *p = &props.properties;
    snprintf(d->name, sizeof d->name, "%s", p->deviceName);
    d->type = p->deviceType;
    d->subgroup_size = sub.subgroupSize;
    d->max_storage_range = p->limits.maxStorageBufferRange;
    d->vendor_id = p->vendorID;
    d->device_id = p->deviceID;
    d->driver_version = p->driverVersion;
    memcpy(d->cache_uuid, p->pipelineCacheUUID, VK_UUID_SIZE);
    char head[sizeof d->reason];
    msg_set(head, sizeof head, APR_OK, "%s (%s), driver %s %s, Vulkan %u.%u, subgroup %u", p->deviceName,
             vkdevice_type_name(p->deviceType), drv.driverName, drv.driverInfo, VK_API_VERSION_MAJOR(p->apiVersion),
             VK_API_VERSION_MINOR(p->apiVersion), sub.subgroupSize);
    if (p->apiVersion < VK_API_VERSION_1_2) {
        msg_set(d->reason, sizeof d->reason, APR_OK, "%s: apr needs Vulkan 1.2", head);
        return;
    }
    uint32_t nq = 0;
    a->vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, NULL);
    VkQueueFamilyProperties q[32];
    if (nq > 32) nq = 32;
    a->vkGetPhysicalDeviceQueueFamilyProperties(d->phys, &nq, q);
    bool found = false;
    for (uint32_t i = 0; i < nq && !found; i++)
        if (q[i].queueFlags & VK_QUEUE_COMPUTE_BIT) d->queue_family = i, found = true;
    if (!found) {
        msg_set(d->reason, sizeof d->reason, APR_OK, "%s: no compute queue", head);
        return;
    }
    VkPhysicalDevice16BitStorageFeatures s16 = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_16BIT_STORAGE_FEATURES};
    VkPhysicalDeviceFeatures2 f = {.sType = VK_STRUCTURE_TYPE_PHYSICAL_DEVICE_FEATURES_2, .pNext = &s16};
    a->vkGetPhysicalDeviceFeatures2(d->phys, &f);
    if (!s16.storageBuffer16BitAccess) {
        msg_set(d->reason, sizeof d->reason, APR_OK, "%s: no 16-bit storage buffers (storageBuffer16BitAccess)", head);
        return;
    }
    d->usable = true;
    d->score = vkdevice_score(p->deviceType);
    msg_set(d->reason, sizeof d->reason, APR_OK, "%s", head);
    snprintf(d->features, sizeof d->features, "storageBuffer16BitAccess");
}

/* The instance lives as long as the process: the plugin pins itself in memory (RTLD_NODELETE) once
 * it has one, so a registry closed and opened again finds the same devices, and drivers that
 * cannot be unloaded cleanly (their teardown loses memory, or threads outlive it) never are. */
static void vkdevice_pin_plugin(void) {
    Dl_info info;
    if (dladdr((void *)vkdevice_pin_plugin, &info) && info.dli_fname) dlopen(info.dli_fname, RTLD_NOW | RTLD_NOLOAD | RTLD_NODELETE);
}

static void vkdevice_open_world(void) {
    if (!vkapi_open(&world.api, &world.instance, world_why, sizeof world_why)) return;
    vkdevice_pin_plugin();
    uint32_t n = 0;
    VkResult r = world.api.vkEnumeratePhysicalDevices(world.instance, &n, NULL);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        snprintf(world_why, sizeof world_why, "vkEnumeratePhysicalDevices failed: %s", vkapi_result_name(r));
        return;
    }
    if (n == 0) {
        snprintf(world_why, sizeof world_why, "the Vulkan loader found no device");
        return;
    }
    if (n > VK_MAX_DEVICES) n = VK_MAX_DEVICES;
    VkPhysicalDevice phys[VK_MAX_DEVICES];
    r = world.api.vkEnumeratePhysicalDevices(world.instance, &n, phys);
    if (r != VK_SUCCESS && r != VK_INCOMPLETE) {
        snprintf(world_why, sizeof world_why, "vkEnumeratePhysicalDevices failed: %s", vkapi_result_name(r));
        return;
    }
    world.n_devices = (int)n;
    for (uint32_t i = 0; i < n; i++) {
        world.devices[i].phys = phys[i];
        vkdevice_describe(&world.devices[i]);
    }
    world_ok = true;
}

const vk_world *vkdevice_world(char *why, size_t why_size) {
    pthread_once(&world_once, vkdevice_open_world);
    if (!world_ok) {
        msg_set(why, why_size, APR_ERR_UNSUPPORTED, "%s", world_why);
        return NULL;
    }
    return &world;
}

#define FITS(s, type, field) ((s)->struct_size >= offsetof(type, field) + sizeof((s)->field))

apr_status vkdevice_probe(const apr_host_info *host, apr_probe_result *out, char *err, size_t err_size) {
    (void)host;
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: probe result is NULL");
    char why[256] = "";
    const vk_world *w = vkdevice_world(why, sizeof why);
    int best = 0, usable = 0;
    if (w)
        for (int i = 0; i < w->n_devices; i++)
            if (w->devices[i].usable) {
                usable++;
                if (w->devices[i].score > best) best = w->devices[i].score;
            }
    if (FITS(out, apr_probe_result, score)) out->score = best;
    if (FITS(out, apr_probe_result, reason)) {
        if (!w) msg_set(out->reason, sizeof out->reason, APR_OK, "%s", why);
        else if (!usable) msg_set(out->reason, sizeof out->reason, APR_OK, "no usable device: %s", w->devices[0].reason);
        else msg_set(out->reason, sizeof out->reason, APR_OK, "%d of %d Vulkan devices usable", usable, w->n_devices);
    }
    if (FITS(out, apr_probe_result, features)) out->features[0] = '\0';
    if (FITS(out, apr_probe_result, n_devices)) out->n_devices = w ? w->n_devices : 0;
    return APR_OK;
}

apr_status vkdevice_probe_device(const apr_host_info *host, uint32_t device, apr_probe_result *out, char *err,
                                 size_t err_size) {
    (void)host;
    if (!out) return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: probe result is NULL");
    char why[256] = "";
    const vk_world *w = vkdevice_world(why, sizeof why);
    if (!w) return msg_set(err, err_size, APR_ERR_UNSUPPORTED, "%s", why);
    if ((int)device >= w->n_devices)
        return msg_set(err, err_size, APR_ERR_INVALID, "vulkan: device %u of %d", (unsigned)device, w->n_devices);
    const vk_device_info *d = &w->devices[device];
    if (FITS(out, apr_probe_result, score)) out->score = d->usable ? d->score : 0;
    if (FITS(out, apr_probe_result, reason)) msg_set(out->reason, sizeof out->reason, APR_OK, "%s", d->reason);
    if (FITS(out, apr_probe_result, features)) msg_set(out->features, sizeof out->features, APR_OK, "%s", d->features);
    return APR_OK;
}
