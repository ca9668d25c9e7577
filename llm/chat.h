/* chat.h — chat templates: recognise a model's family from its Jinja template text and format a conversation. */
#ifndef APR_CHAT_H
#define APR_CHAT_H

/*
 * A model's tokenizer.chat_template is Jinja; running Jinja is out of scope, so the template
 * text is only searched for the markers that tell the common families apart, and each family
 * is written out by hand exactly as its published template renders it.
 *
 * Example
 *
 *     chat_msg conv[] = {{"system", "Be brief."}, {"user", "Hi"}};
 *     chat_family fam = apr_chat_detect(apr_gguf_get_str(f, "tokenizer.chat_template"));
 *     char *prompt = apr_chat_format(fam, conv, 2, true, "<s>", "</s>");
 *     ... apr_tok_encode(v, prompt, strlen(prompt), TOK_PARSE_SPECIAL, ids, cap) ...
 *     free(prompt);
 */

#include <stdbool.h>
#include <stddef.h>

#include "llm_api.h"

typedef enum chat_family {
    CHAT_PLAIN = 0,  /* no template or an unknown one: the bare text; answers continue the line they follow */
    CHAT_CHATML,     /* <|im_start|>role ... <|im_end|> (Qwen, OpenHermes, ...) */
    CHAT_LLAMA2,     /* <s>[INST] <<SYS>> ... [/INST] answer </s> */
    CHAT_LLAMA3,     /* <|start_header_id|>role<|end_header_id|> ... <|eot_id|> */
    CHAT_MISTRAL,    /* <s>[INST] ... [/INST]answer</s>, the system text merged into the first user turn */
    CHAT_PHI3,       /* <|user|> ... <|end|> */
    CHAT_GEMMA,      /* <start_of_turn>user ... <end_of_turn>, assistant called "model" */
    CHAT_ZEPHYR,     /* <|user|> ... </s> */
} chat_family;

typedef struct chat_msg {
    const char *role;     /* "system", "user" or "assistant" */
    const char *content;
} chat_msg;

/* The family of a Jinja template text; CHAT_PLAIN for NULL, "" or a template it does not recognise. */
LLM_API chat_family apr_chat_detect(const char *tmpl);
/* "chatml", "llama2", ... ("plain" for CHAT_PLAIN). */
LLM_API const char *apr_chat_family_name(chat_family f);
/* The text of the token that ends an assistant turn besides EOS ("<|im_end|>", "<|eot_id|>",
 * "<|end|>", "<end_of_turn>"), or NULL when the family ends turns with EOS only. */
LLM_API const char *apr_chat_eot_text(chat_family f);

/* The conversation as the family's template renders it, plus the assistant header when
 * add_generation_prompt. bos / eos: the text of the model's BOS / EOS tokens as the template's
 * bos_token / eos_token (NULL = the family's usual "<s>", "</s>", ...). Tokenize the result with
 * TOK_PARSE_SPECIAL. Returns malloc'd text (caller frees), NULL when out of memory. */
LLM_API char *apr_chat_format(chat_family f, const chat_msg *msgs, size_t n, bool add_generation_prompt,
                              const char *bos, const char *eos);

#endif
