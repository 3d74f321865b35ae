/* budget.h — the process-wide memory budget for request data.
 *
 * Request bodies being received, the decoded and computed tensors of jobs
 * and answers waiting to be sent all take their bytes from one budget of
 * memory_budget_bytes; what does not fit is refused (503 + Retry-After
 * while others hold the room, 413 when a single request needs more than
 * the whole budget) instead of growing the process. Bytes are given back
 * when the buffer they stand for is freed. Any thread: an atomic counter.
 */
#ifndef DECONVD_BUDGET_H
#define DECONVD_BUDGET_H

#include <stdbool.h>
#include <stddef.h>

/* Sets the limit (0 = no limit, for tools and tests that never call it)
 * and keeps what is already taken. Any thread. */
void dcv_budget_set_limit(size_t bytes);
size_t dcv_budget_limit(void);

/* Takes n bytes if they fit under the limit; false (nothing taken) else.
 * n == 0 always fits. Any thread. */
bool dcv_budget_take(size_t n);

/* Gives back n bytes taken earlier. Any thread. */
void dcv_budget_give(size_t n);

/* Bytes taken now, and the most ever taken at once. Any thread. */
size_t dcv_budget_used(void);
size_t dcv_budget_peak(void);

#endif
