/* fuzz_replay.c — a main() for any libFuzzer harness: runs the files named on the command line
 * through LLVMFuzzerTestOneInput, to replay a crash or a regression input without libFuzzer
 * (link it with the harness instead of -fsanitize=fuzzer; AFL++'s file mode can use it too). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int main(int argc, char **argv) {
    for (int i = 1; i < argc; i++) {
        FILE *fp = fopen(argv[i], "rb");
        if (!fp) { perror(argv[i]); return 1; }
        fseek(fp, 0, SEEK_END);
        long n = ftell(fp);
        fseek(fp, 0, SEEK_SET);
        uint8_t *buf = malloc(n > 0 ? (size_t)n : 1);
        if (n < 0 || !buf || fread(buf, 1, (size_t)n, fp) != (size_t)n) { fprintf(stderr, "%s: read failed\n", argv[i]); return 1; }
        fclose(fp);
        LLVMFuzzerTestOneInput(buf, (size_t)n);
        free(buf);
        printf("%s: ok\n", argv[i]);
    }
    return 0;
}
