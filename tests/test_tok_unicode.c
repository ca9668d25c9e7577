/* test_tok_unicode.c — the tokenizer.json normalizers against Unicode's own data files (Debian's
 * unicode-data, /usr/share/unicode): every line of NormalizationTest.txt through NFC, NFD, NFKC
 * and NFKD; Lowercase against the full lowercase mapping of UnicodeData.txt and SpecialCasing.txt
 * (Rust's char::to_lowercase, which Hugging Face uses); Strip against PropList.txt's White_Space.
 *
 * Every string goes through a vocabulary loaded from a tokenizer.json naming that normalizer, and
 * apr_tok_normalize, the code apr_tok_encode runs. Only code points assigned both in the data
 * files' Unicode version and in utf8proc's (DerivedAge.txt) are checked, so a newer file or
 * library on another system does not fail the test for characters the other does not know. */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <utf8proc.h>

#include "tokenizer.h"
#include "util/tu_paths.h"
#include "util/tu_tokjson.h"

#define TU_UNICODE_DIR "/usr/share/unicode"
#define TU_NCP 0x110000

static uint16_t tu_age[TU_NCP];   /* major * 100 + minor of the version that assigned each code point; 0 = unassigned */
static int tu_max_age;            /* the newer of the two may not be checked */

/* ---------------------------------------------------------------- reading the data files */

static char *tu_data(const char *name) {
    char path[256], bz[300];
    snprintf(path, sizeof path, "%s/%s", TU_UNICODE_DIR, name);
    if (!access(path, R_OK)) return tu_read_file(path, NULL);
    snprintf(bz, sizeof bz, "%s.bz2", path);
    if (access(bz, R_OK)) cr_skip_test("%s is missing: install Debian's unicode-data (scripts/deps.sh does)", path);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "bzip2 -dc '%s' 2>/dev/null", bz);
    FILE *p = popen(cmd, "r");
    cr_assert(p, "cannot run bzip2");
    size_t cap = 1 << 22, n = 0;
    char *buf = malloc(cap);
    for (size_t r; buf && (r = fread(buf + n, 1, cap - n - 1, p)) > 0;)
        if ((n += r) + 1 == cap) buf = realloc(buf, cap *= 2);
    int rc = pclose(p);
    if (rc || !n) cr_skip_test("cannot decompress %s (is bzip2 installed?)", bz);
    buf[n] = 0;
    return buf;
}

static int tu_version(const char *s) {   /* "15.0.0" or "15.0" -> 1500 */
    int major = 0, minor = 0;
    sscanf(s, "%d.%d", &major, &minor);
    return major * 100 + minor;
}

/* The assigned code points from DerivedAge.txt; tu_max_age = the older of its version and utf8proc's. */
static void tu_ages(void) {
    char *d = tu_data("DerivedAge.txt"), *v = strstr(d, "# DerivedAge-");
    cr_assert(v, "DerivedAge.txt has no version line");
    int data = tu_version(v + 13), lib = tu_version(utf8proc_unicode_version());
    tu_max_age = data < lib ? data : lib;
    cr_log_info("Unicode data %d.%d, utf8proc %s", data / 100, data % 100, utf8proc_unicode_version());
    memset(tu_age, 0, sizeof tu_age);
    for (char *line = d; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        unsigned lo, hi;
        char age[16];
        int k = sscanf(line, "%x..%x ; %15s", &lo, &hi, age);
        if (k != 3) {
            if (sscanf(line, "%x ; %15s", &lo, age) != 2) continue;
            hi = lo;
        }
        for (unsigned c = lo; c <= hi && c < TU_NCP; c++) tu_age[c] = (uint16_t)tu_version(age);
    }
    free(d);
}

/* A code point both versions assign and UTF-8 can carry. */
static bool tu_checked(uint32_t cp) {
    return cp < TU_NCP && tu_age[cp] && tu_age[cp] <= tu_max_age && !(cp >= 0xD800 && cp <= 0xDFFF);
}

static size_t tu_put(char *out, uint32_t cp) {
    return (size_t)utf8proc_encode_char((utf8proc_int32_t)cp, (utf8proc_uint8_t *)out);
}

static tok_vocab *tu_load(const char *normalizer) {
    tok_vocab *v;
    apr_error e;
    apr_status st = tu_tokjson_load(normalizer, NULL, &v, &e, NULL);
    cr_assert_eq(st, APR_OK, "%s: %s", normalizer, e.msg);
    return v;
}

TestSuite(tok_unicode, .timeout = 120);

/* ---------------------------------------------------------------- NormalizationTest.txt */

enum { TU_COLS = 5 };

typedef struct tu_norm_line {
    int lineno;
    char *col[TU_COLS];   /* UTF-8 */
} tu_norm_line;

/* Parses "1E0A 0323;1E0C 0307;..." columns; false when a code point is not checked here. */
static bool tu_parse_cols(const char *line, char *col[TU_COLS]) {
    const char *p = line;
    for (int c = 0; c < TU_COLS; c++) {
        char buf[256];
        size_t n = 0;
        while (*p && *p != ';') {
            char *e;
            unsigned long cp = strtoul(p, &e, 16);
            if (e == p) { p++; continue; }
            if (!tu_checked((uint32_t)cp)) {
                for (int k = 0; k < c; k++) free(col[k]);
                return false;
            }
            cr_assert_lt(n + 4, sizeof buf);
            n += tu_put(buf + n, (uint32_t)cp);
            p = e;
        }
        cr_assert_eq(*p, ';', "NormalizationTest.txt: line without 5 columns: %.80s", line);
        p++;
        buf[n] = 0;
        col[c] = strdup(buf);
    }
    return true;
}

/* Joins column c of every line with "\n": a starter that no character composes with and no
 * normalization changes, so the whole normalizes as each line alone does. */
static char *tu_join(const tu_norm_line *l, size_t n, int c) {
    size_t len = 0;
    for (size_t i = 0; i < n; i++) len += strlen(l[i].col[c]) + 1;
    char *s = malloc(len + 1), *o = s;
    for (size_t i = 0; i < n; i++) o += sprintf(o, "%s\n", l[i].col[c]);
    *o = 0;
    return s;
}

/* The conformance rules of NormalizationTest.txt's header, by the column each form gives:
 *   NFC:  c2 == toNFC(c1) == toNFC(c2) == toNFC(c3),  c4 == toNFC(c4) == toNFC(c5)
 *   NFD:  c3 == toNFD(c1) == toNFD(c2) == toNFD(c3),  c5 == toNFD(c4) == toNFD(c5)
 *   NFKC: c4 == toNFKC(c1 .. c5);  NFKD: c5 == toNFKD(c1 .. c5) */
static const struct {
    const char *json;
    int want[TU_COLS];   /* 0-based column that toX(column i) must equal */
} tu_forms[] = {
    {"{\"type\":\"NFC\"}", {1, 1, 1, 3, 3}},
    {"{\"type\":\"NFD\"}", {2, 2, 2, 4, 4}},
    {"{\"type\":\"NFKC\"}", {3, 3, 3, 3, 3}},
    {"{\"type\":\"NFKD\"}", {4, 4, 4, 4, 4}},
};

Test(tok_unicode, normalization_test_txt_every_line_and_form) {
    tu_ages();
    char *txt = tu_data("NormalizationTest.txt");
    static bool part1[TU_NCP];
    memset(part1, 0, sizeof part1);
    size_t cap = 32768, n = 0;
    int lineno = 0, skipped = 0, part = -1;
    tu_norm_line *lines = malloc(cap * sizeof *lines);
    for (char *line = txt, *next; line && *line; line = next) {
        next = strchr(line, '\n');
        if (next) *next++ = 0;
        lineno++;
        if (!strncmp(line, "@Part", 5)) { part = atoi(line + 5); continue; }
        if (!line[0] || line[0] == '#') continue;
        if (part == 1) part1[strtoul(line, NULL, 16)] = true;
        if (n == cap) lines = realloc(lines, (cap *= 2) * sizeof *lines);
        lines[n].lineno = lineno;
        if (tu_parse_cols(line, lines[n].col)) n++;
        else skipped++;
    }
    cr_log_info("NormalizationTest.txt: %zu lines checked, %d with code points newer than one of the two versions", n, skipped);
    cr_assert_gt(n, 10000, "NormalizationTest.txt: only %zu test lines", n);
    int bad = 0;
    for (size_t f = 0; f < sizeof tu_forms / sizeof tu_forms[0]; f++) {
        tok_vocab *v = tu_load(tu_forms[f].json);
        for (int c = 0; c < TU_COLS; c++) {
            char *in = tu_join(lines, n, c), *want = tu_join(lines, n, tu_forms[f].want[c]);
            char *got = tu_tokjson_norm(v, in);
            char *g = got, *w = want;
            for (size_t i = 0; i < n; i++) {   /* line by line, to name the failures */
                char *ge = strchr(g, '\n'), *we = strchr(w, '\n');
                cr_assert(ge && we, "%s: the line structure was lost", tu_forms[f].json);
                if ((ge - g != we - w || memcmp(g, w, (size_t)(we - w))) && bad++ < 10)
                    cr_log_error("NormalizationTest.txt line %d: %s of column %d is \"%.*s\", not column %d \"%.*s\"",
                                 lines[i].lineno, tu_forms[f].json, c + 1, (int)(ge - g), g, tu_forms[f].want[c] + 1,
                                 (int)(we - w), w);
                g = ge + 1;
                w = we + 1;
            }
            free(in);
            free(want);
            free(got);
        }
        apr_tok_free(v);
    }
    cr_assert_eq(bad, 0, "%d normalizations differ from NormalizationTest.txt", bad);

    /* Part 1's rule for every code point it does not list: X == toNFC(X) == toNFD(X) == ... */
    size_t len = 0, m = 0;
    char *all = malloc((size_t)TU_NCP * 5 + 1);
    for (uint32_t cp = 0; cp < TU_NCP; cp++)
        if (tu_checked(cp) && !part1[cp] && cp != '\n') { len += tu_put(all + len, cp); all[len++] = '\n'; m++; }
    all[len] = 0;
    for (size_t f = 0; f < sizeof tu_forms / sizeof tu_forms[0]; f++) {
        tok_vocab *v = tu_load(tu_forms[f].json);
        char *got = tu_tokjson_norm(v, all);
        cr_expect(!strcmp(got, all), "%s changes a code point Part 1 does not list", tu_forms[f].json);
        free(got);
        apr_tok_free(v);
    }
    cr_log_info("Part 1: %zu unlisted code points are unchanged by every form", m);
    free(all);
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < TU_COLS; c++) free(lines[i].col[c]);
    free(lines);
    free(txt);
}

/* ---------------------------------------------------------------- Lowercase */

/* apr_tok_normalize on text with NULs in it; the result as a malloc'd buffer of *n bytes. */
static char *tu_norm_n(const tok_vocab *v, const char *s, size_t len, size_t *n) {
    char *t = apr_tok_normalize(v, s, len, n);
    cr_assert(t, "apr_tok_normalize: out of memory");
    return t;
}

/* Field f (0-based, ';'-separated) of a data file line, up to the line's end or a '#'. */
static const char *tu_field(const char *line, int f) {
    for (; f > 0; f--) {
        line = strpbrk(line, ";\n#");
        if (!line || *line != ';') return NULL;
        line++;
    }
    return line;
}

/* Appends the code points a field lists ("0069 0307") as UTF-8; returns how many. */
static int tu_put_list(const char *f, char *out, size_t *len) {
    int k = 0;
    for (char *e;; f = e) {
        while (*f == ' ') f++;
        unsigned long cp = strtoul(f, &e, 16);
        if (e == f) return k;
        *len += tu_put(out + *len, (uint32_t)cp);
        k++;
    }
}

/* Every code point alone is lowercased as Rust's char::to_lowercase does: SpecialCasing.txt's
 * unconditional lowercase mapping where it has one, else UnicodeData.txt's simple lowercase
 * (field 13), else the code point itself. */
Test(tok_unicode, lowercase_is_the_full_lowercase_mapping) {
    tu_ages();
    char *ud = tu_data("UnicodeData.txt"), *sc = tu_data("SpecialCasing.txt");
    static char map[TU_NCP][8];   /* UTF-8 of the lowercase mapping; "" = the code point itself */
    static uint8_t maplen[TU_NCP];
    memset(maplen, 0, sizeof maplen);
    for (const char *line = ud; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        const char *lower = tu_field(line, 13);
        unsigned long cp = strtoul(line, NULL, 16);
        size_t n = 0;
        if (lower && cp < TU_NCP && tu_put_list(lower, map[cp], &n) == 1) maplen[cp] = (uint8_t)n;
    }
    int special = 0;
    for (const char *line = sc; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        if (*line == '#' || *line == '\n') continue;
        const char *cond = tu_field(line, 4);
        while (cond && *cond == ' ') cond++;
        if (cond && *cond && *cond != '#' && *cond != '\n') continue;   /* a conditional mapping (Final_Sigma, tr, lt, ...) */
        unsigned long cp = strtoul(line, NULL, 16);
        size_t n = 0;
        cr_assert(cp < TU_NCP && tu_put_list(tu_field(line, 1), map[cp], &n) > 0, "SpecialCasing.txt: %.60s", line);
        maplen[cp] = (uint8_t)n;
        special++;
    }
    cr_assert_gt(special, 50, "SpecialCasing.txt: only %d unconditional mappings", special);
    size_t cap = (size_t)TU_NCP * 4, il = 0, wl = 0, checked = 0;
    char *in = malloc(cap), *want = malloc(cap * 2);
    for (uint32_t cp = 0; cp < TU_NCP; cp++) {
        if (!tu_checked(cp)) continue;
        il += tu_put(in + il, cp);
        if (maplen[cp]) { memcpy(want + wl, map[cp], maplen[cp]); wl += maplen[cp]; }
        else wl += tu_put(want + wl, cp);
        checked++;
    }
    tok_vocab *v = tu_load("{\"type\":\"Lowercase\"}");
    size_t gl;
    char *got = tu_norm_n(v, in, il, &gl);
    if (gl != wl || memcmp(got, want, wl)) {   /* find the first code points that differ */
        int bad = 0;
        size_t go = 0, wo = 0;
        for (uint32_t cp = 0; cp < TU_NCP && bad < 5; cp++) {
            if (!tu_checked(cp)) continue;
            char one[8];
            size_t ol = tu_put(one, cp), n;
            char *g = tu_norm_n(v, one, ol, &n);
            const char *w = maplen[cp] ? map[cp] : one;
            size_t wn = maplen[cp] ? maplen[cp] : ol;
            if (n != wn || memcmp(g, w, n)) { cr_log_error("U+%04X lowercases to \"%.*s\", not \"%.*s\"", cp, (int)n, g, (int)wn, w); bad++; }
            free(g);
            go += n;
            wo += wn;
        }
    }
    cr_log_info("Lowercase: %zu code points checked, %d SpecialCasing.txt mappings", checked, special);
    cr_assert(gl == wl && !memcmp(got, want, wl), "Lowercase differs from UnicodeData.txt + SpecialCasing.txt");
    free(got);
    free(in);
    free(want);
    apr_tok_free(v);
    free(ud);
    free(sc);
}

/* ---------------------------------------------------------------- Strip */

/* Strip removes exactly the White_Space characters of PropList.txt (Rust's char::is_whitespace):
 * each of them goes from either side, all of them in a row, and no other code point does. */
Test(tok_unicode, strip_removes_exactly_white_space) {
    tu_ages();
    char *pl = tu_data("PropList.txt");
    static bool ws[TU_NCP];
    memset(ws, 0, sizeof ws);
    char all[256];
    size_t al = 0;
    int nws = 0;
    for (const char *line = pl; line && *line; line = strchr(line, '\n') ? strchr(line, '\n') + 1 : NULL) {
        unsigned lo, hi;
        char prop[32];
        int k = sscanf(line, "%x..%x ; %31s", &lo, &hi, prop);
        if (k != 3) {
            if (sscanf(line, "%x ; %31s", &lo, prop) != 2) continue;
            hi = lo;
        }
        if (strcmp(prop, "White_Space")) continue;
        for (unsigned c = lo; c <= hi; c++) {
            ws[c] = true;
            nws++;
            cr_assert_lt(al + 4, sizeof all);
            al += tu_put(all + al, c);
        }
    }
    free(pl);
    cr_assert_gt(nws, 20, "PropList.txt: only %d White_Space code points", nws);
    tok_vocab *both = tu_load("{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":true}");
    tok_vocab *left = tu_load("{\"type\":\"Strip\",\"strip_left\":true,\"strip_right\":false}");
    tok_vocab *right = tu_load("{\"type\":\"Strip\",\"strip_left\":false,\"strip_right\":true}");
    int bad = 0;
    size_t checked = 0;
    for (uint32_t cp = 0; cp < TU_NCP && bad < 10; cp++) {
        if (!tu_checked(cp)) continue;
        char c[4], in[600], want[600];
        size_t cl = tu_put(c, cp), il = 0, wl = 0, n;
        const tok_vocab *v = both;
        if (ws[cp]) {   /* c + "a" + c: left leaves "a" + c */
            memcpy(in, c, cl); in[cl] = 'a'; memcpy(in + cl + 1, c, cl);
            il = 2 * cl + 1;
            want[0] = 'a'; memcpy(want + 1, c, cl);
            wl = cl + 1;
            v = left;
        } else {        /* " \u3000" c "\u3000 ": both leave c */
            static const char wrap[] = " \xe3\x80\x80";
            size_t wl0 = sizeof wrap - 1;
            memcpy(in, wrap, wl0); memcpy(in + wl0, c, cl); memcpy(in + wl0 + cl, wrap, wl0);
            il = 2 * wl0 + cl;
            memcpy(want, c, cl);
            wl = cl;
        }
        char *got = tu_norm_n(v, in, il, &n);
        if ((n != wl || memcmp(got, want, n)) && bad++ < 10)
            cr_log_error("U+%04X (%s): Strip %s gives %zu bytes, not %zu", cp, ws[cp] ? "White_Space" : "not White_Space",
                         ws[cp] ? "left" : "both", n, wl);
        free(got);
        if (ws[cp]) {   /* right leaves c + "a"; both leave "a" */
            got = tu_norm_n(right, in, il, &n);
            if ((n != cl + 1 || memcmp(got, in, n)) && bad++ < 10) cr_log_error("U+%04X: Strip right keeps it", cp);
            free(got);
            got = tu_norm_n(both, in, il, &n);
            if ((n != 1 || got[0] != 'a') && bad++ < 10) cr_log_error("U+%04X: Strip both keeps it", cp);
            free(got);
        }
        checked++;
    }
    char run[600];   /* all White_Space characters around "x", on each side: both leave "x" */
    memcpy(run, all, al); run[al] = 'x'; memcpy(run + al + 1, all, al);
    size_t n;
    char *got = tu_norm_n(both, run, 2 * al + 1, &n);
    cr_expect(n == 1 && got[0] == 'x', "Strip does not remove every White_Space character in a row");
    free(got);
    cr_log_info("Strip: %zu code points checked, %d White_Space", checked, nws);
    cr_assert_eq(bad, 0, "Strip differs from PropList.txt's White_Space");
    apr_tok_free(both);
    apr_tok_free(left);
    apr_tok_free(right);
}
