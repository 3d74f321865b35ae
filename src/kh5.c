/* kh5.c — bounded HDF5 reading over libhdf5 (Keras's weight files).
 *
 * The file comes as bytes and is opened through the core driver with a
 * file image, so nothing touches the disk. libhdf5 is never asked to
 * resolve a path on its own: each '/'-separated component is checked to be
 * a hard link (H5Lget_info) before it is opened, the addresses of the
 * objects along the path are compared so a hard-link loop is refused, and
 * the component count is bounded. Attribute sizes are read from the type
 * and dataspace before any data; dataset type, rank, storage (no external
 * files, no virtual datasets, only deflate/shuffle) and declared size are
 * checked before H5Dread converts to native float32. HDF5's error stack is
 * never printed; its innermost message is quoted in ours. Owns the file
 * handle. libhdf5 serial is not thread-safe: one thread at a time.
 */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <hdf5.h>

#include "deconvd/error.h"
#include "deconvd/kh5.h"
#include "deconvd/utf8.h"

#define DEFAULT_ATTR_BYTES ((size_t)16 << 20)
#define DEFAULT_DEPTH 32
#define PATH_MAX_BYTES 1024

struct dcv_kh5 {
    hid_t file;
    size_t file_bytes;
    size_t max_attr_bytes;
    int max_depth;
};

static herr_t innermost(unsigned n, const H5E_error2_t *e, void *data)
{
    if (n == 0) snprintf(data, 160, "%s", e->desc ? e->desc : "");
    return 0;
}

/* HDF5's own reason for the last failure ("" when it gave none). */
static const char *h5_reason(char *buf)
{
    buf[0] = 0;
    H5Ewalk2(H5E_DEFAULT, H5E_WALK_UPWARD, innermost, buf);
    H5Eclear2(H5E_DEFAULT);
    return buf;
}

int dcv_kh5_open(const void *bytes, size_t len, const struct dcv_kh5_limits *lim,
                 struct dcv_kh5 **out, char *err)
{
    char why[160];
    int rc = 0;
    *out = NULL;
    H5Eset_auto2(H5E_DEFAULT, NULL, NULL);
    struct dcv_kh5 *h = calloc(1, sizeof *h);
    if (!h) return dcv_errf(err, DCV_ENOMEM, "out of memory");
    h->file = H5I_INVALID_HID;
    h->file_bytes = len;
    h->max_attr_bytes = lim && lim->max_attr_bytes ? lim->max_attr_bytes : DEFAULT_ATTR_BYTES;
    h->max_depth = lim && lim->max_link_depth > 0 ? lim->max_link_depth : DEFAULT_DEPTH;
    hid_t fapl = H5Pcreate(H5P_FILE_ACCESS);
    if (fapl < 0 || H5Pset_fapl_core(fapl, 1 << 16, 0) < 0 ||
        H5Pset_file_image(fapl, len ? (void *)bytes : NULL, len) < 0) {
        rc = dcv_errf(err, DCV_ENOMEM, "HDF5 file image of %zu bytes: %s", len, h5_reason(why));
        goto out;
    }
    h->file = H5Fopen("deconvd-file-image", H5F_ACC_RDONLY, fapl);
    if (h->file < 0)
        rc = dcv_errf(err, DCV_EPARSE, "not a readable HDF5 file (%zu bytes): %s", len,
                      h5_reason(why));
out:
    if (fapl >= 0) H5Pclose(fapl);
    if (rc) dcv_kh5_close(h);
    else *out = h;
    return rc;
}

void dcv_kh5_close(struct dcv_kh5 *h)
{
    if (!h) return;
    if (h->file >= 0) H5Fclose(h->file);
    free(h);
}

/* One component below group cur, checked to be a hard link to an object
 * not already on the path. */
static int step(hid_t cur, const char *comp, const char *path,
                haddr_t *seen, int depth, hid_t *next, char *err)
{
    char why[160];
    H5L_info_t li;
    H5O_info_t oi;
    if (!strcmp(comp, ".") || !strcmp(comp, ".."))
        return dcv_errf(err, DCV_EINVAL, "HDF5 path '%.200s' has a '%s' component", path, comp);
    htri_t ex = H5Lexists(cur, comp, H5P_DEFAULT);
    if (ex < 0) return dcv_errf(err, DCV_EPARSE, "HDF5 '%.200s': %s", path, h5_reason(why));
    if (ex == 0) return DCV_ENOENT;
    if (H5Lget_info(cur, comp, &li, H5P_DEFAULT) < 0)
        return dcv_errf(err, DCV_EPARSE, "HDF5 '%.200s': %s", path, h5_reason(why));
    if (li.type != H5L_TYPE_HARD)
        return dcv_errf(err, DCV_EUNSUPP, "HDF5 '%.200s': '%.64s' is %s link; only hard "
                        "links are followed", path, comp,
                        li.type == H5L_TYPE_SOFT ? "a soft" :
                        li.type == H5L_TYPE_EXTERNAL ? "an external" : "a user-defined");
    if ((*next = H5Oopen(cur, comp, H5P_DEFAULT)) < 0)
        return dcv_errf(err, DCV_EPARSE, "HDF5 '%.200s': cannot open '%.64s': %s", path, comp,
                        h5_reason(why));
    if (H5Oget_info2(*next, &oi, H5O_INFO_BASIC) < 0) {
        H5Oclose(*next);
        return dcv_errf(err, DCV_EPARSE, "HDF5 '%.200s': %s", path, h5_reason(why));
    }
    for (int i = 0; i < depth; i++)
        if (seen[i] == oi.addr) {
            H5Oclose(*next);
            return dcv_errf(err, DCV_EPARSE, "HDF5 '%.200s': '%.64s' links back to a group "
                            "above it (a cycle)", path, comp);
        }
    seen[depth] = oi.addr;
    return 0;
}

/* Opens the object at path one hard link at a time; DCV_ENOENT (without a
 * message) when a component is missing. */
static int open_path(struct dcv_kh5 *h, const char *path, hid_t *out, char *err)
{
    char buf[PATH_MAX_BYTES], why[160], *save = NULL;
    haddr_t seen[256];
    H5O_info_t oi;
    int rc = 0, depth = 0, max = h->max_depth < 255 ? h->max_depth : 255;
    if (strlen(path) >= sizeof buf)
        return dcv_errf(err, DCV_ETOOBIG, "HDF5 path '%.64s...' is longer than %zu bytes",
                        path, sizeof buf - 1);
    snprintf(buf, sizeof buf, "%s", path);
    hid_t cur = H5Oopen(h->file, "/", H5P_DEFAULT);
    if (cur < 0 || H5Oget_info2(cur, &oi, H5O_INFO_BASIC) < 0) {
        if (cur >= 0) H5Oclose(cur);
        return dcv_errf(err, DCV_EPARSE, "HDF5 root group: %s", h5_reason(why));
    }
    seen[depth++] = oi.addr;
    for (char *c = strtok_r(buf, "/", &save); c; c = strtok_r(NULL, "/", &save)) {
        hid_t next = H5I_INVALID_HID;
        if (depth > max) {
            rc = dcv_errf(err, DCV_ETOOBIG, "HDF5 path '%.200s' is more than %d links deep",
                          path, max);
            break;
        }
        if (H5Iget_type(cur) != H5I_GROUP) {
            rc = DCV_ENOENT;
            break;
        }
        if ((rc = step(cur, c, path, seen, depth, &next, err))) break;
        H5Oclose(cur);
        cur = next;
        depth++;
    }
    if (rc) H5Oclose(cur);
    else *out = cur;
    return rc;
}

int dcv_kh5_exists(struct dcv_kh5 *h, const char *path, char *err)
{
    hid_t o;
    int rc = open_path(h, path, &o, err);
    if (rc == DCV_ENOENT) return 0;
    if (rc) return rc;
    H5Oclose(o);
    return 1;
}

void dcv_kh5_strings_free(char **s, size_t n)
{
    if (!s) return;
    for (size_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

/* Copies n strings of at most len bytes each (fixed: NUL-padded). */
static int keep_strings(char **dst, char *const *src, const char *fixed, size_t size, size_t n,
                        size_t budget, const char *what, char *err)
{
    size_t total = 0;
    for (size_t i = 0; i < n; i++) {
        const char *s = fixed ? fixed + i * size : src[i];
        size_t len = fixed ? strnlen(s, size) : (s ? strlen(s) : 0);
        total += len;
        if (total > budget)
            return dcv_errf(err, DCV_ETOOBIG, "HDF5 attribute %s holds more than %zu bytes of "
                            "strings", what, budget);
        if (dcv_utf8_check(s ? s : "", len, NULL))
            return dcv_errf(err, DCV_EPARSE, "HDF5 attribute %s: string %zu is not UTF-8", what,
                            i);
        if (!(dst[i] = strndup(s ? s : "", len)))
            return dcv_errf(err, DCV_ENOMEM, "out of memory");
    }
    return 0;
}

/* Reads n strings of the attribute's type into *list. */
static int read_strings(struct dcv_kh5 *h, hid_t a, hid_t type, hid_t space, size_t n,
                        char **list, const char *what, char *err)
{
    char why[160];
    bool vlen = H5Tis_variable_str(type) > 0;
    size_t size = vlen ? sizeof(char *) : H5Tget_size(type);
    if (size == 0 || n > h->max_attr_bytes / size)
        return dcv_errf(err, DCV_ETOOBIG, "HDF5 attribute %s: %zu strings of %zu bytes; at most "
                        "%zu bytes", what, n, size, h->max_attr_bytes);
    hid_t mem = H5Tcopy(type);
    char *buf = calloc(n, size);
    int rc = 0;
    if (mem < 0 || !buf) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory for HDF5 attribute %s", what);
    } else if (H5Aread(a, mem, buf) < 0) {
        rc = dcv_errf(err, DCV_EPARSE, "HDF5 attribute %s: %s", what, h5_reason(why));
    } else {
        rc = keep_strings(list, (char *const *)(void *)buf, vlen ? NULL : buf, size, n,
                          h->max_attr_bytes, what, err);
        if (vlen) H5Dvlen_reclaim(mem, space, H5P_DEFAULT, buf);
    }
    if (mem >= 0) H5Tclose(mem);
    free(buf);
    return rc;
}

static int attr_open(struct dcv_kh5 *h, const char *path, const char *attr, hid_t *obj,
                     hid_t *a, const char *what, char *err)
{
    char why[160];
    int rc = open_path(h, path, obj, err);
    if (rc == DCV_ENOENT)
        return dcv_errf(err, DCV_ENOENT, "HDF5 file has no object '%.200s'", path);
    if (rc) return rc;
    htri_t ex = H5Aexists(*obj, attr);
    if (ex <= 0)
        return dcv_errf(err, ex < 0 ? DCV_EPARSE : DCV_ENOENT, "HDF5 file has no attribute %s%s"
                        "%s", what, ex < 0 ? ": " : "", ex < 0 ? h5_reason(why) : "");
    if ((*a = H5Aopen(*obj, attr, H5P_DEFAULT)) < 0)
        return dcv_errf(err, DCV_EPARSE, "HDF5 attribute %s: %s", what, h5_reason(why));
    return 0;
}

int dcv_kh5_attr_strings(struct dcv_kh5 *h, const char *path, const char *attr, char ***out,
                         size_t *n, char *err)
{
    char what[300];
    hid_t obj = H5I_INVALID_HID, a = H5I_INVALID_HID, type = H5I_INVALID_HID;
    hid_t space = H5I_INVALID_HID;
    char **list = NULL;
    int rank = -1;
    hssize_t npts = -1;
    *out = NULL;
    *n = 0;
    snprintf(what, sizeof what, "'%.200s@%.64s'", *path ? path : "/", attr);
    int rc = attr_open(h, path, attr, &obj, &a, what, err);
    if (rc) goto out;
    type = H5Aget_type(a);
    space = H5Aget_space(a);
    rank = space >= 0 ? H5Sget_simple_extent_ndims(space) : -1;
    npts = space >= 0 ? H5Sget_simple_extent_npoints(space) : -1;
    if (type < 0 || rank < 0 || npts < 0) {
        rc = dcv_errf(err, DCV_EPARSE, "HDF5 attribute %s has no readable type or shape", what);
    } else if (rank > 1) {
        rc = dcv_errf(err, DCV_EUNSUPP, "HDF5 attribute %s has rank %d; strings are read from "
                      "scalars and lists", what, rank);
    } else if (H5Aget_storage_size(a) > h->max_attr_bytes) {
        rc = dcv_errf(err, DCV_ETOOBIG, "HDF5 attribute %s stores %llu bytes; at most %zu",
                      what, (unsigned long long)H5Aget_storage_size(a), h->max_attr_bytes);
    } else if (npts > 0 && H5Tget_class(type) != H5T_STRING) {
        rc = dcv_errf(err, DCV_EUNSUPP, "HDF5 attribute %s is not strings", what);
    } else if (!(list = calloc((size_t)npts + 1, sizeof *list))) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory");
    } else if (npts > 0) {
        rc = read_strings(h, a, type, space, (size_t)npts, list, what, err);
    }
out:
    if (rc) dcv_kh5_strings_free(list, (size_t)(npts > 0 ? npts : 0));
    else {
        *out = list;
        *n = (size_t)npts;
    }
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    if (a >= 0) H5Aclose(a);
    if (obj >= 0) H5Oclose(obj);
    return rc;
}

/* IEEE binary32/binary64 in either byte order: all that converts to
 * float32 without surprises. */
static bool float_type(hid_t t)
{
    return H5Tequal(t, H5T_IEEE_F32LE) > 0 || H5Tequal(t, H5T_IEEE_F32BE) > 0 ||
           H5Tequal(t, H5T_IEEE_F64LE) > 0 || H5Tequal(t, H5T_IEEE_F64BE) > 0;
}

static const char *class_name(H5T_class_t c)
{
    switch (c) {
    case H5T_INTEGER: return "integer";
    case H5T_FLOAT: return "float of a non-IEEE layout";
    case H5T_STRING: return "string";
    case H5T_COMPOUND: return "compound";
    case H5T_VLEN: return "variable-length";
    case H5T_ARRAY: return "array";
    case H5T_ENUM: return "enum";
    case H5T_REFERENCE: return "reference";
    case H5T_OPAQUE: return "opaque";
    case H5T_BITFIELD: return "bitfield";
    default: return "unknown";
    }
}

/* Rank and extent: rank <= DCV_MAX_DIMS, at most max values in all. */
static int read_shape(hid_t space, const char *path, size_t max, struct dcv_kh5_array *out,
                      size_t *elems, char *err)
{
    hsize_t dims[DCV_MAX_DIMS];
    int rank = H5Sget_simple_extent_ndims(space);
    if (rank < 0) return dcv_errf(err, DCV_EPARSE, "HDF5 dataset '%.200s' has no shape", path);
    if (rank > DCV_MAX_DIMS)
        return dcv_errf(err, DCV_EUNSUPP, "HDF5 dataset '%.200s' has rank %d; at most %d",
                        path, rank, DCV_MAX_DIMS);
    if (H5Sget_simple_extent_dims(space, dims, NULL) < 0)
        return dcv_errf(err, DCV_EPARSE, "HDF5 dataset '%.200s' has no shape", path);
    size_t n = 1;
    for (int i = 0; i < rank; i++) {
        if (dims[i] > (hsize_t)INT64_MAX || (dims[i] && n > max / dims[i]))
            return dcv_errf(err, DCV_ETOOBIG, "HDF5 dataset '%.200s' has more than %zu values "
                            "(dim %d is %llu)", path, max, i, (unsigned long long)dims[i]);
        n *= (size_t)dims[i];
        out->shape[i] = (int64_t)dims[i];
    }
    if (n > max)
        return dcv_errf(err, DCV_ETOOBIG, "HDF5 dataset '%.200s' has %zu values; at most %zu",
                        path, n, max);
    out->ndim = rank;
    *elems = n;
    return 0;
}

/* Storage kept inside the file and only through filters that bound what
 * they produce; unfiltered data must fit in the file it claims to be in. */
static int check_storage(struct dcv_kh5 *h, hid_t d, const char *path, size_t bytes, char *err)
{
    hid_t dcpl = H5Dget_create_plist(d);
    int rc = 0;
    if (dcpl < 0) return dcv_errf(err, DCV_EPARSE, "HDF5 dataset '%.200s' has no layout", path);
    int ext = H5Pget_external_count(dcpl), nf = H5Pget_nfilters(dcpl);
    H5D_layout_t layout = H5Pget_layout(dcpl);
    if (ext != 0 || layout == H5D_VIRTUAL || layout < 0 || nf < 0) {
        rc = dcv_errf(err, DCV_EUNSUPP, "HDF5 dataset '%.200s' keeps its data %s; only data "
                      "inside the file is read", path, layout == H5D_VIRTUAL ? "in other "
                      "datasets (virtual)" : "in external files");
        goto out;
    }
    for (int i = 0; i < nf; i++) {
        unsigned flags;
        size_t nv = 0;
        H5Z_filter_t f = H5Pget_filter2(dcpl, (unsigned)i, &flags, &nv, NULL, 0, NULL, NULL);
        if (f != H5Z_FILTER_DEFLATE && f != H5Z_FILTER_SHUFFLE) {
            rc = dcv_errf(err, DCV_EUNSUPP, "HDF5 dataset '%.200s' uses filter %d; only deflate "
                          "and shuffle are read", path, (int)f);
            goto out;
        }
    }
    if (nf == 0 && bytes > h->file_bytes)
        rc = dcv_errf(err, DCV_ETOOBIG, "HDF5 dataset '%.200s' declares %zu bytes of data in a "
                      "file of %zu bytes", path, bytes, h->file_bytes);
out:
    H5Pclose(dcpl);
    return rc;
}

/* Type, shape and storage of dataset d, then its values as float32. */
static int read_dataset(struct dcv_kh5 *h, hid_t d, const char *path, size_t max,
                        struct dcv_kh5_array *out, char *err)
{
    char why[160];
    size_t elems = 0;
    int rc = 0;
    hid_t type = H5Dget_type(d), space = H5Dget_space(d);
    if (type < 0 || space < 0) {
        rc = dcv_errf(err, DCV_EPARSE, "HDF5 dataset '%.200s': %s", path, h5_reason(why));
        goto out;
    }
    if (!float_type(type)) {
        rc = dcv_errf(err, DCV_EUNSUPP, "HDF5 dataset '%.200s' holds %s values of %zu bytes; "
                      "weights must be float32 or float64", path, class_name(H5Tget_class(type)),
                      H5Tget_size(type));
        goto out;
    }
    if ((rc = read_shape(space, path, max, out, &elems, err)) ||
        (rc = check_storage(h, d, path, elems * H5Tget_size(type), err)))
        goto out;
    if (!(out->data = malloc(elems ? elems * sizeof(float) : 1))) {
        rc = dcv_errf(err, DCV_ENOMEM, "out of memory for HDF5 dataset '%.200s' (%zu values)",
                      path, elems);
        goto out;
    }
    if (elems && H5Dread(d, H5T_NATIVE_FLOAT, H5S_ALL, H5S_ALL, H5P_DEFAULT, out->data) < 0)
        rc = dcv_errf(err, DCV_EPARSE, "HDF5 dataset '%.200s' cannot be read: %s", path,
                      h5_reason(why));
out:
    if (space >= 0) H5Sclose(space);
    if (type >= 0) H5Tclose(type);
    return rc;
}

int dcv_kh5_read(struct dcv_kh5 *h, const char *path, size_t max_elems,
                 struct dcv_kh5_array *out, char *err)
{
    hid_t o;
    memset(out, 0, sizeof *out);
    int rc = open_path(h, path, &o, err);
    if (rc == DCV_ENOENT)
        return dcv_errf(err, DCV_ENOENT, "HDF5 file has no dataset '%.200s'", path);
    if (rc) return rc;
    if (H5Iget_type(o) != H5I_DATASET)
        rc = dcv_errf(err, DCV_EUNSUPP, "HDF5 object '%.200s' is not a dataset", path);
    else
        rc = read_dataset(h, o, path, max_elems, out, err);
    H5Oclose(o);
    if (rc) {
        free(out->data);
        memset(out, 0, sizeof *out);
    }
    return rc;
}
