/* The CLI's option parser and help printer (cli/options.h). */
#include "options.h"

#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "cli.h"

static int is_help(const char *a) { return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0; }

/* The flag argv[i] names: "--name", "--name=value" (then *inline_value is set)
 * or "-x". NULL when the table has none. */
static cli_opt *find_opt(cli_spec *spec, const char *a, const char **inline_value) {
    *inline_value = NULL;
    for (size_t k = 0; k < spec->n_opts; k++) {
        cli_opt *o = &spec->opts[k];
        if (o->type == CLI_SECTION) continue;
        if (a[1] != '-') {
            if (o->short_name && a[1] == o->short_name && a[2] == '\0') return o;
            continue;
        }
        const char *names[2] = {o->name, o->alias};
        for (int j = 0; j < 2; j++) {
            size_t n = names[j] ? strlen(names[j]) : 0;
            if (n && strncmp(a, names[j], n) == 0 && (a[n] == '\0' || a[n] == '=')) {
                if (a[n] == '=') *inline_value = a + n + 1;
                return o;
            }
        }
    }
    return NULL;
}

static void format_num(double x, char *buf, size_t size) {
    if (x == floor(x) && fabs(x) < 1e15) snprintf(buf, size, "%.0f", x);
    else snprintf(buf, size, "%g", x);
}

/* "[lo, hi]" of a numeric flag. */
static void format_range(const cli_opt *o, char *buf, size_t size) {
    char lo[32] = "(-inf", hi[32] = "inf)";
    if (o->lo > -1e300) {
        lo[0] = '[';
        format_num(o->lo, lo + 1, sizeof lo - 1);
    }
    if (o->hi < 1e300) {
        format_num(o->hi, hi, sizeof hi - 1);
        strcat(hi, "]");
    }
    snprintf(buf, size, "%s, %s", lo, hi);
}

/* Stores value v of flag o (typed as `as`); 0, or -1 after printing the error. */
static int store(const cli_spec *spec, const cli_opt *o, const char *as, const char *v) {
    char range[80];
    char *end = NULL;
    errno = 0;
    switch (o->type) {
    case CLI_STR:
    case CLI_STRS:
        if (!*v) return cli_usage_error(spec->cmd, "%s expects a non-empty value", as), -1;
        if (o->type == CLI_STR) {
            *(const char **)o->dst = v;
        } else {
            cli_strs *l = o->dst;
            const char **nv = realloc(l->v, (l->n + 1) * sizeof *nv);
            if (!nv) return cli_usage_error(spec->cmd, "out of memory"), -1;
            l->v = nv;
            l->v[l->n++] = v;
        }
        return 0;
    case CLI_TEXT: *(const char **)o->dst = v; return 0;
    case CLI_CHOICE: {
        size_t n = strlen(v);
        for (const char *c = o->choices; *c;) {
            size_t len = strcspn(c, "|");
            if (n && len == n && strncasecmp(c, v, n) == 0) { /* q8_0 or Q8_0 */
                *(const char **)o->dst = v;
                return 0;
            }
            c += len + (c[len] == '|');
        }
        char list[160] = "";
        for (const char *c = o->choices; *c;) { /* "a|b|c" -> "a, b, c" */
            size_t len = strcspn(c, "|");
            snprintf(list + strlen(list), sizeof list - strlen(list), "%s%.*s", *list ? ", " : "", (int)len, c);
            c += len + (c[len] == '|');
        }
        return cli_usage_error(spec->cmd, "%s must be one of %s, got '%s'", as, list, v), -1;
    }
    case CLI_U64: {
        unsigned long long u = strtoull(v, &end, 10);
        if (!*v || *end || errno || v[0] == '-')
            return cli_usage_error(spec->cmd, "%s expects a non-negative integer, got '%s'", as, v), -1;
        *(uint64_t *)o->dst = (uint64_t)u;
        return 0;
    }
    case CLI_DOUBLE: {
        double x = strtod(v, &end);
        if (!*v || *end || !isfinite(x) || x < o->lo || x > o->hi) {
            if (o->lo <= -1e300 && o->hi >= 1e300)
                return cli_usage_error(spec->cmd, "%s expects a finite number, got '%s'", as, v), -1;
            format_range(o, range, sizeof range);
            return cli_usage_error(spec->cmd, "%s expects a number in %s, got '%s'", as, range, v), -1;
        }
        *(double *)o->dst = x;
        return 0;
    }
    case CLI_INT:
    case CLI_LONG:
    case CLI_INTS: {
        long long x = strtoll(v, &end, 10);
        if (!*v || *end || errno || (double)x < o->lo || (double)x > o->hi) {
            format_range(o, range, sizeof range);
            return cli_usage_error(spec->cmd, "%s expects an integer in %s, got '%s'", as, range, v), -1;
        }
        if (o->type == CLI_INT) {
            *(int *)o->dst = (int)x;
        } else if (o->type == CLI_LONG) {
            *(long *)o->dst = (long)x;
        } else {
            cli_ints *l = o->dst;
            int *nv = realloc(l->v, (l->n + 1) * sizeof *nv);
            if (!nv) return cli_usage_error(spec->cmd, "out of memory"), -1;
            l->v = nv;
            l->v[l->n++] = (int)x;
        }
        return 0;
    }
    case CLI_FLAG: *(int *)o->dst = 1; return 0;
    case CLI_SECTION: break;
    }
    return -1;
}

int cli_parse(cli_spec *spec, int argc, char **argv, int *exit_status) {
    *exit_status = 0;
    for (int i = 1; i < argc; i++)
        if (is_help(argv[i])) {
            cli_print_help(spec);
            return 0;
        }
    *exit_status = 2;
    spec->n_args = 0;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (a[0] != '-' || a[1] == '\0') { /* a positional argument ("-" is stdin) */
            if (spec->n_args >= spec->max_args) {
                cli_usage_error(spec->cmd, "unexpected argument '%s'", a);
                return 0;
            }
            spec->args[spec->n_args++] = a;
            continue;
        }
        const char *v;
        cli_opt *o = find_opt(spec, a, &v);
        if (!o) {
            cli_usage_error(spec->cmd, "unknown option '%.*s'", (int)strcspn(a, "="), a);
            return 0;
        }
        char as[64];
        snprintf(as, sizeof as, "%.*s", (int)strcspn(a, "="), a);
        if (o->type == CLI_FLAG && v) {
            cli_usage_error(spec->cmd, "%s takes no value", as);
            return 0;
        }
        if (o->type != CLI_FLAG && !v) {
            if (i + 1 >= argc) {
                cli_usage_error(spec->cmd, "%s expects a value %s: it needs a value after it", as, o->arg ? o->arg : "");
                return 0;
            }
            v = argv[++i];
        }
        if (store(spec, o, as, v ? v : "")) return 0;
        if (o->given) *o->given = 1;
    }
    *exit_status = 0;
    return 1;
}

/* The default as the help shows it, from o->def or the value dst holds. */
static void format_default(const cli_opt *o, char *buf, size_t size) {
    buf[0] = '\0';
    if (o->def) {
        if (*o->def) snprintf(buf, size, "%s", o->def);
        return;
    }
    switch (o->type) {
    case CLI_STR:
    case CLI_TEXT:
    case CLI_CHOICE: {
        const char *s = *(const char *const *)o->dst;
        if (s) snprintf(buf, size, "%s", s);
        break;
    }
    case CLI_INT: snprintf(buf, size, "%d", *(const int *)o->dst); break;
    case CLI_LONG: snprintf(buf, size, "%ld", *(const long *)o->dst); break;
    case CLI_U64: snprintf(buf, size, "%llu", (unsigned long long)*(const uint64_t *)o->dst); break;
    case CLI_DOUBLE: snprintf(buf, size, "%g", *(const double *)o->dst); break;
    default: break;
    }
}

void cli_print_help(const cli_spec *spec) {
    printf("usage: %s\n\n", spec->usage);
    if (spec->about) printf("%s\n", spec->about);
    for (size_t k = 0; k < spec->n_opts; k++) {
        const cli_opt *o = &spec->opts[k];
        if (o->type == CLI_SECTION) {
            printf("%s%s:\n", k ? "\n" : "", o->help);
            continue;
        }
        if (k == 0) printf("options:\n");
        char head[80], def[64], range[80] = "";
        char flag[4] = "   ";
        if (o->short_name) snprintf(flag, sizeof flag, "-%c,", o->short_name);
        const char *arg = o->type == CLI_CHOICE ? o->choices : o->arg ? o->arg : "";
        snprintf(head, sizeof head, "%s %s %s", flag, o->name, arg);
        format_default(o, def, sizeof def);
        if (o->type == CLI_INT || o->type == CLI_LONG || o->type == CLI_INTS ||
            (o->type == CLI_DOUBLE && (o->lo > -1e300 || o->hi < 1e300)))
            format_range(o, range, sizeof range);
        printf("  %-24s ", head);
        for (const char *h = o->help; *h; h++) {
            if (*h == '\n') printf("\n  %-24s ", "");
            else putchar(*h);
        }
        if (*range) printf(" %s", range);
        if (*def) printf(" (default %s)", def);
        if (o->type == CLI_INTS || o->type == CLI_STRS) printf(" (repeatable)");
        if (o->alias) printf(" (also %s)", o->alias);
        putchar('\n');
    }
    if (spec->footer) printf("\n%s", spec->footer);
}

void cli_opts_free(cli_spec *spec) {
    for (size_t k = 0; k < spec->n_opts; k++) {
        cli_opt *o = &spec->opts[k];
        if (o->type == CLI_INTS) {
            free(((cli_ints *)o->dst)->v);
            *(cli_ints *)o->dst = (cli_ints){0};
        } else if (o->type == CLI_STRS) {
            free(((cli_strs *)o->dst)->v);
            *(cli_strs *)o->dst = (cli_strs){0};
        }
    }
}
