"""The hsmtls ENGINE (engine/, issue 4) with real programs: openssl s_server/s_client/
pkeyutl/engine, nginx (master and one worker) and curl, each case also run with libp11's
`pkcs11` engine, the reference. Our engine loads keys through the provider's store, so
what libp11 cannot do (TLS 1.2 RSA key exchange, tokens that also hold EdDSA keys) works;
those libp11 failures are asserted, not skipped."""
import os
import re
import signal
import subprocess

import pytest

import peers
from conftest import BUILD, sanitized, sanitizer_preload


def clean(*texts):
    """No sanitizer report in a program's output (our engine and provider run in it)."""
    out = "\n".join(t or "" for t in texts)
    assert "ERROR: AddressSanitizer" not in out and "ERROR: LeakSanitizer" not in out, out
    assert "runtime error:" not in out, out

ENGINE_DIR = BUILD / "lib" / "engines-3"
ENGINE_SO = ENGINE_DIR / "hsmtls.so"
LIBP11_SO = "/usr/lib/x86_64-linux-gnu/engines-3/pkcs11.so"
SOFTHSM = "/usr/lib/softhsm/libsofthsm2.so"
SPY = "/usr/lib/x86_64-linux-gnu/pkcs11-spy.so"
NGINX = "/usr/sbin/nginx"
WRONG_PIN = "97531"  # distinctive, so a leak into any output would be seen


@pytest.fixture(scope="module")
def eng(sandbox, tmp_path_factory):
    """Configurations, the server token's slot id, and a reference token for libp11.

    libp11 0.4.12 cannot enumerate the keys of a token that also holds EdDSA keys (the
    sandbox's server token), so the libp11-vs-hsmtls comparisons use a token of their
    own, in a SoftHSM2 configuration of their own (the sandbox's tokens stay as they are),
    holding the sandbox's rsa2048 and ec-p256 keys: the same certificates fit."""
    if not ENGINE_SO.exists():
        pytest.fail(f"{ENGINE_SO} not built (the engine is built when OpenSSL has the ENGINE API)")
    d = tmp_path_factory.mktemp("engine")
    ctx = {"dir": d, "ca": sandbox.dir / "ca.pem"}

    (d / "plain.cnf").write_text("# no provider, no engine: the engine loads the provider\n")
    ctx["plain"] = d / "plain.cnf"

    ref = d / "ref"
    (ref / "tokens").mkdir(parents=True)
    (ref / "softhsm2.conf").write_text(f"directories.tokendir = {ref / 'tokens'}\n"
                                       "objectstore.backend = file\nlog.level = ERROR\n")
    ctx["ref_env"] = {"SOFTHSM2_CONF": str(ref / "softhsm2.conf")}
    sandbox.run("softhsm2-util", "--init-token", "--free", "--label", "ref", "--so-pin", "12345678",
                "--pin", "1234", env=ctx["ref_env"], check=True)
    for label, key_id in (("rsa2048", "01"), ("ec-p256", "03")):
        sandbox.run("softhsm2-util", "--import", sandbox.dir / "soft" / f"{label}.key", "--label", label,
                    "--id", key_id, "--token", "ref", "--pin", "1234", env=ctx["ref_env"], check=True)

    slots = sandbox.run("softhsm2-util", "--show-slots", check=True).stdout
    ids = [m.group(1) for m in re.finditer(r"^Slot (\d+)$(?:(?!^Slot ).)*?Label:\s+server\s*$", slots,
                                           re.M | re.S)]
    assert len(ids) == 1, slots
    ctx["server_slot"] = ids[0]
    return ctx


def engine_cnf(eng, name, engine_id, so_path, ctrls, init=1, base=None):
    """An openssl.cnf with one engine section (and `base`'s provider sections if given)."""
    text = base.read_text() if base else "openssl_conf = openssl_init\n[openssl_init]\n"
    text = text.replace("[openssl_init]\n", "[openssl_init]\nengines = engine_section\n", 1)
    lines = [f"engine_id = {engine_id}", f"dynamic_path = {so_path}"]
    lines += [f"{k} = {v}" for k, v in ctrls.items()] + [f"init = {init}"]
    text += "\n[engine_section]\n" + f"{engine_id} = {engine_id}_section\n"
    text += f"[{engine_id}_section]\n" + "\n".join(lines) + "\n"
    path = eng["dir"] / name
    path.write_text(text)
    return path


def ours(sandbox, conf, **extra):
    """Environment for a system openssl/nginx running our engine (found by id)."""
    env = {"OPENSSL_CONF": str(conf), "OPENSSL_ENGINES": str(ENGINE_DIR)}
    env.update(extra)
    return env


def libp11(sandbox, eng, pin="1234", module=SOFTHSM, **extra):
    """Environment for libp11's engine on the reference token (MODULE_PATH and PIN from an
    openssl.cnf engine section, as its documentation shows)."""
    conf = engine_cnf(eng, f"libp11-{pin}-{os.path.basename(module)}.cnf", "pkcs11", LIBP11_SO,
                      {"MODULE_PATH": module, "PIN": pin}, init=0)
    env = {"OPENSSL_CONF": str(conf)}
    env.update(eng["ref_env"])
    env.update(extra)
    return env


def curl_env(sandbox, extra):
    """curl without OPENSSL_CONF. In a sanitizer build our engine is instrumented, so
    curl needs libasan; with libasan first curl deadlocks in setlocale (as do other
    programs linking GnuTLS), so libc is put first and the link-order check relaxed."""
    env = {"OPENSSL_CONF": None}
    if sanitized() and "OPENSSL_ENGINES" in extra:
        pre = sanitizer_preload()
        env["LD_PRELOAD"] = "libc.so.6 " + pre["LD_PRELOAD"]
        env["ASAN_OPTIONS"] = "detect_leaks=0:verify_asan_link_order=0"
    env.update(extra)
    return env


class Server:
    """An openssl s_server (or nginx) on loopback whose output is kept for asserts;
    `env` holds overrides of the sandbox's environment (None removes)."""

    def __init__(self, sandbox, args, env, port):
        self.args, self.port = [str(a) for a in args], port
        self.env = sandbox.env_for(self.args[0], env)

    def __enter__(self):
        # A process group of its own: nginx's worker must end with its master.
        self.proc = subprocess.Popen(self.args, env=self.env, stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                     start_new_session=True)
        try:
            peers.wait_for_port(self.port, self.proc)
        except BaseException:
            self.stop(0)
            raise
        return self

    def stop(self, grace):
        try:
            self.proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            pass
        for sig in (signal.SIGTERM, signal.SIGKILL):
            try:
                os.killpg(self.proc.pid, sig)  # the group outlives a master that exited
            except ProcessLookupError:
                break
            try:
                self.proc.wait(timeout=3)
            except subprocess.TimeoutExpired:
                continue
        self.out, self.err = self.proc.communicate(timeout=30)

    def __exit__(self, *exc):
        self.stop(0 if self.args[0].endswith("nginx") else 3)
        return False


def s_server(port, engine, key, cert, *extra):
    return ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "2", "-quiet",
            "-engine", engine, "-keyform", "engine", "-key", key, "-cert", cert, *extra]


MODES = {
    "tls1.3": ("TLSv1.3", ["-tls1_3"]),
    "tls1.2": ("TLSv1.2", ["-tls1_2"]),
    "tls1.2-rsa-kx": ("TLSv1.2", ["-tls1_2", "-cipher", "AES128-GCM-SHA256"]),
}
CASES = [(k, m) for k in ("rsa2048", "ec-p256") for m in MODES if not (m.endswith("rsa-kx") and k != "rsa2048")]


def run_tls(sandbox, eng, engine, label, mode, token):
    port = peers.free_port()
    cert = sandbox.dir / "certs" / f"{label}.pem"
    key = f"pkcs11:token={token};object={label}"
    if engine == "hsmtls":
        # No provider and no engine in openssl.cnf: found by id, no control command,
        # the provider loaded by the engine, the PIN from -pass through the UI.
        env = ours(sandbox, eng["plain"])
        args = s_server(port, "hsmtls", key, cert, "-pass", "pass:1234")
    else:
        env = libp11(sandbox, eng)
        args = s_server(port, "pkcs11", key, cert)
    if token == "ref":
        env.update(eng["ref_env"])
    with Server(sandbox, args, env, port) as server:
        client = peers.openssl_client(sandbox, port, eng["ca"], *MODES[mode][1])
    clean(client.stdout, client.stderr, server.out, server.err)
    return client, server


@pytest.mark.parametrize("label,mode", CASES)
def test_s_server_hsmtls_engine(sandbox, eng, label, mode):
    client, server = run_tls(sandbox, eng, "hsmtls", label, mode, "server")
    assert client.returncode == 0, client.stderr + server.err
    assert peers.handshake_summary(client) == MODES[mode][0]
    assert "Verification: OK" in client.stderr
    if mode.endswith("rsa-kx"):
        assert "Ciphersuite: AES128-GCM-SHA256" in client.stderr


@pytest.mark.parametrize("label,mode", CASES)
def test_s_server_same_results_as_libp11(sandbox, eng, label, mode):
    """Both engines on the reference token: identical outcomes, except TLS 1.2 RSA key
    exchange, which libp11's engine keys cannot do on OpenSSL 3 (libssl asks for its
    TLS-specific RSA padding)."""
    ours_c, _ = run_tls(sandbox, eng, "hsmtls", label, mode, "ref")
    ref_c, ref_s = run_tls(sandbox, eng, "pkcs11", label, mode, "ref")
    assert ours_c.returncode == 0, ours_c.stderr
    assert peers.handshake_summary(ours_c) == MODES[mode][0]
    if mode.endswith("rsa-kx"):
        assert ref_c.returncode != 0
        assert "illegal or unsupported padding mode" in ref_s.err, ref_s.err
    else:
        assert ref_c.returncode == 0, ref_c.stderr + ref_s.err
        assert peers.handshake_summary(ref_c) == peers.handshake_summary(ours_c)


def test_token_with_eddsa_keys_and_ed25519(sandbox, eng):
    """The server token also holds Ed25519/Ed448 keys: libp11 0.4.12 cannot enumerate its
    keys at all; ours serves its Ed25519 key (TLS 1.3) and its RSA key."""
    key = "pkcs11:token=server;object=rsa2048"
    ref = sandbox.run(*s_server(peers.free_port(), "pkcs11", key, sandbox.dir / "certs" / "rsa2048.pem"),
                      env=libp11(sandbox, eng, SOFTHSM2_CONF=sandbox.env["SOFTHSM2_CONF"]), timeout=30)
    assert ref.returncode != 0  # it even ends with SIGSEGV on this Debian 12 machine
    assert "Unable to enumerate private keys" in ref.stdout + ref.stderr, ref.stdout + ref.stderr

    client, server = run_tls(sandbox, eng, "hsmtls", "ed25519", "tls1.3", "server")
    assert client.returncode == 0, client.stderr + server.err
    assert peers.handshake_summary(client) == "TLSv1.3"
    assert "Signature type: ed25519" in client.stderr


@pytest.mark.parametrize("engine", ["hsmtls", "pkcs11"])
@pytest.mark.parametrize("client", ["client-rsa2048", "client-p256"])
def test_s_client_key_from_engine(sandbox, eng, engine, client):
    """s_client's own key loaded by the engine, against a server that requires one. The
    client token holds only RSA and EC keys, so libp11 can read it too."""
    port = peers.free_port()
    args = peers.openssl_server_args(port, sandbox.dir / "soft" / "ec-p256.key",
                                     sandbox.dir / "certs" / "ec-p256.pem", "-Verify", "1",
                                     "-verify_return_error", "-CAfile", eng["ca"])
    if engine == "hsmtls":
        env = ours(sandbox, sandbox.dir / "openssl.cnf")  # provider (and its PIN) from openssl.cnf
    else:
        env = libp11(sandbox, eng, SOFTHSM2_CONF=sandbox.env["SOFTHSM2_CONF"])
    with peers.serving(args, sandbox, port):
        proc = peers.openssl_client(sandbox, port, eng["ca"], "-engine", engine, "-keyform", "engine",
                                    "-key", f"pkcs11:token=client;object={client}",
                                    "-cert", sandbox.dir / "certs" / f"{client}.pem", env=env)
    clean(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert peers.handshake_summary(proc) == "TLSv1.3"


def sign_and_verify(sandbox, env, engine, key_id, label, tmp_path, *engine_args):
    dgst = tmp_path / "dgst"
    dgst.write_bytes(bytes(range(32)))
    sig = tmp_path / f"{label}.sig"
    opts = ["-pkeyopt", "digest:sha256"] if label.startswith("rsa") else []
    proc = sandbox.run("openssl", "pkeyutl", "-engine", engine, *engine_args, "-keyform", "engine",
                       "-inkey", key_id, "-sign", "-in", dgst, "-out", sig, *opts, env=env)
    clean(proc.stdout, proc.stderr)
    if proc.returncode != 0:
        return proc, None
    verify = sandbox.run("openssl", "pkeyutl", "-verify", "-inkey", sandbox.dir / "soft" / f"{label}.key",
                         "-sigfile", sig, "-in", dgst, *opts, env={"OPENSSL_CONF": None})
    return proc, verify


def key_ids(slot):
    return {
        "uri-ec": ("pkcs11:token=server;object=ec-p256", "ec-p256"),
        "uri-rsa": ("pkcs11:token=server;object=rsa2048;type=private", "rsa2048"),
        "slot-id": (f"slot_{slot}-id_03", "ec-p256"),
        "slot-label": (f"slot_{slot}-label_rsa2048", "rsa2048"),
        "slot:hex": (f"{slot}:01", "rsa2048"),
    }


@pytest.mark.parametrize("case", list(key_ids("N")))
def test_pkeyutl_sign(sandbox, eng, tmp_path, case):
    key_id, label = key_ids(eng["server_slot"])[case]
    # No HSMTLS_PKCS11_MODULE and no MODULE_PATH: the module comes from p11-kit's registry.
    env = ours(sandbox, eng["plain"], HSMTLS_PKCS11_MODULE=None)
    proc, verify = sign_and_verify(sandbox, env, "hsmtls", f"{key_id}", label, tmp_path,
                                   "-passin", "pass:1234")
    assert proc.returncode == 0, proc.stderr
    assert verify.returncode == 0 and "Signature Verified Successfully" in verify.stdout, verify.stderr


@pytest.mark.parametrize("key_id,uri", [("label_ec-p256", "pkcs11:object=ec-p256"),
                                        ("id_03", "pkcs11:id=%03")])
def test_legacy_ids_without_a_slot(sandbox, eng, tmp_path, key_id, uri):
    """Mapped to URIs naming no token: the lookup visits every token (SoftHSM2's
    uninitialised free slot is skipped) and finds the key on the server token. VERBOSE
    shows the URI opened."""
    conf = engine_cnf(eng, "verbose.cnf", "hsmtls", ENGINE_SO, {"VERBOSE": "EMPTY"}, init=0,
                      base=sandbox.dir / "openssl.cnf")
    env = ours(sandbox, conf)
    proc, verify = sign_and_verify(sandbox, env, "hsmtls", key_id, "ec-p256", tmp_path)
    assert f"loading private key {uri}" in proc.stderr, proc.stderr
    assert proc.returncode == 0, proc.stderr
    assert verify.returncode == 0, verify.stderr


def test_dynamic_so_path(sandbox, eng, tmp_path):
    """By path through OpenSSL's `dynamic` engine: no OPENSSL_ENGINES."""
    env = {"OPENSSL_CONF": str(eng["plain"])}
    proc = sandbox.run("openssl", "engine", "-t", "-pre", f"SO_PATH:{ENGINE_SO}", "-pre", "ID:hsmtls",
                       "-pre", "LOAD", "dynamic", env=env)
    assert proc.returncode == 0, proc.stderr
    assert "Loaded: (hsmtls) hsmtls engine" in proc.stdout and "[ available ]" in proc.stdout, proc.stdout
    # `-engine PATH`: the openssl CLI loads it through dynamic with SO_PATH too.
    proc, verify = sign_and_verify(sandbox, env, str(ENGINE_SO), "pkcs11:token=server;object=rsa2048",
                                   "rsa2048", tmp_path, "-passin", "pass:1234")
    assert proc.returncode == 0, proc.stderr
    assert verify.returncode == 0, verify.stderr


def test_control_commands(sandbox, eng):
    env = ours(sandbox, eng["plain"])
    listing = sandbox.run("openssl", "engine", "-vvvv", "hsmtls", env=env)
    for name in ("MODULE_PATH", "PIN", "VERBOSE", "QUIET", "DEBUG_LEVEL", "LOAD_CERT_CTRL",
                 "FORCE_LOGIN", "INIT_ARGS", "KEYGEN", "PROVIDER_PATH"):
        assert f"{name}:" in listing.stdout, listing.stdout
    unknown = sandbox.run("openssl", "engine", "hsmtls", "-pre", "NO_SUCH_CMD:1", env=env)
    assert "[Failure]: NO_SUCH_CMD:1" in unknown.stdout
    assert 'unknown control command "NO_SUCH_CMD"' in unknown.stdout + unknown.stderr
    same = sandbox.run("openssl", "engine", "-pre", f"SO_PATH:{ENGINE_SO}", "-pre", "LOAD",
                       "-pre", "BOGUS:1", "dynamic", env=env)
    assert 'unknown control command "BOGUS"' in same.stdout + same.stderr
    accepted = sandbox.run("openssl", "engine", "hsmtls", "-pre", "INIT_ARGS:configdir='x'", "-pre",
                           "FORCE_LOGIN", "-pre", "DEBUG_LEVEL:7", "-pre", "QUIET", "-pre", "VERBOSE",
                           "-pre", f"PIN:{WRONG_PIN}", "-pre", f"MODULE_PATH:{SOFTHSM}", env=env)
    assert "[Failure]" not in accepted.stdout, accepted.stdout + accepted.stderr
    assert "INIT_ARGS ignored" in accepted.stderr
    # `openssl engine` itself echoes each -pre it ran ("[Success]: PIN:..."); we do not.
    ours_lines = [l for l in (accepted.stdout + accepted.stderr).splitlines() if "[Success]" not in l]
    assert WRONG_PIN not in "\n".join(ours_lines)


def test_module_path_ctrl_reaches_the_module(sandbox, eng, tmp_path):
    """MODULE_PATH becomes the URI's module-path: here pkcs11-spy in front of SoftHSM2."""
    log = tmp_path / "spy.log"
    conf = engine_cnf(eng, "spy.cnf", "hsmtls", ENGINE_SO, {"MODULE_PATH": SPY, "PIN": "1234"})
    env = ours(sandbox, conf, HSMTLS_PKCS11_MODULE=None, PKCS11SPY=SOFTHSM, PKCS11SPY_OUTPUT=str(log))
    proc, verify = sign_and_verify(sandbox, env, "hsmtls", "pkcs11:token=server;object=ec-p256",
                                   "ec-p256", tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert verify.returncode == 0, verify.stderr
    assert "C_Sign" in log.read_text()


def test_wrong_pin_one_login(sandbox, eng, tmp_path):
    """The engine's PIN comes before openssl.cnf's pin-source; a wrong one is tried once,
    named CKR_PIN_INCORRECT, and printed nowhere. libp11 the same."""
    conf = engine_cnf(eng, "wrong-pin.cnf", "hsmtls", ENGINE_SO, {"PIN": WRONG_PIN}, init=0,
                      base=sandbox.dir / "openssl.cnf")
    env = ours(sandbox, conf, HSMTLS_DEBUG="1")
    proc, _ = sign_and_verify(sandbox, env, "hsmtls", "pkcs11:token=server;object=ec-p256", "ec-p256",
                              tmp_path)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0
    assert "CKR_PIN_INCORRECT" in out, out
    assert len(re.findall(r"C_Login = ", out)) == 1, out
    assert WRONG_PIN not in out

    log = tmp_path / "spy.log"
    env = libp11(sandbox, eng, pin=WRONG_PIN, module=SPY, PKCS11SPY=SOFTHSM, PKCS11SPY_OUTPUT=str(log))
    ref, _ = sign_and_verify(sandbox, env, "pkcs11", "pkcs11:token=ref;object=ec-p256", "ec-p256", tmp_path)
    assert ref.returncode != 0
    spy = log.read_text()
    assert spy.count("C_Login") == 1 and "CKR_PIN_INCORRECT" in spy, spy
    assert WRONG_PIN not in ref.stdout + ref.stderr


NGINX_CONF = """
daemon off;
master_process on;
worker_processes 1;
{user}
pid {dir}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 16; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    server {{
        listen 127.0.0.1:{port} ssl;
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_certificate {cert};
        ssl_certificate_key "engine:{engine}:{key}";
        location / {{ return 200 "hello from nginx $ssl_protocol\\n"; }}
    }}
}}
"""


@pytest.mark.parametrize("engine", ["hsmtls", "pkcs11"])
@pytest.mark.parametrize("label", ["rsa2048", "ec-p256"])
def test_nginx_engine_key(sandbox, eng, tmp_path, engine, label):
    """nginx loads the key in its master (engine section with init = 1) and signs in a
    forked worker. The worker runs as root here: SoftHSM2's token files are root's."""
    port = peers.free_port()
    if engine == "hsmtls":
        token = "server"
        conf = engine_cnf(eng, "nginx-hsmtls.cnf", "hsmtls", ENGINE_SO, {"PIN": "1234"})
        env = {"OPENSSL_CONF": str(conf)}
    else:
        token = "ref"
        conf = engine_cnf(eng, "nginx-libp11.cnf", "pkcs11", LIBP11_SO, {"MODULE_PATH": SOFTHSM, "PIN": "1234"})
        env = {"OPENSSL_CONF": str(conf), **eng["ref_env"]}
    (tmp_path / "nginx.conf").write_text(NGINX_CONF.format(
        user="user root;" if os.geteuid() == 0 else "", dir=tmp_path, port=port, engine=engine,
        cert=sandbox.dir / "certs" / f"{label}.pem", key=f"pkcs11:token={token};object={label}"))
    with Server(sandbox, [NGINX, "-p", tmp_path, "-c", tmp_path / "nginx.conf"], env, port) as server:
        results = [sandbox.run("curl", "-sS", "--max-time", "20", "--cacert", eng["ca"], *v,
                               f"https://localhost:{port}/", env=curl_env(sandbox, {}))
                   for v in ([], ["--tls-max", "1.2"])]
    clean(server.out, server.err)
    for proc, version in zip(results, ("TLSv1.3", "TLSv1.2")):
        clean(proc.stdout, proc.stderr)
        assert proc.returncode == 0, proc.stderr + server.err
        assert proc.stdout.startswith(f"hello from nginx {version}"), proc.stdout


@pytest.mark.parametrize("engine", ["hsmtls", "pkcs11"])
@pytest.mark.parametrize("client,cert_from_engine", [("client-p256", False), ("client-rsa2048", True)])
def test_curl_client_certificate(sandbox, eng, engine, client, cert_from_engine):
    """curl --engine ID --key-type ENG --key pkcs11:... against s_server -Verify 1; the
    certificate from a file, or from the token through LOAD_CERT_CTRL (--cert-type ENG)."""
    port = peers.free_port()
    args = ["openssl", "s_server", "-accept", f"127.0.0.1:{port}", "-naccept", "2", "-www",
            "-key", sandbox.dir / "soft" / "ec-p256.key", "-cert", sandbox.dir / "certs" / "ec-p256.pem",
            "-Verify", "1", "-verify_return_error", "-CAfile", eng["ca"]]
    uri = f"pkcs11:token=client;object={client}"
    cert = ["--cert-type", "ENG", "--cert", uri] if cert_from_engine else \
        ["--cert", str(sandbox.dir / "certs" / f"{client}.pem")]
    extra = {"OPENSSL_ENGINES": str(ENGINE_DIR)} if engine == "hsmtls" else {}
    with Server(sandbox, args, {}, port) as server:
        proc = sandbox.run("curl", "-sS", "--max-time", "20", "--cacert", eng["ca"], "--engine", engine,
                           "--key-type", "ENG", "--key", uri, "--pass", "1234", *cert,
                           f"https://localhost:{port}/", env=curl_env(sandbox, extra))
    clean(proc.stdout, proc.stderr)
    assert proc.returncode == 0, proc.stderr
    assert "Protocol  : TLSv1.3" in proc.stdout, proc.stdout
    assert f"CN = {client}" in server.out + server.err
