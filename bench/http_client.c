/* http_client.c — keep-alive HTTP load client for the bench (libcurl).
 *
 * C concurrent clients, each one libcurl easy handle (one keep-alive
 * connection), POST the same body back to back, either N requests in total
 * or for a duration, and record every request's end-to-end latency
 * (request sent → response fully read). Prints one JSON object.
 *
 *   http_client -u URL -b BODYFILE [-H "Name: value"]... [-c CLIENTS]
 *               [-n REQUESTS | -d SECONDS] [-w WARMUP] [-s SAVE_FIRST_RESPONSE]
 *               [-m MIN_RESPONSE_BYTES] [-o OUT.json] [-L LATENCIES.txt]
 *               [-S SHM_KEY:IN_BYTES:OUT_BYTES -I INPUT_FILE]
 * Exit 0 when every request got a 2xx answer of at least MIN bytes.
 *
 * -S: Triton system shared memory, as a real client uses it. The object
 * SHM_KEY (created and registered by the caller) holds one block of
 * IN_BYTES + OUT_BYTES per client; client i's body is BODYFILE with
 * "@CLIENT@" replaced by i (its region names). Every request first copies
 * INPUT_FILE into the client's input region and afterwards copies the
 * output region out, so the timing includes moving the tensors; -s then
 * saves the first output's bytes instead of the JSON answer.
 */
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <fcntl.h>
#include <sys/mman.h>

#include <curl/curl.h>

#include "benchutil.h"

#define MAX_HEADERS 16
#define MAX_CLIENTS 256

struct buf {
    char *p;
    size_t len, cap;
};

struct opts {
    const char *url, *save, *out, *lat_out;
    const char *headers[MAX_HEADERS];
    int nheaders, clients, warmup;
    long requests;
    double seconds;
    size_t min_bytes;
    char *body;
    size_t body_len;
    unsigned char *shm;           /* -S: the mapped object, else NULL */
    size_t shm_in, shm_out;
    char *input;                  /* -I: what each request copies in */
};

struct client {
    const struct opts *o;
    pthread_barrier_t *bar;
    double *lat;
    size_t nlat, cap;
    long ok, non2xx, transport_errors, short_bodies;
    size_t bytes_in;
    long first_status;
    char first_error[CURL_ERROR_SIZE];
    struct buf resp;
    bool save_first;
    int id;
    char *body;                   /* this client's (shm: its region names) */
    size_t body_len;
    unsigned char *out;           /* shm: where each output is copied to */
};

static atomic_long g_issued;
static double g_deadline;

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    size_t len = size * n;
    if (b->len + len > b->cap) {
        size_t nc = b->cap ? b->cap : 65536;
        while (nc < b->len + len) nc *= 2;
        char *q = realloc(b->p, nc);
        if (!q) return 0;
        b->p = q;
        b->cap = nc;
    }
    memcpy(b->p + b->len, p, len);
    b->len += len;
    return len;
}

static CURL *make_handle(const struct opts *o, const struct client *cl, struct curl_slist **hl,
                         struct buf *resp, char *errbuf)
{
    CURL *c = curl_easy_init();
    if (!c) return NULL;
    *hl = curl_slist_append(NULL, "Expect:");   /* no 100-continue round trip */
    for (int i = 0; i < o->nheaders; i++) *hl = curl_slist_append(*hl, o->headers[i]);
    curl_easy_setopt(c, CURLOPT_URL, o->url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, *hl);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, cl->body);
    curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)cl->body_len);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, resp);
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_PROXY, "");          /* loopback only, never a proxy */
    return c;
}

/* One request; returns the HTTP status, or -1 on a transport error. */
static long one(CURL *c, struct client *cl)
{
    const struct opts *o = cl->o;
    unsigned char *block = o->shm ? o->shm + (size_t)cl->id * (o->shm_in + o->shm_out) : NULL;
    cl->resp.len = 0;
    if (block) memcpy(block, o->input, o->shm_in);
    if (curl_easy_perform(c) != CURLE_OK) return -1;
    long status = 0;
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (block) memcpy(cl->out, block + o->shm_in, o->shm_out);
    return status;
}

/* body with every "@CLIENT@" replaced by id. */
static char *client_body(const char *body, size_t len, int id, size_t *out_len)
{
    static const char tok[] = "@CLIENT@";
    char *r = malloc(len + 64 * (len / 8 + 1)), *w = r;
    if (!r) return NULL;
    for (size_t i = 0; i < len;) {
        if (len - i >= sizeof tok - 1 && !memcmp(body + i, tok, sizeof tok - 1)) {
            w += sprintf(w, "%d", id);
            i += sizeof tok - 1;
        } else {
            *w++ = body[i++];
        }
    }
    *out_len = (size_t)(w - r);
    return r;
}

static void *client_main(void *arg)
{
    struct client *cl = arg;
    const struct opts *o = cl->o;
    struct curl_slist *hl = NULL;
    char errbuf[CURL_ERROR_SIZE] = "";
    CURL *c = make_handle(o, cl, &hl, &cl->resp, errbuf);
    for (int i = 0; c && i < o->warmup; i++) one(c, cl);
    pthread_barrier_wait(cl->bar);
    if (!c) {
        cl->transport_errors++;
        return NULL;
    }
    for (;;) {
        if (o->requests > 0) {
            if (atomic_fetch_add(&g_issued, 1) >= o->requests) break;
        } else if (bu_now() >= g_deadline) {
            break;
        }
        double t0 = bu_now();
        long st = one(c, cl);
        double dt = bu_now() - t0;
        if (cl->first_status == 0) {
            cl->first_status = st;
            if (st < 0) snprintf(cl->first_error, sizeof cl->first_error, "%s", errbuf);
            if (cl->save_first && o->save) {
                FILE *f = fopen(o->save, "wb");
                if (f) {
                    if (o->shm) fwrite(cl->out, 1, o->shm_out, f);
                    else fwrite(cl->resp.p, 1, cl->resp.len, f);
                    fclose(f);
                }
            }
        }
        if (st < 0) {
            cl->transport_errors++;
            if (!cl->first_error[0]) snprintf(cl->first_error, sizeof cl->first_error, "%s", errbuf);
            continue;
        }
        if (st < 200 || st > 299) {
            cl->non2xx++;
            continue;
        }
        if (cl->resp.len < o->min_bytes) cl->short_bodies++;
        cl->ok++;
        cl->bytes_in += cl->resp.len;
        if (cl->nlat == cl->cap) {
            size_t nc = cl->cap ? cl->cap * 2 : 4096;
            double *q = realloc(cl->lat, nc * sizeof *q);
            if (!q) break;
            cl->lat = q;
            cl->cap = nc;
        }
        cl->lat[cl->nlat++] = dt;
    }
    curl_easy_cleanup(c);
    curl_slist_free_all(hl);
    return NULL;
}

static int read_file(const char *path, char **out, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    *out = malloc((size_t)n + 1);
    if (!*out || fread(*out, 1, (size_t)n, f) != (size_t)n) {
        fclose(f);
        return -1;
    }
    fclose(f);
    *len = (size_t)n;
    return 0;
}

/* -S KEY:IN:OUT and -I FILE: maps the object (clients × (IN + OUT) bytes). */
static int map_shm(struct opts *o, const char *spec, const char *input_path)
{
    char key[256];
    size_t len = 0;
    if (sscanf(spec, "%255[^:]:%zu:%zu", key, &o->shm_in, &o->shm_out) != 3 || !input_path ||
        read_file(input_path, &o->input, &len) || len != o->shm_in) {
        fprintf(stderr, "http_client: bad -S %s / -I %s (input must be IN_BYTES long)\n", spec,
                input_path ? input_path : "(none)");
        return -1;
    }
    int fd = shm_open(key, O_RDWR, 0);
    size_t size = (size_t)o->clients * (o->shm_in + o->shm_out);
    void *p = fd < 0 ? MAP_FAILED : mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (fd >= 0) close(fd);
    if (p == MAP_FAILED) {
        perror(key);
        return -1;
    }
    o->shm = p;
    return 0;
}

int main(int argc, char **argv)
{
    struct opts o = { .clients = 1, .warmup = 3 };
    const char *body_path = NULL, *shm_spec = NULL, *input_path = NULL;
    int opt;
    while ((opt = getopt(argc, argv, "u:b:H:c:n:d:w:s:m:o:L:S:I:")) != -1) {
        switch (opt) {
        case 'u': o.url = optarg; break;
        case 'b': body_path = optarg; break;
        case 'H':
            if (o.nheaders < MAX_HEADERS) o.headers[o.nheaders++] = optarg;
            break;
        case 'c': o.clients = atoi(optarg); break;
        case 'n': o.requests = atol(optarg); break;
        case 'd': o.seconds = atof(optarg); break;
        case 'w': o.warmup = atoi(optarg); break;
        case 's': o.save = optarg; break;
        case 'm': o.min_bytes = (size_t)atol(optarg); break;
        case 'o': o.out = optarg; break;
        case 'L': o.lat_out = optarg; break;
        case 'S': shm_spec = optarg; break;
        case 'I': input_path = optarg; break;
        default: o.url = NULL; optind = argc; break;
        }
    }
    if (!o.url || !body_path || o.clients < 1 || o.clients > MAX_CLIENTS ||
        (o.requests <= 0 && o.seconds <= 0)) {
        fprintf(stderr, "usage: http_client -u URL -b BODYFILE [-H 'Name: value']... "
                "[-c CLIENTS] (-n REQUESTS | -d SECONDS) [-w WARMUP] [-s SAVE] [-m MINBYTES] "
                "[-o OUT.json] [-L LATENCIES.txt] [-S SHM_KEY:IN_BYTES:OUT_BYTES -I INPUT]\n");
        return 2;
    }
    if (read_file(body_path, &o.body, &o.body_len)) {
        perror(body_path);
        return 2;
    }
    if (shm_spec && map_shm(&o, shm_spec, input_path)) return 2;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    pthread_t th[MAX_CLIENTS];
    struct client *cl = calloc((size_t)o.clients, sizeof *cl);
    pthread_barrier_t bar;
    pthread_barrier_init(&bar, NULL, (unsigned)o.clients + 1);
    for (int i = 0; i < o.clients; i++) {
        cl[i] = (struct client){ .o = &o, .bar = &bar, .save_first = i == 0, .id = i,
                                 .body = o.body, .body_len = o.body_len };
        if (o.shm && (!(cl[i].body = client_body(o.body, o.body_len, i, &cl[i].body_len)) ||
                      !(cl[i].out = malloc(o.shm_out)))) {
            fprintf(stderr, "out of memory\n");
            return 2;
        }
        pthread_create(&th[i], NULL, client_main, &cl[i]);
    }
    g_deadline = 1e300;
    pthread_barrier_wait(&bar);                    /* everyone warmed up */
    double t0 = bu_now();
    g_deadline = t0 + o.seconds;
    for (int i = 0; i < o.clients; i++) pthread_join(th[i], NULL);
    double elapsed = bu_now() - t0;

    size_t n = 0;
    long ok = 0, non2xx = 0, terr = 0, shortb = 0;
    size_t bytes = 0;
    for (int i = 0; i < o.clients; i++) {
        n += cl[i].nlat;
        ok += cl[i].ok;
        non2xx += cl[i].non2xx;
        terr += cl[i].transport_errors;
        shortb += cl[i].short_bodies;
        bytes += cl[i].bytes_in;
    }
    double *all = malloc((n ? n : 1) * sizeof *all);
    size_t k = 0;
    for (int i = 0; i < o.clients; i++) {
        memcpy(all + k, cl[i].lat, cl[i].nlat * sizeof *all);
        k += cl[i].nlat;
    }
    if (o.lat_out) {                               /* every latency, for merging runs */
        FILE *lf = fopen(o.lat_out, "w");
        if (lf) {
            for (size_t i = 0; i < n; i++) fprintf(lf, "%.9g\n", all[i]);
            fclose(lf);
        }
    }
    FILE *f = o.out ? fopen(o.out, "w") : stdout;
    if (!f) f = stdout;
    fprintf(f, "{\"url\": \"%s\", \"clients\": %d, \"elapsed_s\": %.6f, \"ok\": %ld, "
            "\"non2xx\": %ld, \"transport_errors\": %ld, \"short_bodies\": %ld, "
            "\"first_status\": %ld, \"first_error\": \"%s\", \"request_bytes\": %zu, "
            "\"response_bytes_mean\": %.1f, \"rps\": %.6g, "
            "\"latency\": {\"min_s\": %.9g, \"median_s\": %.9g, \"mean_s\": %.9g, "
            "\"p90_s\": %.9g, \"p99_s\": %.9g, \"max_s\": %.9g}}\n",
            o.url, o.clients, elapsed, ok, non2xx, terr, shortb, cl[0].first_status,
            cl[0].first_error, o.body_len, ok ? (double)bytes / (double)ok : 0.0,
            (double)ok / elapsed, bu_quantile(all, n, 0.0), bu_median(all, n), bu_mean(all, n),
            bu_quantile(all, n, 0.9), bu_quantile(all, n, 0.99), bu_quantile(all, n, 1.0));
    if (f != stdout) fclose(f);
    for (int i = 0; i < o.clients; i++) {
        free(cl[i].lat);
        free(cl[i].resp.p);
    }
    free(cl);
    free(all);
    free(o.body);
    curl_global_cleanup();
    return (non2xx || terr || shortb || ok == 0) ? 1 : 0;
}
