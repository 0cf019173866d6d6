# Drives a Lanyard socket with py-spiffe, the SPIFFE project's Python client, and prints what it saw as JSON.
# Used by WorkloadAPIIntegrationTests to prove wire compatibility with an independent client.
import json, sys
from spiffe import WorkloadApiClient
socket = sys.argv[1]
out = {}
with WorkloadApiClient(socket_path="unix://" + socket) as client:
    svid = client.fetch_x509_svid()
    out["x509_spiffe_id"] = str(svid.spiffe_id)
    out["x509_chain_length"] = len(svid.cert_chain)
    ctx = client.fetch_x509_context()
    out["x509_svids"] = [str(s.spiffe_id) for s in ctx.x509_svids]
    bundles = client.fetch_x509_bundles()
    out["x509_bundle_domains"] = sorted(str(b.trust_domain) for b in bundles.bundles)
    jwt = client.fetch_jwt_svid(audience={"api"})
    out["jwt_spiffe_id"] = str(jwt.spiffe_id)
    out["jwt_audience"] = sorted(jwt.audience)
    validated = client.validate_jwt_svid(jwt.token, "api")
    out["validated_spiffe_id"] = str(validated.spiffe_id)
    jwt_bundles = client.fetch_jwt_bundles()
    out["jwt_bundle_domains"] = sorted(str(b.trust_domain) for b in jwt_bundles.bundles)
    out["jwt_key_count"] = sum(len(b.jwt_authorities) for b in jwt_bundles.bundles)
print(json.dumps(out))
