"""libhsmtls features against real peers, through `hsmtls serve` / `hsmtls connect`:
gnutls-serv as the server (mutual TLS with file and token client keys), resumption by
session ticket, ALPN against openssl s_server, SNI switching, OCSP stapling with a real
OCSP response from the sandbox CA."""
import subprocess

import pytest

import peers
from conftest import BIN, c_cases
from test_lib_cli import SOURCES, cert, connect, hsmtls_serve, key_ref

VERSIONS = {"1.2": "--tls1_2", "1.3": "--tls1_3"}


# ---- libhsmtls client against gnutls-serv ----
# gnutls-serv cannot bind one address, so it runs in a network namespace of its own
# (unshare -n, as root) with only loopback up, and the client runs there too.

GNUTLS_IN_NAMESPACE = r'''
ip link set lo up || exit 97
gnutls-serv --echo -p 5556 --x509certfile "$SRV_CERT" --x509keyfile "$SRV_KEY" \
    --x509cafile "$CA" --require-client-cert --verify-client-cert > "$LOG" 2>&1 &
pid=$!
for i in $(seq 300); do (echo > /dev/tcp/127.0.0.1/5556) 2>/dev/null && break; sleep 0.05; done
printf 'hello\nworld\n' | "$HSMTLS" connect 127.0.0.1:5556 --ca "$CA" --servername localhost \
    --cert "$CLI_CERT" --key "$CLI_KEY" $VERSION
rc=$?
kill $pid
wait $pid 2>/dev/null
exit $rc
'''


def unshare_works():
    try:
        return subprocess.run(["unshare", "-n", "true"], capture_output=True, timeout=10).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


@pytest.mark.skipif(not unshare_works(), reason="needs unshare -n (root) for gnutls-serv")
@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("client", ["client-p256", "client-rsa2048"])
def test_connect_gnutls_serv_mutual_tls(sandbox, tmp_path, client, version, source):
    log = tmp_path / "gnutls-serv.log"
    env = {"SRV_CERT": cert(sandbox, "ec-p256"), "SRV_KEY": str(sandbox.dir / "soft" / "ec-p256.key"),
           "CA": str(sandbox.dir / "ca.pem"), "LOG": str(log), "HSMTLS": str(BIN / "hsmtls"),
           "CLI_CERT": cert(sandbox, client), "CLI_KEY": key_ref(sandbox, client, source),
           "VERSION": VERSIONS[version]}
    proc = sandbox.run("unshare", "-n", "bash", "-c", GNUTLS_IN_NAMESPACE, env=env, timeout=90)
    out = proc.stdout + proc.stderr
    assert "ERROR: AddressSanitizer" not in out and "ERROR: LeakSanitizer" not in out, out
    assert proc.returncode == 0, out + log.read_text()
    assert proc.stdout == "hello\nworld\n", out
    assert f"TLSv{version}" in proc.stderr and "verified" in proc.stderr, out
    where = "on a token" if source == "token" else "in a file"
    assert f"client certificate CN={client}" in proc.stderr and where in proc.stderr, out
    served = log.read_text()
    assert f"CN={client}" in served, served
    assert "The certificate is trusted" in served, served


# ---- resumption by session ticket ----

@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("version", VERSIONS)
def test_resume_serve_and_connect(sandbox, tmp_path, version, source):
    """libhsmtls on both ends: the first connection keeps its ticket, the second
    resumes with it (both ends say so), and a fresh one without it does not."""
    sess = tmp_path / "sess.der"
    args = ["--ca", sandbox.dir / "ca.pem", "--servername", "localhost", VERSIONS[version]]
    with hsmtls_serve(sandbox, tmp_path, "ec-p256", source=source) as (port, _, log):
        first = connect(sandbox, port, *args, "--sess-out", sess)
        second = connect(sandbox, port, *args, "--sess-in", sess, data="again\n")
        third = connect(sandbox, port, *args)
    assert first.returncode == 0 and "new session" in first.stderr, first.stderr
    assert "session kept in" in first.stderr and "with a ticket" in first.stderr, first.stderr
    assert second.returncode == 0 and second.stdout == "again\n", second.stderr
    assert "resumed session" in second.stderr, second.stderr
    assert "new session" in third.stderr
    assert log().count("resumed session") == 1, log()


@pytest.mark.parametrize("version", VERSIONS)
def test_resume_openssl_server(sandbox, tmp_path, version):
    sess = tmp_path / "sess.der"
    port = peers.free_port()
    args = peers.openssl_server_args(port, sandbox.dir / "soft" / "ec-p256.key", cert(sandbox, "ec-p256"), "-rev")
    args[args.index("-naccept") + 1] = "4"
    cargs = ["--ca", sandbox.dir / "ca.pem", "--servername", "localhost", VERSIONS[version]]
    with peers.serving(args, sandbox, port):
        first = connect(sandbox, port, *cargs, "--sess-out", sess)
        second = connect(sandbox, port, *cargs, "--sess-in", sess)
    assert first.returncode == 0 and "new session" in first.stderr, first.stderr
    assert second.returncode == 0 and second.stdout == "olleh\n", second.stderr
    assert "resumed session" in second.stderr, second.stderr


def test_session_file_garbage_is_a_clear_error(sandbox, tmp_path):
    bad = tmp_path / "bad.der"
    bad.write_bytes(b"not a session at all")
    proc = connect(sandbox, peers.free_port(), "--sess-in", bad, "--ca", sandbox.dir / "ca.pem")
    assert proc.returncode == 1
    assert "not a TLS session" in proc.stderr or "cannot connect" in proc.stderr, proc.stderr


# ---- ALPN against openssl s_server ----

@pytest.mark.parametrize("offer,expect", [("http/1.1", "ALPN http/1.1"), ("imap,h2", "ALPN h2"),
                                          (None, "no ALPN")])
def test_connect_alpn_openssl_server(sandbox, offer, expect):
    port = peers.free_port()
    args = peers.openssl_server_args(port, sandbox.dir / "soft" / "rsa2048.key", cert(sandbox, "rsa2048"),
                                     "-rev", "-alpn", "h2,http/1.1")
    with peers.serving(args, sandbox, port):
        proc = connect(sandbox, port, "--ca", sandbox.dir / "ca.pem", "--servername", "localhost",
                       *(["--alpn", offer] if offer else []))
    assert proc.returncode == 0 and proc.stdout == "olleh\n", proc.stderr
    assert expect + "," in proc.stderr, proc.stderr


def test_connect_alpn_refused_by_openssl_server(sandbox):
    """s_server answers an offer without overlap with no_application_protocol."""
    port = peers.free_port()
    args = peers.openssl_server_args(port, sandbox.dir / "soft" / "rsa2048.key", cert(sandbox, "rsa2048"),
                                     "-rev", "-alpn", "h2")
    with peers.serving(args, sandbox, port):
        proc = connect(sandbox, port, "--ca", sandbox.dir / "ca.pem", "--servername", "localhost",
                       "--alpn", "imap")
    assert proc.returncode == 1 and proc.stdout == ""
    assert "no application protocol" in proc.stderr, proc.stderr


# ---- SNI switching in hsmtls serve ----

def s_client_subject(box, port, name):
    proc = box.run("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", name,
                   "-CAfile", box.dir / "ca.pem", "-verify_return_error", "-verify_hostname", "localhost",
                   input="hello\n", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Verify return code: 0 (ok)" in proc.stdout
    return next(line for line in proc.stdout.splitlines() if line.startswith("subject="))


@pytest.mark.parametrize("source", SOURCES)
def test_serve_sni_switching(sandbox, tmp_path, source):
    sni = [f"rsa.example:{cert(sandbox, 'rsa2048')}:{key_ref(sandbox, 'rsa2048', source)}",
           f"ed.example:{cert(sandbox, 'ed25519')}:{key_ref(sandbox, 'ed25519', source)}"]
    with hsmtls_serve(sandbox, tmp_path, "ec-p256", "--sni", sni[0], "--sni", sni[1],
                      source=source) as (port, _, log):
        rsa = s_client_subject(sandbox, port, "rsa.example")
        ed = s_client_subject(sandbox, port, "ED.example")
        default = s_client_subject(sandbox, port, "localhost")
        other = s_client_subject(sandbox, port, "unknown.example")
    assert "OU = rsa2048" in rsa and "OU = ed25519" in ed, (rsa, ed)
    assert "OU = ec-p256" in default and "OU = ec-p256" in other
    text = log()
    assert "SNI rsa.example: certificate CN=localhost,OU=rsa2048" in text, text
    assert ("on a token" if source == "token" else "in a file") in text
    assert "SNI rsa.example" in text and "SNI ED.example" in text


def test_serve_sni_bad_argument(sandbox):
    proc = sandbox.hsmtls("serve", "--port", str(peers.free_port()), "--cert", cert(sandbox, "ec-p256"),
                          "--key", sandbox.dir / "soft" / "ec-p256.key", "--sni", "only-a-name")
    assert proc.returncode == 2 and "expected NAME:CERT:KEY" in proc.stderr, proc.stderr
    proc = sandbox.hsmtls("serve", "--port", str(peers.free_port()), "--cert", cert(sandbox, "ec-p256"),
                          "--key", sandbox.dir / "soft" / "ec-p256.key", "--sni",
                          f"x.example:{cert(sandbox, 'rsa2048')}:{sandbox.dir / 'soft' / 'ec-p256.key'}")
    assert proc.returncode == 1 and "does not match the certificate" in proc.stderr, proc.stderr


# ---- OCSP stapling with a real response ----

@pytest.fixture
def ocsp_response(sandbox, tmp_path):
    """A DER OCSP response from the sandbox CA saying certs/ec-p256.pem is good."""
    leaf = cert(sandbox, "ec-p256")
    serial = sandbox.run("openssl", "x509", "-in", leaf, "-noout", "-serial", check=True).stdout
    subject = sandbox.run("openssl", "x509", "-in", leaf, "-noout", "-subject", "-nameopt", "compat",
                          check=True).stdout
    index = tmp_path / "index.txt"
    index.write_text("V\t361231000000Z\t\t{}\tunknown\t{}\n".format(
        serial.strip().split("=", 1)[1], subject.strip().split("=", 1)[1]))
    resp = tmp_path / "resp.der"
    ca, key = sandbox.dir / "ca.pem", sandbox.dir / "ca.key"
    sandbox.run("openssl", "ocsp", "-index", index, "-rsigner", ca, "-rkey", key, "-CA", ca, "-issuer", ca,
                "-cert", leaf, "-respout", resp, "-ndays", "1", check=True)
    assert resp.stat().st_size > 100
    return resp


@pytest.mark.parametrize("source", SOURCES)
def test_serve_staples_ocsp(sandbox, tmp_path, ocsp_response, source):
    with hsmtls_serve(sandbox, tmp_path, "ec-p256", "--ocsp-response", ocsp_response,
                      source=source) as (port, _, log):
        asked = sandbox.run("openssl", "s_client", "-connect", f"127.0.0.1:{port}", "-servername", "localhost",
                            "-CAfile", sandbox.dir / "ca.pem", "-verify_return_error", "-status",
                            input="hello\n", timeout=60)
        ours = connect(sandbox, port, "--ca", sandbox.dir / "ca.pem", "--servername", "localhost", "--ocsp")
        not_asked = connect(sandbox, port, "--ca", sandbox.dir / "ca.pem", "--servername", "localhost")
    assert asked.returncode == 0, asked.stderr
    out = asked.stdout + asked.stderr
    assert "OCSP Response Status: successful" in out and "Cert Status: good" in out, out
    assert ours.returncode == 0 and ours.stdout == "hello\n", ours.stderr
    size = ocsp_response.stat().st_size
    assert f"OCSP response stapled ({size} bytes): successful, certificate good" in ours.stderr, ours.stderr
    assert "OCSP" not in not_asked.stderr
    assert "stapling the OCSP response" in log()


@pytest.mark.parametrize("version", VERSIONS)
def test_connect_reads_ocsp_from_openssl_server(sandbox, ocsp_response, version):
    port = peers.free_port()
    args = peers.openssl_server_args(port, sandbox.dir / "soft" / "ec-p256.key", cert(sandbox, "ec-p256"),
                                     "-rev", "-status_file", ocsp_response)
    args[args.index("-naccept") + 1] = "3"
    cargs = ["--ca", sandbox.dir / "ca.pem", "--servername", "localhost", VERSIONS[version]]
    with peers.serving(args, sandbox, port):
        proc = connect(sandbox, port, *cargs, "--ocsp")
        plain = connect(sandbox, port, *cargs)
    assert proc.returncode == 0 and proc.stdout == "olleh\n", proc.stderr
    size = ocsp_response.stat().st_size
    assert f"OCSP response stapled ({size} bytes): successful, certificate good" in proc.stderr, proc.stderr
    assert plain.returncode == 0 and "OCSP" not in plain.stderr


# ---- CRLs, and the second slice's C API ----

def make_crl(box, directory, revoke_label):
    """A CRL from the sandbox CA (openssl ca -gencrl) revoking certs/<revoke_label>.pem."""
    (directory / "index.txt").write_text("")
    (directory / "crlnumber").write_text("01\n")
    cnf = directory / "ca.cnf"
    cnf.write_text(f"""[ ca ]
default_ca = CA_default
[ CA_default ]
database = {directory / 'index.txt'}
crlnumber = {directory / 'crlnumber'}
default_md = sha256
default_crl_days = 30
certificate = {box.dir / 'ca.pem'}
private_key = {box.dir / 'ca.key'}
""")
    box.run("openssl", "ca", "-config", cnf, "-revoke", cert(box, revoke_label), check=True)
    crl = directory / "crl.pem"
    box.run("openssl", "ca", "-config", cnf, "-gencrl", "-out", crl, check=True)
    return crl


@pytest.fixture(scope="module")
def crl(sandbox, tmp_path_factory):
    return make_crl(sandbox, tmp_path_factory.mktemp("crl"), "rsa2048")


@pytest.mark.parametrize("label,revoked", [("rsa2048", True), ("ec-p256", False)])
def test_connect_crl_openssl_server(sandbox, crl, label, revoked):
    port = peers.free_port()
    args = peers.openssl_server_args(port, sandbox.dir / "soft" / f"{label}.key", cert(sandbox, label), "-rev")
    with peers.serving(args, sandbox, port):
        proc = connect(sandbox, port, "--ca", sandbox.dir / "ca.pem", "--servername", "localhost", "--crl", crl)
    if revoked:
        assert proc.returncode == 1 and proc.stdout == ""
        assert "certificate revoked" in proc.stderr, proc.stderr
    else:
        assert proc.returncode == 0 and proc.stdout == "olleh\n", proc.stderr


@pytest.mark.parametrize("case", c_cases("test_lib_more"))
def test_lib_more(sandbox, crl, case):
    proc = sandbox.run(BIN / "test_lib_more", sandbox.dir, case, crl, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0 and " 0 failed" in proc.stdout, out
    assert "ERROR: AddressSanitizer" not in out and "ERROR: LeakSanitizer" not in out, out
    assert "runtime error:" not in out, out
