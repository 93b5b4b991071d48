/* include/nsvq.h — the C API of libnsvq: open a tokenizer file (a training checkpoint of `nsvq train`
 * or an inference file of `nsvq export`), turn images into code indices and code indices back into
 * images. C99; usable from C, C++ and any language with a C FFI. docs/library.md has the details.
 *
 * Conventions
 *   pixels  n images of height x width x channels, interleaved (HWC: row by row, the channels of a
 *           pixel together), uint8, as stb_image and most image libraries return them. height and
 *           width must equal the model's image size and channels its channel count: resizing and
 *           colour conversion are the caller's (the command line's `--resize` does them for files).
 *   tokens  n x grid_h x grid_w code indices, row-major, each in [0, codes).
 *   errors  calls return 0 on success and a non-zero NSVQ_E* code on error, with a one-line message
 *           in nsvq_error(m). The library never exits, aborts or writes to stdout / stderr, and no
 *           C++ exception crosses this API.
 *   threads a model is used by one thread at a time; distinct models may be used from different
 *           threads at the same time, each with its own thread count.
 *   memory  only what a call needs is read from the file, on first use: tokenizing reads the
 *           encoder, quant_conv and the codebook; decoding post_quant_conv, the decoder and the
 *           codebook. Optimizer moments, the discriminator and the unused half stay on disk.
 */
#ifndef NSVQ_H
#define NSVQ_H

#include <stddef.h>
#include <stdint.h>

#if defined(__GNUC__) || defined(__clang__)
#define NSVQ_API __attribute__((visibility("default")))
#else
#define NSVQ_API
#endif

#ifdef __cplusplus
extern "C" {
#endif

/* Error codes (nsvq_error gives the message). */
enum {
  NSVQ_OK = 0,
  NSVQ_EINVAL = 1, /* a bad argument: NULL pointer, wrong size, token out of range, ... */
  NSVQ_EFILE = 2,  /* the checkpoint is missing, unreadable, corrupt, truncated or not a tokenizer */
  NSVQ_ENOMEM = 3, /* out of memory */
  NSVQ_EINTERNAL = 4
};

typedef struct nsvq_model nsvq_model;

typedef struct {
  int image_size; /* images are image_size x image_size */
  int channels;   /* 1 (gray) or 3 (RGB) */
  int grid_h, grid_w; /* tokens per image: grid_h x grid_w */
  int codes;      /* codebook size K: tokens are in [0, codes) */
  int code_dim;   /* D, the dimension of a code vector */
} nsvq_model_info;

/* The library's version, "MAJOR.MINOR.PATCH". */
NSVQ_API const char* nsvq_version(void);

/* Opens a tokenizer file (.safetensors or .safetensors.zst). threads <= 0: all cores. Returns NULL on
 * error with a message in err (when err is not NULL; truncated to err_size bytes, NUL-terminated). */
NSVQ_API nsvq_model* nsvq_open(const char* checkpoint_path, int threads, char* err, size_t err_size);

/* Frees the model (NULL is allowed). */
NSVQ_API void nsvq_close(nsvq_model* m);

/* The model's sizes; all zero when m or info is NULL. */
NSVQ_API void nsvq_get_info(const nsvq_model* m, nsvq_model_info* info);

/* n images (see pixels above) -> tokens (n x grid_h x grid_w). n = 0 does nothing. */
NSVQ_API int nsvq_tokenize(nsvq_model* m, const uint8_t* pixels, int n, int height, int width, int channels,
                           int32_t* tokens);

/* n x grid_h x grid_w tokens -> n images of image_size x image_size x channels (HWC, uint8). */
NSVQ_API int nsvq_decode(nsvq_model* m, const int32_t* tokens, int n, uint8_t* pixels);

/* Images per forward pass of the network (default: 32 at 32x32, fewer for larger images, at least 1).
 * Larger batches are faster per image on many cores and take more memory; results do not depend on it. */
NSVQ_API int nsvq_set_batch(nsvq_model* m, int batch);

/* The message of the last failed call on m ("" when none); for m = NULL, a fixed message. Valid until
 * the next call on m. */
NSVQ_API const char* nsvq_error(const nsvq_model* m);

#ifdef __cplusplus
}
#endif

#endif /* NSVQ_H */
