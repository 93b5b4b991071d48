/* examples/tokenize.c — tokenizing image files through libnsvq's C API: reads PNG/JPEG files with
 * stb_image (converted to the model's channel count; they must already have its size), tokenizes them
 * in one call and writes one text line per image: the file name, then its grid_h x grid_w tokens row
 * by row (the format of `nsvq tokenize -o OUT.txt`).
 *
 *   tokenize MODEL.safetensors OUT.txt IMAGE...
 *
 * Build against an installed libnsvq (docs/library.md):
 *   cc tokenize.c $(pkg-config --cflags --libs nsvq) -lstb -o tokenize           (shared)
 *   cc tokenize.c $(pkg-config --cflags --libs nsvq-static) -o tokenize          (static)
 * or with CMake: find_package(nsvq) and target_link_libraries(app nsvq::nsvq) (examples/CMakeLists.txt). */
#include <nsvq.h>
#include <stb/stb_image.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  if (argc < 4) {
    fprintf(stderr, "usage: %s MODEL.safetensors OUT.txt IMAGE...\n", argv[0]);
    return 2;
  }
  char err[512];
  nsvq_model* m = nsvq_open(argv[1], 0, err, sizeof err);
  if (!m) {
    fprintf(stderr, "tokenize: %s\n", err);
    return 1;
  }
  nsvq_model_info info;
  nsvq_get_info(m, &info);
  const int n = argc - 3;
  const size_t per = (size_t)info.image_size * info.image_size * info.channels, hw = (size_t)info.grid_h * info.grid_w;
  uint8_t* pixels = malloc(per * (size_t)n);
  int32_t* tokens = malloc(hw * (size_t)n * sizeof(int32_t));
  int rc = 1;
  if (!pixels || !tokens) {
    fprintf(stderr, "tokenize: out of memory\n");
    goto done;
  }
  for (int i = 0; i < n; i++) {
    int w = 0, h = 0, c = 0;
    uint8_t* px = stbi_load(argv[3 + i], &w, &h, &c, info.channels);
    if (!px) {
      fprintf(stderr, "tokenize: %s: %s\n", argv[3 + i], stbi_failure_reason());
      goto done;
    }
    if (w != info.image_size || h != info.image_size) {
      fprintf(stderr, "tokenize: %s is %dx%d; the model takes %dx%d\n", argv[3 + i], w, h, info.image_size,
              info.image_size);
      stbi_image_free(px);
      goto done;
    }
    memcpy(pixels + per * (size_t)i, px, per);
    stbi_image_free(px);
  }
  if (nsvq_tokenize(m, pixels, n, info.image_size, info.image_size, info.channels, tokens) != NSVQ_OK) {
    fprintf(stderr, "tokenize: %s\n", nsvq_error(m));
    goto done;
  }
  FILE* out = fopen(argv[2], "w");
  if (!out) {
    fprintf(stderr, "tokenize: cannot write %s\n", argv[2]);
    goto done;
  }
  for (int i = 0; i < n; i++) {
    fputs(argv[3 + i], out);
    for (size_t k = 0; k < hw; k++) fprintf(out, " %d", (int)tokens[hw * (size_t)i + k]);
    fputc('\n', out);
  }
  rc = fclose(out) == 0 ? 0 : 1;
  if (rc) fprintf(stderr, "tokenize: cannot write %s\n", argv[2]);
done:
  free(pixels);
  free(tokens);
  nsvq_close(m);
  return rc;
}
