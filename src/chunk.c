/* chunk.c — the arithmetic of cutting a batch run into checkpointed chunks.
 *
 * The engine measures what an item costs (one item first, or the last
 * chunked run of the same shape) and asks here how to cut the rest. The
 * number of chunks is a power of two so that the chunk size of a given
 * batch stays put while the measured time wanders by less than a factor
 * of two: a new size would be a new plan to build. What does not divide
 * evenly runs as single items (fewer than there are chunks), whose plan a
 * chunked run has anyway: two plans per run, never a third for a
 * remainder. Pure arithmetic, any thread, owns nothing.
 */
#include "deconvd/chunk.h"

uint64_t dcv_chunk_estimate_ns(uint64_t work, uint64_t ps_per_madd)
{
    double ns = (double)work * (double)(ps_per_madd ? ps_per_madd : DCV_CHUNK_GUESS_PS) / 1e3;
    return ns >= 0x1p64 ? UINT64_MAX : (uint64_t)ns;
}

bool dcv_chunk_wanted(int64_t batch, uint64_t work, uint64_t ps_per_madd, uint64_t window_ns)
{
    double floor = (double)DCV_CHUNK_MIN_WORK * (double)window_ns / (double)DCV_CHUNK_WINDOW_NS;
    return batch >= 2 && (double)work >= floor &&
           dcv_chunk_estimate_ns(work, ps_per_madd) > window_ns;
}

static void settle(int64_t items, int64_t size, int64_t count, struct dcv_chunks *out)
{
    if (size <= 1) {
        *out = (struct dcv_chunks){ 1, items, 0 };
        return;
    }
    *out = (struct dcv_chunks){ size, count, items - size * count };
}

void dcv_chunk_split(int64_t items, uint64_t item_ns, uint64_t window_ns, struct dcv_chunks *out)
{
    double total = (double)items * (double)(item_ns ? item_ns : 1);
    int64_t n = 1;
    while (n < items && total / (double)n > (double)window_ns) n *= 2;
    if (n > items) n = items;
    settle(items, items / n, n, out);
}

void dcv_chunk_fixed(int64_t items, int64_t size, struct dcv_chunks *out)
{
    if (size > items) size = items;
    settle(items, size, size > 0 ? items / size : items, out);
}
