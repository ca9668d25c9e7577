/* test_chat.c — chat templates: family detection from real template texts and the exact prompt each family renders. */
#include <cJSON.h>
#include <criterion/criterion.h>
#include "util/tu_paths.h"
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "chat.h"
#include "gguf.h"
#include "tokenizer.h"

/* One fixed conversation; the expected strings are what each published template renders for it. */
static const chat_msg chat_conv[] = {
    {"system", "You are a helpful assistant."},
    {"user", "Hello"},
    {"assistant", "Hi there"},
};

static void chat_expect(chat_family f, size_t n, bool gen, const char *want) {
    char *got = apr_chat_format(f, chat_conv, n, gen, NULL, NULL);
    cr_assert(got, "out of memory");
    cr_expect_str_eq(got, want, "%s (n=%zu gen=%d):\n got [%s]\nwant [%s]", apr_chat_family_name(f), n, gen, got, want);
    free(got);
}

Test(chat, chatml) {
    chat_expect(CHAT_CHATML, 3, false,
                "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                "<|im_start|>assistant\nHi there<|im_end|>\n");
    chat_expect(CHAT_CHATML, 2, true,
                "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\nHello<|im_end|>\n"
                "<|im_start|>assistant\n");
}

Test(chat, llama2) {
    chat_expect(CHAT_LLAMA2, 3, false,
                "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello [/INST] Hi there </s>");
    /* the Llama 2 template has no generation prompt: the answer follows [/INST] */
    chat_expect(CHAT_LLAMA2, 2, true, "<s>[INST] <<SYS>>\nYou are a helpful assistant.\n<</SYS>>\n\nHello [/INST]");
}

Test(chat, llama3) {
    chat_expect(CHAT_LLAMA3, 3, false,
                "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\nHi there<|eot_id|>");
    chat_expect(CHAT_LLAMA3, 2, true,
                "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nYou are a helpful assistant.<|eot_id|>"
                "<|start_header_id|>user<|end_header_id|>\n\nHello<|eot_id|>"
                "<|start_header_id|>assistant<|end_header_id|>\n\n");
}

Test(chat, mistral) {
    chat_expect(CHAT_MISTRAL, 3, false, "<s>[INST] You are a helpful assistant.\n\nHello [/INST]Hi there</s>");
    chat_expect(CHAT_MISTRAL, 2, true, "<s>[INST] You are a helpful assistant.\n\nHello [/INST]");
}

Test(chat, phi3) {
    chat_expect(CHAT_PHI3, 3, false,
                "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\nHi there<|end|>\n");
    chat_expect(CHAT_PHI3, 2, true, "<|system|>\nYou are a helpful assistant.<|end|>\n<|user|>\nHello<|end|>\n<|assistant|>\n");
}

Test(chat, gemma) {
    chat_expect(CHAT_GEMMA, 3, false,
                "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello<end_of_turn>\n"
                "<start_of_turn>model\nHi there<end_of_turn>\n");
    chat_expect(CHAT_GEMMA, 2, true,
                "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello<end_of_turn>\n<start_of_turn>model\n");
}

Test(chat, zephyr) {
    chat_expect(CHAT_ZEPHYR, 3, false,
                "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello</s>\n<|assistant|>\nHi there</s>\n");
    chat_expect(CHAT_ZEPHYR, 2, true, "<|system|>\nYou are a helpful assistant.</s>\n<|user|>\nHello</s>\n<|assistant|>\n");
}

Test(chat, plain_text_only_grows) {
    chat_expect(CHAT_PLAIN, 3, false, "You are a helpful assistant.\nHelloHi there");
    chat_expect(CHAT_PLAIN, 2, true, "You are a helpful assistant.\nHello");
}

Test(chat, model_bos_and_eos_texts_replace_the_defaults) {
    char *got = apr_chat_format(CHAT_ZEPHYR, chat_conv + 1, 1, true, "", "<|endoftext|>");
    cr_assert_str_eq(got, "<|user|>\nHello<|endoftext|>\n<|assistant|>\n");
    free(got);
}

/* Excerpts of the templates as published in the models' tokenizer_config.json. */
Test(chat, detects_each_family_from_its_template_text) {
    struct { const char *tmpl; chat_family want; } cases[] = {
        {"{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + "
         "'\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}",
         CHAT_CHATML},
        {"{% if loop.index0 == 0 and system_message != false %}{% set content = '<<SYS>>\\n' + system_message + "
         "'\\n<</SYS>>\\n\\n' + message['content'] %}{% else %}{% set content = message['content'] %}{% endif %}{% if "
         "message['role'] == 'user' %}{{ bos_token + '[INST] ' + content.strip() + ' [/INST]' }}",
         CHAT_LLAMA2},
        {"{% set content = '<|start_header_id|>' + message['role'] + '<|end_header_id|>\\n\\n'+ message['content'] | "
         "trim + '<|eot_id|>' %}{% if loop.index0 == 0 %}{% set content = bos_token + content %}{% endif %}",
         CHAT_LLAMA3},
        {"{{ bos_token }}{% for message in messages %}{% if message['role'] == 'user' %}{{ '[INST] ' + "
         "message['content'] + ' [/INST]' }}{% elif message['role'] == 'assistant' %}{{ message['content'] + "
         "eos_token}}{% endif %}{% endfor %}",
         CHAT_MISTRAL},
        {"{% for message in messages %}{% if message['role'] == 'system' %}{{'<|system|>\\n' + message['content'] + "
         "'<|end|>\\n'}}{% elif message['role'] == 'user' %}{{'<|user|>\\n' + message['content'] + '<|end|>\\n'}}",
         CHAT_PHI3},
        {"{{ bos_token }}{% for message in messages %}{% if (message['role'] == 'assistant') %}{% set role = 'model' "
         "%}{% else %}{% set role = message['role'] %}{% endif %}{{ '<start_of_turn>' + role + '\\n' + "
         "message['content'] | trim + '<end_of_turn>\\n' }}{% endfor %}",
         CHAT_GEMMA},
        {"{% for message in messages %}\n{% if message['role'] == 'user' %}\n{{ '<|user|>\\n' + message['content'] + "
         "eos_token }}\n{% elif message['role'] == 'system' %}\n{{ '<|system|>\\n' + message['content'] + eos_token }}",
         CHAT_ZEPHYR},
        {"{% for message in messages %}{{ message['role'] + ': ' + message['content'] }}{% endfor %}", CHAT_PLAIN},
        {"", CHAT_PLAIN},
        {NULL, CHAT_PLAIN},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++)
        cr_expect_eq(apr_chat_detect(cases[i].tmpl), cases[i].want, "case %zu: got %s, want %s", i,
                     apr_chat_family_name(apr_chat_detect(cases[i].tmpl)), apr_chat_family_name(cases[i].want));
}

Test(chat, end_of_turn_tokens) {
    cr_expect_str_eq(apr_chat_eot_text(CHAT_CHATML), "<|im_end|>");
    cr_expect_str_eq(apr_chat_eot_text(CHAT_LLAMA3), "<|eot_id|>");
    cr_expect_str_eq(apr_chat_eot_text(CHAT_PHI3), "<|end|>");
    cr_expect_str_eq(apr_chat_eot_text(CHAT_GEMMA), "<end_of_turn>");
    cr_expect_null(apr_chat_eot_text(CHAT_LLAMA2));
    cr_expect_null(apr_chat_eot_text(CHAT_PLAIN));
}

/* ---------------------------------------------------------------- real templates from the fixtures */

/* <repo>/../shared/fixtures */
static char chat_fixtures[PATH_MAX + 32];

static bool chat_find_fixtures(void) {
    snprintf(chat_fixtures, sizeof chat_fixtures, "%s", tu_fixtures_dir());
    return tu_have_fixtures();
}

/* The chat_template of a Hugging Face tokenizer_config.json; malloc'd. */
static char *chat_hf_template(const char *dir) {
    char path[PATH_MAX + 128];
    snprintf(path, sizeof path, "%s/vocab/%s/tokenizer_config.json", chat_fixtures, dir);
    FILE *fp = fopen(path, "rb");
    cr_assert(fp, "cannot open %s", path);
    static char buf[1 << 20];
    size_t len = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[len] = 0;
    cJSON *root = cJSON_Parse(buf);
    cr_assert(root, "%s is not JSON", path);
    const char *t = cJSON_GetStringValue(cJSON_GetObjectItem(root, "chat_template"));
    cr_assert(t, "%s has no chat_template", path);
    char *dup = strdup(t);
    cJSON_Delete(root);
    return dup;
}

Test(chat, detects_the_fixture_models_templates) {
    if (!chat_find_fixtures()) cr_skip_test("fixtures not found at %s", chat_fixtures);
    char *t = chat_hf_template("hf-llama3");
    cr_expect_eq(apr_chat_detect(t), CHAT_LLAMA3);
    free(t);
    t = chat_hf_template("hf-qwen2");
    cr_expect_eq(apr_chat_detect(t), CHAT_CHATML);
    free(t);
}

/* The Phi-3 vocabulary's own template, and the formatted prompt tokenizes with its markers as single control tokens. */
Test(chat, phi3_prompt_tokenizes_with_special_tokens) {
    if (!chat_find_fixtures()) cr_skip_test("fixtures not found at %s", chat_fixtures);
    char path[PATH_MAX + 64];
    snprintf(path, sizeof path, "%s/vocab/ggml-vocab-phi-3.gguf", chat_fixtures);
    apr_error e;
    gguf_file *f;
    tok_vocab *v;
    cr_assert_eq(apr_gguf_open(path, &f, &e), APR_OK, "%s", e.msg);
    cr_assert_eq(apr_tok_load_gguf(f, &v, &e), APR_OK, "%s", e.msg);
    cr_expect_eq(apr_chat_detect(apr_gguf_get_str(f, "tokenizer.chat_template")), CHAT_PHI3);
    char *p = apr_chat_format(CHAT_PHI3, chat_conv + 1, 1, true, NULL, NULL);
    int32_t ids[64];
    int64_t n = apr_tok_encode(v, p, strlen(p), TOK_PARSE_SPECIAL, ids, 64);
    cr_assert(n > 3 && n < 64, "%lld ids", (long long)n);
    int32_t user = apr_tok_find(v, "<|user|>", 8), end = apr_tok_find(v, "<|end|>", 7), ass = apr_tok_find(v, "<|assistant|>", 13);
    cr_assert(user >= 0 && end >= 0 && ass >= 0, "phi-3 markers missing from the vocabulary");
    int seen_user = 0, seen_end = 0, seen_ass = 0;
    for (int64_t i = 0; i < n; i++) {
        seen_user += ids[i] == user;
        seen_end += ids[i] == end;
        seen_ass += ids[i] == ass;
    }
    cr_expect(seen_user == 1 && seen_end == 1 && seen_ass == 1, "markers not single tokens in [%s]", p);
    free(p);
    apr_tok_free(v);
    apr_gguf_close(f);
}
