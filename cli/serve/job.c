/* A request shared by the HTTP side and the scheduler (serve/job.h). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "job.h"

job *job_new(void) {
    job *j = calloc(1, sizeof *j);
    if (!j) return NULL;
    pthread_condattr_t ca;
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_mutex_init(&j->mu, NULL);
    pthread_cond_init(&j->cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_init(&j->refs, 1);
    atomic_init(&j->cancelled, 0);
    return j;
}

void job_retain(job *j) { atomic_fetch_add(&j->refs, 1); }

void job_release(job *j) {
    if (!j || atomic_fetch_sub(&j->refs, 1) != 1) return;
    free(j->prompt);
    for (int i = 0; i < j->n_stops; i++) free(j->stops[i]);
    free(j->text);
    pthread_mutex_destroy(&j->mu);
    pthread_cond_destroy(&j->cv);
    free(j);
}

void job_append(job *j, const char *text, size_t len) {
    if (len == 0) return;
    pthread_mutex_lock(&j->mu);
    if (j->len + len + 1 > j->cap) {
        size_t cap = j->cap ? j->cap : 256;
        while (cap < j->len + len + 1) cap *= 2;
        char *p = realloc(j->text, cap);
        if (!p) {
            pthread_mutex_unlock(&j->mu);
            job_finish(j, NULL, 500, "out of memory for the reply");
            return;
        }
        j->text = p;
        j->cap = cap;
    }
    memcpy(j->text + j->len, text, len);
    j->len += len;
    j->text[j->len] = '\0';
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

void job_finish(job *j, const char *reason, int error_status, const char *error) {
    pthread_mutex_lock(&j->mu);
    if (!j->finished) {
        j->finished = 1;
        j->finish_reason = reason;
        j->error_status = error_status;
        if (error) snprintf(j->error, sizeof j->error, "%s", error);
    }
    pthread_cond_broadcast(&j->cv);
    pthread_mutex_unlock(&j->mu);
}

void job_wait_locked(job *j, size_t seen, double timeout_s) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double whole = floor(timeout_s);
    ts.tv_sec += (time_t)whole;
    ts.tv_nsec += (long)((timeout_s - whole) * 1e9);
    if (ts.tv_nsec >= 1000000000L) {
        ts.tv_sec++;
        ts.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&j->mu);
    while (!j->finished && j->len <= seen)
        if (pthread_cond_timedwait(&j->cv, &j->mu, &ts) != 0) break;
}
