/* What machine a measurement ran on: the CPU's name and family/model
 * numbers (CPUID on x86, /proc/cpuinfo elsewhere) and the load average at
 * the moment, so that benchmark results from different machines or from a
 * busy moment are never mistaken for one another. */
#include <stdio.h>
#include <string.h>

#include "core/machine.h"

#if defined(__GNUC__) && (defined(__x86_64__) || defined(__i386__))
#include <cpuid.h>
#define CPU_INFO_X86 1
#endif

/* Copies s into out (size bytes) without leading/trailing blanks. */
static void trimmed(const char *s, char *out, size_t size) {
    while (*s == ' ' || *s == '\t') s++;
    size_t n = strlen(s);
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\n' || s[n - 1] == '\t')) n--;
    if (n >= size) n = size - 1;
    memcpy(out, s, n);
    out[n] = '\0';
}

/* The "model name" line of /proc/cpuinfo, or "" when there is none. */
static void proc_model_name(char *out, size_t size) {
    out[0] = '\0';
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f) return;
    char line[512];
    while (fgets(line, sizeof line, f)) {
        const char *colon = strchr(line, ':');
        if (strncmp(line, "model name", 10) == 0 && colon) {
            trimmed(colon + 1, out, size);
            break;
        }
    }
    fclose(f);
}

void machine_cpu(machine_cpu_info *info) {
    memset(info, 0, sizeof *info);
    info->family = info->model = -1;
#ifdef CPU_INFO_X86
    unsigned a, b, c, d;
    if (__get_cpuid(1, &a, &b, &c, &d)) {
        const int base_family = (a >> 8) & 15, base_model = (a >> 4) & 15;
        info->family = base_family == 15 ? base_family + (int)((a >> 20) & 255) : base_family;
        info->model = base_family == 6 || base_family == 15 ? base_model | (int)((a >> 16) & 15) << 4 : base_model;
    }
    unsigned brand[12];
    if (__get_cpuid_max(0x80000000u, NULL) >= 0x80000004u) {
        for (unsigned i = 0; i < 3; i++)
            __get_cpuid(0x80000002u + i, &brand[4 * i], &brand[4 * i + 1], &brand[4 * i + 2], &brand[4 * i + 3]);
        char s[49];
        memcpy(s, brand, 48);
        s[48] = '\0';
        trimmed(s, info->name, sizeof info->name);
    }
#endif
    if (!info->name[0]) proc_model_name(info->name, sizeof info->name);
    if (!info->name[0]) snprintf(info->name, sizeof info->name, "unknown");
}

double machine_load_avg(void) {
    double load = -1;
    FILE *f = fopen("/proc/loadavg", "r");
    if (!f) return -1;
    if (fscanf(f, "%lf", &load) != 1) load = -1;
    fclose(f);
    return load;
}
