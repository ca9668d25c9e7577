/* tok_utf8.c — UTF-8 sequence lengths and strict decoding (no overlongs, surrogates or > U+10FFFF). */
#include "tok_internal.h"

int utf8_len(uint8_t lead) {
    if (lead < 0x80) return 1;
    if ((lead & 0xE0) == 0xC0) return 2;
    if ((lead & 0xF0) == 0xE0) return 3;
    if ((lead & 0xF8) == 0xF0) return 4;
    return 1;
}

int utf8_decode(const uint8_t *s, size_t n, uint32_t *cp, bool *incomplete) {
    *incomplete = false;
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int need;
    uint32_t v, lo = 0x80, hi = 0xBF;   /* the allowed range of the second byte */
    if (c >= 0xC2 && c <= 0xDF) { need = 2; v = c & 0x1F; }
    else if (c >= 0xE0 && c <= 0xEF) {
        need = 3; v = c & 0x0F;
        if (c == 0xE0) lo = 0xA0;        /* no overlongs */
        if (c == 0xED) hi = 0x9F;        /* no surrogates */
    } else if (c >= 0xF0 && c <= 0xF4) {
        need = 4; v = c & 0x07;
        if (c == 0xF0) lo = 0x90;
        if (c == 0xF4) hi = 0x8F;        /* nothing past U+10FFFF */
    } else return 0;
    for (int i = 1; i < need; i++) {
        if ((size_t)i >= n) { *incomplete = true; return 0; }
        uint8_t b = s[i];
        if (i == 1 ? (b < lo || b > hi) : (b & 0xC0) != 0x80) return 0;
        v = (v << 6) | (b & 0x3F);
    }
    *cp = v;
    return need;
}
