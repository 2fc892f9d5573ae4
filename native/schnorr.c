/*
 * Roost's native BIP-340 verifier: a thin N-API wrapper over libsecp256k1's schnorrsig module.
 *
 * One entry point, verifyBatch(records, out, count): `records` holds `count` packed 128-byte records
 * (32-byte message = event id, 32-byte x-only public key, 64-byte signature) and `out[i]` is set to 1
 * when record i verifies, else 0. Batching amortises the JS <-> C crossing; the caller owns both
 * buffers, so nothing is allocated here per call.
 */
#include <pthread.h>
#include <string.h>

#include <node_api.h>
#include <secp256k1.h>
#include <secp256k1_extrakeys.h>
#include <secp256k1_schnorrsig.h>

#define RECORD_SIZE 128

static secp256k1_context *ctx = NULL;
static pthread_once_t ctx_once = PTHREAD_ONCE_INIT;

/* Verification never touches secrets, so one read-only context is shared by every thread. */
static void create_context(void) {
#ifdef SECP256K1_CONTEXT_NONE
  ctx = secp256k1_context_create(SECP256K1_CONTEXT_NONE);
#else
  ctx = secp256k1_context_create(SECP256K1_CONTEXT_VERIFY);
#endif
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ROOST_ERR_NATIVE_ARGS", msg);
  return NULL;
}

static int get_bytes(napi_env env, napi_value v, unsigned char **data, size_t *len) {
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return 0;
  napi_typedarray_type type;
  void *ptr = NULL;
  size_t length = 0;
  if (napi_get_typedarray_info(env, v, &type, &length, &ptr, NULL, NULL) != napi_ok) return 0;
  if (type != napi_uint8_array) return 0;
  *data = (unsigned char *)ptr;
  *len = length;
  return 1;
}

static napi_value verify_batch(napi_env env, napi_callback_info info) {
  size_t argc = 3;
  napi_value argv[3];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < 3) {
    return throw_type(env, "verifyBatch(records, out, count) takes three arguments");
  }
  unsigned char *records = NULL, *out = NULL;
  size_t records_len = 0, out_len = 0;
  if (!get_bytes(env, argv[0], &records, &records_len)) return throw_type(env, "records must be a Uint8Array");
  if (!get_bytes(env, argv[1], &out, &out_len)) return throw_type(env, "out must be a Uint8Array");
  uint32_t count = 0;
  if (napi_get_value_uint32(env, argv[2], &count) != napi_ok) return throw_type(env, "count must be a number");
  if ((size_t)count * RECORD_SIZE > records_len || (size_t)count > out_len) {
    return throw_type(env, "count exceeds the buffers");
  }

  secp256k1_xonly_pubkey pk;
  const unsigned char *last_pk = NULL;
  int last_pk_ok = 0;
  for (uint32_t i = 0; i < count; i++) {
    const unsigned char *rec = records + (size_t)i * RECORD_SIZE;
    const unsigned char *msg = rec, *pk32 = rec + 32, *sig = rec + 64;
    /* Consecutive events from one author are common (an agent's burst); lifting x costs a square root. */
    if (last_pk == NULL || memcmp(last_pk, pk32, 32) != 0) {
      last_pk_ok = secp256k1_xonly_pubkey_parse(ctx, &pk, pk32);
      last_pk = pk32;
    }
    out[i] = (last_pk_ok && secp256k1_schnorrsig_verify(ctx, sig, msg, 32, &pk)) ? 1 : 0;
  }
  return NULL;
}

NAPI_MODULE_INIT() {
  pthread_once(&ctx_once, create_context);
  if (ctx == NULL) {
    napi_throw_error(env, "ROOST_ERR_NATIVE_INIT", "secp256k1_context_create failed");
    return NULL;
  }
  napi_value fn;
  if (napi_create_function(env, "verifyBatch", NAPI_AUTO_LENGTH, verify_batch, NULL, &fn) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "verifyBatch", fn) != napi_ok) return NULL;
  napi_value size;
  if (napi_create_uint32(env, RECORD_SIZE, &size) != napi_ok) return NULL;
  if (napi_set_named_property(env, exports, "recordSize", size) != napi_ok) return NULL;
  return exports;
}
