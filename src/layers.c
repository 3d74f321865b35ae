/* layers.c — the layer registry: finds a layer class by Keras name.
 *
 * The table is DCV_LAYER_CLASSES (layers.h); entries live in their family's
 * file (layer_shape.c, layer_conv.c, ...). Lookup accepts the canonical
 * Keras class name, the entry's aliases, and any name that matches one of
 * those ignoring case and underscores (tf.keras 2's snake_case
 * registrations, "conv2d_transpose"). Pure, any thread.
 */
#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <string.h>

#include "deconvd/layers.h"

static const struct dcv_layer_class *const table[] = {
#define DCV_X_ENTRY(id) &dcv_layer_class_##id,
    DCV_LAYER_CLASSES(DCV_X_ENTRY)
#undef DCV_X_ENTRY
};
#define NCLASSES (sizeof table / sizeof *table)

/* Equal ignoring case and '_'. */
static int loose_eq(const char *a, const char *b)
{
    for (;;) {
        while (*a == '_') a++;
        while (*b == '_') b++;
        if (tolower((unsigned char)*a) != tolower((unsigned char)*b)) return 0;
        if (!*a) return 1;
        a++, b++;
    }
}

static const struct dcv_layer_class *find_by(const char *name, int (*eq)(const char *, const char *))
{
    for (size_t i = 0; i < NCLASSES; i++) {
        if (eq(table[i]->name, name)) return table[i];
        for (const char *const *a = table[i]->aliases; a && *a; a++)
            if (eq(*a, name)) return table[i];
    }
    return NULL;
}

static int exact_eq(const char *a, const char *b) { return strcmp(a, b) == 0; }

const struct dcv_layer_class *dcv_layers_find(const char *class_name)
{
    const struct dcv_layer_class *c;
    if (!class_name || !*class_name) return NULL;
    if ((c = find_by(class_name, exact_eq))) return c;
    return find_by(class_name, loose_eq);
}

static char supported[2048];

static void list_once(void)
{
    size_t n = 0;
    for (size_t i = 0; i < NCLASSES && n < sizeof supported; i++)
        n += (size_t)snprintf(supported + n, sizeof supported - n, "%s%s", i ? ", " : "",
                              table[i]->name);
}

const char *dcv_layers_supported(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, list_once);
    return supported;
}
