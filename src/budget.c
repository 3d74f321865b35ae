/* budget.c — one atomic counter of request bytes against a limit.
 *
 * take() is a compare-and-swap loop, so concurrent takers never push the
 * total past the limit together; give() is a plain subtraction. The peak
 * is kept for metrics and the robustness figures. Owned by nobody: the
 * HTTP layer takes for bodies, jobs for tensors and answers, and each
 * gives back what it took (an answer's bytes go back when MHD frees the
 * response, which can be well after the job ended). Any thread.
 */
#include <stdatomic.h>

#include "deconvd/budget.h"

static atomic_size_t g_limit, g_used, g_peak;

void dcv_budget_set_limit(size_t bytes) { atomic_store(&g_limit, bytes); }
size_t dcv_budget_limit(void) { return atomic_load(&g_limit); }
size_t dcv_budget_used(void) { return atomic_load(&g_used); }
size_t dcv_budget_peak(void) { return atomic_load(&g_peak); }

bool dcv_budget_take(size_t n)
{
    size_t limit = atomic_load(&g_limit), cur = atomic_load(&g_used), next;
    do {
        next = cur + n;
        if (next < cur || (limit && next > limit)) return false;
    } while (!atomic_compare_exchange_weak(&g_used, &cur, next));
    size_t peak = atomic_load(&g_peak);
    while (next > peak && !atomic_compare_exchange_weak(&g_peak, &peak, next)) {}
    return true;
}

void dcv_budget_give(size_t n) { atomic_fetch_sub(&g_used, n); }
