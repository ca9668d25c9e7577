/* ft_plot.c — apr_ftplot_svg: a fine-tuning log's training and validation loss read from JSON lines and drawn as SVG. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <locale.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ft_plot.h"

/* ---------------------------------------------------------------- the two series */

typedef struct pl_pt {
    double x, y;                /* step, loss */
} pl_pt;

/* One curve: its points in log order, cut into stretches (polylines) where a non-finite value sat
 * or the step went back. */
typedef struct pl_series {
    pl_pt *pt;
    size_t n, cap;
    size_t *seg;                /* index of each stretch's first point */
    size_t n_seg, cap_seg;
    bool brk;                   /* the next point starts a new stretch */
    size_t skipped;             /* non-finite values */
} pl_series;

/* p with room for need elements (doubling *cap), or NULL with p left as it was. */
static void *pl_grow(void *p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return p;
    size_t c = *cap ? *cap * 2 : 256;
    while (c < need) c *= 2;
    void *q = realloc(p, c * elem);
    if (q) *cap = c;
    return q;
}

static bool pl_add(pl_series *s, double x, double y) {
    bool start = s->n == 0 || s->brk || x <= s->pt[s->n - 1].x;
    pl_pt *pt = pl_grow(s->pt, &s->cap, s->n + 1, sizeof *s->pt);
    if (!pt) return false;
    s->pt = pt;
    if (start) {
        size_t *seg = pl_grow(s->seg, &s->cap_seg, s->n_seg + 1, sizeof *s->seg);
        if (!seg) return false;
        s->seg = seg;
        s->seg[s->n_seg++] = s->n;
    }
    s->pt[s->n++] = (pl_pt){x, y};
    s->brk = false;
    return true;
}

static void pl_skip(pl_series *s) {
    s->brk = true;
    s->skipped++;
}

static void pl_series_free(pl_series *s) {
    free(s->pt);
    free(s->seg);
}

/* ---------------------------------------------------------------- reading the log */

/* Copies line into out (2 * n + 1 bytes) with every bare NaN / Infinity / inf (any case, with a
 * sign) outside strings replaced by null, which JSON can parse; other text is copied unchanged. */
static size_t pl_unbare(const char *in, size_t n, char *out) {
    size_t o = 0;
    bool str = false;
    for (size_t i = 0; i < n;) {
        char c = in[i];
        if (str) {
            out[o++] = in[i++];
            if (c == '\\' && i < n) out[o++] = in[i++];
            else if (c == '"') str = false;
            continue;
        }
        if (c == '"') {
            str = true;
            out[o++] = in[i++];
            continue;
        }
        size_t j = i + (c == '-' || c == '+');
        if (j < n && in[j] && strchr("nNiI", in[j])) {
            size_t k = j;
            while (k < n && ((in[k] | 0x20) >= 'a' && (in[k] | 0x20) <= 'z')) k++;
            size_t len = k - j;
            if ((len == 3 && !strncasecmp(in + j, "nan", 3)) || (len == 3 && !strncasecmp(in + j, "inf", 3)) ||
                (len == 8 && !strncasecmp(in + j, "infinity", 8))) {
                memcpy(out + o, "null", 4);
                o += 4;
                i = k;
                continue;
            }
            memcpy(out + o, in + i, k - i);   /* null, or a word cJSON will refuse */
            o += k - i;
            i = k;
            continue;
        }
        out[o++] = in[i++];
    }
    out[o] = 0;
    return o;
}

typedef struct pl_log {
    const char *path;
    pl_series train, val;
    char *buf;                  /* pl_unbare's output */
    size_t cap;
} pl_log;

/* A value of the line: *v a finite number, or NAN for null / a non-finite number; false (and err
 * set) for any other JSON type. */
static bool pl_number(const pl_log *lg, long line, const cJSON *item, const char *name, double *v, apr_error *err) {
    if (cJSON_IsNumber(item)) {
        *v = isfinite(item->valuedouble) ? item->valuedouble : NAN;
        return true;
    }
    if (cJSON_IsNull(item)) {
        *v = NAN;
        return true;
    }
    const char *what = cJSON_IsString(item) ? "a string" : cJSON_IsBool(item) ? "a boolean"
                     : cJSON_IsArray(item) ? "an array" : "an object";
    apr_error_set(err, APR_ERR_FORMAT, "%s:%ld: '%s' is %s, not a number", lg->path, line, name, what);
    return false;
}

/* One line of the log (without its newline). last_partial: the file's last line, with no newline. */
static apr_status pl_line(pl_log *lg, long line, const char *text, size_t n, bool last_partial, apr_error *err) {
    size_t a = 0;
    while (a < n && (text[a] == ' ' || text[a] == '\t' || text[a] == '\r')) a++;
    if (a == n) return APR_OK;
    if (memchr(text, 0, n)) {
        if (last_partial) return APR_OK;
        return apr_error_set(err, APR_ERR_FORMAT, "%s:%ld: the line holds a NUL byte", lg->path, line);
    }
    char *buf = pl_grow(lg->buf, &lg->cap, 2 * n + 1, 1);
    if (!buf) return apr_error_set(err, APR_ERR_NOMEM, "%s:%ld: out of memory", lg->path, line);
    lg->buf = buf;
    pl_unbare(text, n, lg->buf);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithOpts(lg->buf, &end, true);
    if (!root || !cJSON_IsObject(root)) {
        bool parsed = root != NULL;
        cJSON_Delete(root);
        if (last_partial) return APR_OK;   /* still being written */
        if (parsed) return apr_error_set(err, APR_ERR_FORMAT, "%s:%ld: not a JSON object", lg->path, line);
        long col = end ? (long)(end - lg->buf) + 1 : 1;
        return apr_error_set(err, APR_ERR_FORMAT, "%s:%ld: not valid JSON at column %ld", lg->path, line, col);
    }
    const cJSON *loss = cJSON_GetObjectItemCaseSensitive(root, "loss");
    const cJSON *val = cJSON_GetObjectItemCaseSensitive(root, "val_loss");
    const cJSON *step = cJSON_GetObjectItemCaseSensitive(root, "step");
    apr_status s = APR_OK;
    double x = 0, y = 0;
    if (!loss && !val) goto done;
    if (!step) {
        s = apr_error_set(err, APR_ERR_FORMAT, "%s:%ld: '%s' without a 'step'", lg->path, line, loss ? "loss" : "val_loss");
        goto done;
    }
    if (!pl_number(lg, line, step, "step", &x, err)) {
        s = APR_ERR_FORMAT;
        goto done;
    }
    struct { const cJSON *item; const char *name; pl_series *to; } v[2] = {
        {loss, "loss", &lg->train}, {val, "val_loss", &lg->val}};
    for (int i = 0; i < 2 && !s; i++) {
        if (!v[i].item) continue;
        if (!pl_number(lg, line, v[i].item, v[i].name, &y, err)) s = APR_ERR_FORMAT;
        else if (isnan(x) || isnan(y)) pl_skip(v[i].to);
        else if (!pl_add(v[i].to, x, y)) s = apr_error_set(err, APR_ERR_NOMEM, "%s:%ld: out of memory", lg->path, line);
    }
done:
    cJSON_Delete(root);
    return s;
}

static apr_status pl_read(pl_log *lg, apr_error *err) {
    FILE *fp = fopen(lg->path, "re");
    if (!fp) return apr_error_set(err, APR_ERR_IO, "%s: cannot open: %s", lg->path, strerror(errno));
    char *text = NULL;
    size_t cap = 0;
    apr_status s = APR_OK;
    long line = 0;
    for (ssize_t k; !s && (k = getline(&text, &cap, fp)) >= 0;) {
        line++;
        size_t n = (size_t)k;
        bool nl = n && text[n - 1] == '\n';
        s = pl_line(lg, line, text, n - nl, !nl, err);
    }
    if (!s && ferror(fp)) s = apr_error_set(err, APR_ERR_IO, "%s: cannot read: %s", lg->path, strerror(errno));
    free(text);
    fclose(fp);
    return s;
}

/* ---------------------------------------------------------------- axes */

typedef struct pl_axis {
    double lo, hi;              /* the values at the ends of the axis */
    double tick[32];
    int n_tick;
} pl_axis;

/* The spacing of about 6 ticks over span: 1, 2 or 5 times a power of ten; 0 when span is not positive. */
static double pl_tick_step(double span) {
    double raw = span / 6;
    if (!(raw > 0) || !isfinite(raw)) return 0;
    double p = pow(10, floor(log10(raw))), f = raw / p;
    return (f < 1.5 ? 1 : f < 3 ? 2 : f < 7 ? 5 : 10) * p;
}

/* The multiples of step in [lo, hi] (none when there would be too many: a span lost in rounding). */
static void pl_ticks(pl_axis *a, double step) {
    a->n_tick = 0;
    if (!(step > 0)) return;
    double k0 = ceil(a->lo / step - 1e-9), k1 = floor(a->hi / step + 1e-9);
    if (!isfinite(k0) || !isfinite(k1) || k1 - k0 > 30) return;
    for (double k = k0; k <= k1; k++) {
        double t = k * step;
        a->tick[a->n_tick++] = fabs(t) < step * 1e-9 ? 0 : t;
    }
}

/* The axis over [lo, hi] widened by margin (a fraction of the span; a zero span becomes -+ zero_pad
 * of |lo|, or -+ 1 at 0 or without zero_pad), then with round_out extended to the ticks around it;
 * ticks no closer than min_step. */
static void pl_axis_set(pl_axis *a, double lo, double hi, double margin, double zero_pad, bool round_out,
                        double min_step) {
    if (hi > lo) {
        double m = (hi - lo) * margin;
        a->lo = lo - m;
        a->hi = hi + m;
    } else {
        double d = lo != 0 && zero_pad > 0 ? fabs(lo) * zero_pad : 1;
        a->lo = lo - d;
        a->hi = lo + d;
    }
    double step = fmax(pl_tick_step(a->hi - a->lo), min_step);
    if (round_out && step > 0) {
        double l = floor(a->lo / step + 1e-9) * step, h = ceil(a->hi / step - 1e-9) * step;
        if (isfinite(l) && isfinite(h) && h > l) a->lo = l, a->hi = h;
    }
    pl_ticks(a, step);
}

static double pl_sx(const pl_axis *a, double x) {
    return APR_FTPLOT_X0 + (x - a->lo) / (a->hi - a->lo) * (APR_FTPLOT_X1 - APR_FTPLOT_X0);
}

static double pl_sy(const pl_axis *a, double y) {
    return APR_FTPLOT_Y1 - (y - a->lo) / (a->hi - a->lo) * (APR_FTPLOT_Y1 - APR_FTPLOT_Y0);
}

/* ---------------------------------------------------------------- writing the SVG */

/* Text as XML character data: the five markup characters as entities, control characters as
 * spaces, bytes outside well-formed UTF-8 as '?'. */
static void pl_text(FILE *o, const char *s) {
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        unsigned c = *p;
        if (c < 0x80) {
            switch (c) {
            case '&': fputs("&amp;", o); break;
            case '<': fputs("&lt;", o); break;
            case '>': fputs("&gt;", o); break;
            case '"': fputs("&quot;", o); break;
            case '\'': fputs("&apos;", o); break;
            default: fputc(c < 0x20 ? ' ' : (int)c, o);
            }
            p++;
            continue;
        }
        /* the length of a well-formed sequence at p, or 0 (overlongs and surrogates refused) */
        int len = c >= 0xC2 && c <= 0xDF ? 2 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xF0 && c <= 0xF4 ? 4 : 0;
        unsigned lo = c == 0xE0 ? 0xA0 : c == 0xF0 ? 0x90 : 0x80, hi = c == 0xED ? 0x9F : c == 0xF4 ? 0x8F : 0xBF;
        for (int i = 1; i < len; i++)
            if (p[i] < (i == 1 ? lo : 0x80) || p[i] > (i == 1 ? hi : 0xBF)) len = 0;
        if (len) {
            fwrite(p, 1, (size_t)len, o);
            p += len;
        } else {
            fputc('?', o);
            p++;
        }
    }
}

static void pl_series_svg(FILE *o, const pl_series *s, const pl_axis *ax, const pl_axis *ay, const char *cls,
                          const char *color, bool markers) {
    for (size_t g = 0; g < s->n_seg; g++) {
        size_t a = s->seg[g], b = g + 1 < s->n_seg ? s->seg[g + 1] : s->n;
        fprintf(o, "<polyline class=\"%s\" fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" stroke-linejoin=\"round\" "
                   "points=\"", cls, color);
        for (size_t i = a; i < b; i++)
            fprintf(o, "%s%.6g,%.6g", i > a ? " " : "", pl_sx(ax, s->pt[i].x), pl_sy(ay, s->pt[i].y));
        fputs("\"/>\n", o);
        if (!markers && b - a == 1)
            fprintf(o, "<circle class=\"%s\" cx=\"%.6g\" cy=\"%.6g\" r=\"2.5\" fill=\"%s\"/>\n", cls,
                    pl_sx(ax, s->pt[a].x), pl_sy(ay, s->pt[a].y), color);
    }
    if (markers)
        for (size_t i = 0; i < s->n; i++)
            fprintf(o, "<circle class=\"%s\" cx=\"%.6g\" cy=\"%.6g\" r=\"3\" fill=\"%s\"/>\n", cls, pl_sx(ax, s->pt[i].x),
                    pl_sy(ay, s->pt[i].y), color);
}

#define PL_TRAIN_COLOR "#1f77b4"
#define PL_VAL_COLOR "#d62728"

static void pl_line_svg(FILE *o, double x1, double y1, double x2, double y2) {
    fprintf(o, "<line x1=\"%.6g\" y1=\"%.6g\" x2=\"%.6g\" y2=\"%.6g\"/>\n", x1, y1, x2, y2);
}

/* A legend entry's line sample, in the box whose left edge is lx, on the row at height y. */
static void pl_legend_line(FILE *o, int lx, int y, const char *color) {
    fprintf(o, "<line x1=\"%d\" y1=\"%d\" x2=\"%d\" y2=\"%d\" stroke=\"%s\" stroke-width=\"1.5\"/>\n", lx + 8, y, lx + 32, y,
            color);
}

static void pl_svg(FILE *o, const pl_log *lg) {
    const pl_series *tr = &lg->train, *va = &lg->val;
    double x0 = INFINITY, x1 = -INFINITY, y0 = INFINITY, y1 = -INFINITY;
    bool whole = true;   /* every step an integer: no ticks between steps */
    for (int k = 0; k < 2; k++) {
        const pl_series *s = k ? va : tr;
        for (size_t i = 0; i < s->n; i++) {
            x0 = fmin(x0, s->pt[i].x), x1 = fmax(x1, s->pt[i].x);
            y0 = fmin(y0, s->pt[i].y), y1 = fmax(y1, s->pt[i].y);
            whole = whole && s->pt[i].x == floor(s->pt[i].x);
        }
    }
    pl_axis ax, ay;
    pl_axis_set(&ax, x0, x1, 0, 0, true, whole ? 1 : 0);
    pl_axis_set(&ay, y0, y1, 0.05, 0.1, false, 0);
    const char *name = strrchr(lg->path, '/');
    name = name ? name + 1 : lg->path;
    const int W = APR_FTPLOT_W, H = APR_FTPLOT_H, X0 = APR_FTPLOT_X0, X1 = APR_FTPLOT_X1, Y0 = APR_FTPLOT_Y0,
              Y1 = APR_FTPLOT_Y1;

    fputs("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n", o);
    fprintf(o, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" viewBox=\"0 0 %d %d\" "
               "font-family=\"sans-serif\" font-size=\"12\">\n", W, H, W, H);
    fprintf(o, "<!-- %zu training points, %zu validation points; %zu non-finite values not drawn (each breaks its "
               "curve) -->\n", tr->n, va->n, tr->skipped + va->skipped);
    fprintf(o, "<rect width=\"%d\" height=\"%d\" fill=\"white\"/>\n", W, H);
    fprintf(o, "<text class=\"title\" x=\"%d\" y=\"24\" text-anchor=\"middle\" font-size=\"16\">Loss: ", (X0 + X1) / 2);
    pl_text(o, name);
    fputs("</text>\n", o);

    fputs("<g class=\"grid\" stroke=\"#e5e5e5\" stroke-width=\"1\">\n", o);
    for (int i = 0; i < ax.n_tick; i++) pl_line_svg(o, pl_sx(&ax, ax.tick[i]), Y0, pl_sx(&ax, ax.tick[i]), Y1);
    for (int i = 0; i < ay.n_tick; i++) pl_line_svg(o, X0, pl_sy(&ay, ay.tick[i]), X1, pl_sy(&ay, ay.tick[i]));
    fputs("</g>\n", o);

    fputs("<g class=\"axes\" stroke=\"black\" stroke-width=\"1\">\n", o);
    pl_line_svg(o, X0, Y1, X1, Y1);
    pl_line_svg(o, X0, Y0, X0, Y1);
    for (int i = 0; i < ax.n_tick; i++) pl_line_svg(o, pl_sx(&ax, ax.tick[i]), Y1, pl_sx(&ax, ax.tick[i]), Y1 + 5);
    for (int i = 0; i < ay.n_tick; i++) pl_line_svg(o, X0 - 5, pl_sy(&ay, ay.tick[i]), X0, pl_sy(&ay, ay.tick[i]));
    fputs("</g>\n", o);
    fputs("<g class=\"ticks\">\n", o);
    for (int i = 0; i < ax.n_tick; i++)
        fprintf(o, "<text x=\"%.6g\" y=\"%d\" text-anchor=\"middle\">%.6g</text>\n", pl_sx(&ax, ax.tick[i]), Y1 + 18,
                ax.tick[i]);
    for (int i = 0; i < ay.n_tick; i++)
        fprintf(o, "<text x=\"%d\" y=\"%.6g\" text-anchor=\"end\">%.6g</text>\n", X0 - 8, pl_sy(&ay, ay.tick[i]) + 4,
                ay.tick[i]);
    fputs("</g>\n", o);
    fprintf(o, "<text class=\"xlabel\" x=\"%d\" y=\"%d\" text-anchor=\"middle\">step</text>\n", (X0 + X1) / 2, H - 12);
    fprintf(o, "<text class=\"ylabel\" x=\"18\" y=\"%d\" text-anchor=\"middle\" transform=\"rotate(-90 18 %d)\">"
               "loss</text>\n", (Y0 + Y1) / 2, (Y0 + Y1) / 2);

    pl_series_svg(o, tr, &ax, &ay, "train", PL_TRAIN_COLOR, false);
    pl_series_svg(o, va, &ax, &ay, "val", PL_VAL_COLOR, true);

    int n_leg = (tr->n > 0) + (va->n > 0), lx = X1 - 150, ly = Y0 + 10;
    fputs("<g class=\"legend\">\n", o);
    fprintf(o, "<rect x=\"%d\" y=\"%d\" width=\"140\" height=\"%d\" fill=\"white\" fill-opacity=\"0.85\" "
               "stroke=\"#999999\"/>\n", lx, ly, 10 + 20 * n_leg);
    int row = ly + 15;
    if (tr->n) {
        pl_legend_line(o, lx, row, PL_TRAIN_COLOR);
        fprintf(o, "<text x=\"%d\" y=\"%d\">training loss</text>\n", lx + 40, row + 4);
        row += 20;
    }
    if (va->n) {
        pl_legend_line(o, lx, row, PL_VAL_COLOR);
        fprintf(o, "<circle cx=\"%d\" cy=\"%d\" r=\"3\" fill=\"%s\"/>\n", lx + 20, row, PL_VAL_COLOR);
        fprintf(o, "<text x=\"%d\" y=\"%d\">validation loss</text>\n", lx + 40, row + 4);
    }
    fputs("</g>\n</svg>\n", o);
}

/* Writes the SVG into a new temporary file beside svg_path and renames it over svg_path. */
static apr_status pl_write(const pl_log *lg, const char *svg_path, apr_error *err) {
    size_t n = strlen(svg_path) + 48;
    char *tmp = malloc(n);
    if (!tmp) return apr_error_set(err, APR_ERR_NOMEM, "%s: out of memory", svg_path);
    int fd = -1, e = EEXIST;
    for (unsigned k = 0; k < 1000 && e == EEXIST; k++) {
        snprintf(tmp, n, "%s.tmp.%ld.%u", svg_path, (long)getpid(), k);
        fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        e = fd < 0 ? errno : 0;
    }
    if (fd < 0) {
        free(tmp);
        return apr_error_set(err, APR_ERR_IO, "%s: cannot create a temporary file beside it: %s", svg_path, strerror(e));
    }
    FILE *o = fdopen(fd, "w");
    const char *step = "cannot write";
    if (!o) {
        e = errno;
        close(fd);
    } else {
        errno = 0;
        pl_svg(o, lg);
        e = fflush(o) != 0 || ferror(o) ? (errno ? errno : EIO) : 0;
        if (!e && fsync(fileno(o)) != 0 && errno != EINVAL) e = errno, step = "cannot sync";
        if (fclose(o) != 0 && !e) e = errno, step = "cannot close";
    }
    if (!e && rename(tmp, svg_path) != 0) e = errno, step = "cannot rename the temporary file onto";
    apr_status s = APR_OK;
    if (e) {
        unlink(tmp);
        s = apr_error_set(err, APR_ERR_IO, "%s: %s it: %s", svg_path, step, strerror(e));
    }
    free(tmp);
    return s;
}

/* ---------------------------------------------------------------- entry */

LLM_API apr_status apr_ftplot_svg(const char *log_path, const char *svg_path, apr_error *err) {
    if (!log_path || !svg_path)
        return apr_error_set(err, APR_ERR_INVALID, "apr_ftplot_svg: no %s path", log_path ? "SVG" : "log");
    /* numbers read and written with '.', whatever the caller's locale */
    locale_t c = newlocale(LC_NUMERIC_MASK, "C", (locale_t)0), old = c ? uselocale(c) : (locale_t)0;
    pl_log lg = {.path = log_path};
    apr_status s = pl_read(&lg, err);
    if (!s && !lg.train.n && !lg.val.n) {
        size_t skipped = lg.train.skipped + lg.val.skipped;
        if (skipped)
            s = apr_error_set(err, APR_ERR_FORMAT, "%s: no loss values to plot (%zu non-finite)", log_path, skipped);
        else s = apr_error_set(err, APR_ERR_FORMAT, "%s: no loss values to plot", log_path);
    }
    if (!s) s = pl_write(&lg, svg_path, err);
    pl_series_free(&lg.train);
    pl_series_free(&lg.val);
    free(lg.buf);
    if (c) {
        uselocale(old);
        freelocale(c);
    }
    return s;
}
