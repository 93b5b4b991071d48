/* tests/c_api_test.c — the C API (include/nsvq.h) compiled as C99 and linked against libnsvq.so: every
 * error path returns a code and a message and the process goes on (a valid call after each one must
 * still work); tokens do not depend on the batch size; decode; a file of the encoder only; two models
 * used from two threads at once give what one thread gives. Driven by tests/c_api_test.sh:
 *   c_api_test CKPT ENCODER_ONLY TRUNCATED JUNK NOT_A_TOKENIZER */
#include <nsvq.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int failures = 0, checks = 0;
#define CHECK(cond)                                                    \
  do {                                                                 \
    checks++;                                                          \
    if (!(cond)) {                                                     \
      failures++;                                                      \
      fprintf(stderr, "FAIL %s:%d: %s\n", __FILE__, __LINE__, #cond); \
    }                                                                  \
  } while (0)

static int contains(const char* s, const char* sub) { return s && strstr(s, sub) != NULL; }

enum { N = 5 };
static nsvq_model_info info;
static size_t per, hw;
static uint8_t* pixels;    /* N images */
static int32_t* reference; /* their tokens */

/* a valid call still works after an error: tokenize N images and compare with the reference */
static void still_works(nsvq_model* m) {
  int32_t* t = malloc(hw * N * sizeof(int32_t));
  CHECK(nsvq_tokenize(m, pixels, N, info.image_size, info.image_size, info.channels, t) == NSVQ_OK);
  CHECK(memcmp(t, reference, hw * N * sizeof(int32_t)) == 0);
  CHECK(strcmp(nsvq_error(m), "") == 0);
  free(t);
}

static void expect_open_fails(const char* path, const char* what) {
  char err[256] = "untouched";
  nsvq_model* m = nsvq_open(path, 1, err, sizeof err);
  CHECK(m == NULL);
  if (!contains(err, what)) fprintf(stderr, "  open %s: message \"%s\" lacks \"%s\"\n", path, err, what);
  CHECK(contains(err, what));
  CHECK(strchr(err, '\n') == NULL);
  nsvq_close(m);
}

struct job {
  const char* path;
  int32_t* tokens;
  int rc;
};

static void* run_job(void* p) {
  struct job* j = p;
  nsvq_model* m = nsvq_open(j->path, 1, NULL, 0);
  j->rc = m ? NSVQ_OK : NSVQ_EFILE;
  for (int rep = 0; m && rep < 3 && j->rc == NSVQ_OK; rep++)
    j->rc = nsvq_tokenize(m, pixels, N, info.image_size, info.image_size, info.channels, j->tokens);
  nsvq_close(m);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc != 6) {
    fprintf(stderr, "usage: c_api_test CKPT ENCODER_ONLY TRUNCATED JUNK NOT_A_TOKENIZER\n");
    return 2;
  }
  const char *ckpt = argv[1], *enc_only = argv[2];
  CHECK(strlen(nsvq_version()) >= 5);

  /* ---- opening: every bad file is NULL with a one-line message naming it */
  char err[256];
  CHECK(nsvq_open(NULL, 1, err, sizeof err) == NULL);
  CHECK(contains(err, "NULL"));
  CHECK(nsvq_open(NULL, 1, NULL, 0) == NULL); /* no buffer: no crash */
  char tiny[4] = "xyz";
  CHECK(nsvq_open("/nonexistent/model.safetensors", 1, tiny, sizeof tiny) == NULL);
  CHECK(strlen(tiny) == 3); /* truncated to the buffer, NUL-terminated */
  char one[1] = {'x'};
  CHECK(nsvq_open("/nonexistent/model.safetensors", 1, one, 1) == NULL);
  CHECK(one[0] == '\0');
  expect_open_fails("/nonexistent/model.safetensors", "cannot open");
  expect_open_fails(argv[3], "truncated");
  expect_open_fails(argv[4], argv[4]);
  expect_open_fails(argv[5], "not an nsvq tokenizer");
  CHECK(strlen(nsvq_error(NULL)) > 0);
  nsvq_get_info(NULL, &info);
  CHECK(info.image_size == 0 && info.codes == 0);
  nsvq_close(NULL);

  /* ---- a good model */
  nsvq_model* m = nsvq_open(ckpt, 0, err, sizeof err);
  if (!m) {
    fprintf(stderr, "cannot open %s: %s\n", ckpt, err);
    return 1;
  }
  nsvq_get_info(m, NULL); /* no crash */
  nsvq_get_info(m, &info);
  CHECK(info.image_size == 32 && info.channels == 1 && info.grid_h == 8 && info.grid_w == 8);
  CHECK(info.codes > 1 && info.code_dim > 0);
  per = (size_t)info.image_size * info.image_size * info.channels;
  hw = (size_t)info.grid_h * info.grid_w;
  pixels = malloc(per * N);
  reference = malloc(hw * N * sizeof(int32_t));
  int32_t* t = malloc(hw * N * sizeof(int32_t));
  uint8_t* img = malloc(per * N);
  unsigned s = 12345;
  for (size_t i = 0; i < per * N; i++) { /* smooth blobs: not all one code */
    s = s * 1103515245u + 12345u;
    pixels[i] = (uint8_t)(((i % per) / info.image_size * 7 + (s >> 24)) & 0xff);
  }
  CHECK(nsvq_tokenize(m, pixels, N, info.image_size, info.image_size, info.channels, reference) == NSVQ_OK);
  for (size_t i = 0; i < hw * N; i++) CHECK(reference[i] >= 0 && reference[i] < info.codes);

  /* tokens do not depend on the batch size */
  for (int b = 1; b <= 4; b += 3) {
    CHECK(nsvq_set_batch(m, b) == NSVQ_OK);
    memset(t, 0xff, hw * N * sizeof(int32_t));
    CHECK(nsvq_tokenize(m, pixels, N, info.image_size, info.image_size, info.channels, t) == NSVQ_OK);
    CHECK(memcmp(t, reference, hw * N * sizeof(int32_t)) == 0);
  }
  CHECK(nsvq_set_batch(m, 0) == NSVQ_EINVAL);
  CHECK(contains(nsvq_error(m), "batch"));
  still_works(m);

  /* ---- tokenize: bad arguments */
  CHECK(nsvq_tokenize(NULL, pixels, N, 32, 32, 1, t) == NSVQ_EINVAL);
  CHECK(nsvq_tokenize(m, NULL, N, 32, 32, 1, t) == NSVQ_EINVAL);
  CHECK(contains(nsvq_error(m), "pixels is NULL"));
  still_works(m);
  CHECK(nsvq_tokenize(m, pixels, N, 32, 32, 1, NULL) == NSVQ_EINVAL);
  CHECK(contains(nsvq_error(m), "tokens is NULL"));
  still_works(m);
  CHECK(nsvq_tokenize(m, pixels, -1, 32, 32, 1, t) == NSVQ_EINVAL);
  CHECK(contains(nsvq_error(m), "n must be"));
  still_works(m);
  CHECK(nsvq_tokenize(m, pixels, N, 64, 32, 1, t) == NSVQ_EINVAL);
  CHECK(contains(nsvq_error(m), "64x32x1"));
  still_works(m);
  CHECK(nsvq_tokenize(m, pixels, N, 32, 32, 3, t) == NSVQ_EINVAL);
  CHECK(contains(nsvq_error(m), "the model takes 32x32x1"));
  still_works(m);
  CHECK(nsvq_tokenize(m, NULL, 0, 32, 32, 1, NULL) == NSVQ_OK); /* n = 0: nothing to do */

  /* ---- decode */
  CHECK(nsvq_decode(m, reference, N, img) == NSVQ_OK);
  uint8_t* img2 = malloc(per * N);
  CHECK(nsvq_decode(m, reference, N, img2) == NSVQ_OK);
  CHECK(memcmp(img, img2, per * N) == 0);
  int varied = 0;
  for (size_t i = 1; i < per; i++) varied |= img[i] != img[0];
  CHECK(varied);
  memcpy(t, reference, hw * N * sizeof(int32_t));
  t[3 * hw + 7] = info.codes;
  CHECK(nsvq_decode(m, t, N, img2) == NSVQ_EINVAL);
  CHECK(contains(nsvq_error(m), "out of range"));
  still_works(m);
  t[3 * hw + 7] = -1;
  CHECK(nsvq_decode(m, t, N, img2) == NSVQ_EINVAL);
  still_works(m);
  CHECK(nsvq_decode(m, NULL, N, img2) == NSVQ_EINVAL);
  CHECK(nsvq_decode(m, reference, N, NULL) == NSVQ_EINVAL);
  CHECK(nsvq_decode(m, reference, -3, img2) == NSVQ_EINVAL);
  CHECK(nsvq_decode(NULL, reference, N, img2) == NSVQ_EINVAL);
  still_works(m);

  /* ---- a file of the encoder only: tokenizes the same, refuses to decode, goes on */
  nsvq_model* e = nsvq_open(enc_only, 2, err, sizeof err);
  CHECK(e != NULL);
  if (e) {
    still_works(e);
    CHECK(nsvq_decode(e, reference, N, img2) == NSVQ_EFILE);
    CHECK(contains(nsvq_error(e), "encoder only"));
    still_works(e);
    nsvq_close(e);
  }

  /* ---- two models in two threads at once, 1 thread each: the same tokens */
  struct job jobs[2];
  pthread_t th[2];
  for (int k = 0; k < 2; k++) {
    jobs[k].path = k ? enc_only : ckpt;
    jobs[k].tokens = calloc(hw * N, sizeof(int32_t));
    jobs[k].rc = -1;
    CHECK(pthread_create(&th[k], NULL, run_job, &jobs[k]) == 0);
  }
  for (int k = 0; k < 2; k++) {
    pthread_join(th[k], NULL);
    CHECK(jobs[k].rc == NSVQ_OK);
    CHECK(memcmp(jobs[k].tokens, reference, hw * N * sizeof(int32_t)) == 0);
    free(jobs[k].tokens);
  }
  still_works(m);

  nsvq_close(m);
  free(pixels);
  free(reference);
  free(t);
  free(img);
  free(img2);
  printf("c_api: %d checks, %d failed\n", checks, failures);
  return failures ? 1 : 0;
}
