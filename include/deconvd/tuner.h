/* tuner.h — how many inferences run at once, and with how many threads.
 *
 * Two parts. The tuner (one per model, in its stats) chooses the split of
 * the cores for that model under sustained concurrency: k jobs at once
 * with cores / k OpenMP threads each. It runs each candidate k for 16
 * jobs at a time, interleaved over three rounds, measures the process's CPU
 * time per job under each (every thread: workers, OpenMP helpers, the
 * loop), keeps the cheapest split (near-ties go to more jobs at once), and
 * probes again after a while or when the load changes. A job that runs
 * while nothing else wants the cores (one client) always gets every core.
 * The tuner's logic takes the time, the demand and the CPU clock as
 * arguments, so it is deterministic (tests feed it synthetic jobs).
 *
 * The gate (process-wide) hands out cores: a job on the pool enters with
 * the threads its model's tuner chose and waits, in arrival order, until
 * that many cores are free, then decodes, computes and encodes with them,
 * so threads never oversubscribe the cores (a job that started alone with
 * every core is not joined by a second one with one more, and a worker
 * encoding never preempts another's OpenMP team).
 */
#ifndef DECONVD_TUNER_H
#define DECONVD_TUNER_H

#include <stdbool.h>
#include <stdint.h>

#define DCV_TUNER_MAX_CAND 4

/* Jobs measured per candidate per round, and rounds per probe (interleaved
 * so that noise hits every candidate alike). */
#define DCV_TUNER_PER_ROUND 16
#define DCV_TUNER_ROUNDS 3
/* A settled choice is probed again after this long under load. */
#define DCV_TUNER_REPROBE_NS 10000000000ull
/* Load counts as sustained while some job wanted the cores beside another
 * this recently. */
#define DCV_TUNER_HOLD_NS 30000000ull
/* No load for this long: the next sustained load starts a new probe (a
 * shorter pause keeps the choice; a load of another level re-probes). */
#define DCV_TUNER_IDLE_NS 30000000000ull
/* A settled choice is probed again when the mean demand moves by this
 * factor (measured over this many completions). */
#define DCV_TUNER_LOAD_CHANGE 1.5
#define DCV_TUNER_LOAD_WINDOW 48
/* A probe whose best beat every other split by this factor is decisive: a
 * change of load does not re-probe it (only staleness does). */
#define DCV_TUNER_DECISIVE 1.3
/* Splits within this factor of the cheapest are near-ties: the previous
 * choice stays if it is one, else the one with the most jobs at once. */
#define DCV_TUNER_TIE 1.04

/* OFF: threads_per_request is fixed (no gate, no tuning). */
enum dcv_tuner_phase { DCV_TUNER_IDLE, DCV_TUNER_PROBING, DCV_TUNER_SETTLED, DCV_TUNER_OFF };

struct dcv_tuner {
    int cores;
    int ncand;
    int cand[DCV_TUNER_MAX_CAND];      /* jobs at once: 1, 2, 4 ... dividing cores */
    int cur;                           /* index of the split in use under load */
    int best;                          /* index chosen by the last complete probe */
    enum dcv_tuner_phase phase;
    int round;                         /* probe round (the first probe ever has a warm-up one) */
    bool win_open;                     /* a window of the current candidate is open */
    int win_n;                         /* its jobs so far */
    uint64_t win_cpu0;                 /* the process CPU clock when it opened */
    uint64_t cpu[DCV_TUNER_MAX_CAND];  /* this probe: CPU ns and jobs, per candidate */
    uint64_t jobs[DCV_TUNER_MAX_CAND];
    double psum;                       /* this probe: demand summed over its completions */
    uint64_t pn;
    double cost[DCV_TUNER_MAX_CAND];   /* the last complete probe: CPU ns per job */
    double probe_demand;               /* mean demand during the last complete probe */
    double margin;                     /* the next cheapest cost over the cheapest */
    double wsum;                       /* settled: demand summed over the load window */
    int wn;
    uint64_t settled_at;
    uint64_t last_busy;                /* last time demand was >= 2 */
    uint64_t probes;                   /* complete probes so far */
};

/* A copy of what the stats show. */
struct dcv_tuner_view {
    int cores, jobs, threads, ncand;
    enum dcv_tuner_phase phase;
    int cand[DCV_TUNER_MAX_CAND];
    double cost[DCV_TUNER_MAX_CAND];   /* CPU ns per job, 0 = not measured */
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

/* A job of this model that ran with `threads` finished at `now` with
 * `demand` as above (this one not included); cpu_ns is the process CPU
 * clock then, read only while t is probing (it is ignored in any other
 * phase: callers may pass 0). Advances the probe. Pure logic, no lock. */
void dcv_tuner_done(struct dcv_tuner *t, uint64_t now, long demand, int threads,
                    uint64_t cpu_ns);

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
