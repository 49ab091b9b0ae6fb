"""The data plane's upstream HTTP/1.1 client against real servers on loopback that answer the way
upstreams do: keep-alive, `connection: close`, chunked bodies with extensions and trailers,
bodies ended by closing the connection, stalls, streams broken off halfway, refused
connections and TLS."""

from __future__ import annotations

import asyncio
import datetime
import ipaddress
import ssl
import tempfile

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from dataplane.providers.http import Client, HTTPError
from tests.support.live_server import free_port

JSON = [("content-type", "application/json")]


class Upstream:
    """A loopback server whose `answer(request_body, writer)` coroutine writes each answer;
    counts the connections it accepted."""

    def __init__(self, answer, ssl_context: ssl.SSLContext | None = None) -> None:
        self.answer = answer
        self.connections = 0
        self.ssl_context = ssl_context
        self.port = 0

    async def __aenter__(self) -> Upstream:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.ssl_context)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *_) -> None:
        self.server.close()

    @property
    def url(self) -> str:
        scheme = "https" if self.ssl_context else "http"
        return f"{scheme}://127.0.0.1:{self.port}/v1/chat/completions"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = next(
                    int(line.split(b":", 1)[1])
                    for line in head.split(b"\r\n")
                    if line.lower().startswith(b"content-length:")
                )
                body = await reader.readexactly(length)
                if await self.answer(body, writer) is False:
                    writer.close()
                    return
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()


def _whole(body: bytes, extra: bytes = b"") -> bytes:
    return b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n%s\r\n%s" % (
        len(body),
        extra,
        body,
    )


async def _echo(body: bytes, writer) -> None:
    writer.write(_whole(b'{"echo": ' + body + b"}", b"x-request-id: up-1\r\n"))
    await writer.drain()


def test_sequential_requests_share_one_keep_alive_connection_and_get_their_own_answers():
    async def run():
        async with Upstream(_echo) as upstream:
            client = Client(timeout=5, connect_timeout=5)
            answers = []
            for i in range(20):
                response = await client.post(upstream.url, b'{"n": %d}' % i, JSON)
                answers.append((response.status, response.headers["x-request-id"], await response.read()))
            client.close()
            return upstream.connections, answers

    connections, answers = asyncio.run(run())
    assert connections == 1
    assert answers == [(200, "up-1", b'{"echo": {"n": %d}}' % i) for i in range(20)]


def test_an_answer_with_connection_close_is_read_and_the_next_request_gets_a_new_connection():
    async def closing(body: bytes, writer) -> bool:
        writer.write(_whole(body, b"connection: close\r\n"))
        await writer.drain()
        return False

    async def run():
        async with Upstream(closing) as upstream:
            client = Client(timeout=5, connect_timeout=5)
            bodies = [await (await client.post(upstream.url, b"%d" % i, JSON)).read() for i in range(3)]
            client.close()
            return upstream.connections, bodies

    assert asyncio.run(run()) == (3, [b"0", b"1", b"2"])


def test_a_pooled_connection_the_upstream_closed_while_idle_is_not_used_again():
    async def one_then_hang_up(body: bytes, writer) -> bool:
        writer.write(_whole(body))  # keep-alive, then the upstream's idle timeout closes it
        await writer.drain()
        return False

    async def run():
        async with Upstream(one_then_hang_up) as upstream:
            client = Client(timeout=5, connect_timeout=5)
            first = await (await client.post(upstream.url, b"1", JSON)).read()
            pool, _ = client.pool(upstream.url)
            async with asyncio.timeout(5):
                while pool.idle:  # the close reaches this process: the connection leaves the pool
                    await asyncio.sleep(0.001)
            second = await (await client.post(upstream.url, b"2", JSON)).read()
            client.close()
            return first, second, upstream.connections

    assert asyncio.run(run()) == (b"1", b"2", 2)


def test_a_chunked_body_with_extensions_and_trailers_is_read_exactly():
    async def chunked(body: bytes, writer) -> None:
        writer.write(
            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n"
            b"5;name=value\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nx-trailer: yes\r\n\r\n"
        )
        await writer.drain()

    async def run():
        async with Upstream(chunked) as upstream:
            client = Client(timeout=5, connect_timeout=5)
            bodies = [await (await client.post(upstream.url, b"{}", JSON)).read() for _ in range(2)]
            client.close()
            return bodies, upstream.connections

    assert asyncio.run(run()) == ([b"hello world", b"hello world"], 1)


def test_a_body_that_ends_with_the_connection_is_read_whole():
    async def until_close(body: bytes, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\r\n" + b"x" * 100_000)
        await writer.drain()
        return False

    async def run():
        async with Upstream(until_close) as upstream:
            client = Client(timeout=5, connect_timeout=5)
            body = await (await client.post(upstream.url, b"{}", JSON)).read()
            client.close()
            return body

    assert asyncio.run(run()) == b"x" * 100_000


def test_an_upstream_that_stalls_before_or_during_its_answer_times_out():
    async def stall(body: bytes, writer) -> None:
        if body == b"midway":
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 10\r\n\r\nabc")
            await writer.drain()
        await asyncio.sleep(30)

    async def run():
        async with Upstream(stall) as upstream:
            client = Client(timeout=0.2, connect_timeout=5)
            with pytest.raises(HTTPError) as before:
                await client.post(upstream.url, b"before", JSON)
            response = await client.post(upstream.url, b"midway", JSON)
            with pytest.raises(HTTPError) as during:
                await response.read()
            client.close()
            return before.value, during.value

    before, during = asyncio.run(run())
    assert before.timeout and during.timeout and before.connected


def test_a_stream_broken_off_halfway_gives_what_came_then_an_error():
    async def broken(body: bytes, writer) -> bool:
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n6\r\ndata: \r\n4\r\nfirs")
        await writer.drain()
        return False

    async def run():
        async with Upstream(broken) as upstream:
            client = Client(timeout=5, connect_timeout=5)
            response = await client.post(upstream.url, b"{}", JSON)
            received = []
            with pytest.raises(HTTPError) as error:
                async for chunk in response.chunks():
                    received.append(chunk)
            client.close()
            return b"".join(received), error.value

    received, error = asyncio.run(run())
    assert received.startswith(b"data: ") and not error.timeout


def test_a_refused_connection_is_an_error_that_never_reached_the_upstream():
    async def run():
        client = Client(timeout=5, connect_timeout=5)
        with pytest.raises(HTTPError) as error:
            await client.post(f"http://127.0.0.1:{free_port()}/v1/chat/completions", b"{}", JSON)
        return error.value

    error = asyncio.run(run())
    assert not error.connected and not error.timeout


def _self_signed() -> tuple[ssl.SSLContext, ssl.SSLContext]:
    """A server context with a certificate for 127.0.0.1, and a client context that trusts it."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), False)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    pem = certificate.public_bytes(serialization.Encoding.PEM)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.NamedTemporaryFile() as cert_file, tempfile.NamedTemporaryFile() as key_file:
        cert_file.write(pem)
        cert_file.flush()
        pkcs8 = serialization.PrivateFormat.PKCS8
        key_file.write(key.private_bytes(serialization.Encoding.PEM, pkcs8, serialization.NoEncryption()))
        key_file.flush()
        server.load_cert_chain(cert_file.name, key_file.name)
    client = ssl.create_default_context(cadata=pem.decode())
    return server, client


def test_an_https_upstream_is_verified_and_answers_over_tls():
    server_context, client_context = _self_signed()

    async def run():
        async with Upstream(_echo, ssl_context=server_context) as upstream:
            trusting = Client(timeout=5, connect_timeout=5, ssl_context=client_context)
            answers = [await (await trusting.post(upstream.url, b"%d" % i, JSON)).read() for i in range(3)]
            trusting.close()
            default = Client(timeout=5, connect_timeout=5)  # the system's CAs: this certificate is not one
            with pytest.raises(HTTPError) as untrusted:
                await default.post(upstream.url, b"{}", JSON)
            default.close()
            return answers, upstream.connections, untrusted.value

    answers, connections, untrusted = asyncio.run(run())
    assert answers == [b'{"echo": 0}', b'{"echo": 1}', b'{"echo": 2}'] and connections == 1  # one kept alive
    assert not untrusted.connected and "certificate" in str(untrusted).lower()


def test_a_header_or_path_with_a_line_break_is_refused_before_anything_is_sent():
    async def run():
        async with Upstream(_echo) as upstream:
            client = Client(timeout=5, connect_timeout=5)
            errors = []
            for url, headers in (
                (upstream.url, [("authorization", "Bearer sk-1\r\nx-admin: yes")]),
                (upstream.url + "\r\nx-admin: yes", JSON),
            ):
                with pytest.raises(HTTPError) as error:
                    await client.post(url, b"{}", headers)
                errors.append(error.value)
            client.close()
            return errors, upstream.connections

    errors, connections = asyncio.run(run())
    assert [error.connected for error in errors] == [False, False] and connections == 0
