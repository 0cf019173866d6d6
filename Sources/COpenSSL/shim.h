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

// Public keys from JWK components. OSSL_PARAM_BLD keeps references to names and buffers until it builds the
// parameters, so the whole construction happens here, where every pointer outlives its use.
static inline EVP_PKEY *lanyard_EVP_PKEY_from_ec_public(const char *group, const unsigned char *point, size_t length) {
    OSSL_PARAM params[3];
    params[0] = OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, (char *)group, 0);
    params[1] = OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)point, length);
    params[2] = OSSL_PARAM_construct_end();
    EVP_PKEY_CTX *context = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *key = NULL;
    if (context == NULL) return NULL;
    if (EVP_PKEY_fromdata_init(context) != 1 || EVP_PKEY_fromdata(context, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) {
        key = NULL;
    }
    EVP_PKEY_CTX_free(context);
    return key;
}

static inline EVP_PKEY *lanyard_EVP_PKEY_from_rsa_public(
    const unsigned char *modulus, size_t modulusLength, const unsigned char *exponent, size_t exponentLength) {
    BIGNUM *n = BN_bin2bn(modulus, (int)modulusLength, NULL);
    BIGNUM *e = BN_bin2bn(exponent, (int)exponentLength, NULL);
    OSSL_PARAM_BLD *builder = OSSL_PARAM_BLD_new();
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *context = NULL;
    EVP_PKEY *key = NULL;
    if (n != NULL && e != NULL && builder != NULL && OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_N, n) == 1 &&
        OSSL_PARAM_BLD_push_BN(builder, OSSL_PKEY_PARAM_RSA_E, e) == 1 &&
        (params = OSSL_PARAM_BLD_to_param(builder)) != NULL &&
        (context = EVP_PKEY_CTX_new_from_name(NULL, "RSA", NULL)) != NULL && EVP_PKEY_fromdata_init(context) == 1) {
        if (EVP_PKEY_fromdata(context, &key, EVP_PKEY_PUBLIC_KEY, params) != 1) key = NULL;
    }
    EVP_PKEY_CTX_free(context);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(builder);
    BN_free(n);
    BN_free(e);
    return key;
}

// A PEM password callback that refuses, so OpenSSL never prompts on a terminal for an encrypted key.
static inline int lanyard_refuse_password(char *buffer, int size, int rwflag, void *userdata) {
    (void)buffer; (void)size; (void)rwflag; (void)userdata;
    return -1;
}
static inline pem_password_cb *lanyard_refusing_password_callback(void) { return lanyard_refuse_password; }

// A PKCS#8 EC private key without OpenSSL 3.0's decoder framework, which costs about 0.4 ms a key (it looks every
// decoder up, under a lock shared by all threads); restoring 10,000 cached SVIDs spent seconds there. The structure
// is read with the ASN.1 templates and the key built on its named curve. NULL for anything else (not EC, explicit
// curve parameters, malformed): the caller falls back to the general decoder, which decides.
static inline EVP_PKEY *lanyard_pkcs8_ec_private_key(const unsigned char *der, long length) {
    const unsigned char *cursor = der;
    PKCS8_PRIV_KEY_INFO *info = d2i_PKCS8_PRIV_KEY_INFO(NULL, &cursor, length);
    if (info == NULL) return NULL;
    EVP_PKEY *result = NULL;
    const ASN1_OBJECT *algorithm = NULL;
    const unsigned char *inner = NULL;
    int innerLength = 0;
    const X509_ALGOR *algorithmIdentifier = NULL;
    if (cursor == der + length
        && PKCS8_pkey_get0(&algorithm, &inner, &innerLength, &algorithmIdentifier, info) == 1
        && OBJ_obj2nid(algorithm) == NID_X9_62_id_ecPublicKey) {
        const ASN1_OBJECT *unused = NULL;
        int parameterType = 0;
        const void *parameter = NULL;
        X509_ALGOR_get0(&unused, &parameterType, &parameter, algorithmIdentifier);
        if (parameterType == V_ASN1_OBJECT) {
#pragma clang diagnostic push
#pragma clang diagnostic ignored "-Wdeprecated-declarations"
            EC_KEY *key = EC_KEY_new_by_curve_name(OBJ_obj2nid((const ASN1_OBJECT *)parameter));
            const unsigned char *keyCursor = inner;
            if (key != NULL && d2i_ECPrivateKey(&key, &keyCursor, innerLength) != NULL
                && keyCursor == inner + innerLength && EC_KEY_get0_public_key(key) != NULL) {
                result = EVP_PKEY_new();
                if (result != NULL && EVP_PKEY_assign_EC_KEY(result, key) == 1) {
                    key = NULL;
                } else {
                    EVP_PKEY_free(result);
                    result = NULL;
                }
            }
            EC_KEY_free(key);
#pragma clang diagnostic pop
        }
    }
    PKCS8_PRIV_KEY_INFO_free(info);
    return result;
}

#endif
