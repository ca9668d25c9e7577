/* apr-tokenize.c — shows how a model's tokenizer splits text: token ids and pieces. */
#include <cJSON.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "common/cli.h"
#include "common/cli_text.h"
#include "tokenizer.h"

static const char *tokenize_usage =
    "usage: apr-tokenize --model FILE [--prompt TEXT | --file F]... [--ids] [--no-bos] [--special] [--json]\n"
    "\n"
    "Tokenizes text with a model's tokenizer and prints one token per line (id and piece), or with\n"
    "--ids only the ids, space-separated, one line per input. --prompt and --file may be repeated;\n"
    "each is one input (a file is taken whole, newlines included); with neither, stdin is read.\n"
    "\n"
    "options:\n"
    "  --model FILE     a GGUF file, or a Hugging Face folder with tokenizer.json (or .json.gz)\n"
    "                   and tokenizer_config.json, or the path of a tokenizer.json\n"
    "  --prompt TEXT    text to tokenize\n"
    "  --file F         tokenize the contents of F (at most 256 MiB, as stdin)\n"
    "  --ids            print only the ids\n"
    "  --no-bos         do not add the BOS token the model asks for\n"
    "  --special        control tokens written in the text (\"<s>\", \"<|eot_id|>\") become their ids\n"
    "  --backend NAME   accepted and checked as by the other tools; tokenizing runs on no backend\n"
    "  --json           machine-readable output on stdout\n"
    "  -h, --help       this text\n"
    "\n"
    "exit status: 0 ok, 1 the model or an input could not be read, 2 usage error\n";

typedef struct tokenize_input {
    const char *name;   /* the file, or NULL for --prompt */
    char *text;
    size_t len;
} tokenize_input;

/* What apr_tok_load_file takes: a folder, or a regular file that is GGUF, gzip (tokenizer.json.gz)
 * or JSON text. Anything else gets one line saying what it is not, before anything opens it (a
 * FIFO or a device would block or stream forever). */
static bool tokenize_check_model(const char *path) {
    struct stat st;
    if (stat(path, &st) != 0) { fprintf(stderr, "apr-tokenize: %s: %s\n", path, strerror(errno)); return false; }
    if (S_ISDIR(st.st_mode)) return true;
    if (!S_ISREG(st.st_mode)) {
        fprintf(stderr, "apr-tokenize: %s is not a regular file or a folder (a GGUF file, a tokenizer.json or its folder)\n", path);
        return false;
    }
    unsigned char head[64];
    size_t n = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) { fprintf(stderr, "apr-tokenize: %s: %s\n", path, strerror(errno)); return false; }
    n = fread(head, 1, sizeof head, fp);
    fclose(fp);
    if (n >= 4 && !memcmp(head, "GGUF", 4)) return true;
    if (n >= 2 && head[0] == 0x1f && head[1] == 0x8b) return true;
    size_t k = n >= 3 && !memcmp(head, "\xEF\xBB\xBF", 3) ? 3 : 0; /* a UTF-8 byte order mark */
    while (k < n && (head[k] == ' ' || head[k] == '\t' || head[k] == '\r' || head[k] == '\n')) k++;
    if (k < n && head[k] == '{') return true;
    fprintf(stderr, "apr-tokenize: %s is not a GGUF file (no GGUF magic) nor a tokenizer.json (no JSON object)\n", path);
    return false;
}

/* The piece as printable text: the token's bytes, with controls and broken UTF-8 escaped. */
static void tokenize_show(const tok_vocab *v, int32_t id, char *out, size_t cap) {
    char bytes[256];
    int n = apr_tok_token_bytes(v, id, TOK_DECODE_SPECIAL, bytes, (int)sizeof bytes);
    if (n > (int)sizeof bytes) n = (int)sizeof bytes;
    size_t k = 0;
    for (int i = 0; i < n && k + 8 < cap;) {
        unsigned char c = (unsigned char)bytes[i];
        int l = c < 0x80 ? 1 : (c & 0xE0) == 0xC0 ? 2 : (c & 0xF0) == 0xE0 ? 3 : (c & 0xF8) == 0xF0 ? 4 : 0;
        bool whole = l > 1 && i + l <= n;
        for (int j = 1; whole && j < l; j++) whole = ((unsigned char)bytes[i + j] & 0xC0) == 0x80;
        if (whole) { memcpy(out + k, bytes + i, (size_t)l); k += (size_t)l; i += l; continue; }
        if (c == '\n') k += (size_t)snprintf(out + k, cap - k, "\\n");
        else if (c == '\t') k += (size_t)snprintf(out + k, cap - k, "\\t");
        else if (c == '\\') k += (size_t)snprintf(out + k, cap - k, "\\\\");
        else if (c < 0x20 || c >= 0x7F) k += (size_t)snprintf(out + k, cap - k, "\\x%02x", c);
        else out[k++] = (char)c;
        i++;
    }
    out[k] = 0;
}

int main(int argc, char **argv) {
    cli_common c = {0};
    const char *model = NULL;
    bool ids_only = false, no_bos = false, special = false;
    tokenize_input *in = calloc((size_t)argc + 1, sizeof *in);
    int n_in = 0, rc = CLI_EXIT_OK;
    if (!in) return CLI_EXIT_FAIL;
    for (int i = 1; i < argc; i++) {
        const char *v;
        int r = cli_parse_common(argc, argv, &i, &c);
        if (r < 0) { free(in); return CLI_EXIT_USAGE; }
        if (r > 0) continue;
        if ((v = cli_option_value(argc, argv, &i, "--model"))) model = v;
        else if ((v = cli_option_value(argc, argv, &i, "--prompt"))) in[n_in++] = (tokenize_input){NULL, (char *)v, strlen(v)};
        else if ((v = cli_option_value(argc, argv, &i, "--file"))) {
            if (!*v) { fprintf(stderr, "apr-tokenize: --file needs a path\n"); free(in); return CLI_EXIT_USAGE; }
            in[n_in++] = (tokenize_input){v, NULL, 0};
        } else if (!strcmp(argv[i], "--ids")) ids_only = true;
        else if (!strcmp(argv[i], "--no-bos")) no_bos = true;
        else if (!strcmp(argv[i], "--special")) special = true;
        else {
            fprintf(stderr, "apr-tokenize: unknown option '%s' (try --help)\n", argv[i]);
            free(in);
            return CLI_EXIT_USAGE;
        }
    }
    if (c.help) { printf("%s", tokenize_usage); free(in); return CLI_EXIT_OK; }
    if (!model || !*model) { fprintf(stderr, "apr-tokenize: --model FILE is required (try --help)\n"); free(in); return CLI_EXIT_USAGE; }

    tok_vocab *voc;
    apr_error e;
    if (c.backend) { /* tokenizing runs on no backend, but a name is checked as every tool checks it */
        apr_registry *reg;
        apr_backend *be;
        int brc = cli_open_backend(&c, &reg, &be);
        if (brc != CLI_EXIT_OK) { free(in); return brc; }
        apr_backend_close(be);
        apr_registry_close(reg);
    }
    if (!tokenize_check_model(model)) { free(in); return CLI_EXIT_FAIL; }
    if (apr_tok_load_file(model, &voc, &e)) { fprintf(stderr, "apr-tokenize: %s\n", e.msg); free(in); return CLI_EXIT_FAIL; }
    if (!n_in) in[n_in++] = (tokenize_input){"-", NULL, 0};
    for (int k = 0; k < n_in; k++) {
        if (!in[k].name) continue;
        bool std_in = !strcmp(in[k].name, "-");
        in[k].text = std_in ? cli_read_stream(stdin, CLI_TEXT_MAX, &in[k].len) : cli_read_file(in[k].name, CLI_TEXT_MAX, &in[k].len);
        if (!in[k].text) {
            if (errno == EFBIG)
                fprintf(stderr, "apr-tokenize: %s holds more than %zu MiB, more text than apr-tokenize reads\n", std_in ? "stdin" : in[k].name,
                        CLI_TEXT_MAX >> 20);
            else fprintf(stderr, "apr-tokenize: cannot read %s: %s\n", std_in ? "stdin" : in[k].name, strerror(errno));
            rc = CLI_EXIT_FAIL;
            goto done;
        }
    }

    unsigned flags = (no_bos ? TOK_ADD_EOS : TOK_ADD_SPECIAL) | (special ? TOK_PARSE_SPECIAL : 0);
    cJSON *root = c.json ? cJSON_CreateObject() : NULL, *arr = NULL;
    if (root) {
        cJSON_AddStringToObject(root, "model", model);
        cJSON_AddStringToObject(root, "type", apr_tok_model_kind(voc) == TOK_MODEL_SPM ? "spm" : "bpe");
        cJSON_AddStringToObject(root, "pre", apr_tok_pre_name(voc));
        cJSON_AddNumberToObject(root, "n_vocab", apr_tok_n_vocab(voc));
        arr = cJSON_AddArrayToObject(root, "inputs");
    }
    for (int k = 0; k < n_in && rc == CLI_EXIT_OK; k++) {
        int64_t n = apr_tok_encode(voc, in[k].text, in[k].len, flags, NULL, 0);
        int32_t *ids = n >= 0 ? malloc(((size_t)n + 1) * sizeof *ids) : NULL;
        if (!ids || apr_tok_encode(voc, in[k].text, in[k].len, flags, ids, n) != n) {
            fprintf(stderr, "apr-tokenize: out of memory\n");
            free(ids);
            rc = CLI_EXIT_FAIL;
            break;
        }
        if (root) {
            cJSON *o = cJSON_CreateObject(), *ja = cJSON_AddArrayToObject(o, "ids"), *pa = cJSON_AddArrayToObject(o, "pieces");
            for (int64_t i = 0; i < n; i++) {
                cJSON_AddItemToArray(ja, cJSON_CreateNumber(ids[i]));
                cJSON_AddItemToArray(pa, cJSON_CreateString(apr_tok_piece(voc, ids[i])));
            }
            cJSON_AddItemToArray(arr, o);
        } else if (ids_only) {
            for (int64_t i = 0; i < n; i++) printf(i ? " %d" : "%d", ids[i]);
            printf("\n");
        } else {
            if (k) printf("\n");
            for (int64_t i = 0; i < n; i++) {
                char shown[1200];
                tokenize_show(voc, ids[i], shown, sizeof shown);
                printf("%8d  '%s'\n", ids[i], shown);
            }
        }
        free(ids);
    }
    if (root) {
        if (rc == CLI_EXIT_OK) {
            char *s = cJSON_Print(root);
            if (s) printf("%s\n", s);
            free(s);
        }
        cJSON_Delete(root);
    }
done:
    for (int k = 0; k < n_in; k++)
        if (in[k].name) free(in[k].text);
    free(in);
    apr_tok_free(voc);
    return rc;
}
