/* vk_api.c — loads libvulkan.so.1 with dlopen and resolves the entry points the plugin uses, so a
 * machine without the loader lists the plugin as rejected instead of failing to load it. */
#include "vk_api.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

bool vkapi_open(vk_api *api, VkInstance *instance, char *why, size_t why_size) {
    memset(api, 0, sizeof *api);
    *instance = VK_NULL_HANDLE;
    api->lib = dlopen("libvulkan.so.1", RTLD_NOW | RTLD_LOCAL);
    if (!api->lib) {
        snprintf(why, why_size, "no Vulkan loader: %s", dlerror());
        return false;
    }
    api->vkGetInstanceProcAddr = (PFN_vkGetInstanceProcAddr)dlsym(api->lib, "vkGetInstanceProcAddr");
    if (!api->vkGetInstanceProcAddr) {
        snprintf(why, why_size, "libvulkan.so.1 has no vkGetInstanceProcAddr");
        goto fail;
    }
    api->vkCreateInstance = (PFN_vkCreateInstance)api->vkGetInstanceProcAddr(NULL, "vkCreateInstance");
    api->vkEnumerateInstanceVersion =
        (PFN_vkEnumerateInstanceVersion)api->vkGetInstanceProcAddr(NULL, "vkEnumerateInstanceVersion");
    uint32_t version = VK_API_VERSION_1_0;
    if (api->vkEnumerateInstanceVersion) api->vkEnumerateInstanceVersion(&version);
    if (!api->vkCreateInstance || version < VK_API_VERSION_1_2) {
        snprintf(why, why_size, "the Vulkan loader offers version %u.%u, apr needs 1.2", VK_API_VERSION_MAJOR(version),
                 VK_API_VERSION_MINOR(version));
        goto fail;
    }
    VkApplicationInfo app = {.sType = VK_STRUCTURE_TYPE_APPLICATION_INFO, .pApplicationName = "apr",
                             .pEngineName = "apr", .apiVersion = VK_API_VERSION_1_2};
    VkInstanceCreateInfo ci = {.sType = VK_STRUCTURE_TYPE_INSTANCE_CREATE_INFO, .pApplicationInfo = &app};
    VkResult r = api->vkCreateInstance(&ci, NULL, instance);
    if (r == VK_ERROR_INCOMPATIBLE_DRIVER) {
        snprintf(why, why_size, "no Vulkan driver or device found (vkCreateInstance: %s)", vkapi_result_name(r));
        goto fail;
    }
    if (r != VK_SUCCESS) {
        snprintf(why, why_size, "vkCreateInstance failed: %s", vkapi_result_name(r));
        goto fail;
    }
#define VK_LOAD_INSTANCE(name)                                                                  \
    api->name = (PFN_##name)api->vkGetInstanceProcAddr(*instance, #name);                       \
    if (!api->name) {                                                                           \
        snprintf(why, why_size, "the Vulkan loader lacks %s", #name);                           \
        goto fail;                                                                              \
    }
    VK_INSTANCE_FNS(VK_LOAD_INSTANCE)
#undef VK_LOAD_INSTANCE
    return true;
fail:
    vkapi_close(api, *instance);
    *instance = VK_NULL_HANDLE;
    return false;
}

void vkapi_close(vk_api *api, VkInstance instance) {
    if (instance != VK_NULL_HANDLE && api->vkDestroyInstance) api->vkDestroyInstance(instance, NULL);
    if (api->lib) dlclose(api->lib);
    memset(api, 0, sizeof *api);
}

bool vkapi_device(const vk_api *api, VkDevice dev, vk_device_api *out, char *why, size_t why_size) {
#define VK_LOAD_DEVICE(name)                                                                    \
    out->name = (PFN_##name)api->vkGetDeviceProcAddr(dev, #name);                               \
    if (!out->name) {                                                                           \
        snprintf(why, why_size, "the Vulkan driver lacks %s", #name);                           \
        return false;                                                                           \
    }
    VK_DEVICE_FNS(VK_LOAD_DEVICE)
#undef VK_LOAD_DEVICE
    return true;
}

const char *vkapi_result_name(VkResult r) {
    switch (r) {
    case VK_SUCCESS: return "VK_SUCCESS";
    case VK_NOT_READY: return "VK_NOT_READY";
    case VK_TIMEOUT: return "VK_TIMEOUT";
    case VK_ERROR_OUT_OF_HOST_MEMORY: return "VK_ERROR_OUT_OF_HOST_MEMORY";
    case VK_ERROR_OUT_OF_DEVICE_MEMORY: return "VK_ERROR_OUT_OF_DEVICE_MEMORY";
    case VK_ERROR_INITIALIZATION_FAILED: return "VK_ERROR_INITIALIZATION_FAILED";
    case VK_ERROR_DEVICE_LOST: return "VK_ERROR_DEVICE_LOST";
    case VK_ERROR_MEMORY_MAP_FAILED: return "VK_ERROR_MEMORY_MAP_FAILED";
    case VK_ERROR_LAYER_NOT_PRESENT: return "VK_ERROR_LAYER_NOT_PRESENT";
    case VK_ERROR_EXTENSION_NOT_PRESENT: return "VK_ERROR_EXTENSION_NOT_PRESENT";
    case VK_ERROR_FEATURE_NOT_PRESENT: return "VK_ERROR_FEATURE_NOT_PRESENT";
    case VK_ERROR_INCOMPATIBLE_DRIVER: return "VK_ERROR_INCOMPATIBLE_DRIVER";
    case VK_ERROR_TOO_MANY_OBJECTS: return "VK_ERROR_TOO_MANY_OBJECTS";
    case VK_ERROR_OUT_OF_POOL_MEMORY: return "VK_ERROR_OUT_OF_POOL_MEMORY";
    default: return "VkResult error";
    }
}
