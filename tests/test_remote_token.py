"""The sandbox token reached through p11-kit's remoting, the way network HSMs are.
test_core's "remote" case (signing through it, an unforwarded mechanism named) runs in
test_core_api.py with the same fixture."""


def test_objects_through_remote(sandbox, remote):
    proc = sandbox.hsmtls("objects", "pkcs11:token=server;object=ec-p256?pin-value=1234", env=remote)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("label=ec-p256") == 3
