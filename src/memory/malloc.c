/* Makes glibc hand freed large blocks back to the operating system, as an N-API addon
 * loaded once by the daemon (src/memory/malloc.ts).
 *
 * Why: the directory keeps its mailboxes and aliases in 1 MiB buffers. glibc serves such
 * blocks with mmap at first, but raises its mmap threshold to the size of any mmapped block
 * that is freed; from then on large blocks come from the heap and, once freed, stay with the
 * process. After a full reload of 1M mailboxes + 1M aliases the old copy's ~130 MB stayed
 * resident for good. A fixed threshold turns the dynamic adjustment off.
 *
 * Exports: mmapThresholdFixed: boolean (mallopt's result).
 * Built by scripts/build-malloc.mjs with gcc alone; like crypt.c, it declares the few N-API
 * symbols it uses when Node's headers are missing (N-API's ABI is stable).
 */

#include <malloc.h>

#if defined(__has_include) && __has_include(<node_api.h>)
#include <node_api.h>
#else
typedef struct napi_env__ *napi_env;
typedef struct napi_value__ *napi_value;
typedef int napi_status;
extern napi_status napi_get_boolean(napi_env, int, napi_value *);
extern napi_status napi_set_named_property(napi_env, napi_value, const char *, napi_value);
#endif

/* Blocks from this size up are mmapped and unmapped on free; glibc's own starting value. */
#define MMAP_THRESHOLD (128 * 1024)

__attribute__((visibility("default"))) napi_value napi_register_module_v1(napi_env env, napi_value exports) {
  napi_value fixed;
  napi_get_boolean(env, mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1, &fixed);
  napi_set_named_property(env, exports, "mmapThresholdFixed", fixed);
  return exports;
}
