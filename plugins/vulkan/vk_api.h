/* vk_api.h — the Vulkan entry points the plugin calls, loaded at run time from libvulkan.so.1. */
#ifndef APR_VK_API_H
#define APR_VK_API_H

#define VK_NO_PROTOTYPES
#include <vulkan/vulkan.h>

#include <stdbool.h>
#include <stddef.h>

/* Instance-level functions (resolved with vkGetInstanceProcAddr once an instance exists). */
#define VK_INSTANCE_FNS(X)                                                                          \
    X(vkDestroyInstance) X(vkEnumeratePhysicalDevices) X(vkGetPhysicalDeviceProperties)             \
    X(vkGetPhysicalDeviceProperties2) X(vkGetPhysicalDeviceFeatures2)                               \
    X(vkGetPhysicalDeviceQueueFamilyProperties) X(vkGetPhysicalDeviceMemoryProperties)              \
    X(vkEnumerateDeviceExtensionProperties) X(vkCreateDevice) X(vkGetDeviceProcAddr)

/* Device-level functions. */
#define VK_DEVICE_FNS(X)                                                                            \
    X(vkDestroyDevice) X(vkGetDeviceQueue) X(vkCreateBuffer) X(vkDestroyBuffer)                     \
    X(vkGetBufferMemoryRequirements) X(vkAllocateMemory) X(vkFreeMemory) X(vkBindBufferMemory)      \
    X(vkMapMemory) X(vkUnmapMemory) X(vkFlushMappedMemoryRanges) X(vkInvalidateMappedMemoryRanges)  \
    X(vkCreateCommandPool) X(vkDestroyCommandPool) X(vkAllocateCommandBuffers) X(vkFreeCommandBuffers)                      \
    X(vkBeginCommandBuffer) X(vkEndCommandBuffer) X(vkResetCommandBuffer) X(vkCmdCopyBuffer)        \
    X(vkCmdPipelineBarrier) X(vkCmdBindPipeline) X(vkCmdBindDescriptorSets) X(vkCmdPushConstants)   \
    X(vkCmdDispatch) X(vkCmdFillBuffer) X(vkQueueSubmit) X(vkCreateFence) X(vkDestroyFence)         \
    X(vkWaitForFences) X(vkResetFences) X(vkCreateShaderModule) X(vkDestroyShaderModule)            \
    X(vkCreateDescriptorSetLayout) X(vkDestroyDescriptorSetLayout) X(vkCreatePipelineLayout)        \
    X(vkDestroyPipelineLayout) X(vkCreateComputePipelines) X(vkDestroyPipeline)                     \
    X(vkCreatePipelineCache) X(vkDestroyPipelineCache) X(vkGetPipelineCacheData)                    \
    X(vkCreateDescriptorPool) X(vkDestroyDescriptorPool) X(vkAllocateDescriptorSets)                \
    X(vkResetDescriptorPool) X(vkUpdateDescriptorSets)

#define VK_DECLARE_FN(name) PFN_##name name;
typedef struct vk_api {
    void *lib;                                   /* dlopen handle of libvulkan.so.1 */
    PFN_vkGetInstanceProcAddr vkGetInstanceProcAddr;
    PFN_vkCreateInstance vkCreateInstance;
    PFN_vkEnumerateInstanceVersion vkEnumerateInstanceVersion;
    VK_INSTANCE_FNS(VK_DECLARE_FN)
} vk_api;

typedef struct vk_device_api {
    VK_DEVICE_FNS(VK_DECLARE_FN)
} vk_device_api;
#undef VK_DECLARE_FN

/* Opens the loader and creates an instance (Vulkan 1.2); false with a one-line reason otherwise.
 * The instance and the library stay open until vkapi_close. */
bool vkapi_open(vk_api *api, VkInstance *instance, char *why, size_t why_size);
void vkapi_close(vk_api *api, VkInstance instance);

/* Resolves every device-level function; false with the name of a missing one. */
bool vkapi_device(const vk_api *api, VkDevice dev, vk_device_api *out, char *why, size_t why_size);

/* "VK_ERROR_OUT_OF_DEVICE_MEMORY", ... for messages. */
const char *vkapi_result_name(VkResult r);

#endif
