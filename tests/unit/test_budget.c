/* test_budget.c — the memory budget: takes fit under the limit or take
 * nothing, gives return the bytes, the peak is kept, sizes that would wrap
 * are refused, and concurrent takers never push the total past the limit
 * together. Criterion runs each test in its own process, so the budget
 * starts empty in each. */
#include <criterion/criterion.h>
#include <pthread.h>
#include <stdint.h>

#include "deconvd/budget.h"

Test(budget, no_limit_takes_anything)
{
    dcv_budget_set_limit(0);
    cr_assert(dcv_budget_take((size_t)1 << 40));
    cr_assert_eq(dcv_budget_used(), (size_t)1 << 40);
    dcv_budget_give((size_t)1 << 40);
    cr_assert_eq(dcv_budget_used(), 0);
}

Test(budget, takes_fit_or_take_nothing)
{
    dcv_budget_set_limit(100);
    cr_assert(dcv_budget_take(60));
    cr_assert(!dcv_budget_take(41), "60 + 41 is above 100");
    cr_assert_eq(dcv_budget_used(), 60, "a refused take takes nothing");
    cr_assert(dcv_budget_take(40), "60 + 40 is exactly the limit");
    cr_assert(!dcv_budget_take(1));
    cr_assert(dcv_budget_take(0), "nothing always fits");
    dcv_budget_give(70);
    cr_assert_eq(dcv_budget_used(), 30);
    cr_assert_eq(dcv_budget_peak(), 100);
    cr_assert(dcv_budget_take(70));
}

Test(budget, wrapping_sizes_are_refused)
{
    dcv_budget_set_limit(0);
    cr_assert(dcv_budget_take(10));
    cr_assert(!dcv_budget_take(SIZE_MAX - 5), "10 + (2^64 - 6) wraps");
    cr_assert_eq(dcv_budget_used(), 10);
}

Test(budget, lowering_the_limit_keeps_what_is_taken)
{
    dcv_budget_set_limit(1000);
    cr_assert(dcv_budget_take(800));
    dcv_budget_set_limit(500);
    cr_assert_eq(dcv_budget_limit(), 500);
    cr_assert_eq(dcv_budget_used(), 800);
    cr_assert(!dcv_budget_take(1));
    dcv_budget_give(400);
    cr_assert(dcv_budget_take(100));
}

#define THREADS 4
#define ROUNDS 200000
#define LIMIT 20

static void *churn(void *arg)
{
    size_t *won = arg;
    for (int i = 0; i < ROUNDS; i++) {
        size_t n = (size_t)(i % 7) + 1;
        if (dcv_budget_take(n)) {
            (*won)++;
            dcv_budget_give(n);
        }
    }
    return NULL;
}

Test(budget, concurrent_takers_stay_under_the_limit)
{
    pthread_t t[THREADS];
    size_t won[THREADS] = { 0 };
    dcv_budget_set_limit(LIMIT);
    for (int i = 0; i < THREADS; i++) cr_assert_eq(pthread_create(&t[i], NULL, churn, &won[i]), 0);
    for (int i = 0; i < THREADS; i++) pthread_join(t[i], NULL);
    cr_assert_leq(dcv_budget_peak(), LIMIT, "peak %zu above the limit", dcv_budget_peak());
    cr_assert_eq(dcv_budget_used(), 0, "every take was given back");
    for (int i = 0; i < THREADS; i++) cr_assert_gt(won[i], 0);
}
