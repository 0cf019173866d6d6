# FetchJWTSVID with 32 new ~1 KiB audiences per call, `count` calls numbered from `start`: every call mints and
# caches a ~40 KB token. Run as its own process (py-spiffe), so the flood does not take the test runner's threads
# from the agents other tests run in-process. Prints how many calls got a token.
import sys
from spiffe import WorkloadApiClient

socket, start, count = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
padding = "a" * 960
served = 0
with WorkloadApiClient(socket_path="unix://" + socket) as client:
    for call in range(start, start + count):
        audience = {f"https://{call * 32 + index}.example/{padding}" for index in range(32)}
        svid = client.fetch_jwt_svid(audience=audience)
        if svid.token:
            served += 1
print(served)
