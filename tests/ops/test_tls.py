"""TLS to Temporal through ``TemporalConfig(tls_cert=..., tls_key=..., tls_ca=..., tls_server_name=...)``.

``temporal server start-dev`` has no TLS options, so a TLS-terminating proxy that requires a client
certificate signed by a test CA sits in front of the dev server. The proxy's certificate is signed by
that private CA, which the client trusts through ``tls_ca`` (``TEMPORAL_TLS_CA``), not the system store.
"""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from temporalio.client import Client
from temporalio.service import TLSConfig

from agent_core.errors import TemporalUnavailable, UserError
from agent_core.settings import Settings
from agent_core.temporal import TemporalConfig

CONNECT = 10.0  # seconds; every connection attempt is bounded


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _cert(
    subject: str,
    key: Any,
    issuer: x509.Certificate | None = None,
    issuer_key: Any = None,
    *,
    ca: bool = False,
    san: list[x509.GeneralName] | None = None,
    usage: Any = None,
) -> x509.Certificate:
    now = datetime.datetime.now(datetime.UTC)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.subject if issuer else name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
    )
    if ca:
        builder = builder.add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
    if san:
        builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
    if usage:
        builder = builder.add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


def _pem(obj: Any) -> bytes:
    if isinstance(obj, x509.Certificate):
        return obj.public_bytes(serialization.Encoding.PEM)
    return obj.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A test CA, a server certificate for 127.0.0.1/localhost and a client certificate, as PEM files."""
    ca_key = _key()
    ca = _cert("durabot test CA", ca_key, ca=True)
    server_key, client_key = _key(), _key()
    server = _cert(
        "localhost",
        server_key,
        ca,
        ca_key,
        usage=ExtendedKeyUsageOID.SERVER_AUTH,
        san=[x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))],
    )
    client = _cert("durabot-worker", client_key, ca, ca_key, usage=ExtendedKeyUsageOID.CLIENT_AUTH)
    d = tmp_path_factory.mktemp("pki")
    files = {
        "ca": (ca, "ca.pem"),
        "server_cert": (server, "server.pem"),
        "server_key": (server_key, "server.key"),
        "client_cert": (client, "client.pem"),
        "client_key": (client_key, "client.key"),
    }
    out = {}
    for name, (obj, filename) in files.items():
        (d / filename).write_bytes(_pem(obj))
        out[name] = d / filename
    return out


@pytest.fixture
async def tls_port(pki: dict[str, Path], temporal_server: Any) -> AsyncIterator[int]:
    """A proxy on 127.0.0.1 that terminates mTLS (client certificate required) and forwards to Temporal."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(pki["server_cert"], pki["server_key"])
    ctx.load_verify_locations(pki["ca"])
    ctx.verify_mode = ssl.CERT_REQUIRED
    ctx.set_alpn_protocols(["h2"])
    tasks: set[asyncio.Task[Any]] = set()

    async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        except (ConnectionError, ssl.SSLError):
            pass
        finally:
            writer.close()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", temporal_server.port)
        for task in (
            asyncio.ensure_future(pipe(reader, up_writer)),
            asyncio.ensure_future(pipe(up_reader, writer)),
        ):
            tasks.add(task)
            task.add_done_callback(tasks.discard)

    proxy = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=ctx)
    yield proxy.sockets[0].getsockname()[1]
    proxy.close()
    for task in list(tasks):
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    await proxy.wait_closed()


def _config(port: int, pki: dict[str, Path], **kwargs: Any) -> TemporalConfig:
    kwargs.setdefault("tls_ca", str(pki["ca"]))
    return TemporalConfig(
        host="127.0.0.1",
        port=port,
        tls_cert=str(pki["client_cert"]),
        tls_key=str(pki["client_key"]),
        connect_timeout=CONNECT,
        **kwargs,
    )


@pytest.fixture(autouse=True)
def _no_trust_store_override(monkeypatch: pytest.MonkeyPatch) -> None:
    """The private CA must reach the client through tls_ca alone, never through the process trust store."""
    monkeypatch.delenv("SSL_CERT_FILE", raising=False)
    monkeypatch.delenv("SSL_CERT_DIR", raising=False)


async def test_proxy_accepts_mtls_with_the_test_ca(tls_port: int, pki: dict[str, Path]) -> None:
    tls = TLSConfig(
        server_root_ca_cert=pki["ca"].read_bytes(),
        client_cert=pki["client_cert"].read_bytes(),
        client_private_key=pki["client_key"].read_bytes(),
    )
    client = await asyncio.wait_for(Client.connect(f"127.0.0.1:{tls_port}", tls=tls), CONNECT)
    assert await client.service_client.check_health()


async def test_proxy_refuses_a_client_without_certificate(tls_port: int, pki: dict[str, Path]) -> None:
    tls = TLSConfig(server_root_ca_cert=pki["ca"].read_bytes())
    with pytest.raises(RuntimeError):
        await asyncio.wait_for(Client.connect(f"127.0.0.1:{tls_port}", tls=tls), CONNECT)


async def test_temporal_config_connects_with_client_certificate_and_ca(
    tls_port: int, pki: dict[str, Path]
) -> None:
    client = await _config(tls_port, pki).connect()
    assert await client.service_client.check_health()  # the proxy only lets certified clients through


async def test_settings_carry_the_ca_and_server_name_to_the_connection(
    tls_port: int, pki: dict[str, Path]
) -> None:
    settings = Settings.load(
        env={
            "TEMPORAL_ADDRESS": f"127.0.0.1:{tls_port}",
            "TEMPORAL_TLS_CERT": str(pki["client_cert"]),
            "TEMPORAL_TLS_KEY": str(pki["client_key"]),
            "TEMPORAL_TLS_CA": str(pki["ca"]),
            "TEMPORAL_TLS_SERVER_NAME": "localhost",
        },
        dotenv=None,
    )
    config = settings.temporal_config()
    assert (config.tls_ca, config.tls_server_name) == (str(pki["ca"]), "localhost")
    config.connect_timeout = CONNECT
    client = await config.connect()
    assert await client.service_client.check_health()


async def test_server_name_is_checked_against_the_certificate(tls_port: int, pki: dict[str, Path]) -> None:
    # The proxy's certificate names localhost and 127.0.0.1 only.
    client = await _config(tls_port, pki, tls_server_name="localhost").connect()
    assert await client.service_client.check_health()
    # The core names the mismatch (NotValidForName... "temporal.example.com"); the message quotes it.
    with pytest.raises(TemporalUnavailable, match="temporal.example.com"):
        await _config(tls_port, pki, tls_server_name="temporal.example.com").connect()


async def test_a_wrong_ca_fails_with_a_tls_message(
    tls_port: int, pki: dict[str, Path], tmp_path: Path
) -> None:
    other_key = _key()
    other_ca = tmp_path / "other-ca.pem"
    other_ca.write_bytes(_pem(_cert("some other CA", other_key, ca=True)))
    with pytest.raises(TemporalUnavailable, match="TLS") as info:
        await _config(tls_port, pki, tls_ca=str(other_ca)).connect()
    assert "TEMPORAL_TLS_CA" in str(info.value)


async def test_without_the_ca_the_private_server_is_not_trusted(tls_port: int, pki: dict[str, Path]) -> None:
    # No tls_ca: the system trust store, which does not know the test CA.
    with pytest.raises(TemporalUnavailable, match="TLS"):
        await _config(tls_port, pki, tls_ca=None).connect()


def test_an_unreadable_ca_file_is_a_configuration_error(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="cannot read a Temporal TLS file"):
        TemporalConfig(tls_ca=str(tmp_path / "missing.pem"))._tls()


def test_ca_alone_turns_tls_on_without_a_client_certificate(pki: dict[str, Path]) -> None:
    tls = TemporalConfig(tls_ca=str(pki["ca"]), tls_server_name="temporal.internal")._tls()
    assert isinstance(tls, TLSConfig)
    assert tls.server_root_ca_cert == pki["ca"].read_bytes() and tls.domain == "temporal.internal"
    assert tls.client_cert is None and tls.client_private_key is None


def test_cert_and_key_go_together(pki: dict[str, Path]) -> None:
    with pytest.raises(UserError, match="TEMPORAL_TLS_CERT and TEMPORAL_TLS_KEY must be set together"):
        TemporalConfig(tls_cert=str(pki["client_cert"]))._tls()
    tls = TemporalConfig(tls_cert=str(pki["client_cert"]), tls_key=str(pki["client_key"]))._tls()
    assert isinstance(tls, TLSConfig) and tls.client_cert == pki["client_cert"].read_bytes()
    assert TemporalConfig(api_key="k")._tls() is True and TemporalConfig()._tls() is False
