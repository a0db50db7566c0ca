/* The system's crypt(3) (libxcrypt: $6$ $5$ $1$ $2b$/$2y$/$2a$ $y$ and DES) as a tiny N-API
 * addon, loaded inside the hash worker threads. A SHA512-CRYPT check costs ~1.4 ms here
 * against ~44 ms in pure JavaScript.
 *
 * Built by scripts/build-crypt.mjs with gcc alone. When Node's or libxcrypt's development
 * headers are missing, the few declarations needed are written out below: N-API's ABI is
 * stable across Node versions, and crypt_rn/crypt_gensalt_rn are libcrypt.so.1's public ABI.
 *
 * Exports:
 *   crypt(password: Buffer, setting: string): string | null   (null: setting rejected)
 *   gensalt(prefix: string, count: number, random: Buffer): string | null
 */

#include <stdlib.h>
#include <string.h>

/* -DCRYPT_OWN_DECLARATIONS tests the header-less path. */
#if defined(__has_include) && !defined(CRYPT_OWN_DECLARATIONS)
#if __has_include(<node_api.h>)
#include <node_api.h>
#define HAVE_NODE_API_H 1
#endif
#if __has_include(<crypt.h>)
#include <crypt.h>
#define HAVE_CRYPT_H 1
#endif
#endif

#ifndef HAVE_NODE_API_H
typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef struct napi_callback_info__ *napi_callback_info;
typedef int napi_status;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);
#define napi_ok 0
#define NAPI_AUTO_LENGTH ((size_t)-1)
extern napi_status napi_get_cb_info(napi_env, napi_callback_info, size_t *, napi_value *, napi_value *, void **);
extern napi_status napi_get_buffer_info(napi_env, napi_value, void **, size_t *);
extern napi_status napi_get_value_string_utf8(napi_env, napi_value, char *, size_t, size_t *);
extern napi_status napi_get_value_uint32(napi_env, napi_value, unsigned int *);
extern napi_status napi_create_string_utf8(napi_env, const char *, size_t, napi_value *);
extern napi_status napi_get_null(napi_env, napi_value *);
extern napi_status napi_throw_type_error(napi_env, const char *, const char *);
extern napi_status napi_create_function(napi_env, const char *, size_t, napi_callback, void *, napi_value *);
extern napi_status napi_set_named_property(napi_env, napi_value, const char *, napi_value);
#endif

#ifndef HAVE_CRYPT_H
/* sizeof(struct crypt_data) in libxcrypt. */
#define CRYPT_DATA_SIZE 32768
#define CRYPT_GENSALT_OUTPUT_SIZE 192
extern char *crypt_rn(const char *phrase, const char *setting, void *data, int size);
extern char *crypt_gensalt_rn(const char *prefix, unsigned long count, const char *rbytes, int nrbytes,
                              char *output, int output_size);
#else
#define CRYPT_DATA_SIZE ((int)sizeof(struct crypt_data))
#endif

/* Settings and prefixes are short ASCII; anything longer is not a crypt string. */
#define MAX_SETTING 512

static napi_value null_value(napi_env env) {
  napi_value v;
  napi_get_null(env, &v);
  return v;
}

/* Reads a JS string argument into buf; 0 on success. */
static int get_string(napi_env env, napi_value v, char *buf, size_t size) {
  size_t full = 0, len = 0;
  /* Ask for the whole length first: a copy that does not fit is cut at a UTF-8 character
     boundary, up to 3 bytes short of the buffer, so its length alone cannot tell. */
  if (napi_get_value_string_utf8(env, v, NULL, 0, &full) != napi_ok) return -1;
  if (full >= size) return -1; /* too long to be a crypt setting */
  if (napi_get_value_string_utf8(env, v, buf, size, &len) != napi_ok || len != full) return -1;
  return (strlen(buf) == len) ? 0 : -1; /* no embedded NUL */
}

static napi_value js_crypt(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 2) {
    napi_throw_type_error(env, NULL, "crypt(password: Buffer, setting: string)");
    return NULL;
  }
  void *pw_data = NULL;
  size_t pw_len = 0;
  if (napi_get_buffer_info(env, argv[0], &pw_data, &pw_len) != napi_ok) {
    napi_throw_type_error(env, NULL, "password must be a Buffer");
    return NULL;
  }
  char setting[MAX_SETTING];
  if (get_string(env, argv[1], setting, sizeof setting) != 0) return null_value(env);
  /* crypt(3) takes a C string: a password with a NUL byte can never match. */
  if (memchr(pw_data, 0, pw_len) != NULL) return null_value(env);

  char *phrase = malloc(pw_len + 1);
  void *data = calloc(1, (size_t)CRYPT_DATA_SIZE);
  napi_value result = NULL;
  if (phrase == NULL || data == NULL) {
    free(phrase);
    free(data);
    napi_throw_type_error(env, NULL, "out of memory");
    return NULL;
  }
  memcpy(phrase, pw_data, pw_len);
  phrase[pw_len] = 0;
  const char *out = crypt_rn(phrase, setting, data, CRYPT_DATA_SIZE);
  /* libxcrypt returns NULL or a "*" failure token for a setting it cannot use. */
  if (out == NULL || out[0] == '*') result = null_value(env);
  else napi_create_string_utf8(env, out, NAPI_AUTO_LENGTH, &result);
  /* The plaintext and the intermediate state are secrets: wipe before freeing. */
  memset(phrase, 0, pw_len + 1);
  memset(data, 0, (size_t)CRYPT_DATA_SIZE);
  __asm__ __volatile__("" : : "r"(phrase), "r"(data) : "memory");
  free(phrase);
  free(data);
  return result;
}

static napi_value js_gensalt(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    napi_throw_type_error(env, NULL, "gensalt(prefix: string, count: number, random: Buffer)");
    return NULL;
  }
  char prefix[64];
  unsigned int count = 0;
  void *rbytes = NULL;
  size_t nrbytes = 0;
  if (get_string(env, argv[0], prefix, sizeof prefix) != 0 || napi_get_value_uint32(env, argv[1], &count) != napi_ok ||
      napi_get_buffer_info(env, argv[2], &rbytes, &nrbytes) != napi_ok || nrbytes > 256) {
    napi_throw_type_error(env, NULL, "gensalt(prefix: string, count: number, random: Buffer)");
    return NULL;
  }
  char output[CRYPT_GENSALT_OUTPUT_SIZE];
  const char *s = crypt_gensalt_rn(prefix, count, (const char *)rbytes, (int)nrbytes, output, sizeof output);
  if (s == NULL || s[0] == '*') return null_value(env);
  napi_value result;
  napi_create_string_utf8(env, s, NAPI_AUTO_LENGTH, &result);
  return result;
}

/* N-API version 1 entry point; context-aware, so every worker thread may load it. */
napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fn;
  napi_create_function(env, "crypt", NAPI_AUTO_LENGTH, js_crypt, NULL, &fn);
  napi_set_named_property(env, exports, "crypt", fn);
  napi_create_function(env, "gensalt", NAPI_AUTO_LENGTH, js_gensalt, NULL, &fn);
  napi_set_named_property(env, exports, "gensalt", fn);
  return exports;
}
