/*
 * weights.h -- weight dumps (checkpoints): open and validate, read tensors
 * as double, write, inspect.  Two formats, chosen by content:
 *
 *   HDF5 (DESIGN.md section 2):
 *     /                 attrs (optional): format="repbench-weights", version=1, model
 *     /weights/<param>  float16|32|64, any rank; names as in the state dict
 *                       (dots kept).  Nested groups under /weights are joined
 *                       with '/' into the name.  Integer datasets are listed
 *                       as non-float tensors and skipped by every method.
 *
 *   safetensors (https://github.com/huggingface/safetensors, format 0.x):
 *     8-byte little-endian header length N, N bytes of a UTF-8 JSON object
 *     {"name": {"dtype": "F32", "shape": [..], "data_offsets": [b, e]}, ...,
 *      "__metadata__": {"k": "v", ...}}, then the byte buffer.  Offsets are
 *     relative to the buffer.  The header parser is a strict JSON parser for
 *     that subset (objects, arrays, strings, non-negative integers; depth <=
 *     4).  A file is refused, with one line naming the file, the tensor and
 *     the problem, when: it is shorter than 8 bytes; N is 0, larger than the
 *     file or larger than 100 MB; the header is not valid JSON or not an
 *     object of tensor objects; a key is duplicated; a tensor lacks dtype,
 *     shape or data_offsets, or has other keys; the dtype is unknown; a
 *     dimension or offset is not a non-negative integer or overflows; rank >
 *     8; begin > end; end is past the buffer; shape x dtype size != end -
 *     begin; two tensors overlap; the tensors leave a hole or the buffer has
 *     bytes no tensor covers (the safetensors rule against polyglot files).
 *     Float dtypes F16, BF16, F32, F64 are read; BOOL, U8, I8, I16, U16, I32,
 *     U32, I64, U64, F8_E4M3, F8_E5M2 are accepted as non-float tensors
 *     (PyTorch state dicts hold int64 buffers) and skipped by the methods.
 *
 * Values are converted to double on read: LAPACK's dgesdd works in double and
 * the reference values of METRICS.md sections c and i are float64 values.
 */
#ifndef RB_WEIGHTS_H
#define RB_WEIGHTS_H

#include "core/rb.h"

#include <stdio.h>

#define RB_CKPT_MAX_RANK 8

enum {
    RB_WT_F16 = 0,
    RB_WT_BF16,
    RB_WT_F32,
    RB_WT_F64,
    RB_WT_OTHER /* integer, bool or fp8: listed, never read as float */
};

typedef struct {
    char *name;                    /* owned by the checkpoint */
    int rank;                      /* 0..RB_CKPT_MAX_RANK */
    size_t dims[RB_CKPT_MAX_RANK]; /* row-major shape */
    size_t numel;                  /* product of dims (1 for rank 0) */
    int dtype;                     /* RB_WT_* */
    char dtype_name[16];           /* "F32", "float16", "int64", ... */
    uint64_t off;                  /* safetensors: absolute file offset */
} rb_wtensor;

typedef struct rb_ckpt rb_ckpt; /* opaque: owns the file handle */

/* Open and validate a checkpoint (HDF5 or safetensors, detected from the
 * content).  On success *out is owned by the caller (rb_ckpt_close).
 * Errors: RB_EIO (cannot open / read), RB_EINVAL (malformed; message
 * "PATH: tensor NAME: problem"). */
int rb_ckpt_open(const char *path, rb_ckpt **out, rb_err *e);
void rb_ckpt_close(rb_ckpt *c); /* NULL is a no-op */

const char *rb_ckpt_path(const rb_ckpt *c);
/* Model name: the HDF5 root attribute or safetensors __metadata__ "model",
 * else the file's base name without extension. */
const char *rb_ckpt_model(const rb_ckpt *c);
const char *rb_ckpt_format(const rb_ckpt *c); /* "hdf5" or "safetensors" */
size_t rb_ckpt_count(const rb_ckpt *c);
/* Tensor i in file order (safetensors: by offset; HDF5: natural sort). */
const rb_wtensor *rb_ckpt_tensor(const rb_ckpt *c, size_t i);
/* Index of the tensor called name, or -1. */
long rb_ckpt_find(const rb_ckpt *c, const char *name);

/* Read tensor i converted to double into dst[numel] (caller-owned).
 * RB_EINVAL for a non-float tensor or a non-finite value (NaN/Inf are
 * refused: nothing is computed from them). */
int rb_ckpt_read(rb_ckpt *c, size_t i, double *dst, rb_err *e);

/* Refuse (RB_EINVAL) unless b has exactly the float tensors of a, with the
 * same names and shapes: "B: tensor X: shape [..] differs from [..] in A",
 * "B: tensor X: missing (present in A)", "B: tensor X: not in A". */
int rb_ckpt_same_arch(const rb_ckpt *a, const rb_ckpt *b, rb_err *e);

/* Print the format, model, every tensor (name, dtype, shape, numel) and the
 * totals to fp.  Returns RB_OK, or the open error (also printed as one
 * "problem:" line). */
int rb_weights_inspect(const char *path, FILE *fp, rb_err *e);

/* 1 when path looks like a checkpoint rather than a feature dump: an HDF5
 * file with a /weights group, or a non-HDF5 file (safetensors or garbage;
 * rb_weights_inspect then reports the problem).  0 for an HDF5 file without
 * /weights.  Lets `repbench inspect` choose the right inspector. */
int rb_weights_is_ckpt(const char *path);

/* Format a shape as "[a,b,c]" into out[cap]. */
void rb_wshape_str(const size_t *dims, int rank, char *out, size_t cap);

/* ------------------------------------------------------------------ writer */

typedef struct rb_ckptw rb_ckptw; /* opaque */

/* Create a checkpoint; the format follows the extension (".safetensors" ->
 * safetensors, else HDF5).  Written to path.tmp and renamed on close.
 * model may be NULL. */
int rb_ckptw_create(const char *path, const char *model, rb_ckptw **out,
                    rb_err *e);
/* Add a float tensor stored as dtype (RB_WT_F16/BF16/F32/F64; HDF5 supports
 * F16, F32, F64).  x is borrowed; safetensors copies it until close. */
int rb_ckptw_add(rb_ckptw *w, const char *name, int rank, const size_t *dims,
                 const double *x, int dtype, rb_err *e);
/* Finish: write, close, rename.  Frees w even on error. */
int rb_ckptw_close(rb_ckptw *w, rb_err *e);

/* Half-precision conversions used by the reader and the writer
 * (IEEE binary16 and bfloat16, round to nearest even). */
double rb_half_to_double(uint16_t h);
uint16_t rb_double_to_half(double x);
double rb_bf16_to_double(uint16_t h);
uint16_t rb_double_to_bf16(double x);

/* ---------------------------------------------------- sample checkpoints */

/* `repbench gen weights` (datasets/gen_weights.c): writes the sample
 * checkpoints of issue 4 item 6.  Takes the gen subcommand's argv as is
 * (argv[0] = "gen"; the KIND word "weights" may stand anywhere among the
 * arguments and is skipped once).  Returns an exit status (0; 2 bad usage or
 * input; 1 failure) after printing one line on error. */
int rb_gen_weights_cli(int argc, char **argv);

#endif /* RB_WEIGHTS_H */
