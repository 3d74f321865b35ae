/* tuner.h — how many inferences compute at once, and with how many threads.
 *
 * Two parts. The tuner (one per model, in its stats) chooses the split of
 * the cores for that model under sustained concurrency: k jobs computing at
 * once with cores / k OpenMP threads each. It probes each candidate k for
 * short windows, measures completed computes per wall-second, keeps the
 * best, and probes again after a while or when the load changes. A job
 * that computes while nothing else wants to (one client) always gets every
 * core. The tuner's logic takes the time and the demand as arguments, so
 * it is deterministic (tests feed it synthetic completions).
 *
 * The gate (process-wide) hands out cores: a job enters with the threads
 * its model's tuner chose and waits, in arrival order, until that many
 * cores are free, so jobs never oversubscribe the cores (a job that started
 * alone with every core is not joined by a second one with one more).
 * Pool workers may still decode and encode while another job computes.
 */
#ifndef DECONVD_TUNER_H
#define DECONVD_TUNER_H

#include <stdbool.h>
#include <stdint.h>

#define DCV_TUNER_MAX_CAND 4

/* The time one probe window lasts at least, and the completions it needs. */
#define DCV_TUNER_WINDOW_NS 60000000ull
#define DCV_TUNER_WINDOW_MIN 6
/* Rounds over every candidate in a probe (windows interleaved: noise hits all). */
#define DCV_TUNER_ROUNDS 2
/* A settled choice is probed again after this long under load. */
#define DCV_TUNER_REPROBE_NS 10000000000ull
/* Load counts as sustained while some job wanted compute beside another
 * this recently. */
#define DCV_TUNER_HOLD_NS 30000000ull
/* No load for this long: the next sustained load starts a new probe (a
 * shorter pause keeps the choice; a load of another level re-probes). */
#define DCV_TUNER_IDLE_NS 30000000000ull
/* A settled choice is probed again when the mean demand moves by this factor. */
#define DCV_TUNER_LOAD_CHANGE 1.5
/* A new best must beat the current choice by this factor to replace it. */
#define DCV_TUNER_HYSTERESIS 1.03

/* OFF: threads_per_request is fixed (no gate, no tuning). */
enum dcv_tuner_phase { DCV_TUNER_IDLE, DCV_TUNER_PROBING, DCV_TUNER_SETTLED, DCV_TUNER_OFF };

struct dcv_tuner {
    int cores;
    int ncand;
    int cand[DCV_TUNER_MAX_CAND];      /* jobs at once: 1, 2, 4 ... dividing cores */
    int cur;                           /* index of the split in use under load */
    int best;                          /* index chosen by the last complete probe */
    enum dcv_tuner_phase phase;
    int round;                         /* probe round, 0 .. DCV_TUNER_ROUNDS - 1 */
    uint64_t win_start;                /* 0 = no window open */
    uint64_t win_done;                 /* completions in the open window */
    double win_demand;                 /* sum of the demand seen at those completions */
    uint64_t done[DCV_TUNER_MAX_CAND]; /* this probe: completions and time per candidate */
    uint64_t ns[DCV_TUNER_MAX_CAND];
    double rate[DCV_TUNER_MAX_CAND];   /* the last complete probe's computes / s */
    double psum;                       /* this probe: demand summed over its completions */
    uint64_t pn;
    double probe_demand;               /* mean demand during the last complete probe */
    uint64_t settled_at;
    uint64_t last_busy;                /* last time demand was >= 2 */
    uint64_t probes;                   /* complete probes so far */
};

/* A copy of what the stats show. */
struct dcv_tuner_view {
    int cores, jobs, threads, ncand;
    enum dcv_tuner_phase phase;
    int cand[DCV_TUNER_MAX_CAND];
    double rate[DCV_TUNER_MAX_CAND];
    uint64_t probes;
};

/* Sets up a tuner for this many cores (>= 1); with one candidate (one core)
 * it never probes. Any thread, before use. */
void dcv_tuner_init(struct dcv_tuner *t, int cores);

/* Threads for a job starting compute at `now` while `demand` jobs (this
 * one included, and those queued) want compute: every core when the load
 * is not sustained, else cores / k of the split in use. Pure logic, no
 * lock: callers serialize (the gate does). */
int dcv_tuner_threads(struct dcv_tuner *t, uint64_t now, long demand);

/* A job of this model finished compute at `now` with `demand` as above
 * (this one not included). Advances the probe. Pure logic, no lock. */
void dcv_tuner_done(struct dcv_tuner *t, uint64_t now, long demand);

void dcv_tuner_view(const struct dcv_tuner *t, struct dcv_tuner_view *v);
const char *dcv_tuner_phase_name(enum dcv_tuner_phase p);

/* ---- the gate: process-wide, thread-safe ---- */

/* Sets the cores the gate hands out (before the pool starts); without it
 * the stats show the tuner off (threads_per_request fixed). A tuner left
 * zeroed (a model's stats) is set up on its first dcv_tuner_enter. */
void dcv_tuner_gate_init(int cores);

/* Waits until the job may compute; returns its thread count (already set
 * with dcv_engine_set_threads on the calling thread). t NULL (no model:
 * ops) = every core unless others want compute, then one. `queued` = jobs
 * waiting for a worker, counted into the demand. Pool thread. */
int dcv_tuner_enter(struct dcv_tuner *t, long queued);
/* Gives back the cores of a dcv_tuner_enter; records the completion. */
void dcv_tuner_leave(struct dcv_tuner *t, int threads, long queued);
/* A consistent copy of t's state (under the gate's lock). Any thread. */
void dcv_tuner_snapshot(const struct dcv_tuner *t, struct dcv_tuner_view *v);

#endif
