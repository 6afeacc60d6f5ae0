"""The sandbox token reached through p11-kit's remoting, the way network HSMs are."""
from conftest import BIN
from test_core_api import assert_clean


def test_objects_through_remote(sandbox, remote):
    proc = sandbox.hsmtls("objects", "pkcs11:token=server;object=ec-p256?pin-value=1234", env=remote)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.count("label=ec-p256") == 3


def test_sign_through_remote_and_unforwarded_mechanism_named(sandbox, remote):
    assert_clean(sandbox.run(BIN / "test_core", sandbox.dir, "remote", env=remote, timeout=120))
