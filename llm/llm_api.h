/* llm_api.h — marks the functions libaprllm exports; the library is built with hidden visibility. */
#ifndef APR_LLM_API_H
#define APR_LLM_API_H

#define LLM_API __attribute__((visibility("default")))

#endif
