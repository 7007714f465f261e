/* Reference values from Gwyddion's libgwyprocess (Debian's libgwyddion20-dev 2.62) for
 * nanoml-spm's levelling tests. Used only to produce expected numbers (no Gwyddion code is
 * copied into nanoml). Declares the few functions it calls instead of including the
 * headers, so that glib's development package is not needed.
 *
 *   harness ROWS COLS FILE      (FILE: ROWS*COLS little-endian float64, row-major)
 *
 * prints one JSON object: plane fit, polynomial coefficients (independent 5x5 and
 * limited total degree 3), the row shifts of the median, median-of-differences,
 * trimmed-mean (0.05) and trimmed-mean-of-differences (0.05) alignments, the scar marks
 * (positive and negative, "Remove scars" defaults 0.666/0.25/16/4) and the image with
 * both kinds of scars replaced by gwy_data_field_laplace_solve (quality 1, as the
 * module calls it).
 *
 *   harness time ROWS COLS FILE REPEATS
 *
 * prints, as one JSON object, the median seconds over REPEATS runs (after a warm-up) of
 * what tools/compare/gwyddion.py compares with nanoml: plane levelling, a 5x5 polynomial
 * background, median and median-of-differences row alignment, scar marking (both
 * signs) and the Laplace fill of those scars, each on a fresh copy of the scan, with
 * Gwyddion's OpenMP threads enabled.
 *
 *   harness kth N FILE          (FILE: N float64 values)
 *
 * prints gwy_math_kth_rank of a fresh copy of the values for every rank k = 0..N-1, and
 * then gwy_math_trimmed_mean for every (nlowest, nhighest) = (t, t), 2t < N. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

typedef int gint;
typedef int gboolean;
typedef double gdouble;
typedef struct _GwyDataField GwyDataField;
typedef struct _GwyDataLine GwyDataLine;

void gwy_process_type_init(void);
gboolean gwy_threads_set_enabled(gboolean setting);
void gwy_data_field_plane_level(GwyDataField *f, gdouble a, gdouble bx, gdouble by);
void gwy_data_field_subtract_poly(GwyDataField *f, gint nterms, const gint *term_powers, const gdouble *coeffs);
void gwy_data_field_subtract_row_shifts(GwyDataField *f, GwyDataLine *shifts);
void gwy_data_field_max_of_fields(GwyDataField *result, GwyDataField *operand1, GwyDataField *operand2);
void g_object_unref(void *object);
GwyDataField *gwy_data_field_new(gint xres, gint yres, gdouble xreal, gdouble yreal, gboolean nullme);
gdouble *gwy_data_field_get_data(GwyDataField *f);
void gwy_data_field_fit_plane(GwyDataField *f, gdouble *pa, gdouble *pbx, gdouble *pby);
gdouble *gwy_data_field_fit_poly(GwyDataField *f, GwyDataField *mask, gint nterms, const gint *term_powers,
                                 gboolean exclude, gdouble *coeffs);
GwyDataLine *gwy_data_field_find_row_shifts_trimmed_mean(GwyDataField *f, GwyDataField *mask, gint masking,
                                                         gdouble trimfrac, gint mincount);
GwyDataLine *gwy_data_field_find_row_shifts_trimmed_diff(GwyDataField *f, GwyDataField *mask, gint masking,
                                                         gdouble trimfrac, gint mincount);
gdouble *gwy_data_line_get_data(GwyDataLine *l);
void gwy_data_field_mark_scars(GwyDataField *f, GwyDataField *result, gdouble threshold_high, gdouble threshold_low,
                               gdouble min_scar_len, gdouble max_scar_width, gboolean negative);
void gwy_data_field_laplace_solve(GwyDataField *f, GwyDataField *mask, gint grain_id, gdouble qprec);
gdouble gwy_math_kth_rank(size_t n, gdouble *array, size_t k);
gdouble gwy_math_trimmed_mean(size_t n, gdouble *array, unsigned nlowest, unsigned nhighest);
gint gwy_data_line_get_res(GwyDataLine *l);

enum { MASK_IGNORE = 2 };

/* A new field holding the scan: every call below gets its own, so that nothing one
 * function does to its input can affect the next. */
static GwyDataField *fresh(int rows, int cols, const double *pixels) {
    GwyDataField *f = gwy_data_field_new(cols, rows, cols, rows, 1);
    double *d = gwy_data_field_get_data(f);
    for (size_t i = 0; i < (size_t)rows * cols; i++) d[i] = pixels[i];
    return f;
}

static void print_array(const char *name, const double *v, int n, int last) {
    printf("\"%s\": [", name);
    for (int i = 0; i < n; i++) printf("%s%.17g", i ? ", " : "", v[i]);
    printf("]%s\n", last ? "" : ",");
}

static void print_shifts(const char *name, GwyDataLine *line, int last) {
    print_array(name, gwy_data_line_get_data(line), gwy_data_line_get_res(line), last);
}

static double *read_doubles(const char *path, size_t n) {
    double *v = malloc(n * sizeof(double));
    FILE *in = fopen(path, "rb");
    if (!in || !v || fread(v, sizeof(double), n, in) != n) {
        fprintf(stderr, "cannot read %s\n", path);
        exit(1);
    }
    fclose(in);
    return v;
}

static int ranks(size_t n, const char *path) {
    double *v = read_doubles(path, n), *w = malloc(n * sizeof(double));
    printf("{\"kth\": [");
    for (size_t k = 0; k < n; k++) {
        for (size_t i = 0; i < n; i++) w[i] = v[i];
        printf("%s%.17g", k ? ", " : "", gwy_math_kth_rank(n, w, k));
    }
    printf("], \"trimmed\": [");
    for (size_t t = 0; 2 * t < n; t++) {
        for (size_t i = 0; i < n; i++) w[i] = v[i];
        printf("%s%.17g", t ? ", " : "", gwy_math_trimmed_mean(n, w, t, t));
    }
    printf("]}\n");
    return 0;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + 1e-9 * t.tv_nsec;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

enum { OP_PLANE, OP_POLY, OP_MEDIAN, OP_MEDIAN_DIFF, OP_SCARS, OP_LAPLACE, N_OPS };
static const char *op_names[N_OPS] = {"level_plane", "level_poly_5x5", "align_median", "align_median_of_differences",
                                      "mark_scars", "laplace_fill_scars"};

static void run_op(int op, int rows, int cols, const double *pixels, GwyDataField *scars) {
    GwyDataField *f = fresh(rows, cols, pixels);
    if (op == OP_PLANE) {
        double a, bx, by;
        gwy_data_field_fit_plane(f, &a, &bx, &by);
        gwy_data_field_plane_level(f, a, bx, by);
    } else if (op == OP_POLY) {
        int powers[72], n = 0;
        for (int i = 0; i <= 5; i++)
            for (int j = 0; j <= 5; j++) { powers[2 * n] = i; powers[2 * n + 1] = j; n++; }
        double coeffs[36];
        gwy_data_field_fit_poly(f, NULL, n, powers, 0, coeffs);
        gwy_data_field_subtract_poly(f, n, powers, coeffs);
    } else if (op == OP_MEDIAN || op == OP_MEDIAN_DIFF) {
        GwyDataLine *s = op == OP_MEDIAN ? gwy_data_field_find_row_shifts_trimmed_mean(f, NULL, MASK_IGNORE, 0.5, 0)
                                         : gwy_data_field_find_row_shifts_trimmed_diff(f, NULL, MASK_IGNORE, 0.5, 0);
        gwy_data_field_subtract_row_shifts(f, s);
        g_object_unref(s);
    } else if (op == OP_SCARS) {
        GwyDataField *p = fresh(rows, cols, pixels), *q = fresh(rows, cols, pixels);
        gwy_data_field_mark_scars(f, p, 0.666, 0.25, 16, 4, 0);
        gwy_data_field_mark_scars(f, q, 0.666, 0.25, 16, 4, 1);
        gwy_data_field_max_of_fields(p, p, q);
        g_object_unref(p);
        g_object_unref(q);
    } else {
        gwy_data_field_laplace_solve(f, scars, -1, 1.0);
    }
    g_object_unref(f);
}

static int timing(int rows, int cols, const char *path, int repeats) {
    double *pixels = read_doubles(path, (size_t)rows * cols);
    gwy_threads_set_enabled(1);
    GwyDataField *scars = fresh(rows, cols, pixels), *neg = fresh(rows, cols, pixels);
    GwyDataField *f = fresh(rows, cols, pixels);
    gwy_data_field_mark_scars(f, scars, 0.666, 0.25, 16, 4, 0);
    gwy_data_field_mark_scars(f, neg, 0.666, 0.25, 16, 4, 1);
    gwy_data_field_max_of_fields(scars, scars, neg);
    double *t = malloc(repeats * sizeof(double));
    printf("{");
    for (int op = 0; op < N_OPS; op++) {
        run_op(op, rows, cols, pixels, scars);
        for (int r = 0; r < repeats; r++) {
            double start = now();
            run_op(op, rows, cols, pixels, scars);
            t[r] = now() - start;
        }
        qsort(t, repeats, sizeof(double), cmp_double);
        printf("%s\"%s\": %.9g", op ? ", " : "", op_names[op], t[repeats / 2]);
    }
    printf("}\n");
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 4 && argv[1][0] == 'k') return ranks(atoi(argv[2]), argv[3]);
    if (argc == 6 && strcmp(argv[1], "time") == 0) return timing(atoi(argv[2]), atoi(argv[3]), argv[4], atoi(argv[5]));
    if (argc != 4) {
        fprintf(stderr, "usage: harness ROWS COLS FILE\n");
        return 2;
    }
    int rows = atoi(argv[1]), cols = atoi(argv[2]);
    gwy_process_type_init();
    size_t n_px = (size_t)rows * cols;
    double *pixels = read_doubles(argv[3], n_px);
    GwyDataField *f = fresh(rows, cols, pixels);
    double a, bx, by;
    gwy_data_field_fit_plane(f, &a, &bx, &by);
    printf("{\n\"plane\": [%.17g, %.17g, %.17g],\n", a, bx, by);
    int powers[2 * 36], n = 0;
    for (int i = 0; i <= 5; i++)
        for (int j = 0; j <= 5; j++) { powers[2 * n] = i; powers[2 * n + 1] = j; n++; }
    double coeffs[36];
    gwy_data_field_fit_poly(fresh(rows, cols, pixels), NULL, n, powers, 0, coeffs);
    print_array("poly_independent_5_5", coeffs, n, 0);
    n = 0;
    for (int i = 0; i <= 3; i++)
        for (int j = 0; j <= 3 - i; j++) { powers[2 * n] = i; powers[2 * n + 1] = j; n++; }
    gwy_data_field_fit_poly(fresh(rows, cols, pixels), NULL, n, powers, 0, coeffs);
    print_array("poly_limited_3", coeffs, n, 0);
    print_shifts("shifts_median", gwy_data_field_find_row_shifts_trimmed_mean(fresh(rows, cols, pixels), NULL, MASK_IGNORE, 0.5, 0), 0);
    print_shifts("shifts_median_diff", gwy_data_field_find_row_shifts_trimmed_diff(fresh(rows, cols, pixels), NULL, MASK_IGNORE, 0.5, 0), 0);
    print_shifts("shifts_trimmed_mean", gwy_data_field_find_row_shifts_trimmed_mean(fresh(rows, cols, pixels), NULL, MASK_IGNORE, 0.05, 0), 0);
    print_shifts("shifts_trimmed_diff", gwy_data_field_find_row_shifts_trimmed_diff(fresh(rows, cols, pixels), NULL, MASK_IGNORE, 0.05, 0), 0);
    GwyDataField *pos = fresh(rows, cols, pixels), *neg = fresh(rows, cols, pixels);
    gwy_data_field_mark_scars(fresh(rows, cols, pixels), pos, 0.666, 0.25, 16, 4, 0);
    gwy_data_field_mark_scars(fresh(rows, cols, pixels), neg, 0.666, 0.25, 16, 4, 1);
    print_array("scars_positive", gwy_data_field_get_data(pos), rows * cols, 0);
    print_array("scars_negative", gwy_data_field_get_data(neg), rows * cols, 0);
    double *p = gwy_data_field_get_data(pos), *q = gwy_data_field_get_data(neg);
    for (size_t i = 0; i < n_px; i++) p[i] = p[i] > q[i] ? p[i] : q[i];
    GwyDataField *filled = fresh(rows, cols, pixels);
    gwy_data_field_laplace_solve(filled, pos, -1, 1.0);
    print_array("scars_removed", gwy_data_field_get_data(filled), rows * cols, 1);
    printf("}\n");
    return 0;
}
