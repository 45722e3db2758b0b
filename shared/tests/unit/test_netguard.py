"""The outbound guard: names that resolve inside are refused, the connection goes to the
address that was checked, redirects are checked hop by hop. No network: a fake resolver and
a fake socket layer stand in."""

from __future__ import annotations

# ruff: noqa: ASYNC109 - the fakes implement httpcore's interface, timeout parameters included
import typing
from ipaddress import ip_address

import httpcore
import pytest

from microcred_shared import netguard
from microcred_shared.netguard import BlockedDestination, Policy

PUBLIC = "93.184.216.34"


class FakeStream(httpcore.AsyncNetworkStream):
    def __init__(self, answer: bytes) -> None:
        self._chunks = [answer]
        self.written = bytearray()
        self.tls_name: str | None = None

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        return self._chunks.pop(0) if self._chunks else b""

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        self.written += buffer

    async def aclose(self) -> None:
        pass

    async def start_tls(self, ssl_context: typing.Any, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        self.tls_name = server_hostname
        return self

    def get_extra_info(self, info: str) -> typing.Any:
        return None


class FakeNetwork(httpcore.AsyncNetworkBackend):
    """Records where connections go; answers each with the canned response for that address."""

    def __init__(self, answers: dict[str, bytes]) -> None:
        self.answers = answers
        self.connected: list[tuple[str, int]] = []
        self.streams: list[FakeStream] = []

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None,
                          local_address: str | None = None,
                          socket_options: typing.Any = None) -> httpcore.AsyncNetworkStream:
        self.connected.append((host, port))
        self.streams.append(FakeStream(self.answers[host]))
        return self.streams[-1]


class FakeDns:
    def __init__(self, zone: dict[str, list[list[str]]]) -> None:
        self.zone, self.lookups = zone, []

    async def __call__(self, host: str, port: int) -> list[str]:
        self.lookups.append(host)
        answers = self.zone[host]
        return answers.pop(0) if len(answers) > 1 else answers[0]


def ok(body: bytes = b'{"ok": true}') -> bytes:
    return (b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n"
            b"content-length: %d\r\n\r\n%s" % (len(body), body))


def client(dns: FakeDns, network: FakeNetwork, policy: Policy | None = None,
           **kwargs: typing.Any) -> typing.Any:
    return netguard.guarded_client(policy or Policy(), resolve=dns, inner=network, **kwargs)


@pytest.mark.parametrize("inside", ["10.1.2.3", "127.0.0.1", "::ffff:127.0.0.1",
                                    "169.254.169.254", "100.64.0.9", "0.0.0.0", "::1",
                                    "fd00::1", "fe80::1", "224.0.0.1", "64:ff9b::a9fe:a9fe"])
async def test_a_name_that_resolves_to_a_non_public_address_is_never_connected_to(
        inside: str) -> None:
    network = FakeNetwork({})
    async with client(FakeDns({"docs.example.org": [[inside]]}), network) as http:
        with pytest.raises(BlockedDestination, match="not a public address"):
            await http.get("https://docs.example.org/issuer")
    assert network.connected == []


async def test_one_private_answer_among_public_ones_is_enough_to_refuse() -> None:
    network = FakeNetwork({PUBLIC: ok()})
    async with client(FakeDns({"docs.example.org": [[PUBLIC, "10.0.0.7"]]}), network) as http:
        with pytest.raises(BlockedDestination):
            await http.get("https://docs.example.org/issuer")
    assert network.connected == []


async def test_a_public_name_is_fetched_from_the_checked_address_with_its_own_name_for_tls(
        ) -> None:
    network = FakeNetwork({PUBLIC: ok()})
    dns = FakeDns({"docs.example.org": [[PUBLIC], ["127.0.0.1"]]})  # rebinds after one answer
    async with client(dns, network) as http:
        got = await netguard.fetch(http, "GET", "https://docs.example.org/issuer",
                                   max_bytes=1000, total_seconds=5)
    assert got.status_code == 200 and got.content == b'{"ok": true}'
    assert network.connected == [(PUBLIC, 443)] and dns.lookups == ["docs.example.org"]
    (stream,) = network.streams
    assert stream.tls_name == "docs.example.org"
    assert b"\r\nHost: docs.example.org\r\n" in stream.written


async def test_a_redirect_to_a_private_target_is_refused() -> None:
    moved = b"HTTP/1.1 302 Found\r\nlocation: https://metadata.example.org/latest\r\n" \
            b"content-length: 0\r\n\r\n"
    network = FakeNetwork({PUBLIC: moved})
    dns = FakeDns({"docs.example.org": [[PUBLIC]], "metadata.example.org": [["169.254.169.254"]]})
    async with client(dns, network, follow_redirects=True) as http:
        with pytest.raises(BlockedDestination):
            await http.get("https://docs.example.org/issuer")
    assert network.connected == [(PUBLIC, 443)]


async def test_a_redirect_to_plain_http_is_refused() -> None:
    moved = (b"HTTP/1.1 301 Moved\r\nlocation: http://docs.example.org/x\r\n"
             b"content-length: 0\r\n\r\n")
    network = FakeNetwork({PUBLIC: moved})
    async with client(FakeDns({"docs.example.org": [[PUBLIC]]}), network,
                      follow_redirects=True) as http:
        with pytest.raises(BlockedDestination, match="only https"):
            await http.get("https://docs.example.org/issuer")


async def test_a_body_over_the_cap_is_refused() -> None:
    network = FakeNetwork({PUBLIC: ok(b"x" * 5000)})
    async with client(FakeDns({"docs.example.org": [[PUBLIC]]}), network) as http:
        with pytest.raises(netguard.ResponseTooLarge):
            await netguard.fetch(http, "GET", "https://docs.example.org/big", max_bytes=1000,
                                 total_seconds=5)


async def test_loopback_is_reachable_only_when_the_deployment_allows_it() -> None:
    network = FakeNetwork({"127.0.0.1": ok()})
    async with client(FakeDns({}), network, Policy(allow_loopback=True)) as http:
        assert (await http.get("http://127.0.0.1:9000/hook")).status_code == 200
    async with client(FakeDns({}), network) as http:
        with pytest.raises(BlockedDestination):
            await http.get("http://127.0.0.1:9000/hook")
    async with client(FakeDns({}), network, Policy(allow_loopback=True)) as http:
        with pytest.raises(BlockedDestination):
            await http.get("https://10.0.0.1/hook")


def test_public_addresses_are_public_and_embedded_private_ones_are_not() -> None:
    assert netguard.is_public(ip_address(PUBLIC))
    assert netguard.is_public(ip_address("2606:4700::1111"))
    assert not netguard.is_public(ip_address("2002:0a00:0001::1"))  # 6to4 of 10.0.0.1
    assert not netguard.is_public(ip_address("::ffff:10.0.0.1"))


async def test_a_registered_url_is_refused_when_its_name_resolves_inside_or_not_at_all() -> None:
    dns = FakeDns({"hooks.example.org": [[PUBLIC]], "rebind.example.org": [["10.9.8.7"]]})
    assert await netguard.url_problem("https://hooks.example.org/h", Policy(), dns) is None
    assert "not public" in str(
        await netguard.url_problem("https://rebind.example.org/h", Policy(), dns))
    assert "only https" in str(
        await netguard.url_problem("http://hooks.example.org/h", Policy(), dns))

    async def nxdomain(host: str, port: int) -> list[str]:
        raise OSError("Name or service not known")

    assert "does not resolve" in str(
        await netguard.url_problem("https://gone.example.org/h", Policy(), nxdomain))
    loopback = Policy(allow_loopback=True)
    assert await netguard.url_problem("http://127.0.0.1:9000/h", loopback, dns) is None
