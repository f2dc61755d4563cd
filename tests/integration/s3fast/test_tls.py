"""Lean calls over TLS, blocking and multiplexed (non-blocking TLS sockets), on one pool."""

from __future__ import annotations

import datetime
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3
import pytest
from botocore.config import Config

from batchops.s3fast import LeanS3Client
from batchops.s3fast.multiplex import Multiplexer
from tests.integration.s3fast.test_equivalence import COPY_RESULT

crypto = pytest.importorskip("cryptography")


def self_signed(directory: Path) -> tuple[Path, Path]:
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False
        )
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = directory / "cert.pem", directory / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return cert_path, key_path


class TLSServer:
    """Answers every request with COPY_RESULT over TLS, keeping connections alive; counts them."""

    def __init__(self, cert: Path, key: Path) -> None:
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.load_cert_chain(cert, key)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = f"https://127.0.0.1:{self.listener.getsockname()[1]}"
        self.connections = 0
        self.requests = 0
        self._lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            with self._lock:
                self.connections += 1
            threading.Thread(target=self._serve, args=(conn,), daemon=True).start()

    def _serve(self, conn: socket.socket) -> None:
        try:
            with self.context.wrap_socket(conn, server_side=True) as tls:
                pending = b""
                while data := tls.recv(65536):
                    pending += data
                    while b"\r\n\r\n" in pending:
                        _, pending = pending.split(b"\r\n\r\n", 1)  # requests without a body
                        with self._lock:
                            self.requests += 1
                        tls.sendall(COPY_RESULT)
        except OSError:
            pass

    def stop(self) -> None:
        self.listener.close()


@pytest.fixture
def tls_server(tmp_path: Path) -> Iterator[tuple[TLSServer, Path]]:
    cert, key = self_signed(tmp_path)
    server = TLSServer(cert, key)
    yield server, cert
    server.stop()


def test_multiplexed_calls_over_tls_share_the_pool_with_blocking_ones(
    tls_server: tuple[TLSServer, Path],
) -> None:
    # GIVEN a lean client on an https endpoint that it trusts
    server, cert = tls_server
    client = boto3.client(
        "s3",
        endpoint_url=server.url,
        region_name="us-east-1",
        aws_access_key_id="AKIDTEST",
        aws_secret_access_key="secret",
        verify=str(cert),
        config=Config(
            retries={"mode": "standard", "max_attempts": 2},
            s3={"addressing_style": "path"},
            max_pool_connections=8,
        ),
    )
    lean = LeanS3Client(client)
    params = {"Bucket": "dst", "Key": "k", "CopySource": "src/k"}
    # WHEN 100 calls are multiplexed 8 at a time, then one is made blocking
    with ThreadPoolExecutor(max_workers=2) as pool:
        mux = Multiplexer(pool)
        try:
            results, _ = mux.run([lambda: lean.steps("copy_object", dict(params))] * 100, 8, lambda: False)
        finally:
            mux.close()
    last = lean.copy_object(**params)
    # THEN every call was answered over at most 8 TLS connections, the blocking call on one of them
    assert [r["CopyObjectResult"]["ETag"] for r in results] == ['"abc"'] * 100
    assert last["CopyObjectResult"]["ETag"] == '"abc"'
    assert server.requests == 101
    assert 1 < server.connections <= 8
