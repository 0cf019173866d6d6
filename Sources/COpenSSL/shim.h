// Shims for the parts of OpenSSL 3 that Swift cannot import: macros, stack helpers and variadic functions.
// A system-library target holds no .c files, so every shim is a static inline function.
#ifndef LANYARD_COPENSSL_SHIM_H
#define LANYARD_COPENSSL_SHIM_H

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/objects.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <openssl/rsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

static inline void lanyard_OPENSSL_free(void *pointer) { OPENSSL_free(pointer); }

static inline int lanyard_BN_num_bytes(const BIGNUM *bn) { return BN_num_bytes(bn); }

static inline long lanyard_BIO_get_mem_data(BIO *bio, char **data) { return BIO_get_mem_data(bio, data); }

static inline void lanyard_X509V3_set_ctx_nodb(X509V3_CTX *ctx) { X509V3_set_ctx_nodb(ctx); }

// GENERAL_NAME stacks (subject alternative names).
static inline GENERAL_NAMES *lanyard_sk_GENERAL_NAME_new_null(void) { return sk_GENERAL_NAME_new_null(); }
static inline int lanyard_sk_GENERAL_NAME_num(const GENERAL_NAMES *names) { return sk_GENERAL_NAME_num(names); }
static inline GENERAL_NAME *lanyard_sk_GENERAL_NAME_value(const GENERAL_NAMES *names, int index) {
    return sk_GENERAL_NAME_value(names, index);
}
static inline int lanyard_sk_GENERAL_NAME_push(GENERAL_NAMES *names, GENERAL_NAME *name) {
    return sk_GENERAL_NAME_push(names, name);
}

// X509_EXTENSION stacks (CSR extension requests).
static inline STACK_OF(X509_EXTENSION) *lanyard_sk_X509_EXTENSION_new_null(void) {
    return sk_X509_EXTENSION_new_null();
}
static inline int lanyard_sk_X509_EXTENSION_push(STACK_OF(X509_EXTENSION) *stack, X509_EXTENSION *extension) {
    return sk_X509_EXTENSION_push(stack, extension);
}
static inline void lanyard_sk_X509_EXTENSION_pop_free(STACK_OF(X509_EXTENSION) *stack) {
    sk_X509_EXTENSION_pop_free(stack, X509_EXTENSION_free);
}

// X509 stacks (untrusted intermediates for chain verification).
static inline STACK_OF(X509) *lanyard_sk_X509_new_null(void) { return sk_X509_new_null(); }
static inline int lanyard_sk_X509_push(STACK_OF(X509) *stack, X509 *certificate) {
    return sk_X509_push(stack, certificate);
}
static inline void lanyard_sk_X509_free(STACK_OF(X509) *stack) { sk_X509_free(stack); }

// Composite constants Swift does not import.
static inline int lanyard_MBSTRING_UTF8(void) { return MBSTRING_UTF8; }

// EVP_PKEY_PUBLIC_KEY is a composite macro that Swift does not import.
static inline int lanyard_EVP_PKEY_PUBLIC_KEY(void) { return EVP_PKEY_PUBLIC_KEY; }

// A PEM password callback that refuses, so OpenSSL never prompts on a terminal for an encrypted key.
static inline int lanyard_refuse_password(char *buffer, int size, int rwflag, void *userdata) {
    (void)buffer; (void)size; (void)rwflag; (void)userdata;
    return -1;
}
static inline pem_password_cb *lanyard_refusing_password_callback(void) { return lanyard_refuse_password; }

#endif
