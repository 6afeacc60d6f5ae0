"""Programs that take only a key *file*: Python's ssl module and nginx (served to curl),
with the software key file, and with a key file that names a token key."""
import ssl
import subprocess
import sys
import textwrap

import pytest

import peers

SOURCES = ["file", "token"]

# The token keys these tests use, and their tokens.
URI_KEYS = {"rsa2048": "server", "ec-p256": "server", "client-p256": "client"}


@pytest.fixture(scope="module", autouse=True)
def uri_keys(sandbox):
    """URI key files (written by `hsmtls keyfile`) for the "token" source."""
    directory = sandbox.dir / "uri-keys"
    directory.mkdir(exist_ok=True)
    for label, token in URI_KEYS.items():
        path = directory / f"{label}.pem"
        sandbox.hsmtls("keyfile", "--out", path, f"pkcs11:token={token};object={label};type=private",
                       check=True)
        assert path.read_text().startswith("-----BEGIN PKCS#11 PROVIDER URI-----")
    return directory


def key_file(box, label, source):
    if source == "file":
        return box.dir / "soft" / f"{label}.key"
    return box.dir / "uri-keys" / f"{label}.pem"


PY_SERVER = textwrap.dedent("""
    import socket, ssl, sys
    cert, key, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(cert, key)
    with socket.create_server(("127.0.0.1", port)) as srv:
        for _ in range(2):  # the readiness probe, then the client
            conn, _ = srv.accept()
            try:
                with ctx.wrap_socket(conn, server_side=True) as tls:
                    tls.sendall(b"hello from python " + tls.version().encode() + b"\\n")
                    tls.unwrap()  # close_notify, so the client sees a clean end
            except (ssl.SSLError, OSError):
                pass
""")


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("label", ["rsa2048", "ec-p256"])
def test_python_ssl_server(sandbox, label, source):
    port = peers.free_port()
    args = [sys.executable, "-c", PY_SERVER, sandbox.dir / "certs" / f"{label}.pem",
            key_file(sandbox, label, source), port]
    with peers.serving(args, sandbox, port):
        proc = peers.openssl_client(sandbox, port, sandbox.dir / "ca.pem", "-ign_eof", data="")
    assert proc.returncode == 0, proc.stderr
    assert "hello from python TLSv1.3" in proc.stdout


@pytest.mark.parametrize("source", SOURCES)
def test_python_ssl_client_certificate(sandbox, source):
    port = peers.free_port()
    args = peers.openssl_server_args(port, sandbox.dir / "soft" / "ec-p256.key",
                                     sandbox.dir / "certs" / "ec-p256.pem", "-Verify", "1",
                                     "-verify_return_error", "-CAfile", sandbox.dir / "ca.pem")
    client = textwrap.dedent("""
        import socket, ssl, sys
        ca, cert, key, port = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
        ctx = ssl.create_default_context(cafile=ca)
        ctx.load_cert_chain(cert, key)
        with socket.create_connection(("127.0.0.1", port)) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as tls:
                tls.sendall(b"ping\\n")
                print("connected", tls.version())
    """)
    with peers.serving(args, sandbox, port):
        proc = sandbox.run(sys.executable, "-c", client, sandbox.dir / "ca.pem",
                           sandbox.dir / "certs" / "client-p256.pem",
                           key_file(sandbox, "client-p256", source), port)
    assert proc.returncode == 0, proc.stderr
    assert "connected TLSv1.3" in proc.stdout


NGINX_CONF = """
daemon off;
master_process off;
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
        ssl_certificate_key {key};
        location / {{ return 200 "hello from nginx $ssl_protocol\\n"; }}
    }}
}}
"""


@pytest.mark.parametrize("source", SOURCES)
@pytest.mark.parametrize("label", ["rsa2048", "ec-p256"])
def test_nginx_serves_https(sandbox, tmp_path, label, source):
    nginx = "/usr/sbin/nginx"
    port = peers.free_port()
    conf = tmp_path / "nginx.conf"
    conf.write_text(NGINX_CONF.format(dir=tmp_path, port=port, cert=sandbox.dir / "certs" / f"{label}.pem",
                                      key=key_file(sandbox, label, source)))
    with peers.serving([nginx, "-p", tmp_path, "-c", conf], sandbox, port):
        proc = sandbox.run("curl", "-sS", "--max-time", "20", "--cacert", sandbox.dir / "ca.pem",
                           f"https://localhost:{port}/", env={"OPENSSL_CONF": None})
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("hello from nginx TLSv1.3")
