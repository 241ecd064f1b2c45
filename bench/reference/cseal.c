/*
 * cseal: the C anchor of bench/seal.ts. The same work as the encrypted
 * overlay's native seal/open (native/seal.cc): N frames of LEN bytes in one
 * buffer, each sealed in place (24-byte header written, AES-256-GCM with
 * nonce = header bytes 12..23 and AAD = header bytes 0..23, 16-byte tag
 * appended) and opened again (tag verified, decrypted in place), with one
 * EVP_CIPHER_CTX per direction made once for the key. No replay window or
 * key choice (those are a few integer operations in usernet).
 *
 *   cc -O2 -o build/cseal bench/reference/cseal.c -lcrypto
 *   build/cseal --seconds=1 --frames=256 --len=1400
 *   → {"mpps":…,"frames":…,"seconds":…}   (seal+open pairs per second)
 */
#include <openssl/evp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define HDR 24
#define TAG 16
#define SLOT 2048

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static void be32(uint8_t *p, uint32_t v) {
  p[0] = v >> 24;
  p[1] = v >> 16;
  p[2] = v >> 8;
  p[3] = v;
}

static void die(const char *what) {
  fprintf(stderr, "cseal: %s failed\n", what);
  exit(1);
}

int main(int argc, char **argv) {
  double seconds = 1;
  int frames = 256, len = 1400;
  for (int i = 1; i < argc; i++) {
    if (!strncmp(argv[i], "--seconds=", 10)) seconds = atof(argv[i] + 10);
    else if (!strncmp(argv[i], "--frames=", 9)) frames = atoi(argv[i] + 9);
    else if (!strncmp(argv[i], "--len=", 6)) len = atoi(argv[i] + 6);
  }
  if (frames < 1 || len < 14 || len + HDR + TAG + 128 > SLOT) die("arguments");
  uint8_t key[32];
  for (int i = 0; i < 32; i++) key[i] = (uint8_t)(i * 13 + 7);
  uint8_t *buf = aligned_alloc(64, (size_t)frames * SLOT);
  if (!buf) die("malloc");
  for (size_t i = 0; i < (size_t)frames * SLOT; i++) buf[i] = (uint8_t)(i * 31);
  EVP_CIPHER_CTX *enc = EVP_CIPHER_CTX_new(), *dec = EVP_CIPHER_CTX_new();
  if (EVP_EncryptInit_ex(enc, EVP_aes_256_gcm(), NULL, key, NULL) != 1) die("encrypt init");
  if (EVP_DecryptInit_ex(dec, EVP_aes_256_gcm(), NULL, key, NULL) != 1) die("decrypt init");
  uint64_t seq = 0, done = 0;
  int outl;
  double t0 = now_s(), t = t0;
  while (t - t0 < seconds) {
    for (int f = 0; f < frames; f++) {
      uint8_t *p = buf + (size_t)f * SLOT + 128, *h = p - HDR;
      seq++;
      /* seal */
      memset(h, 0, 8);
      h[0] = 0x0a;
      h[4] = 0x12;
      h[5] = 0x34;
      h[6] = 0x56;
      be32(h + 8, 1);
      be32(h + 12, 0x0a000001);
      be32(h + 16, (uint32_t)(seq >> 32));
      be32(h + 20, (uint32_t)seq);
      if (EVP_EncryptInit_ex(enc, NULL, NULL, NULL, h + 12) != 1 || EVP_EncryptUpdate(enc, NULL, &outl, h, HDR) != 1 ||
          EVP_EncryptUpdate(enc, p, &outl, p, len) != 1 || EVP_EncryptFinal_ex(enc, p + len, &outl) != 1 ||
          EVP_CIPHER_CTX_ctrl(enc, EVP_CTRL_GCM_GET_TAG, TAG, p + len) != 1)
        die("seal");
      /* open */
      if (EVP_DecryptInit_ex(dec, NULL, NULL, NULL, h + 12) != 1 || EVP_DecryptUpdate(dec, NULL, &outl, h, HDR) != 1 ||
          EVP_DecryptUpdate(dec, p, &outl, p, len) != 1 || EVP_CIPHER_CTX_ctrl(dec, EVP_CTRL_GCM_SET_TAG, TAG, p + len) != 1 ||
          EVP_DecryptFinal_ex(dec, p + len, &outl) != 1)
        die("open (tag)");
    }
    done += frames;
    t = now_s();
  }
  printf("{\"mpps\":%.6f,\"frames\":%llu,\"seconds\":%.6f}\n", done / (t - t0) / 1e6, (unsigned long long)done, t - t0);
  EVP_CIPHER_CTX_free(enc);
  EVP_CIPHER_CTX_free(dec);
  free(buf);
  return 0;
}
