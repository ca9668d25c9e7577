/* test_ftplot.c — the loss plot of a fine-tuning log (llm/ft_plot.c): a well-formed SVG with one polyline per series,
 * axis labels, round ticks and a legend, points where the header's mapping puts them, non-finite values and resumed
 * steps breaking the curve, one point and 100k points, and errors that name the log and line and leave no SVG. */
#include <criterion/criterion.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "apr/apr.h"
#include "ft_plot.h"
#include "util/tu_dir.h"
#include "util/tu_paths.h"

/* ---------------------------------------------------------------- scratch folder */

static char pt_tmp[PATH_MAX];
static char pt_log[PATH_MAX + 64];
static char pt_svg[PATH_MAX + 64];

static void pt_setup(void) {
    snprintf(pt_tmp, sizeof pt_tmp, "/tmp/apr-test-ftplot-XXXXXX");
    cr_assert(mkdtemp(pt_tmp), "mkdtemp: %s", strerror(errno));
    snprintf(pt_log, sizeof pt_log, "%s/train.jsonl", pt_tmp);
    snprintf(pt_svg, sizeof pt_svg, "%s/loss.svg", pt_tmp);
}

static void pt_teardown(void) {
    char cmd[PATH_MAX + 16];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", pt_tmp);
    cr_expect_eq(system(cmd), 0);
}

TestSuite(ftplot, .init = pt_setup, .fini = pt_teardown, .timeout = 60);

static void pt_write(const char *path, const char *text) {
    FILE *fp = fopen(path, "wb");
    cr_assert(fp, "%s: %s", path, strerror(errno));
    cr_assert(fputs(text, fp) >= 0 && fclose(fp) == 0);
}

static const char *pt_list(void) {
    static char out[4096];
    return tu_dir_list(pt_tmp, out, sizeof out);
}

/* Plots pt_log into pt_svg, which must succeed; returns the SVG text (malloc'd). */
static char *pt_plot_ok(void) {
    apr_error e = {{0}};
    apr_status s = apr_ftplot_svg(pt_log, pt_svg, &e);
    cr_assert_eq(s, APR_OK, "%s: %s", apr_status_name(s), e.msg);
    return tu_read_file(pt_svg, NULL);
}

/* ---------------------------------------------------------------- reading the SVG back */

/* Well-formed enough: every tag closed in order, quoted attributes, '&' only in the five entities,
 * comments closed, one <svg> root. Fails the test with the offending position otherwise. */
static void pt_check_xml(const char *svg) {
    char stack[16][32];
    int depth = 0, roots = 0;
    const char *p = svg;
    cr_assert(!strncmp(p, "<?xml ", 6), "no XML declaration");
    p = strstr(p, "?>");
    cr_assert(p);
    p += 2;
    while (*p) {
        if (*p == '&') {
            static const char *const ents[] = {"&amp;", "&lt;", "&gt;", "&quot;", "&apos;"};
            bool ok = false;
            for (int i = 0; i < 5; i++) ok = ok || !strncmp(p, ents[i], strlen(ents[i]));
            cr_assert(ok, "a bare '&' at %td: %.40s", p - svg, p);
        }
        if (*p == '>') cr_assert_fail("a bare '>' at %td", p - svg);
        if (*p != '<') {
            p++;
            continue;
        }
        if (!strncmp(p, "<!--", 4)) {
            const char *end = strstr(p + 4, "-->");
            cr_assert(end, "unclosed comment at %td", p - svg);
            cr_assert(!memmem(p + 4, (size_t)(end - p - 4), "--", 2), "'--' inside a comment at %td", p - svg);
            p = end + 3;
            continue;
        }
        bool close = p[1] == '/';
        const char *name = p + 1 + close;
        size_t len = strspn(name, "abcdefghijklmnopqrstuvwxyz");
        cr_assert(len > 0 && len < 32, "a bad tag at %td: %.40s", p - svg, p);
        const char *q = name + len;
        bool quote = false;
        for (; *q && (quote || *q != '>'); q++) {
            if (*q == '"') quote = !quote;
            cr_assert(quote || *q != '<', "'<' inside a tag at %td", q - svg);
        }
        cr_assert(*q == '>', "unterminated tag at %td", p - svg);
        bool self = q[-1] == '/';
        if (close) {
            cr_assert(depth > 0, "</%.*s> closes nothing", (int)len, name);
            depth--;
            cr_assert(strlen(stack[depth]) == len && !strncmp(stack[depth], name, len), "</%.*s> closes <%s>", (int)len,
                      name, stack[depth]);
        } else if (!self) {
            cr_assert(depth < 16, "nested too deep");
            if (depth == 0) roots++;
            snprintf(stack[depth++], sizeof stack[0], "%.*s", (int)len, name);
        } else {
            cr_assert(depth > 0, "a self-closing <%.*s> outside <svg>", (int)len, name);
        }
        p = q + 1;
    }
    cr_assert_eq(depth, 0, "<%s> not closed", depth ? stack[depth - 1] : "");
    cr_assert_eq(roots, 1);
    cr_assert(strstr(svg, "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"800\" height=\"480\""));
}

static int pt_count(const char *hay, const char *needle) {
    int n = 0;
    for (const char *p = hay; (p = strstr(p, needle)); p += strlen(needle)) n++;
    return n;
}

/* The points of the k-th <polyline class="cls"> (x, y pairs into xy, at most cap pairs); -1 when there is none. */
static long pt_polyline(const char *svg, const char *cls, int k, double *xy, long cap) {
    char tag[64];
    snprintf(tag, sizeof tag, "<polyline class=\"%s\"", cls);
    const char *p = svg;
    for (int i = 0; i <= k; i++) {
        p = strstr(p, tag);
        if (!p) return -1;
        p += strlen(tag);
    }
    p = strstr(p, "points=\"");
    cr_assert(p);
    p += 8;
    long n = 0;
    while (*p != '"') {
        char *end;
        double x = strtod(p, &end);
        cr_assert(end != p && *end == ',', "bad point at %.30s", p);
        double y = strtod(end + 1, &end);
        cr_assert(*end == ' ' || *end == '"', "bad point at %.30s", p);
        if (xy && n < cap) xy[2 * n] = x, xy[2 * n + 1] = y;
        n++;
        p = *end == ' ' ? end + 1 : end;
    }
    return n;
}

/* ---------------------------------------------------------------- what a plot holds */

static const char pt_mixed_log[] =
    "{\"event\": \"start\", \"config\": {\"lr\": 0.0003}}\n"
    "{\"step\": 10, \"loss\": 4.0, \"lr\": 0.0003, \"tok_s\": 812.5, \"elapsed_s\": 14.2}\n"
    "{\"step\": 20, \"loss\": 3.8, \"lr\": 0.0003}\n"
    "\n"
    "{\"step\": 30, \"loss\": 3.5, \"note\": \"nan inf NaN in a string stay text\"}\r\n"
    "{\"step\": 40, \"loss\": 3.3}\n"
    "{\"step\": 50, \"loss\": 3.2, \"val_loss\": 3.4}\n"
    "{\"step\": 60, \"loss\": 3.0}\n"
    "{\"step\": 70, \"loss\": 2.9}\n"
    "{\"step\": 80, \"loss\": 2.7}\n"
    "{\"step\": 90, \"loss\": 2.6}\n"
    "{\"step\": 100, \"val_loss\": 2.8}\n"
    "   \n"
    "{\"step\": 100, \"loss\": 2.5, \"grad_norm\": null}\n";

Test(ftplot, training_and_validation_give_two_polylines_axes_and_a_legend) {
    pt_write(pt_log, pt_mixed_log);
    char *svg = pt_plot_ok();
    pt_check_xml(svg);
    cr_expect_eq(pt_count(svg, "<polyline class=\"train\""), 1);
    cr_expect_eq(pt_count(svg, "<polyline class=\"val\""), 1);
    cr_expect_eq(pt_polyline(svg, "train", 0, NULL, 0), 10);
    cr_expect_eq(pt_polyline(svg, "val", 0, NULL, 0), 2);
    cr_expect_eq(pt_count(svg, "<circle class=\"val\""), 2, "one marker per validation point");
    cr_expect_eq(pt_count(svg, "<circle class=\"train\""), 0);
    cr_expect(strstr(svg, ">Loss: train.jsonl</text>"), "no title");
    cr_expect(strstr(svg, "class=\"xlabel\"") && strstr(svg, ">step</text>"));
    cr_expect(strstr(svg, "class=\"ylabel\"") && strstr(svg, ">loss</text>"));
    cr_expect(strstr(svg, "<g class=\"legend\">") && strstr(svg, ">training loss</text>") &&
              strstr(svg, ">validation loss</text>"));
    cr_expect(strstr(svg, "<!-- 10 training points, 2 validation points; 0 non-finite"));
    /* x: 10..100 extended to 0..100, ticks every 20; y: 2.5..4 widened by 0.075, ticks every 0.2 */
    double xy[20];
    cr_assert_eq(pt_polyline(svg, "train", 0, xy, 10), 10);
    cr_expect_float_eq(xy[0], APR_FTPLOT_X0 + (APR_FTPLOT_X1 - APR_FTPLOT_X0) / 10.0, 1e-3);
    for (int t = 0; t <= 100; t += 20) {
        char label[64];
        snprintf(label, sizeof label, "text-anchor=\"middle\">%d</text>", t);
        cr_expect(strstr(svg, label), "no x tick %d", t);
    }
    cr_expect(strstr(svg, "text-anchor=\"end\">2.6</text>") && strstr(svg, "text-anchor=\"end\">4</text>"), "no y ticks");
    cr_expect_eq(pt_count(svg, "text-anchor=\"end\">"), 8, "y ticks 2.6, 2.8, ..., 4");
    cr_expect_null(strstr(svg, "nan"));
    cr_expect_str_eq(pt_list(), "loss.svg,train.jsonl", "a temporary file was left");
    free(svg);
}

Test(ftplot, a_known_point_lands_where_the_mapping_says) {
    pt_write(pt_log, "{\"step\": 0, \"loss\": 4.0}\n{\"step\": 50, \"loss\": 3.0}\n{\"step\": 100, \"loss\": 2.0}\n");
    char *svg = pt_plot_ok();
    pt_check_xml(svg);
    double xy[6];
    cr_assert_eq(pt_polyline(svg, "train", 0, xy, 3), 3);
    /* x: 0..100 onto X0..X1; y: 2..4 widened by 5% of 2 on each side = 1.9..4.1, onto Y1..Y0 */
    double sy4 = APR_FTPLOT_Y1 - (4.0 - 1.9) / 2.2 * (APR_FTPLOT_Y1 - APR_FTPLOT_Y0);
    cr_expect_float_eq(xy[0], APR_FTPLOT_X0, 1e-3);
    cr_expect_float_eq(xy[1], sy4, 1e-3);
    cr_expect_float_eq(xy[2], (APR_FTPLOT_X0 + APR_FTPLOT_X1) / 2.0, 1e-3);
    cr_expect_float_eq(xy[3], (APR_FTPLOT_Y0 + APR_FTPLOT_Y1) / 2.0, 1e-3);
    cr_expect_float_eq(xy[4], APR_FTPLOT_X1, 1e-3);
    cr_expect_float_eq(xy[5], APR_FTPLOT_Y1 - (2.0 - 1.9) / 2.2 * (APR_FTPLOT_Y1 - APR_FTPLOT_Y0), 1e-3);
    /* the y tick 3 sits at the middle point's height (its label 4 px lower, at the baseline) */
    char tick[96];
    snprintf(tick, sizeof tick, "<text x=\"%d\" y=\"%.6g\" text-anchor=\"end\">3</text>", APR_FTPLOT_X0 - 8,
             (APR_FTPLOT_Y0 + APR_FTPLOT_Y1) / 2.0 + 4);
    cr_expect(strstr(svg, tick), "no '%s'", tick);
    cr_expect(strstr(svg, "text-anchor=\"middle\">0</text>") && strstr(svg, "text-anchor=\"middle\">100</text>"));
    /* numbers are %.6g: no long fractions */
    cr_expect(strstr(svg, "points=\"70,57.7273 425,235 780,412.273\""), "points as %%.6g: %s", strstr(svg, "points="));
    free(svg);
}

Test(ftplot, non_finite_values_are_skipped_and_break_the_curve) {
    pt_write(pt_log,
             "{\"step\": 1, \"loss\": 3.0}\n"
             "{\"step\": 2, \"loss\": 2.9}\n"
             "{\"step\": 3, \"loss\": NaN}\n"
             "{\"step\": 4, \"loss\": 2.8, \"val_loss\": Infinity}\n"
             "{\"step\": 5, \"loss\": 2.7, \"val_loss\": 2.75}\n"
             "{\"step\": 6, \"loss\": -nan}\n"
             "{\"step\": 7, \"loss\": null}\n"
             "{\"step\": 8, \"loss\": 1e999}\n"
             "{\"step\": NaN, \"loss\": 2.5}\n"
             "{\"step\": 10, \"loss\": 2.4, \"val_loss\": -inf}\n"
             "{\"step\": 11, \"loss\": 2.3}\n");
    char *svg = pt_plot_ok();
    pt_check_xml(svg);
    cr_expect_eq(pt_polyline(svg, "train", 0, NULL, 0), 2, "steps 1-2");
    cr_expect_eq(pt_polyline(svg, "train", 1, NULL, 0), 2, "steps 4-5");
    cr_expect_eq(pt_polyline(svg, "train", 2, NULL, 0), 2, "steps 10-11");
    cr_expect_eq(pt_polyline(svg, "train", 3, NULL, 0), -1);
    cr_expect_eq(pt_polyline(svg, "val", 0, NULL, 0), 1);
    cr_expect(strstr(svg, "<!-- 6 training points, 1 validation points; 7 non-finite values not drawn"), "%.200s",
              strstr(svg, "<!--"));
    cr_expect_null(strstr(svg, "nan"));
    cr_expect_null(strstr(svg, "inf"));
    free(svg);
}

Test(ftplot, a_step_going_back_starts_a_new_polyline) {
    pt_write(pt_log,
             "{\"step\": 1, \"loss\": 3.0}\n{\"step\": 2, \"loss\": 2.9}\n{\"step\": 3, \"loss\": 2.8}\n"
             "{\"step\": 2, \"loss\": 2.85}\n{\"step\": 3, \"loss\": 2.75}\n{\"step\": 4, \"loss\": 2.7}\n");
    char *svg = pt_plot_ok();
    cr_expect_eq(pt_polyline(svg, "train", 0, NULL, 0), 3);
    cr_expect_eq(pt_polyline(svg, "train", 1, NULL, 0), 3);
    /* steps 1..4 are whole: ticks 1, 2, 3, 4, none at 1.5 */
    cr_expect_eq(pt_count(svg, "text-anchor=\"middle\">"), 4 + 1, "the x ticks and the x label");
    cr_expect(strstr(svg, "text-anchor=\"middle\">4</text>") && !strstr(svg, "text-anchor=\"middle\">1.5</text>"));
    free(svg);
}

Test(ftplot, one_point_is_drawn_with_a_marker) {
    pt_write(pt_log, "{\"step\": 7, \"loss\": 2.5}\n");
    char *svg = pt_plot_ok();
    pt_check_xml(svg);
    double xy[2];
    cr_expect_eq(pt_polyline(svg, "train", 0, xy, 1), 1);
    cr_expect_eq(pt_count(svg, "<circle class=\"train\""), 1);
    /* one step s: the x axis is s-1..s+1; one loss v: v -+ 10% */
    cr_expect_float_eq(xy[0], (APR_FTPLOT_X0 + APR_FTPLOT_X1) / 2.0, 1e-3);
    cr_expect_float_eq(xy[1], (APR_FTPLOT_Y0 + APR_FTPLOT_Y1) / 2.0, 1e-3);
    cr_expect(strstr(svg, "text-anchor=\"middle\">7</text>") && strstr(svg, "text-anchor=\"end\">2.5</text>"));
    cr_expect(strstr(svg, ">training loss</text>") && !strstr(svg, ">validation loss</text>"));
    cr_expect_null(strstr(svg, "nan"));
    free(svg);

    pt_write(pt_log, "{\"step\": 0, \"val_loss\": 0}\n");   /* validation only, at zero */
    svg = pt_plot_ok();
    pt_check_xml(svg);
    cr_expect_eq(pt_polyline(svg, "val", 0, NULL, 0), 1);
    cr_expect(!strstr(svg, ">training loss</text>") && strstr(svg, ">validation loss</text>"));
    cr_expect_null(strstr(svg, "nan"));
    free(svg);
}

Test(ftplot, a_hundred_thousand_points, .timeout = 120) {
    FILE *fp = fopen(pt_log, "w");
    cr_assert(fp);
    for (int i = 1; i <= 100000; i++) {
        fprintf(fp, "{\"step\": %d, \"loss\": %.6g, \"lr\": 0.0003, \"tok_s\": 812.5}\n", i, 2 + 3 * exp(-i / 20000.0));
        if (i % 100 == 0) fprintf(fp, "{\"step\": %d, \"val_loss\": %.6g}\n", i, 2.2 + 3 * exp(-i / 20000.0));
    }
    cr_assert_eq(fclose(fp), 0);
    char *svg = pt_plot_ok();
    pt_check_xml(svg);
    double *xy = malloc(2 * 100000 * sizeof *xy);
    cr_assert(xy);
    cr_expect_eq(pt_polyline(svg, "train", 0, xy, 100000), 100000);
    cr_expect_eq(pt_polyline(svg, "train", 1, NULL, 0), -1);
    cr_expect_eq(pt_polyline(svg, "val", 0, NULL, 0), 1000);
    cr_expect_eq(pt_count(svg, "<circle class=\"val\""), 1000);
    /* steps 1..100000: the x axis is 0..100000 (ticks every 20000) */
    cr_expect_float_eq(xy[0], APR_FTPLOT_X0 + (APR_FTPLOT_X1 - APR_FTPLOT_X0) / 1e5, 1e-3);
    cr_expect_float_eq(xy[2 * 99999], APR_FTPLOT_X1, 1e-3);
    cr_expect(strstr(svg, "text-anchor=\"middle\">0</text>") && strstr(svg, "text-anchor=\"middle\">20000</text>"));
    for (long i = 0; i < 100000; i++)
        if (xy[2 * i + 1] < APR_FTPLOT_Y0 || xy[2 * i + 1] > APR_FTPLOT_Y1) cr_assert_fail("point %ld outside the plot", i);
    free(xy);
    free(svg);
}

Test(ftplot, text_is_xml_escaped) {
    char odd[PATH_MAX + 64];
    snprintf(odd, sizeof odd, "%s/run <1> & 'b' \"c\" \xff\xc3\xa9--.jsonl", pt_tmp);
    pt_write(odd, "{\"step\": 1, \"loss\": 1}\n{\"step\": 2, \"loss\": 0.5}\n");
    apr_error e = {{0}};
    cr_assert_eq(apr_ftplot_svg(odd, pt_svg, &e), APR_OK, "%s", e.msg);
    char *svg = tu_read_file(pt_svg, NULL);
    pt_check_xml(svg);
    cr_expect(strstr(svg, ">Loss: run &lt;1&gt; &amp; &apos;b&apos; &quot;c&quot; ?\xc3\xa9--.jsonl</text>"), "%.300s",
              strstr(svg, "class=\"title\""));
    free(svg);
}

Test(ftplot, a_partial_last_line_is_still_being_written) {
    pt_write(pt_log, "{\"step\": 1, \"loss\": 3}\n{\"step\": 2, \"loss\": 2.5}\n{\"step\": 3, \"lo");
    char *svg = pt_plot_ok();
    cr_expect_eq(pt_polyline(svg, "train", 0, NULL, 0), 2);
    free(svg);
}

Test(ftplot, an_existing_svg_is_replaced_whole) {
    pt_write(pt_svg, "old");
    pt_write(pt_log, pt_mixed_log);
    char *svg = pt_plot_ok();
    cr_expect(!strncmp(svg, "<?xml", 5));
    struct stat sb;
    cr_assert_eq(stat(pt_svg, &sb), 0);
    mode_t um = umask(0);
    umask(um);
    cr_expect_eq(sb.st_mode & 0777, 0666 & ~um, "mode %o", (unsigned)(sb.st_mode & 0777));
    cr_expect_str_eq(pt_list(), "loss.svg,train.jsonl");
    free(svg);
}

/* ---------------------------------------------------------------- errors */

/* Plotting text must fail with want and a message holding every needle (NULL-terminated), leaving an
 * earlier SVG as it was (with_old) or none at all, and nothing else in the folder. */
static void pt_expect_fails(const char *text, apr_status want, const char *const *needles) {
    for (int with_old = 0; with_old < 2; with_old++) {
        if (text) pt_write(pt_log, text);
        if (with_old) pt_write(pt_svg, "the previous plot");
        else unlink(pt_svg);
        apr_error e = {{0}};
        apr_status s = apr_ftplot_svg(pt_log, pt_svg, &e);
        cr_expect_eq(s, want, "%s (%s), want %s", apr_status_name(s), e.msg, apr_status_name(want));
        for (const char *const *p = needles; *p; p++) cr_expect(strstr(e.msg, *p), "'%s' not in: %s", *p, e.msg);
        if (with_old) {
            char *kept = tu_read_file(pt_svg, NULL);
            cr_expect_str_eq(kept, "the previous plot");
            free(kept);
        } else {
            cr_expect_neq(access(pt_svg, F_OK), 0, "an SVG was written for a bad log");
        }
        cr_expect_str_eq(pt_list(), text ? (with_old ? "loss.svg,train.jsonl" : "train.jsonl") : (with_old ? "loss.svg" : ""));
    }
}

static const char *pt_at(int line, const char *what) {
    static char buf[4][PATH_MAX + 160];
    static int k;
    k = (k + 1) % 4;
    snprintf(buf[k], sizeof buf[k], "%s:%d: %s", pt_log, line, what);
    return buf[k];
}

Test(ftplot, a_missing_log_is_an_io_error) {
    pt_expect_fails(NULL, APR_ERR_IO, (const char *[]){pt_log, "cannot open", strerror(ENOENT), NULL});
}

Test(ftplot, malformed_lines_name_the_log_and_line) {
    static const char ok2[] = "{\"step\": 1, \"loss\": 3}\n{\"step\": 2, \"loss\": 2.5}\n";
    char text[512];
    snprintf(text, sizeof text, "%s{\"step\": 3, \"loss\": }\n{\"step\": 4, \"loss\": 2}\n", ok2);
    pt_expect_fails(text, APR_ERR_FORMAT, (const char *[]){pt_at(3, "not valid JSON at column"), NULL});
    snprintf(text, sizeof text, "%s[1, 2]\n", ok2);
    pt_expect_fails(text, APR_ERR_FORMAT, (const char *[]){pt_at(3, "not a JSON object"), NULL});
    snprintf(text, sizeof text, "%s{\"step\": 3, \"loss\": 1} trailing\n", ok2);
    pt_expect_fails(text, APR_ERR_FORMAT, (const char *[]){pt_at(3, "not valid JSON"), NULL});
    snprintf(text, sizeof text, "%s{\"step\": 3, \"loss\": \"2.0\"}\n", ok2);
    pt_expect_fails(text, APR_ERR_FORMAT, (const char *[]){pt_at(3, "'loss' is a string, not a number"), NULL});
    snprintf(text, sizeof text, "{\"step\": true, \"val_loss\": 1}\n");
    pt_expect_fails(text, APR_ERR_FORMAT, (const char *[]){pt_at(1, "'step' is a boolean, not a number"), NULL});
    snprintf(text, sizeof text, "%s\n{\"val_loss\": 2.0}\n", ok2);
    pt_expect_fails(text, APR_ERR_FORMAT, (const char *[]){pt_at(4, "'val_loss' without a 'step'"), NULL});
    snprintf(text, sizeof text, "%s{\"step\": 3, \"loss\": nana}\n", ok2);
    pt_expect_fails(text, APR_ERR_FORMAT, (const char *[]){pt_at(3, "not valid JSON"), NULL});
    snprintf(text, sizeof text, "%s{\"step\": 3, \"lo\n", ok2);   /* cut, but a newline follows: not being written */
    pt_expect_fails(text, APR_ERR_FORMAT, (const char *[]){pt_at(3, "not valid JSON"), NULL});
}

Test(ftplot, a_log_without_loss_values_is_refused) {
    pt_expect_fails("", APR_ERR_FORMAT, (const char *[]){pt_log, ": no loss values to plot", NULL});
    pt_expect_fails("{\"event\": \"start\"}\n{\"step\": 1, \"lr\": 0.1}\n", APR_ERR_FORMAT,
                    (const char *[]){"no loss values to plot", NULL});
    pt_expect_fails("{\"step\": 1, \"loss\": NaN}\n{\"step\": 2, \"val_loss\": null}\n", APR_ERR_FORMAT,
                    (const char *[]){"no loss values to plot (2 non-finite)", NULL});
}

Test(ftplot, an_unwritable_svg_path_is_an_io_error_naming_it) {
    pt_write(pt_log, pt_mixed_log);
    char bad[PATH_MAX + 64];
    snprintf(bad, sizeof bad, "%s/no/such/dir/loss.svg", pt_tmp);
    apr_error e = {{0}};
    cr_expect_eq(apr_ftplot_svg(pt_log, bad, &e), APR_ERR_IO);
    cr_expect(strstr(e.msg, bad) && strstr(e.msg, strerror(ENOENT)), "%s", e.msg);
    cr_expect_eq(apr_ftplot_svg(NULL, bad, &e), APR_ERR_INVALID);
    cr_expect_eq(apr_ftplot_svg(pt_log, NULL, &e), APR_ERR_INVALID);
    cr_expect_str_eq(pt_list(), "train.jsonl");
}
