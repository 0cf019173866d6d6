#!/usr/bin/env python3
"""Checks a WIT-SVID with an implementation independent of the agent (PyJWT and cryptography).

Usage: verify_wit.py TOKEN_FILE KEY_JWK_FILE WIT_BUNDLE_FILE SPIFFE_ID

The token must be typ wit+jwt, signed by the bundle key its kid names (ES/RS/PS algorithms only), carry sub =
SPIFFE_ID, exp in the future, no aud, and a cnf.jwk with an alg; the private key JWK must be the cnf key's pair,
shown by a signature it makes that the cnf key verifies. Prints "ok <sub>" or fails with the reason.
"""
import json
import sys

import jwt
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

ALLOWED = {"RS256", "RS384", "RS512", "ES256", "ES384", "ES512", "PS256", "PS384", "PS512"}


def main(token_file, key_file, bundle_file, spiffe_id):
    token = open(token_file).read().strip()
    private_jwk = json.load(open(key_file))
    bundle = json.load(open(bundle_file))
    header = jwt.get_unverified_header(token)
    assert header.get("typ") == "wit+jwt", f"typ is {header.get('typ')}"
    assert header.get("alg") in ALLOWED, f"alg {header.get('alg')}"
    kid = header.get("kid")
    assert kid, "no kid"
    keys = [k for k in bundle["keys"] if k.get("kid") == kid]
    assert len(keys) == 1, f"kid {kid} is in the bundle {len(keys)} times"
    authority = jwt.PyJWK(keys[0], algorithm=header["alg"])
    claims = jwt.decode(
        token,
        authority.key,
        algorithms=[header["alg"]],
        options={"require": ["exp", "sub", "cnf"], "verify_aud": False},
    )
    assert "aud" not in claims, "a WIT-SVID has an aud"
    assert claims["sub"] == spiffe_id, f"sub {claims['sub']}"
    cnf = claims["cnf"]["jwk"]
    assert cnf.get("alg") in ALLOWED, f"cnf.jwk.alg {cnf.get('alg')}"
    assert "d" not in cnf, "cnf holds a private key"
    workload_private = jwt.PyJWK(private_jwk, algorithm=cnf["alg"]).key
    confirmation = jwt.PyJWK(cnf, algorithm=cnf["alg"]).key
    proof = workload_private.sign(b"proof of possession", ec.ECDSA(hashes.SHA256()))
    confirmation.verify(proof, b"proof of possession", ec.ECDSA(hashes.SHA256()))
    print("ok", claims["sub"])


if __name__ == "__main__":
    main(*sys.argv[1:5])
