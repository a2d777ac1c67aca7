"""Finding 10 (issue 10): the TLS signer registry (_p11tls) is changed by one
thread while another registers or signs; the unix firmware has no GIL, so the
registry needs its own lock.  Without it a registration can land in a registry
dict that another thread's unregister has just dropped from sys.modules, and
the handshake would then not find its signer."""

from __future__ import annotations

from harness.token_files import last_json

STRESS = """
import _thread, sys, json, time
import _p11tls
N = 20000
lost = [0]
done = [0]
errors = []
lock = _thread.allocate_lock()
def worker():
    try:
        f = lambda d: d
        for i in range(N):
            t = _p11tls.register(f)
            # the look-up the sign hook makes (sys.modules itself is not
            # safe to read while other threads change it: no GIL)
            if not _p11tls.registered(t):
                lost[0] += 1
            _p11tls.unregister(t)
    except Exception as e:
        errors.append(repr(e))
    with lock:
        done[0] += 1
for _ in range(3):
    _thread.start_new_thread(worker, ())
deadline = time.time() + 300
while done[0] < 3 and time.time() < deadline:
    time.sleep(0.05)
print(json.dumps({"done": done[0], "lost": lost[0], "errors": errors,
                  "left": len(sys.modules.get("_p11tls_signers", {}))}))   # all threads done: safe
"""


def test_registry_survives_concurrent_register_and_unregister(unix_fw) -> None:
    res = last_json(unix_fw.run(STRESS, timeout=600))
    assert res == {"done": 3, "lost": 0, "errors": [], "left": 0}
