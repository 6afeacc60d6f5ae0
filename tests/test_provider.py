"""The OpenSSL 3 provider (build/lib/ossl-modules/hsmtls.so) driven through the
`openssl` command line: keys and certificates loaded by pkcs11: URI through
OSSL_STORE, signatures made on the token and checked against the sandbox's software
copies, TLS 1.2 and 1.3 handshakes with s_server/s_client, and the errors a user sees;
URI key files ("PKCS#11 PROVIDER URI" PEM) read and written, and key generation on a
token with `openssl genpkey -propquery provider=hsmtls`.

Every test runs against a SoftHSM2 sandbox of its own (made once per session) and an
openssl.cnf that loads the provider, so nothing on the machine is touched.
"""
import base64
import os
import selectors
import socket
import subprocess
import time
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BUILD = Path(os.environ.get("HSMTLS_BUILD_DIR", REPO / "build"))
MODULE = BUILD / "lib" / "ossl-modules" / "hsmtls.so"
OPENSSL = "openssl"
PIN = "1234"

CNF = """\
openssl_conf = openssl_init
[openssl_init]
providers = provider_sect
[provider_sect]
default = default_sect
hsmtls = hsmtls_sect
[default_sect]
activate = 1
[hsmtls_sect]
module = {module}
activate = 1
pkcs11-module-path = {pkcs11_module}
{extra}
"""


class Sandbox:
    def __init__(self, directory, env):
        self.dir = directory
        self.env = env

    def key_uri(self, label, token="server", pin=PIN):
        uri = f"pkcs11:token={token};object={label};type=private"
        return uri + (f"?pin-value={pin}" if pin is not None else "")

    def cert(self, label):
        return str(self.dir / "certs" / f"{label}.pem")

    def soft_key(self, label):
        return str(self.dir / "soft" / f"{label}.key")

    def env_with(self, cnf):
        env = dict(self.env)
        env["OPENSSL_CONF"] = str(cnf)
        return env


def sanitizer_env():
    """The system openssl is not instrumented: to load a sanitized provider it needs
    libasan preloaded first, with libstdc++ for SoftHSM2 (C++). Empty for a normal build."""
    cache = BUILD / "CMakeCache.txt"
    if not (cache.exists() and "HSMTLS_SANITIZE:BOOL=ON" in cache.read_text()):
        return {}
    libasan = subprocess.run(["gcc", "-print-file-name=libasan.so"], capture_output=True,
                             text=True).stdout.strip()
    return {"LD_PRELOAD": f"{libasan} libstdc++.so.6", "ASAN_OPTIONS": "detect_leaks=0",
            "UBSAN_OPTIONS": "print_stacktrace=1:halt_on_error=1"}


def read_env_sh(path):
    env = {}
    for line in path.read_text().splitlines():
        if line.startswith("export "):
            name, _, value = line[len("export "):].partition("=")
            env[name] = value.strip("'\"")
    return env


@pytest.fixture(scope="session")
def prov_sandbox(tmp_path_factory):
    assert MODULE.exists(), f"build the provider first: {MODULE} is missing"
    directory = tmp_path_factory.mktemp("prov-sandbox")
    subprocess.run([str(REPO / "softhsm" / "sandbox"), str(directory)], check=True,
                   capture_output=True, timeout=60)
    env = dict(os.environ)
    env.pop("HSMTLS_DEBUG", None)
    env.update(read_env_sh(directory / "env.sh"))
    env.update(sanitizer_env())
    cnf = directory / "openssl.cnf"
    cnf.write_text(CNF.format(module=MODULE, pkcs11_module=env["HSMTLS_PKCS11_MODULE"], extra=""))
    env["OPENSSL_CONF"] = str(cnf)
    return Sandbox(directory, env)


def openssl(sbx, *args, env=None, input=None, check=True):
    r = subprocess.run([OPENSSL, *args], env=env or sbx.env, input=input,
                       capture_output=True, timeout=30)
    err = r.stderr.decode(errors="replace")
    assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err
    if check and r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(args)} failed ({r.returncode}):\n{err}")
    return r


def soft_pub(sbx, label, tmp_path):
    pub = tmp_path / f"{label}.soft.pub"
    pub.write_bytes(openssl(sbx, "pkey", "-in", sbx.soft_key(label), "-pubout").stdout)
    return str(pub)


# ---- keys through OSSL_STORE --------------------------------------------------------

@pytest.mark.parametrize("label", ["rsa2048", "rsa3072", "ec-p256", "ec-p384", "ec-p521",
                                   "ed25519", "ed448"])
def test_public_key_matches_software_copy(prov_sandbox, label):
    token = openssl(prov_sandbox, "pkey", "-in", prov_sandbox.key_uri(label), "-pubout").stdout
    soft = openssl(prov_sandbox, "pkey", "-in", prov_sandbox.soft_key(label), "-pubout").stdout
    assert token.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert token == soft


def test_public_key_object(prov_sandbox):
    r = openssl(prov_sandbox, "pkey", "-pubin", "-in", "pkcs11:token=server;object=ec-p384;type=public",
                "-pubout")
    assert r.stdout == openssl(prov_sandbox, "pkey", "-in", prov_sandbox.soft_key("ec-p384"),
                               "-pubout").stdout


def test_certificate_from_token(prov_sandbox):
    r = openssl(prov_sandbox, "x509", "-in", "pkcs11:token=server;object=ec-p256;type=cert",
                "-noout", "-subject")
    assert b"OU = ec-p256" in r.stdout


def test_storeutl_lists_key_pair_and_certificate(prov_sandbox):
    r = openssl(prov_sandbox, "storeutl", f"pkcs11:token=server;object=rsa2048?pin-value={PIN}")
    out = r.stdout.decode()
    assert "Certificate" in out and "Pkey" in out and "Public key" in out
    assert "Total found: 3" in out


def keyfile_uri(pem):
    """The URI inside a "PKCS#11 PROVIDER URI" PEM file (SEQUENCE { VisibleString,
    UTF8String }), decoded here independently of the C code."""
    text = pem.decode() if isinstance(pem, bytes) else pem
    lines = text.strip().splitlines()
    assert lines[0] == "-----BEGIN PKCS#11 PROVIDER URI-----", text
    assert lines[-1] == "-----END PKCS#11 PROVIDER URI-----", text
    der = base64.b64decode("".join(lines[1:-1]))

    def tlv(data, tag):
        assert data[0] == tag, der
        length, pos = data[1], 2
        if length & 0x80:
            n = length & 0x7f
            length, pos = int.from_bytes(data[2:2 + n], "big"), 2 + n
        return data[pos:pos + length], data[pos + length:]

    body, rest = tlv(der, 0x30)
    assert rest == b""
    desc, body = tlv(body, 0x1a)
    assert desc == b"PKCS#11 Provider URI v1.0"
    uri, body = tlv(body, 0x0c)
    assert body == b""
    return uri.decode()


def test_plain_pkey_writes_a_uri_key_file(prov_sandbox, tmp_path):
    """The PEM "private key" of a token key is a reference to it: its URI (no PIN), which
    finds the same key again."""
    r = openssl(prov_sandbox, "pkey", "-in", prov_sandbox.key_uri("rsa2048"))
    assert b"PRIVATE KEY-----" not in r.stdout
    uri = keyfile_uri(r.stdout)
    assert uri.startswith("pkcs11:") and "object=rsa2048" in uri and "token=server" in uri
    assert "type=private" in uri and "pin" not in uri and PIN not in uri
    keyfile = tmp_path / "rsa2048.pem"
    keyfile.write_bytes(r.stdout)
    soft = openssl(prov_sandbox, "pkey", "-in", prov_sandbox.soft_key("rsa2048"), "-pubout").stdout
    # Through the key file and through its URI: the same key. This openssl.cnf has no
    # PIN: the key file's lookup asks openssl's passphrase callback (-passin).
    assert openssl(prov_sandbox, "pkey", "-in", str(keyfile), "-passin", f"pass:{PIN}",
                   "-pubout").stdout == soft
    assert openssl(prov_sandbox, "pkey", "-in", uri + f"?pin-value={PIN}", "-pubout").stdout == soft
    # Written again from the key file: the same file.
    assert openssl(prov_sandbox, "pkey", "-in", str(keyfile), "-passin", f"pass:{PIN}").stdout == r.stdout


def test_public_text_of_a_token_key(prov_sandbox):
    """-text_pub prints the public half, as for a key file (the default provider's text)."""
    token = openssl(prov_sandbox, "pkey", "-in", prov_sandbox.key_uri("ec-p256"), "-text_pub", "-noout")
    soft = openssl(prov_sandbox, "pkey", "-in", prov_sandbox.soft_key("ec-p256"), "-text_pub", "-noout")
    assert token.stdout.startswith(b"Public-Key: (256 bit)") and token.stdout == soft.stdout


@pytest.mark.parametrize("args", [["-outform", "DER"], ["-traditional"], ["-text", "-noout"]],
                         ids=["der", "traditional", "text"])
def test_exporting_the_private_key_is_refused(prov_sandbox, args):
    r = openssl(prov_sandbox, "pkey", "-in", prov_sandbox.key_uri("rsa2048"), *args, check=False)
    assert r.returncode != 0
    assert b"PRIVATE KEY" not in r.stdout and b"privateExponent" not in r.stdout
    err = r.stderr.decode()
    assert 'the private key "rsa2048" on PKCS#11 token "server" cannot be exported' in err


def test_wrong_pin_names_the_pkcs11_reason(prov_sandbox):
    r = openssl(prov_sandbox, "pkey", "-pubout", "-in",
                prov_sandbox.key_uri("ec-p256", pin="9999"), check=False)
    assert r.returncode != 0
    err = r.stderr.decode()
    assert "CKR_PIN_INCORRECT" in err and 'token "server"' in err
    # openssl itself echoes the URI it was given; our own lines never carry the PIN.
    assert not [line for line in err.splitlines() if ":hsmtls:" in line and "9999" in line]


def test_unknown_label_lists_what_the_token_holds(prov_sandbox):
    r = openssl(prov_sandbox, "pkey", "-pubout", "-in",
                f"pkcs11:token=server;object=no-such-key;type=private?pin-value={PIN}", check=False)
    assert r.returncode != 0
    err = r.stderr.decode()
    ours = [line for line in err.splitlines() if ":hsmtls:" in line]
    assert ours and "no private key matches" in ours[0] and "rsa2048" in ours[0]
    assert not [line for line in err.splitlines() if ":hsmtls:" in line and f"pin-value={PIN}" in line]


def test_pin_from_passphrase_callback(prov_sandbox):
    uri = prov_sandbox.key_uri("ec-p256", pin=None)
    r = openssl(prov_sandbox, "pkey", "-pubout", "-in", uri, "-passin", f"pass:{PIN}")
    assert r.stdout.startswith(b"-----BEGIN PUBLIC KEY-----")


def test_pin_and_module_from_provider_config(prov_sandbox, tmp_path):
    """pkcs11-pin from openssl.cnf, and pkcs11-module-path with no HSMTLS_PKCS11_MODULE."""
    cnf = tmp_path / "openssl.cnf"
    cnf.write_text(CNF.format(module=MODULE,
                              pkcs11_module=prov_sandbox.env["HSMTLS_PKCS11_MODULE"],
                              extra=f"pkcs11-pin = {PIN}"))
    env = prov_sandbox.env_with(cnf)
    del env["HSMTLS_PKCS11_MODULE"]
    r = openssl(prov_sandbox, "pkey", "-pubout", "-in",
                prov_sandbox.key_uri("rsa2048", pin=None), env=env)
    assert r.stdout == openssl(prov_sandbox, "pkey", "-pubout", "-in",
                               prov_sandbox.soft_key("rsa2048")).stdout


def test_pin_source_from_provider_config(prov_sandbox, tmp_path):
    cnf = tmp_path / "openssl.cnf"
    cnf.write_text(CNF.format(module=MODULE,
                              pkcs11_module=prov_sandbox.env["HSMTLS_PKCS11_MODULE"],
                              extra=f"pkcs11-pin-source = file:{prov_sandbox.dir / 'pin.txt'}"))
    r = openssl(prov_sandbox, "pkey", "-pubout", "-in",
                prov_sandbox.key_uri("ed25519", pin=None), env=prov_sandbox.env_with(cnf))
    assert r.stdout.startswith(b"-----BEGIN PUBLIC KEY-----")


# ---- signatures ---------------------------------------------------------------------

@pytest.mark.parametrize("label", ["rsa2048", "ec-p256", "ec-p521"])
def test_pkeyutl_sign_digest(prov_sandbox, label, tmp_path):
    digest = tmp_path / "digest"
    digest.write_bytes(bytes(range(32)))
    sig = tmp_path / "sig"
    openssl(prov_sandbox, "pkeyutl", "-sign", "-inkey", prov_sandbox.key_uri(label),
            "-in", str(digest), "-out", str(sig), "-pkeyopt", "digest:sha256")
    r = openssl(prov_sandbox, "pkeyutl", "-verify", "-pubin", "-inkey",
                soft_pub(prov_sandbox, label, tmp_path), "-in", str(digest),
                "-sigfile", str(sig), "-pkeyopt", "digest:sha256")
    assert b"Signature Verified Successfully" in r.stdout


@pytest.mark.parametrize("label", ["ed25519", "ed448"])
def test_pkeyutl_sign_eddsa(prov_sandbox, label, tmp_path):
    msg = tmp_path / "msg"
    msg.write_bytes(b"hello hsmtls\n" * 10)
    sig = tmp_path / "sig"
    openssl(prov_sandbox, "pkeyutl", "-sign", "-rawin", "-inkey", prov_sandbox.key_uri(label),
            "-in", str(msg), "-out", str(sig))
    r = openssl(prov_sandbox, "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey",
                soft_pub(prov_sandbox, label, tmp_path), "-in", str(msg), "-sigfile", str(sig))
    assert b"Signature Verified Successfully" in r.stdout


@pytest.mark.parametrize("opts", [
    [],
    ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:digest"],
    ["-sigopt", "rsa_padding_mode:pss", "-sigopt", "rsa_pss_saltlen:max"],
], ids=["pkcs1", "pss-digest", "pss-max"])
def test_dgst_rsa(prov_sandbox, opts, tmp_path):
    msg = tmp_path / "msg"
    msg.write_bytes(b"x" * 1000)
    sig = tmp_path / "sig"
    openssl(prov_sandbox, "dgst", "-sha384", "-sign", prov_sandbox.key_uri("rsa2048"), *opts,
            "-out", str(sig), str(msg))
    verify_opts = [o.replace("saltlen:max", "saltlen:auto") for o in opts]
    r = openssl(prov_sandbox, "dgst", "-sha384", "-verify", soft_pub(prov_sandbox, "rsa2048", tmp_path),
                *verify_opts, "-signature", str(sig), str(msg))
    assert b"Verified OK" in r.stdout
    # Verifying with the token key goes to the default provider with the same settings.
    r = openssl(prov_sandbox, "dgst", "-sha384", "-prverify", prov_sandbox.key_uri("rsa2048"),
                *verify_opts, "-signature", str(sig), str(msg))
    assert b"Verified OK" in r.stdout


@pytest.mark.parametrize("label", ["rsa2048", "ec-p384", "ed25519"])
def test_self_signed_certificate(prov_sandbox, label, tmp_path):
    """X.509 signing asks the signature for its AlgorithmIdentifier."""
    cert = tmp_path / "self.pem"
    openssl(prov_sandbox, "req", "-x509", "-new", "-key", prov_sandbox.key_uri(label),
            "-subj", "/CN=hsmtls test", "-days", "1", "-out", str(cert))
    r = openssl(prov_sandbox, "verify", "-CAfile", str(cert), str(cert))
    assert b": OK" in r.stdout


# ---- decryption and key exchange ----------------------------------------------------

@pytest.mark.parametrize("opts", [[], ["-pkeyopt", "rsa_padding_mode:oaep"]], ids=["pkcs1", "oaep"])
def test_rsa_decrypt(prov_sandbox, opts, tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(os.urandom(32))
    ct, out = tmp_path / "ct", tmp_path / "out"
    openssl(prov_sandbox, "pkeyutl", "-encrypt", "-pubin", "-inkey",
            soft_pub(prov_sandbox, "rsa2048", tmp_path), "-in", str(plain), "-out", str(ct), *opts)
    openssl(prov_sandbox, "pkeyutl", "-decrypt", "-inkey", prov_sandbox.key_uri("rsa2048"),
            "-in", str(ct), "-out", str(out), *opts)
    assert out.read_bytes() == plain.read_bytes()


def test_rsa_encrypt_with_token_key_uses_public_half(prov_sandbox, tmp_path):
    plain = tmp_path / "plain"
    plain.write_bytes(b"secret" * 5)
    ct, out = tmp_path / "ct", tmp_path / "out"
    openssl(prov_sandbox, "pkeyutl", "-encrypt", "-inkey", prov_sandbox.key_uri("rsa2048"),
            "-in", str(plain), "-out", str(ct))
    openssl(prov_sandbox, "pkeyutl", "-decrypt", "-inkey", prov_sandbox.soft_key("rsa2048"),
            "-in", str(ct), "-out", str(out))
    assert out.read_bytes() == plain.read_bytes()


@pytest.mark.parametrize("label,curve", [("ec-p256", "P-256"), ("ec-p384", "P-384")])
def test_ecdh_derive_matches_software(prov_sandbox, label, curve, tmp_path):
    peer_key, peer_pub = tmp_path / "peer.key", tmp_path / "peer.pub"
    openssl(prov_sandbox, "genpkey", "-algorithm", "EC", "-pkeyopt", f"ec_paramgen_curve:{curve}",
            "-out", str(peer_key))
    openssl(prov_sandbox, "pkey", "-in", str(peer_key), "-pubout", "-out", str(peer_pub))
    token = openssl(prov_sandbox, "pkeyutl", "-derive", "-inkey", prov_sandbox.key_uri(label),
                    "-peerkey", str(peer_pub)).stdout
    soft = openssl(prov_sandbox, "pkeyutl", "-derive", "-inkey", prov_sandbox.soft_key(label),
                   "-peerkey", str(peer_pub)).stdout
    assert token and token == soft


# ---- TLS ----------------------------------------------------------------------------

def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_for_accept(proc, timeout=10.0):
    """s_server prints ACCEPT once it listens; a probe connection would use up -naccept."""
    sel = selectors.DefaultSelector()
    sel.register(proc.stdout, selectors.EVENT_READ)
    seen = b""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if sel.select(timeout=0.1):
            chunk = os.read(proc.stdout.fileno(), 4096)
            if not chunk:
                break
            seen += chunk
            if b"ACCEPT" in seen:
                return
    proc.kill()
    raise AssertionError(f"s_server did not start: {seen.decode(errors='replace')}"
                         f"{proc.stderr.read().decode(errors='replace')}")


def handshake(sbx, server_args, client_args):
    port = free_port()
    # -www: answer HTTP rather than echo stdin, whose EOF would end the connection early.
    server = subprocess.Popen([OPENSSL, "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "1",
                               "-www", *server_args],
                              env=sbx.env, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE)
    try:
        wait_for_accept(server)
        client = subprocess.run([OPENSSL, "s_client", "-connect", f"127.0.0.1:{port}", "-brief",
                                 "-CAfile", str(sbx.dir / "ca.pem"), "-verify_return_error",
                                 *client_args],
                                env=sbx.env, input=b"", capture_output=True, timeout=15)
        server.wait(timeout=10)
        server_err = server.stderr.read().decode(errors="replace")
        client_err = client.stderr.decode(errors="replace")
        for err in (server_err, client_err):
            assert "ERROR: AddressSanitizer" not in err and "runtime error:" not in err, err
        return client, server_err
    finally:
        if server.poll() is None:
            server.kill()
            server.wait()


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
@pytest.mark.parametrize("label", ["rsa2048", "ec-p256", "ed25519"])
def test_tls_server_key_on_token(prov_sandbox, label, version):
    client, server = handshake(prov_sandbox,
                               ["-key", prov_sandbox.key_uri(label), "-cert", prov_sandbox.cert(label),
                                version],
                               [version])
    out = client.stderr.decode() + client.stdout.decode()
    assert client.returncode == 0, out + server
    assert "Verification: OK" in out
    assert f"Protocol version: TLSv1.{version[-1]}" in out
    assert f"OU = {label}" in out


def test_tls_key_and_certificate_both_from_token(prov_sandbox):
    """-cert by URI too, and the PIN through openssl's passphrase callback (-pass)."""
    client, server = handshake(prov_sandbox,
                               ["-key", prov_sandbox.key_uri("ec-p521", pin=None), "-pass", f"pass:{PIN}",
                                "-cert", "pkcs11:token=server;object=ec-p521;type=cert"],
                               [])
    out = client.stderr.decode() + client.stdout.decode()
    assert client.returncode == 0, out + server
    assert "OU = ec-p521" in out and "Verification: OK" in out


def test_tls12_rsa_pkcs1_signature(prov_sandbox):
    client, server = handshake(prov_sandbox,
                               ["-key", prov_sandbox.key_uri("rsa2048"),
                                "-cert", prov_sandbox.cert("rsa2048")],
                               ["-tls1_2", "-sigalgs", "RSA+SHA256"])
    out = client.stderr.decode() + client.stdout.decode()
    assert client.returncode == 0, out
    assert "Signature type: RSA\n" in out and "Verification: OK" in out


def test_tls12_rsa_key_exchange(prov_sandbox):
    """The premaster secret is decrypted on the token (libssl's TLS padding mode)."""
    client, server = handshake(prov_sandbox,
                               ["-key", prov_sandbox.key_uri("rsa2048"),
                                "-cert", prov_sandbox.cert("rsa2048")],
                               ["-tls1_2", "-cipher", "AES128-GCM-SHA256"])
    out = client.stderr.decode() + client.stdout.decode()
    assert client.returncode == 0, out + server
    assert "Ciphersuite: AES128-GCM-SHA256" in out and "Verification: OK" in out


@pytest.mark.parametrize("version", ["-tls1_3", "-tls1_2"])
def test_tls_client_key_on_token(prov_sandbox, version):
    ca = str(prov_sandbox.dir / "ca.pem")
    client, server = handshake(prov_sandbox,
                               ["-key", prov_sandbox.key_uri("ec-p384"), "-cert", prov_sandbox.cert("ec-p384"),
                                "-Verify", "1", "-CAfile", ca, "-verify_return_error"],
                               [version, "-key", prov_sandbox.key_uri("client-rsa2048", token="client"),
                                "-cert", prov_sandbox.cert("client-rsa2048")])
    out = client.stderr.decode() + client.stdout.decode()
    assert client.returncode == 0, out + server
    assert "Verification: OK" in out


# ---- URI key files: programs that take only a key file ------------------------------

def keyfile_pem(uri, desc=b"PKCS#11 Provider URI v1.0"):
    """A "PKCS#11 PROVIDER URI" PEM file for any URI text, valid or not."""
    def tlv(tag, value):
        n = len(value)
        head = bytes([tag, n]) if n < 0x80 else bytes([tag, 0x81, n]) if n < 0x100 else \
            bytes([tag, 0x82, n >> 8, n & 0xff])
        return head + value
    der = tlv(0x30, tlv(0x1a, desc) + tlv(0x0c, uri.encode()))
    return ("-----BEGIN PKCS#11 PROVIDER URI-----\n" + base64.encodebytes(der).decode() +
            "-----END PKCS#11 PROVIDER URI-----\n")


def hsmtls_keyfile(sbx, uri, path):
    r = subprocess.run([str(BUILD / "bin" / "hsmtls"), "keyfile", "--out", str(path), uri],
                       env=sbx.env, capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    return str(path)


@pytest.mark.parametrize("label", ["rsa2048", "rsa3072", "ec-p256", "ec-p384", "ec-p521",
                                   "ed25519", "ed448"])
def test_uri_key_file_public_key_matches_software_copy(prov_sandbox, label, tmp_path):
    keyfile = hsmtls_keyfile(prov_sandbox, prov_sandbox.key_uri(label, pin=None), tmp_path / "k.pem")
    token = openssl(prov_sandbox, "pkey", "-in", keyfile, "-passin", f"pass:{PIN}", "-pubout")
    assert token.stdout.startswith(b"-----BEGIN PUBLIC KEY-----")
    assert token.stdout == openssl(prov_sandbox, "pkey", "-in", prov_sandbox.soft_key(label),
                                   "-pubout").stdout


@pytest.mark.parametrize("label", ["rsa2048", "ec-p256", "ed25519"])
def test_tls_server_key_from_uri_key_file(prov_sandbox, label, tmp_path):
    keyfile = hsmtls_keyfile(prov_sandbox, prov_sandbox.key_uri(label, pin=None), tmp_path / "k.pem")
    client, server = handshake(prov_sandbox,
                               ["-key", keyfile, "-pass", f"pass:{PIN}", "-cert", prov_sandbox.cert(label)],
                               [])
    out = client.stderr.decode() + client.stdout.decode()
    assert client.returncode == 0, out + server
    assert "Verification: OK" in out and f"OU = {label}" in out


def test_uri_key_file_signs_on_the_token(prov_sandbox, tmp_path):
    keyfile = hsmtls_keyfile(prov_sandbox, prov_sandbox.key_uri("ec-p384", pin=None), tmp_path / "k.pem")
    digest, sig = tmp_path / "digest", tmp_path / "sig"
    digest.write_bytes(os.urandom(48))
    openssl(prov_sandbox, "pkeyutl", "-sign", "-inkey", keyfile, "-passin", f"pass:{PIN}",
            "-in", str(digest), "-out", str(sig))
    r = openssl(prov_sandbox, "pkeyutl", "-verify", "-pubin", "-inkey",
                soft_pub(prov_sandbox, "ec-p384", tmp_path), "-in", str(digest), "-sigfile", str(sig))
    assert b"Signature Verified Successfully" in r.stdout


@pytest.mark.parametrize("content,message", [
    (keyfile_pem("pkcs11:token=server;objct=ec-p256"), 'unknown attribute "objct"'),
    (keyfile_pem("https://example.com/key"), "malformed PKCS#11 URI key file: the key file's URI is not a pkcs11: URI"),
    ("-----BEGIN PKCS#11 PROVIDER URI-----\nMAMCAQA=\n-----END PKCS#11 PROVIDER URI-----\n",
     'malformed PKCS#11 URI key file: the "PKCS#11 PROVIDER URI" PEM block does not hold'),
    (keyfile_pem("pkcs11:token=server;object=no-such-key;type=private"), "no private key matches"),
], ids=["bad-uri", "not-pkcs11", "bad-der", "no-such-key"])
def test_broken_uri_key_file_says_why(prov_sandbox, tmp_path, content, message):
    keyfile = tmp_path / "k.pem"
    keyfile.write_text(content)
    # The PIN from the command line: a key file may not carry one (issue 12).
    r = openssl(prov_sandbox, "pkey", "-in", str(keyfile), "-pubout", "-passin", f"pass:{PIN}",
                check=False)
    assert r.returncode != 0 and not r.stdout
    ours = [line for line in r.stderr.decode().splitlines() if ":hsmtls:" in line]
    assert ours and message in ours[0], r.stderr.decode()
    assert not [line for line in ours if f"pass:{PIN}" in line or f"pin-value={PIN}" in line]


def test_other_pem_files_pass_our_decoders_quietly(prov_sandbox, tmp_path):
    """Software keys and certificates decode as before, without a word from hsmtls."""
    for args in (["pkey", "-in", prov_sandbox.soft_key("ec-p256"), "-pubout"],
                 ["pkey", "-in", prov_sandbox.soft_key("rsa2048"), "-outform", "DER"],
                 ["x509", "-in", prov_sandbox.cert("ec-p256"), "-noout", "-subject"]):
        r = openssl(prov_sandbox, *args)
        assert r.stdout and not r.stderr, (args, r.stderr)
    # DER software keys go through the DER decoders too.
    der = tmp_path / "k.der"
    der.write_bytes(openssl(prov_sandbox, "pkey", "-in", prov_sandbox.soft_key("ed25519"),
                            "-outform", "DER").stdout)
    r = openssl(prov_sandbox, "pkey", "-inform", "DER", "-in", str(der), "-pubout")
    assert r.stdout.startswith(b"-----BEGIN PUBLIC KEY-----") and not r.stderr


# ---- key generation on a token ------------------------------------------------------
# These use the shared sandbox (conftest.py): its openssl.cnf loads hsmtls after the
# default provider with default_properties = ?provider=default and a pin-source, and
# its "scratch" token may be changed. Labels are unique per test run.

GENPKEY_HSMTLS = ["genpkey", "-propquery", "provider=hsmtls"]


def sandbox_openssl(box, *args, check=True):
    r = box.run("openssl", *args, timeout=60)
    assert "ERROR: AddressSanitizer" not in r.stderr and "runtime error:" not in r.stderr, r.stderr
    if check and r.returncode != 0:
        raise AssertionError(f"openssl {' '.join(map(str, args))} failed ({r.returncode}):\n{r.stderr}")
    return r


def unique_label(prefix):
    return f"{prefix}-{os.getpid()}-{time.monotonic_ns()}"


@pytest.mark.parametrize("alg,opts,key_id,rawin", [
    ("EC", ["-pkeyopt", "group:P-256"], "4201", False),
    ("EC", ["-pkeyopt", "ec_paramgen_curve:P-384"], "4202", False),
    ("RSA", ["-pkeyopt", "rsa_keygen_bits:2048"], "4203", False),
    ("ED25519", [], None, True),
    ("ED448", [], None, True),
], ids=["p256", "p384", "rsa2048", "ed25519", "ed448"])
def test_genpkey_on_the_token(sandbox, tmp_path, alg, opts, key_id, rawin):
    """Without id= in the URI the provider gives the pair a random CKA_ID of its own."""
    label = unique_label(f"gen-{alg.lower()}")
    keyfile, pub = tmp_path / "key.pem", tmp_path / "pub.pem"
    target = f"pkcs11:token=scratch;object={label}" + (f";id=%{key_id[:2]}%{key_id[2:]}" if key_id else "")
    sandbox_openssl(sandbox, *GENPKEY_HSMTLS, "-algorithm", alg, *opts,
                    "-pkeyopt", f"pkcs11_uri:{target}", "-out", keyfile)
    uri = keyfile_uri(keyfile.read_text())
    assert "token=scratch" in uri and f"object={label}" in uri and "type=private" in uri
    # The key is on the token, private and public halves, under the label and one id.
    objects = sandbox.hsmtls("objects", "pkcs11:token=scratch?pin-value=1234", check=True).stdout
    mine = [line for line in objects.splitlines() if f"label={label} " in line]
    assert sorted(line.split()[0] for line in mine) == ["private-key", "public-key"], objects
    ids = {line.split(" id=")[1].split()[0] if " id=" in line else "" for line in mine}
    assert len(ids) == 1 and (ids == {key_id} if key_id else len(ids.pop()) == 32), objects
    # Sign with the key file, verify with the exported public key (default provider).
    sandbox_openssl(sandbox, "pkey", "-in", keyfile, "-pubout", "-out", pub)
    msg, sig = tmp_path / "msg", tmp_path / "sig"
    msg.write_bytes(os.urandom(32))
    if rawin:
        sandbox_openssl(sandbox, "pkeyutl", "-sign", "-rawin", "-inkey", keyfile, "-in", msg, "-out", sig)
        r = sandbox_openssl(sandbox, "pkeyutl", "-verify", "-rawin", "-pubin", "-inkey", pub,
                            "-in", msg, "-sigfile", sig)
    else:
        sandbox_openssl(sandbox, "pkeyutl", "-sign", "-inkey", keyfile, "-in", msg, "-out", sig,
                        "-pkeyopt", "digest:sha256")
        r = sandbox_openssl(sandbox, "pkeyutl", "-verify", "-pubin", "-inkey", pub, "-in", msg,
                            "-sigfile", sig, "-pkeyopt", "digest:sha256")
    assert "Signature Verified Successfully" in r.stdout


def test_generated_key_is_sensitive_and_not_extractable(sandbox, tmp_path):
    label = unique_label("gen-sensitive")
    keyfile = tmp_path / "key.pem"
    sandbox_openssl(sandbox, *GENPKEY_HSMTLS, "-algorithm", "EC", "-pkeyopt", "group:P-256",
                    "-pkeyopt", f"pkcs11_uri:pkcs11:token=scratch;object={label}", "-out", keyfile)
    r = sandbox.run("pkcs11-tool", "--module", sandbox.env["HSMTLS_PKCS11_MODULE"], "--token-label",
                    "scratch", "--login", "--pin", PIN, "--list-objects", "--type", "privkey",
                    "--label", label, check=True)
    assert "sensitive" in r.stdout and "never extractable" in r.stdout, r.stdout
    # Nothing of the key leaves the token, however asked.
    r = sandbox_openssl(sandbox, "pkey", "-in", keyfile, "-outform", "DER", check=False)
    assert r.returncode != 0 and f'the private key "{label}" on PKCS#11 token "scratch" cannot be exported' in r.stderr


@pytest.mark.parametrize("id_part", [";id=%07", ""], ids=["same-id", "no-id"])
def test_genpkey_over_an_existing_label_fails(sandbox, tmp_path, id_part):
    label = unique_label("gen-twice")
    target = f"pkcs11_uri:pkcs11:token=scratch;object={label}{id_part}"
    first, second = tmp_path / "first.pem", tmp_path / "second.pem"
    sandbox_openssl(sandbox, *GENPKEY_HSMTLS, "-algorithm", "EC", "-pkeyopt", "group:P-256",
                    "-pkeyopt", target, "-out", first)
    r = sandbox_openssl(sandbox, *GENPKEY_HSMTLS, "-algorithm", "ED25519", "-pkeyopt", target,
                        "-out", second, check=False)
    assert r.returncode != 0
    assert f'token "scratch" already holds an object labelled "{label}"' in r.stderr, r.stderr
    assert not second.exists() or not second.read_text()
    # The first key is untouched and still the one its key file names.
    assert sandbox_openssl(sandbox, "pkey", "-in", first, "-pubout").stdout.startswith("-----BEGIN PUBLIC KEY")


@pytest.mark.parametrize("opts,message", [
    ([], "hsmtls generates EC keys on a PKCS#11 token only: name the token and label with pkcs11_uri"),
    (["-pkeyopt", "pkcs11_uri:pkcs11:token=scratch"], "a label is required"),
    (["-pkeyopt", "pkcs11_uri:pkcs11:token=no-such-token;object=x"], "no-such-token"),
], ids=["no-uri", "no-label", "no-token"])
def test_genpkey_on_the_token_needs_a_target(sandbox, opts, message):
    r = sandbox_openssl(sandbox, *GENPKEY_HSMTLS, "-algorithm", "EC", "-pkeyopt", "group:P-256",
                        *opts, check=False)
    assert r.returncode != 0 and "PRIVATE KEY" not in r.stdout
    ours = [line for line in r.stderr.splitlines() if ":hsmtls:" in line]
    assert ours and message in ours[0], r.stderr


@pytest.mark.parametrize("alg,opts", [("EC", ["-pkeyopt", "group:P-256"]), ("RSA", []), ("ED25519", [])])
def test_unqualified_genpkey_makes_a_software_key(sandbox, prov_sandbox, alg, opts):
    """Key generation without -propquery provider=hsmtls never reaches the token, with
    the sandbox's openssl.cnf (default_properties) or one that only lists default first."""
    for r in (sandbox_openssl(sandbox, "genpkey", "-algorithm", alg, *opts),
              openssl(prov_sandbox, "genpkey", "-algorithm", alg, *opts)):
        out = r.stdout if isinstance(r.stdout, str) else r.stdout.decode()
        assert out.startswith("-----BEGIN PRIVATE KEY-----"), out
