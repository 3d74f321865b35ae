/* test_chunk.c — how long batch runs are cut into checkpointed chunks.
 *
 * Hand-worked splits (a window of 100 ns makes the arithmetic readable:
 * the fewest power-of-two count n of chunks with items*item_ns/n <= 100,
 * chunks of items/n, then items%n single items), the fixed split of the
 * test hook, and the decision whether to cut at all (2^28 multiply-adds
 * per 100 ms of window at least, and longer than the window at the
 * kernel's speed, 200 ps per multiply-add when never measured). Then the
 * promises over a sweep: every item run once, two sizes at most, chunks
 * inside the window and not needlessly small.
 */
#include <criterion/criterion.h>
#include <stdint.h>

#include "deconvd/chunk.h"

struct split_case {
    int64_t items;
    uint64_t item_ns;
    int64_t size, count, singles;
};

static const struct split_case split_table[] = {
    { 10, 5, 10, 1, 0 },        /* 50 ns fits one window */
    { 10, 10, 10, 1, 0 },       /* exactly 100 */
    { 10, 20, 5, 2, 0 },        /* 200: two chunks of 100 */
    { 10, 30, 2, 4, 2 },        /* 300: 150 > 100, four of 75 -> 2 items (60 ns), 2 left */
    { 100, 3, 25, 4, 0 },       /* 300: four of 75 */
    { 101, 3, 25, 4, 1 },
    { 1000, 1, 62, 16, 8 },     /* 1000: 16 of 62.5 -> 62 items, 1000 - 992 left */
    { 7, 40, 1, 7, 0 },         /* 280: four of 70 -> 1 item each: all single */
    { 5, 500, 1, 5, 0 },        /* an item longer than the window */
    { 1, 500, 1, 1, 0 },
    { 3, 0, 3, 1, 0 },          /* unknown time counts as 1 ns */
};

Test(chunk, split_table)
{
    for (size_t i = 0; i < sizeof split_table / sizeof *split_table; i++) {
        const struct split_case *t = &split_table[i];
        struct dcv_chunks ch;
        dcv_chunk_split(t->items, t->item_ns, 100, &ch);
        cr_expect(ch.size == t->size && ch.count == t->count && ch.singles == t->singles,
                  "%lld items of %llu ns: got %lld x %lld + %lld singles, want %lld x %lld + "
                  "%lld", (long long)t->items, (unsigned long long)t->item_ns,
                  (long long)ch.size, (long long)ch.count, (long long)ch.singles,
                  (long long)t->size, (long long)t->count, (long long)t->singles);
    }
}

Test(chunk, split_sweep_keeps_its_promises)
{
    for (int64_t items = 1; items <= 300; items++)
        for (uint64_t ns = 1; ns <= 250; ns += 3) {
            struct dcv_chunks ch;
            dcv_chunk_split(items, ns, 100, &ch);
            cr_assert_geq(ch.size, 1);
            cr_assert_eq(ch.size * ch.count + ch.singles, items, "%lld x %llu", (long long)items,
                         (unsigned long long)ns);
            if (ch.size == 1) {
                cr_assert_eq(ch.singles, 0);
                /* single items only when two would not fit a window (up to rounding
                 * of the power-of-two count: n chunks of total/n <= 100) */
                continue;
            }
            cr_assert_leq(ch.size * (int64_t)ns, 100, "%lld x %llu: chunk of %lld",
                          (long long)items, (unsigned long long)ns, (long long)ch.size);
            cr_assert_lt(ch.singles, ch.count, "fewer single items than chunks");
            cr_assert_eq(ch.count & (ch.count - 1), 0, "count %lld is a power of two",
                         (long long)ch.count);
            if (ch.count > 1)   /* half as many chunks would not fit the window */
                cr_assert_gt((double)items * (double)ns / (double)(ch.count / 2), 100.0);
        }
}

Test(chunk, fixed_split)
{
    struct dcv_chunks ch;
    dcv_chunk_fixed(7, 3, &ch);
    cr_assert(ch.size == 3 && ch.count == 2 && ch.singles == 1);
    dcv_chunk_fixed(6, 2, &ch);
    cr_assert(ch.size == 2 && ch.count == 3 && ch.singles == 0);
    dcv_chunk_fixed(2, 5, &ch);                   /* one chunk of what there is */
    cr_assert(ch.size == 2 && ch.count == 1 && ch.singles == 0);
    dcv_chunk_fixed(5, 1, &ch);
    cr_assert(ch.size == 1 && ch.count == 5 && ch.singles == 0);
    dcv_chunk_fixed(9, 4, &ch);
    cr_assert(ch.size == 4 && ch.count == 2 && ch.singles == 1);
}

Test(chunk, estimate)
{
    cr_assert_eq(dcv_chunk_estimate_ns(1000000000, 0), 200000000);   /* 1 G at 200 ps */
    cr_assert_eq(dcv_chunk_estimate_ns(1000000000, 10), 10000000);
    cr_assert_eq(dcv_chunk_estimate_ns(3, 1), 0);
    cr_assert_eq(dcv_chunk_estimate_ns(UINT64_MAX, 1000), UINT64_MAX);
}

Test(chunk, wanted_above_the_floor_and_the_window)
{
    const uint64_t W = DCV_CHUNK_WINDOW_NS, F = UINT64_C(1) << 28;
    cr_assert_not(dcv_chunk_wanted(1, UINT64_MAX, 1000000, W), "one item is never cut");
    cr_assert_not(dcv_chunk_wanted(64, F - 1, 1000000, W), "under the floor, however slow");
    cr_assert_not(dcv_chunk_wanted(64, F, 0, W));         /* 53.7 ms at the guess */
    cr_assert(dcv_chunk_wanted(2, F * 2, 0, W));          /* 107.4 ms at the guess */
    cr_assert_not(dcv_chunk_wanted(2, F * 2, 10, W));     /* 5.4 ms measured */
    cr_assert(dcv_chunk_wanted(2, F, 373, W));            /* 100.13 ms */
    cr_assert_not(dcv_chunk_wanted(2, F, 372, W));        /* 99.86 ms */
    /* a 1 ms window scales the floor to 2^28 / 100 = 2684354.56 */
    cr_assert_not(dcv_chunk_wanted(2, 2684354, 1000000, 1000000));
    cr_assert(dcv_chunk_wanted(2, 2684355, 1000, 1000000));     /* 2.68 ms */
    cr_assert_not(dcv_chunk_wanted(2, 2684355, 300, 1000000));  /* 0.81 ms */
}
