/* tok_bytemap.c — GPT-2's byte-level alphabet: every byte is shown as a printable character.
 *
 * Bytes that are printable Latin-1 ('!'..'~', '¡'..'¬', '®'..'ÿ') stand for themselves; the other
 * 68 (controls, space, DEL, NBSP, soft hyphen) become U+0100, U+0101, ... in byte order, so a
 * space is "Ġ" (U+0120) and a newline "Ċ" (U+010A). */
#include "tok_internal.h"

static bool bytemap_is_direct(unsigned b) {
    return (b >= 0x21 && b <= 0x7E) || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE);
}

static uint32_t bytemap_cp(unsigned byte) {
    if (bytemap_is_direct(byte)) return byte;
    uint32_t k = 0;
    for (unsigned b = 0; b < byte; b++) k += !bytemap_is_direct(b);
    return 0x100 + k;
}

int bytemap_encode(uint8_t byte, char out[2]) {
    uint32_t cp = bytemap_cp(byte);
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    out[0] = (char)(0xC0 | (cp >> 6));
    out[1] = (char)(0x80 | (cp & 0x3F));
    return 2;
}

int bytemap_decode(uint32_t cp) {
    if (cp < 0x100) return bytemap_is_direct(cp) ? (int)cp : -1;
    if (cp >= 0x100 + 68) return -1;
    uint32_t k = cp - 0x100;
    for (unsigned b = 0; b < 256; b++)
        if (!bytemap_is_direct(b) && k-- == 0) return (int)b;
    return -1;
}
