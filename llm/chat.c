/* chat.c — chat template families: detection by marker strings and hand-written formatting of each. */
#include "chat.h"

#include <stdlib.h>
#include <string.h>

/* A growing NUL-terminated string; oom sticks so callers check once at the end. */
typedef struct chat_buf {
    char *s;
    size_t len, cap;
    bool oom;
} chat_buf;

static void chat_put(chat_buf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = (b->len + n + 1) * 2;
        char *ns = realloc(b->s, cap);
        if (!ns) { b->oom = true; return; }
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->len, s, n);
    b->len += n;
    b->s[b->len] = 0;
}

static void chat_puts(chat_buf *b, const char *s) { chat_put(b, s, strlen(s)); }

/* Jinja's trim / Python's strip: the templates that apply it would otherwise not match byte for byte. */
static void chat_put_trimmed(chat_buf *b, const char *s) {
    const char *ws = " \t\n\r\f\v";
    while (*s && strchr(ws, *s)) s++;
    size_t n = strlen(s);
    while (n && strchr(ws, s[n - 1])) n--;
    chat_put(b, s, n);
}

static bool chat_is(const chat_msg *m, const char *role) { return m->role && !strcmp(m->role, role); }

chat_family apr_chat_detect(const char *t) {
    if (!t || !*t) return CHAT_PLAIN;
    if (strstr(t, "<|im_start|>")) return CHAT_CHATML;
    if (strstr(t, "<|start_header_id|>")) return CHAT_LLAMA3;
    if (strstr(t, "<start_of_turn>")) return CHAT_GEMMA;
    /* Llama 2 and Mistral share [INST]; only Llama 2 wraps the system prompt in <<SYS>> */
    if (strstr(t, "[INST]")) return strstr(t, "<<SYS>>") ? CHAT_LLAMA2 : CHAT_MISTRAL;
    /* Phi-3 and Zephyr share <|user|>; Phi-3 closes turns with <|end|>, Zephyr with eos_token */
    if (strstr(t, "<|user|>")) return strstr(t, "<|end|>") ? CHAT_PHI3 : CHAT_ZEPHYR;
    return CHAT_PLAIN;
}

const char *apr_chat_family_name(chat_family f) {
    static const char *const names[] = {"plain", "chatml", "llama2", "llama3", "mistral", "phi3", "gemma", "zephyr"};
    return (unsigned)f < sizeof names / sizeof *names ? names[f] : "plain";
}

const char *apr_chat_eot_text(chat_family f) {
    switch (f) {
    case CHAT_CHATML: return "<|im_end|>";
    case CHAT_LLAMA3: return "<|eot_id|>";
    case CHAT_PHI3: return "<|end|>";
    case CHAT_GEMMA: return "<end_of_turn>";
    default: return NULL;
    }
}

/* Llama 2: the system prompt goes inside the first [INST] block; every turn pair is wrapped in BOS/EOS. */
static void chat_llama2(chat_buf *b, const chat_msg *m, size_t n, const char *bos, const char *eos) {
    const char *sys = n && chat_is(&m[0], "system") ? m[0].content : NULL;
    for (size_t i = sys ? 1 : 0; i < n; i++) {
        if (chat_is(&m[i], "user")) {
            chat_puts(b, bos);
            chat_puts(b, "[INST] ");
            if (sys && i == 1) {
                chat_puts(b, "<<SYS>>\n");
                chat_puts(b, sys);
                chat_puts(b, "\n<</SYS>>\n\n");
            }
            chat_put_trimmed(b, m[i].content);
            chat_puts(b, " [/INST]");
        } else if (chat_is(&m[i], "assistant")) {
            chat_puts(b, " ");
            chat_put_trimmed(b, m[i].content);
            chat_puts(b, " ");
            chat_puts(b, eos);
        }
    }
}

/* Mistral Instruct: no system role of its own, so its text opens the first user turn. */
static void chat_mistral(chat_buf *b, const chat_msg *m, size_t n, const char *bos, const char *eos) {
    const char *sys = NULL;
    chat_puts(b, bos);
    for (size_t i = 0; i < n; i++) {
        if (chat_is(&m[i], "system")) { sys = m[i].content; continue; }
        if (chat_is(&m[i], "user")) {
            chat_puts(b, "[INST] ");
            if (sys) { chat_puts(b, sys); chat_puts(b, "\n\n"); sys = NULL; }
            chat_puts(b, m[i].content);
            chat_puts(b, " [/INST]");
        } else if (chat_is(&m[i], "assistant")) {
            chat_puts(b, m[i].content);
            chat_puts(b, eos);
        }
    }
}

/* Gemma: roles user and model only; a system text is put in front of the first user turn. */
static void chat_gemma(chat_buf *b, const chat_msg *m, size_t n, bool gen, const char *bos) {
    const char *sys = NULL;
    chat_puts(b, bos);
    for (size_t i = 0; i < n; i++) {
        if (chat_is(&m[i], "system")) { sys = m[i].content; continue; }
        bool model = chat_is(&m[i], "assistant");
        chat_puts(b, model ? "<start_of_turn>model\n" : "<start_of_turn>user\n");
        if (sys && !model) { chat_put_trimmed(b, sys); chat_puts(b, "\n\n"); sys = NULL; }
        chat_put_trimmed(b, m[i].content);
        chat_puts(b, "<end_of_turn>\n");
    }
    if (gen) chat_puts(b, "<start_of_turn>model\n");
}

/* The families whose turns are "open role close": ChatML, Llama 3, Phi-3, Zephyr. */
static void chat_tagged(chat_buf *b, chat_family f, const chat_msg *m, size_t n, bool gen, const char *bos,
                        const char *eos) {
    if (f == CHAT_LLAMA3) chat_puts(b, bos);
    for (size_t i = 0; i < n; i++) {
        const char *role = m[i].role ? m[i].role : "user";
        switch (f) {
        case CHAT_CHATML:
            chat_puts(b, "<|im_start|>"); chat_puts(b, role); chat_puts(b, "\n");
            chat_puts(b, m[i].content); chat_puts(b, "<|im_end|>\n");
            break;
        case CHAT_LLAMA3:
            chat_puts(b, "<|start_header_id|>"); chat_puts(b, role); chat_puts(b, "<|end_header_id|>\n\n");
            chat_put_trimmed(b, m[i].content); chat_puts(b, "<|eot_id|>");
            break;
        default: /* Phi-3 and Zephyr differ only in the turn's end */
            chat_puts(b, "<|"); chat_puts(b, role); chat_puts(b, "|>\n");
            chat_puts(b, m[i].content); chat_puts(b, f == CHAT_PHI3 ? "<|end|>\n" : eos);
            if (f == CHAT_ZEPHYR) chat_puts(b, "\n");
            break;
        }
    }
    if (!gen) return;
    if (f == CHAT_CHATML) chat_puts(b, "<|im_start|>assistant\n");
    else if (f == CHAT_LLAMA3) chat_puts(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    else chat_puts(b, "<|assistant|>\n");
}

/* No template: the bare text, a new line before each user or system message, so that an answer
 * continues the text it follows (what a base model expects) and the rendered text only grows. */
static void chat_plain(chat_buf *b, const chat_msg *m, size_t n) {
    for (size_t i = 0; i < n; i++) {
        if (i > 0 && !chat_is(&m[i], "assistant")) chat_puts(b, "\n");
        chat_puts(b, m[i].content);
    }
}

char *apr_chat_format(chat_family f, const chat_msg *msgs, size_t n, bool gen, const char *bos, const char *eos) {
    static const char *const def_bos[] = {"", "", "<s>", "<|begin_of_text|>", "<s>", "<s>", "<bos>", "<s>"};
    if ((unsigned)f >= sizeof def_bos / sizeof *def_bos) f = CHAT_PLAIN;
    if (!bos) bos = def_bos[f];
    if (!eos) eos = f == CHAT_LLAMA3 ? "<|end_of_text|>" : f == CHAT_GEMMA ? "<eos>" : "</s>";
    chat_buf b = {0};
    chat_puts(&b, ""); /* an empty conversation still gives "" */
    switch (f) {
    case CHAT_LLAMA2: chat_llama2(&b, msgs, n, bos, eos); break;
    case CHAT_MISTRAL: chat_mistral(&b, msgs, n, bos, eos); break;
    case CHAT_GEMMA: chat_gemma(&b, msgs, n, gen, bos); break;
    case CHAT_PLAIN: chat_plain(&b, msgs, n); break;
    default: chat_tagged(&b, f, msgs, n, gen, bos, eos); break;
    }
    if (b.oom) { free(b.s); return NULL; }
    return b.s;
}
