/* ft_plot.h — the loss curves of a fine-tuning log (JSON lines) drawn as an SVG file, written by hand. */
#ifndef APR_FT_PLOT_H
#define APR_FT_PLOT_H

/*
 * The log holds one JSON object per line. A line with a "loss" is a training point, one with a
 * "val_loss" a validation point (a line may be both); either needs a numeric "step". Every other
 * field, and every line with neither loss, is ignored, as are blank lines:
 *
 *     {"step": 12, "loss": 3.21, "lr": 0.0003, "tok_s": 812.5, "elapsed_s": 14.2}
 *     {"step": 50, "val_loss": 3.05}
 *
 * Non-finite values: JSON has none, but loggers write them anyway, so null and the bare words
 * NaN, nan, Infinity, inf (any case, with a sign) outside strings are read as "not a finite
 * number". Such a point (a NaN or infinite loss, or a NaN step) is not drawn and breaks its curve:
 * the points before it and after it are separate polylines, so a diverged stretch is never
 * bridged by a straight line. A step not above the previous point's of the same series (a run
 * resumed from a checkpoint logs some steps again) starts a new polyline too.
 *
 * A last line without a newline that does not parse is taken to be still being written (the log
 * of a running job) and ignored; any other malformed line fails.
 *
 * The picture: APR_FTPLOT_W x APR_FTPLOT_H pixels, title "Loss: <log's file name>", step on x
 * and loss on y, both linear, in the plot area [APR_FTPLOT_X0, APR_FTPLOT_X1] x [APR_FTPLOT_Y0,
 * APR_FTPLOT_Y1] of SVG coordinates (y down). Ticks, with light grid lines, sit at multiples of a
 * spacing of 1, 2 or 5 times a power of ten that gives about six over the range (at least 1 on x
 * when every step is an integer).
 *   x maps xlo to X0 and xhi to X1: [xlo, xhi] is the range of the steps drawn (a single step s:
 *     s - 1 .. s + 1) extended outwards to multiples of the tick spacing (steps 1..2000: 0..2000).
 *   y maps ylo to Y1 and yhi to Y0: [ylo, yhi] is the range of the losses drawn widened by 5% of
 *     its length on each side (equal values v: v -+ 10% of |v|, or -+ 1 for 0).
 * Training is drawn as <polyline class="train">, validation as <polyline class="val"> plus a
 * <circle class="val"> at each point (a training polyline of one point gets a <circle
 * class="train">), then a legend of the series present. Numbers are written with %.6g in the C
 * locale, text XML-escaped (bytes that are not UTF-8 become '?').
 */

#include "apr/apr.h"

#include "llm_api.h"

#define APR_FTPLOT_W 800
#define APR_FTPLOT_H 480
#define APR_FTPLOT_X0 70
#define APR_FTPLOT_X1 780
#define APR_FTPLOT_Y0 40
#define APR_FTPLOT_Y1 430

/* Reads log_path and writes the plot to svg_path atomically: into a temporary file beside it
 * ("SVG.tmp.PID.N", mode 0666 & ~umask), fsynced and renamed over svg_path, which is never seen
 * half-written and is left as it was on any error. Errors: APR_ERR_IO naming the file and the
 * system's reason ("LOG: cannot open: No such file or directory", "SVG: cannot write it: ..."),
 * APR_ERR_FORMAT for a malformed line ("LOG:LINE: not valid JSON at column 7", "LOG:LINE:
 * 'loss' is a string, not a number", "LOG:LINE: 'val_loss' without a 'step'") or for a log
 * with no finite loss at all ("LOG: no loss values to plot"), APR_ERR_NOMEM, APR_ERR_INVALID
 * (a NULL path). */
LLM_API apr_status apr_ftplot_svg(const char *log_path, const char *svg_path, apr_error *err);

#endif
